"""What each cclens MCP tool computes, as plain functions of a reader (library first; no MCP here).

Every figure comes from the metrics layer: :func:`cclens.metrics.catalog.compute` (the same call as
``GET /api/v1/metrics/{name}``), :func:`cclens.model.session_view.session_view` (``GET
/api/v1/sessions/{id}``), :mod:`cclens.metrics.coverage` (``GET /api/v1/coverage``) and the SQL sandbox
(:mod:`cclens.metrics.sql_guard`, ``POST /api/v1/query`` for analysts). Each function returns a
JSON-safe dict (ISO dates, floats) — the tool's structured content — and raises a
:class:`cclens.errors.CclensError` whose message says what to change.

``caller`` is the :class:`Caller`: its ``teams`` narrow every metric (:mod:`cclens.metrics.scope`),
its ``role`` gates ``run_sql`` (analyst, admin, or the local user).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping, Sequence

from ..errors import AccessDeniedError, QueryError
from ..metrics.catalog import FILTERS, GROUP_BY, METRICS, TIME_DIMS, catalog, compute, default_range, get
from ..metrics.scope import restrict_to_teams, session_visible
from .render import jsonable

SQL_ROLES = ("analyst", "admin", "local")
MAX_METRIC_ROWS = 5000
MAX_SQL_ROWS = 10_000


@dataclass(frozen=True)
class Caller:
    """Who is asking: ``principal`` (token id, ``anonymous``, ``local:<user>``), ``role``, ``teams``."""

    principal: str
    role: str
    teams: tuple[str, ...] = ()


# -- catalog --------------------------------------------------------------------------------------------
def list_metrics(group: str | None = None) -> dict[str, Any]:
    """The catalog (as ``GET /api/v1/metrics``), optionally one group's metrics."""
    entries = [m for m in catalog() if group is None or m["group"] == group]
    if group is not None and not entries:
        groups = sorted({m["group"] for m in catalog()})
        raise QueryError(f"no metric group {group!r}; groups: {', '.join(groups)}")
    return {"metrics": entries, "group_by": list(GROUP_BY), "filters": list(FILTERS), "count": len(entries),
            "row_count": len(entries)}


def provenance(name: str) -> dict[str, Any]:
    m = get(name).describe()
    return {"description": m["description"], "definition": m["definition"], "sources": m["sources"],
            "notes": m["notes"]}


# -- metrics --------------------------------------------------------------------------------------------
def _metric_result(res: Any, filters: Mapping[str, Sequence[str]], limit: int) -> dict[str, Any]:
    rows = res.rows
    out = jsonable(res.to_dict())
    out["rows"] = jsonable(rows[:limit])
    out["row_count"] = len(out["rows"])
    out["total_rows"] = len(rows)
    out["truncated"] = len(rows) > limit
    out["filters"] = {k: list(v) for k, v in filters.items()}
    if res.unit.startswith("USD"):
        out["currency"] = "USD"
    out["provenance"] = provenance(res.metric)
    return out


def get_metric(reader: Any, prices: Any, caller: Caller, *, name: str, since: date | None = None,
               until: date | None = None, tz: str = "UTC", group_by: Sequence[str] = (),
               filters: Mapping[str, Sequence[str]] | None = None, limit: int = 200) -> dict[str, Any]:
    """One catalog metric, exactly as ``GET /api/v1/metrics/{name}`` computes it (rows cut at ``limit``)."""
    if not 1 <= limit <= MAX_METRIC_ROWS:
        raise QueryError(f"limit must be between 1 and {MAX_METRIC_ROWS}")
    scoped = restrict_to_teams(name, filters, caller.teams)
    res = compute(reader, name, since=since, until=until, tz=tz, group_by=list(group_by), filters=scoped,
                  prices=prices)
    return _metric_result(res, scoped, limit)


def previous_period(since: date, until: date) -> tuple[date, date]:
    """The period of the same length that ends the day before ``since``."""
    days = (until - since).days + 1
    return since - timedelta(days=days), since - timedelta(days=1)


def compare_periods(reader: Any, prices: Any, caller: Caller, *, name: str, since: date | None = None,
                    until: date | None = None, previous_since: date | None = None,
                    previous_until: date | None = None, tz: str = "UTC", group_by: Sequence[str] = (),
                    filters: Mapping[str, Sequence[str]] | None = None, limit: int = 200) -> dict[str, Any]:
    """Metric ``name`` over two periods side by side per group: ``current``, ``previous``, ``change``,
    ``change_pct`` (None when either side has no data, or the previous value is 0)."""
    timed = [g for g in group_by if g in TIME_DIMS]
    if timed:
        raise QueryError(f"compare_periods compares two whole periods, so it cannot group by {', '.join(timed)}; "
                         "group by person, team, model, source… (or call get_metric with group_by week)")
    since, until = default_range(tz, since, until, days=7)
    if (previous_since is None) != (previous_until is None):
        raise QueryError("give both previous_since and previous_until, or neither (the previous period then "
                         "is the one of the same length just before since)")
    if previous_since is None:
        previous_since, previous_until = previous_period(since, until)
    elif previous_since > previous_until:
        raise QueryError(f"previous_since ({previous_since}) is after previous_until ({previous_until})")
    scoped = restrict_to_teams(name, filters, caller.teams)
    cur = compute(reader, name, since=since, until=until, tz=tz, group_by=list(group_by), filters=scoped,
                  prices=prices)
    prev = compute(reader, name, since=previous_since, until=previous_until, tz=tz, group_by=list(group_by),
                   filters=scoped, prices=prices)
    keys = cur.group_by
    labels = [k for k in ("person_name", "team_name") if any(k in r for r in cur.rows + prev.rows)]
    merged: dict[tuple, dict[str, Any]] = {}
    for side, res in (("current", cur), ("previous", prev)):
        for r in res.rows:
            k = tuple(r.get(g) for g in keys)
            row = merged.setdefault(k, {**{g: r.get(g) for g in keys}, **{lb: r.get(lb) for lb in labels},
                                        "current": None, "previous": None})
            row[side] = r.get("value")
            row[f"sources_{side}"] = r.get("sources") or []
            for lb in labels:
                row[lb] = row.get(lb) or r.get(lb)
    rows = []
    for row in merged.values():
        a, b = row["current"], row["previous"]
        row["change"] = a - b if a is not None and b is not None else None
        row["change_pct"] = round((a - b) / b * 100, 2) if a is not None and b not in (None, 0) else None
        row.setdefault("sources_current", [])
        row.setdefault("sources_previous", [])
        rows.append(row)
    notes = list(dict.fromkeys(cur.notes + prev.notes))
    out = {"metric": name, "unit": cur.unit, "group_by": keys, "tz": tz,
           "current_period": {"since": since, "until": until}, "previous_period": {"since": previous_since,
                                                                                   "until": previous_until},
           "rows": rows[:limit], "row_count": min(len(rows), limit), "total_rows": len(rows),
           "truncated": len(rows) > limit, "filters": scoped, "notes": notes, "provenance": provenance(name)}
    if cur.unit.startswith("USD"):
        out["currency"] = "USD"
    return jsonable(out)


def top(reader: Any, prices: Any, caller: Caller, *, by: str, metric: str, since: date | None = None,
        until: date | None = None, tz: str = "UTC", filters: Mapping[str, Sequence[str]] | None = None,
        limit: int = 10, ascending: bool = False) -> dict[str, Any]:
    """The people (``by="person"``) or teams (``by="team"``) ranked by ``metric``; those with no data for
    it are counted in ``no_data``, never ranked as 0."""
    m = get(metric)
    if by not in m.dims:
        able = [n for n, x in METRICS.items() if by in x.dims]
        raise QueryError(f"{metric} cannot be broken down by {by}; metrics that can: {', '.join(able)}")
    if not 1 <= limit <= 1000:
        raise QueryError("limit must be between 1 and 1000")
    scoped = restrict_to_teams(metric, filters, caller.teams)
    res = compute(reader, metric, since=since, until=until, tz=tz, group_by=[by], filters=scoped, prices=prices)
    with_value = [r for r in res.rows if r.get("value") is not None]
    with_value.sort(key=lambda r: (r["value"], str(r[by])) if ascending else (-r["value"], str(r[by])))
    ranked = [{"rank": i + 1, **r} for i, r in enumerate(with_value[:limit])]
    out = {"metric": metric, "unit": res.unit, "by": by, "order": "ascending" if ascending else "descending",
           "since": res.since, "until": res.until, "tz": tz, "rows": ranked, "row_count": len(ranked),
           "ranked_of": len(with_value), "no_data": [r[by] for r in res.rows if r.get("value") is None],
           "filters": scoped, "coverage": res.coverage, "notes": res.notes, "provenance": provenance(metric)}
    if res.unit.startswith("USD"):
        out["currency"] = "USD"
    return jsonable(out)


# -- sessions and sources -------------------------------------------------------------------------------
def session_timeline(reader: Any, caller: Caller, session_id: str, limit: int = 200) -> dict[str, Any]:
    """The session per source (``GET /api/v1/sessions/{id}``: requests, tokens, cost, prompts, tool uses)
    and, under ``events``, what each source recorded in time order (cut at ``limit``)."""
    from ..model.session_view import session_view
    from ..server.dashboard_figures import session_timeline as timeline

    sid = session_id.strip()
    view = session_view(reader, sid) if sid else None
    if view is None or not session_visible(reader, sid, caller.teams):
        raise QueryError(f"no source has seen session {session_id!r}" + (" for the teams this token may read"
                         if caller.teams else "") + "; session ids are UUIDs as Claude Code writes them "
                         "(run_sql on the session or api_request table lists them)")
    events = [{"ts": e["ts"], "source": src, "kind": e["kind"], "text": e["text"]}
              for src, items in timeline(reader, sid).items() for e in items]
    events.sort(key=lambda e: (e["ts"] is None, e["ts"] or datetime.min.replace(tzinfo=timezone.utc), e["source"]))
    return jsonable({**view, "events": events[:limit], "event_count": min(len(events), limit),
                     "row_count": min(len(events), limit),
                     "total_events": len(events), "truncated": len(events) > limit})


def source_status(reader: Any, *, since: date | None = None, until: date | None = None,
                  tz: str = "UTC") -> dict[str, Any]:
    """Per source: has it ever reported, newest data, last arrival or sync, last error (the freshness of
    ``GET /api/v1/coverage``), and what it holds in the range (rows, first and last day, or None)."""
    from ..metrics.coverage import SOURCES, freshness, source_coverage

    since, until = default_range(tz, since, until)
    fresh = freshness(reader)
    cov = source_coverage(reader, SOURCES, since, until, tz)
    now = datetime.now(timezone.utc)
    rows = []
    for name in dict.fromkeys([*fresh, *cov]):
        f = fresh.get(name, {})
        last = f.get("last_data")
        age = None
        if isinstance(last, datetime):
            age = round((now - last).total_seconds() / 3600, 1)
        elif isinstance(last, date):  # a UTC day: data is complete at its end at best
            age = round((now - datetime.combine(last + timedelta(days=1), datetime.min.time(),
                                                timezone.utc)).total_seconds() / 3600, 1)
        rows.append({"source": name, "has_data": f.get("has_data", bool(cov.get(name))),
                     "last_data": last, "last_data_age_hours": age, "last_arrival": f.get("last_arrival"),
                     "last_error": f.get("last_error"), "in_range": cov.get(name)})
    missing = [r["source"] for r in rows if r["in_range"] is None]
    notes = [f"no data in the range from: {', '.join(missing)} (no data, not 0)"] if missing else []
    errors = [f"{r['source']}: {r['last_error']}" for r in rows if r["last_error"]]
    if errors:
        notes.append("last sync errors — " + "; ".join(errors))
    return jsonable({"since": since, "until": until, "tz": tz, "sources": rows, "row_count": len(rows),
                     "freshness": fresh, "notes": notes})


# -- schema and SQL -------------------------------------------------------------------------------------
TABLE_NOTES = {
    "api_request": "one row per Claude API request, merged across transcripts and OTel (request_key; "
                   "from_transcripts/from_otel say who saw it); tokens by type, model, session, project",
    "api_request_cost": "api_request priced with the cclens price table (cost_usd; NULL = unpriced model)",
    "session": "Claude Code sessions (first/last timestamp, host, project)",
    "session_agent": "the subagents (agent_id) that wrote lines of each transcript session",
    "session_prompt": "the prompt ids of each transcript session's user lines (session.prompt_count)",
    "prompt": "user prompts per source (no text unless content storage is on)",
    "tool_use": "tool uses per source (tool name, error flag, agent)",
    "person": "known people (people file or links)", "alias": "identities (email, OTel ids, host, …) → person",
    "team": "teams", "membership": "person × team with valid_from/valid_to days (inclusive)",
    "cc_actor_day": "Claude Code Analytics API: actor × UTC day (sessions, lines, commits, PRs)",
    "cc_daily": "Claude Code Analytics API: actor × UTC day × model tokens and estimated cost (cents)",
    "cc_tool_action": "Claude Code Analytics API: edit tool accepted/rejected per actor-day",
    "usage_bucket": "Usage API buckets (1m/1h/1d) of tokens by model, workspace, key…",
    "cost_day": "Cost API: billed USD per UTC day and dimension",
    "engagement_day": "Enterprise Analytics API: user × day engagement (chat and Claude Code)",
    "otel_event": "OpenTelemetry log events from Claude Code (api_request, user_prompt, tool_result, …)",
    "otel_point": "OpenTelemetry metric points (delta values) from Claude Code",
    "landing_hook_event": "hook events as received", "audit_log": "reads through MCP (and other surfaces)",
}


def describe_schema(reader: Any, table: str | None = None) -> dict[str, Any]:
    """The tables and views ``run_sql`` can read (name, kind, columns, estimated rows, what it holds), or
    one table's columns."""
    from ..metrics.sql_guard import DENIED_TABLES

    objs = reader.query("""
        SELECT table_name AS name, 'table' AS kind, estimated_size AS estimated_rows, column_count
        FROM duckdb_tables() WHERE NOT internal AND schema_name = 'main'
        UNION ALL SELECT view_name, 'view', NULL, column_count FROM duckdb_views()
        WHERE NOT internal AND schema_name = 'main' ORDER BY 1""")
    objs = [o for o in objs if o["name"].lower() not in DENIED_TABLES]
    if table is None:
        for o in objs:
            o["about"] = TABLE_NOTES.get(o["name"])
        return jsonable({"tables": objs, "count": len(objs), "row_count": len(objs),
                         "hint": "call describe_schema with table=<name> for its columns; run_sql reads them"})
    names = {o["name"].lower(): o for o in objs}
    obj = names.get(table.strip().lower())
    if obj is None:
        close = difflib.get_close_matches(table.lower(), list(names), n=5)
        raise QueryError(f"no table or view {table!r}" + (f"; did you mean {', '.join(close)}?" if close else
                                                           "; call describe_schema without a table to list them"))
    cols = reader.query("""SELECT column_name AS name, data_type AS type, is_nullable AS nullable
                           FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main'
                           ORDER BY column_index""", [obj["name"]])
    return jsonable({**obj, "about": TABLE_NOTES.get(obj["name"]), "columns": cols, "row_count": len(cols)})


def run_sql(reader: Any, caller: Caller, sql: str, max_rows: int = 100, timeout_s: float = 30.0) -> dict[str, Any]:
    """One read-only SELECT in the SQL sandbox (as ``POST /api/v1/query`` with an analyst token)."""
    from ..metrics.sql_guard import run_sandboxed

    if caller.role not in SQL_ROLES:
        raise AccessDeniedError(f"run_sql needs an analyst or admin token (this one is {caller.role}); use "
                                "get_metric, top_people or compare_periods, which need viewer only")
    if not 1 <= max_rows <= MAX_SQL_ROWS:
        raise QueryError(f"max_rows must be between 1 and {MAX_SQL_ROWS}")
    res = run_sandboxed(reader, sql, max_rows=max_rows, timeout_s=timeout_s)
    return jsonable(res.to_json())
