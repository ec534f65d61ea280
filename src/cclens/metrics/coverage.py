"""Coverage: which sources reported, for whom, on which days, and how fresh each source is.

A metric is only as good as the sources behind it, so every figure comes with them:

* :func:`source_coverage` — per source, over a range: rows, first and last day with data, or None when
  the source has nothing there ("no data", which a surface must show differently from 0).
* :func:`person_day_coverage` — per person and day: which sources saw them (transcripts, OTel, hooks
  are event sources; Claude Code Analytics and Enterprise Analytics are daily APIs).
* :func:`freshness` — per source: the newest data point, when data last arrived (ingest, receive or
  sync), and the last sync error for pulled sources.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Iterable

from .facts import Ctx, Facts, bind, sources_of

# how each source's rows in a range are counted; event sources use the zone, APIs their UTC days
_RANGE_SQL = {
    "transcripts": "SELECT count(*) AS n, min(ts) AS first, max(ts) AS last FROM api_request "
                   "WHERE from_transcripts AND ts >= $lo AND ts < $hi",
    "otel": "SELECT count(*), min(ts), max(ts) FROM (SELECT ts FROM api_request WHERE from_otel AND ts >= $lo AND ts < $hi "
            "UNION ALL SELECT ts FROM otel_point WHERE ts >= $lo AND ts < $hi)",
    "hooks": "SELECT count(*), min(ts), max(ts) FROM landing_hook_event WHERE ts >= $lo AND ts < $hi",
    "claude_code_analytics": "SELECT count(*), min(day), max(day) FROM cc_actor_day WHERE day >= $since AND day <= $until",
    "enterprise_analytics": "SELECT count(*), min(day), max(day) FROM engagement_day WHERE day >= $since AND day <= $until",
    "usage_api": "SELECT count(*), min(bucket_start), max(bucket_start) FROM usage_bucket "
                 "WHERE bucket_start >= $lo AND bucket_start < $hi",
    "cost_api": "SELECT count(*), min(day), max(day) FROM cost_day WHERE day >= $since AND day <= $until",
    "people": "SELECT count(*), NULL::DATE, NULL::DATE FROM person",
}
SOURCES = tuple(_RANGE_SQL)

# source_state names of the pulled sources
_SYNC_NAME = {"claude_code_analytics": "claude_code_analytics", "enterprise_analytics": "enterprise_analytics",
              "usage_api": "usage", "cost_api": "cost"}


def source_coverage(wh: Any, sources: Iterable[str], since: date, until: date, tz: str,
                    layer: bool = False) -> dict[str, Any]:
    """``{source: {"rows", "first", "last"}}`` for the range, or ``{source: None}`` when it has no data.
    ``layer``: the event sources' counts come from the person-day layer's per-day counts (only for a
    UTC range the layer is fresh for: :func:`cclens.metrics.person_day.usable`)."""
    from .person_day import coverage_sql

    wanted = [s for s in dict.fromkeys(sources) if s in _RANGE_SQL]
    if not wanted:
        return {}
    parts = [f"SELECT '{s}' AS source, * FROM ({(layer and coverage_sql(s)) or _RANGE_SQL[s]})" for s in wanted]
    sql, params = bind(" UNION ALL ".join(parts), Ctx(tz=tz, since=since, until=until).params())
    out: dict[str, Any] = {}
    for r in wh.query(sql, params):
        vals = list(r.values())
        n, first, last = vals[1], vals[2], vals[3]
        out[r["source"]] = None if not n else {"rows": int(n), "first": _day(first, tz), "last": _day(last, tz)}
    return out


def _day(v: Any, tz: str) -> Any:
    if v is None or isinstance(v, date) and not hasattr(v, "hour"):
        return v
    from zoneinfo import ZoneInfo

    return v.astimezone(ZoneInfo(tz)).date()


def person_day_coverage(wh: Any, *, since: date, until: date, tz: str = "UTC",
                        persons: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per person and day with activity: ``sources`` (list) and one boolean per source."""
    facts = Facts(Ctx(tz=tz, since=since, until=until))
    fam = facts.family("activity")
    where = "WHERE person IN (SELECT unnest($persons))" if persons else ""
    sql = (f"{facts.sql_with()}SELECT person, day, bit_or(srcs) AS mask FROM {fam} {where} "
           f"GROUP BY person, day ORDER BY person, day")
    sql, params = bind(sql, {**facts.ctx.params(), "persons": persons or []})
    names = ("transcripts", "otel", "claude_code_analytics", "enterprise_analytics")
    out = []
    for r in wh.query(sql, params):
        srcs = sources_of(r["mask"])
        out.append({"person": r["person"], "day": r["day"], "sources": srcs, **{n: n in srcs for n in names}})
    return out


def freshness(wh: Any) -> dict[str, dict[str, Any]]:
    """Per source: ``last_data`` (newest timestamp or day it reported), ``last_arrival`` (when data last
    came in), ``last_error`` (pulled sources), ``has_data``."""
    row = wh.query("""
        SELECT (SELECT max(ts) FROM api_request WHERE from_transcripts) AS transcripts_data,
               (SELECT max(ingested_at) FROM landing_transcript_line) AS transcripts_arrival,
               (SELECT max(ts) FROM otel_event) AS otel_events_data,
               (SELECT max(ts) FROM otel_point) AS otel_points_data,
               (SELECT max(received_at) FROM landing_otlp_request) AS otel_arrival,
               (SELECT max(ts) FROM landing_hook_event) AS hooks_data,
               (SELECT max(received_at) FROM landing_hook_event) AS hooks_arrival,
               (SELECT max(day) FROM cc_actor_day) AS claude_code_analytics_data,
               (SELECT max(day) FROM engagement_day) AS enterprise_analytics_data,
               (SELECT max(bucket_end) FROM usage_bucket) AS usage_api_data,
               (SELECT max(day) FROM cost_day) AS cost_api_data""")[0]
    state = {r["source"]: r for r in wh.query(
        "SELECT source, last_success, last_attempt, last_error FROM source_state")}
    out: dict[str, dict[str, Any]] = {}
    otel_data = max([v for v in (row["otel_events_data"], row["otel_points_data"]) if v is not None], default=None)
    for name, data, arrival in (("transcripts", row["transcripts_data"], row["transcripts_arrival"]),
                                ("otel", otel_data, row["otel_arrival"]),
                                ("hooks", row["hooks_data"], row["hooks_arrival"])):
        out[name] = {"has_data": data is not None, "last_data": data, "last_arrival": arrival, "last_error": None}
    for name, sync in _SYNC_NAME.items():
        st = state.get(sync, {})
        data = row[f"{name}_data"]
        out[name] = {"has_data": data is not None, "last_data": data, "last_arrival": st.get("last_success"),
                     "last_error": st.get("last_error")}
    return out
