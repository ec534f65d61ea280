"""Reconciliation: tokens and cost from every source side by side, with the drift and why sources differ.

::

    rep = reconcile(wh, since=date(2026, 6, 1), until=date(2026, 6, 30), tz="UTC", prices=table)
    rep["rows"]       # one row per day × model (× person) × source: tokens by type, requests, cost,
                      # the reference source of that group and the drift from it (percent)
    rep["requests"]   # request-level match of transcripts and OTel events (the same request ids)
    rep["reasons"]    # per source: the documented reasons it differs from the others

Each source is read **as it reported**, not from the merged model: transcripts from their landed
lines (per request, the largest usage of its lines, as the ingest keeps), OTel events from
``api_request`` events, OTel metrics from ``claude_code.token.usage``/``cost.usage`` points, the
Claude Code Analytics API from ``cc_daily``, the Usage API from ``usage_bucket`` (one grouping per
bucket, the one with models) and the Cost API from ``cost_day`` (billed, cost only).

Cost columns: ``cost_usd`` is the cclens estimate (the request-level price formula over the
requests a source saw) for transcripts and OTel events, Claude Code's own figure for OTel metrics
(``reported_cost_usd`` also carries it for events), Anthropic's estimate for Claude Code Analytics,
and the billed amount for the Cost API. The **reference** of a group is, for tokens, the first source
present among usage_api, claude_code_analytics, otel_events, transcripts; for cost, among cost_api,
claude_code_analytics, otel_events, transcripts.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from ..model.identity import person_key_sql
from ..model.pricing import PriceTable
from .facts import Ctx, bind, priced_cte

SOURCES = ("transcripts", "otel_events", "otel_metrics", "claude_code_analytics", "usage_api", "cost_api")
TOKEN_REFERENCE = ("usage_api", "claude_code_analytics", "otel_events", "transcripts")
COST_REFERENCE = ("cost_api", "claude_code_analytics", "otel_events", "transcripts")

REASONS: dict[str, list[str]] = {
    "transcripts": [
        "only machines whose transcripts are read locally or shipped (`cclens ship`) are seen",
        "Claude Code deletes transcripts after 30 days by default (cleanupPeriodDays)",
        "a request whose lines were cut off (killed session) may be missing or carry partial usage",
    ],
    "otel_events": [
        "starts only when telemetry is enabled (CLAUDE_CODE_ENABLE_TELEMETRY) and the logs exporter points here",
        "events buffered in a session that is killed before its 5 s export are lost",
        "Bedrock, Vertex and Foundry usage is included (the Anthropic APIs do not see it)",
        "reported_cost_usd is Claude Code's own estimate; cost_usd is the cclens price table",
    ],
    "otel_metrics": [
        "metrics are exported every 60 s: the last interval of a killed session is lost",
        "before Claude Code 2.1.214, streamed responses through some proxies were counted more than once",
        "no request ids: compared per day and model only",
    ],
    "claude_code_analytics": [
        "first-party Claude API usage only: no Bedrock/Vertex/Foundry, no subscription (Pro/Max/Team seat) users",
        "UTC days; data appears about 1 hour after the activity",
        "estimated cost is Anthropic's estimate in cents, rounded per actor, day and model",
    ],
    "usage_api": [
        "organisation-wide: every API request (other applications, the Console/Workbench), not only Claude Code",
        "no Bedrock/Vertex usage and no subscription usage",
        "buckets are UTC; a day's bucket may still change for a few minutes after it ends",
    ],
    "cost_api": [
        "billed amounts: organisation-wide, not only Claude Code; UTC days",
        "priority-tier cost is missing from the cost report; code execution and web search appear only here",
        "a model is known only when the report was pulled grouped by description",
    ],
}


def _person(by_person: bool, cands: list[tuple[str, str]], prefix: str) -> tuple[str, str]:
    if not by_person:
        return "", "NULL::VARCHAR"
    return person_key_sql(cands, prefix=prefix)


def reconcile_sql(ctx: Ctx, by_person: bool = False) -> str:
    """The one SELECT of :func:`reconcile` (DuckDB named parameters $tz, $lo, $hi, $since, $until)."""
    day = "timezone($tz, {ts})::DATE"
    pj_api, pe_api = _person(by_person, [("email", "lower(a.user_email)"), ("otel_account_uuid", "a.account_uuid"),
                                         ("otel_user_id", "a.user_id"), ("host", "a.host")], "ra")
    pj_pt, pe_pt = _person(by_person, [("email", "u.email"), ("otel_user_id", "p.user_id")], "rp")
    pj_cc, pe_cc = _person(by_person, [("email", "CASE WHEN c.actor_type = 'api_key' THEN NULL ELSE lower(c.actor_id) END"),
                                       ("api_key_name", "CASE WHEN c.actor_type = 'api_key' THEN c.actor_id END")], "rc")
    pj_u, pe_u = _person(by_person, [("anthropic_account", "b.account_id")], "ru")
    return f"""WITH {priced_cte(ctx)},
tr_req AS (
    SELECT coalesce(raw->>'requestId', 'msg:' || (raw->'message'->>'id')) AS request_key,
           arg_max(raw->'message'->>'model', u.total) AS model, min(ts) AS ts,
           arg_max(u.input, u.total) AS input_tokens, arg_max(u.output, u.total) AS output_tokens,
           arg_max(u.cache_read, u.total) AS cache_read_tokens, arg_max(u.cache_creation, u.total) AS cache_creation_tokens
    FROM landing_transcript_line l,
         LATERAL (SELECT coalesce(TRY_CAST(raw->'message'->'usage'->>'input_tokens' AS BIGINT), 0) AS input,
                         coalesce(TRY_CAST(raw->'message'->'usage'->>'output_tokens' AS BIGINT), 0) AS output,
                         coalesce(TRY_CAST(raw->'message'->'usage'->>'cache_read_input_tokens' AS BIGINT), 0) AS cache_read,
                         coalesce(TRY_CAST(raw->'message'->'usage'->>'cache_creation_input_tokens' AS BIGINT), 0) AS cache_creation,
                         input + output + cache_read + cache_creation AS total) u
    WHERE l.record_type = 'assistant' AND (raw->'message'->'usage') IS NOT NULL
      AND coalesce(raw->>'isApiErrorMessage', 'false') <> 'true' AND coalesce(raw->'message'->>'model', '') <> '<synthetic>'
      AND l.ts >= $lo AND l.ts < $hi
    GROUP BY 1),
ot_req AS (
    SELECT request_id AS request_key, any_value(model) AS model, min(ts) AS ts,
           max(input_tokens) AS input_tokens, max(output_tokens) AS output_tokens,
           max(cache_read_tokens) AS cache_read_tokens, max(cache_creation_tokens) AS cache_creation_tokens,
           max(cost_usd) AS reported_cost_usd
    FROM otel_api_request_event WHERE request_id IS NOT NULL AND ts >= $lo AND ts < $hi GROUP BY 1),
uid_map AS (
    SELECT user_id, max(lower(user_email)) AS email FROM api_request
    WHERE user_id IS NOT NULL AND user_email IS NOT NULL GROUP BY 1),
usage_pick AS (
    SELECT * FROM usage_bucket WHERE bucket_start >= $lo - INTERVAL 1 DAY AND bucket_start < $hi + INTERVAL 1 DAY
    QUALIFY grouping = first_value(grouping) OVER (PARTITION BY bucket_start, bucket_width
        ORDER BY contains(grouping, 'model') DESC, length(grouping), grouping)),
cost_pick AS (
    SELECT * FROM cost_day WHERE day >= $since AND day <= $until
    QUALIFY grouping = first_value(grouping) OVER (PARTITION BY day
        ORDER BY contains(grouping, 'description') DESC, length(grouping), grouping)),
facts AS (
    SELECT {day.format(ts='t.ts')} AS day, coalesce(t.model, 'unknown') AS model, {pe_api} AS person,
           'transcripts' AS source, count(*) AS requests, sum(t.input_tokens)::BIGINT AS input_tokens,
           sum(t.output_tokens) AS output_tokens, sum(t.cache_read_tokens) AS cache_read_tokens,
           sum(t.cache_creation_tokens) AS cache_creation_tokens, sum(a.cost_usd) AS cost_usd,
           NULL::DOUBLE AS reported_cost_usd
    FROM tr_req t LEFT JOIN api_request_cost a ON a.request_key = t.request_key {pj_api} GROUP BY ALL
    UNION ALL
    SELECT {day.format(ts='o.ts')}, coalesce(regexp_replace(o.model, '\\[[0-9A-Za-z_]+\\]$', ''), 'unknown'), {pe_api},
           'otel_events', count(*), sum(o.input_tokens), sum(o.output_tokens), sum(o.cache_read_tokens),
           sum(o.cache_creation_tokens), sum(a.cost_usd), sum(o.reported_cost_usd)
    FROM ot_req o LEFT JOIN api_request_cost a ON a.request_key = o.request_key {pj_api} GROUP BY ALL
    UNION ALL
    SELECT {day.format(ts='p.ts')}, coalesce(p.model, 'unknown'), {pe_pt}, 'otel_metrics', NULL,
           sum(p.value) FILTER (WHERE p.metric_name = 'claude_code.token.usage' AND p.type = 'input')::BIGINT,
           sum(p.value) FILTER (WHERE p.metric_name = 'claude_code.token.usage' AND p.type = 'output')::BIGINT,
           sum(p.value) FILTER (WHERE p.metric_name = 'claude_code.token.usage' AND p.type = 'cacheRead')::BIGINT,
           sum(p.value) FILTER (WHERE p.metric_name = 'claude_code.token.usage' AND p.type = 'cacheCreation')::BIGINT,
           sum(p.value) FILTER (WHERE p.metric_name = 'claude_code.cost.usage'), NULL
    FROM otel_point p LEFT JOIN uid_map u ON u.user_id = p.user_id {pj_pt}
    WHERE p.metric_name IN ('claude_code.token.usage', 'claude_code.cost.usage') AND p.ts >= $lo AND p.ts < $hi
    GROUP BY ALL
    UNION ALL
    SELECT c.day, c.model, {pe_cc}, 'claude_code_analytics', NULL, sum(c.input_tokens), sum(c.output_tokens),
           sum(c.cache_read_tokens), sum(c.cache_creation_tokens), sum(c.estimated_cost_cents)::DOUBLE / 100, NULL
    FROM cc_daily c {pj_cc} WHERE c.day >= $since AND c.day <= $until GROUP BY ALL
    UNION ALL
    SELECT CASE WHEN b.bucket_width = '1d' THEN timezone('UTC', b.bucket_start)::DATE
                ELSE {day.format(ts='b.bucket_start')} END, coalesce(b.model, 'unknown'), {pe_u}, 'usage_api', NULL,
           sum(b.uncached_input_tokens), sum(b.output_tokens), sum(b.cache_read_tokens),
           sum(b.cache_creation_5m_tokens + b.cache_creation_1h_tokens), NULL, NULL
    FROM usage_pick b {pj_u} GROUP BY ALL
    UNION ALL
    SELECT d.day, coalesce(d.model, CASE WHEN d.cost_type IS NULL OR d.cost_type = 'tokens' THEN 'unknown'
                                         ELSE d.cost_type END), NULL, 'cost_api', NULL, NULL, NULL, NULL, NULL,
           sum(d.amount_cents)::DOUBLE / 100, NULL
    FROM cost_pick d GROUP BY ALL),
ranged AS (
    SELECT * REPLACE (CASE WHEN source IN ('claude_code_analytics', 'cost_api') OR day BETWEEN $since AND $until
                           THEN day END AS day),
           input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens AS total_tokens
    FROM facts),
refs AS (
    SELECT *,
        first_value(total_tokens IGNORE NULLS) OVER (PARTITION BY day, model, person ORDER BY
            list_position({list(TOKEN_REFERENCE)}, source) NULLS LAST
            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS ref_tokens,
        first_value(CASE WHEN total_tokens IS NOT NULL THEN source END IGNORE NULLS) OVER (
            PARTITION BY day, model, person ORDER BY list_position({list(TOKEN_REFERENCE)}, source) NULLS LAST
            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS token_reference,
        first_value(cost_usd IGNORE NULLS) OVER (PARTITION BY day, model, person ORDER BY
            list_position({list(COST_REFERENCE)}, source) NULLS LAST
            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS ref_cost,
        first_value(CASE WHEN cost_usd IS NOT NULL THEN source END IGNORE NULLS) OVER (
            PARTITION BY day, model, person ORDER BY list_position({list(COST_REFERENCE)}, source) NULLS LAST
            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS cost_reference
    FROM ranged WHERE day IS NOT NULL)
SELECT day, model, {"person, " if by_person else ""}source, requests, input_tokens, output_tokens, cache_read_tokens,
       cache_creation_tokens, total_tokens, cost_usd, reported_cost_usd, token_reference,
       round(100.0 * (total_tokens - ref_tokens) / nullif(ref_tokens, 0), 4) AS token_drift_pct,
       cost_reference, round(100.0 * (cost_usd - ref_cost) / nullif(ref_cost, 0), 4) AS cost_drift_pct
FROM refs
ORDER BY day, model, {"person, " if by_person else ""}list_position({list(SOURCES)}, source)"""


MATCH_SQL = """
WITH tr AS (
    SELECT coalesce(raw->>'requestId', 'msg:' || (raw->'message'->>'id')) AS request_key,
           arg_max([coalesce(TRY_CAST(raw->'message'->'usage'->>'input_tokens' AS BIGINT), 0),
                    coalesce(TRY_CAST(raw->'message'->'usage'->>'output_tokens' AS BIGINT), 0),
                    coalesce(TRY_CAST(raw->'message'->'usage'->>'cache_read_input_tokens' AS BIGINT), 0),
                    coalesce(TRY_CAST(raw->'message'->'usage'->>'cache_creation_input_tokens' AS BIGINT), 0)],
                   coalesce(TRY_CAST(raw->'message'->'usage'->>'input_tokens' AS BIGINT), 0)
                   + coalesce(TRY_CAST(raw->'message'->'usage'->>'output_tokens' AS BIGINT), 0)
                   + coalesce(TRY_CAST(raw->'message'->'usage'->>'cache_read_input_tokens' AS BIGINT), 0)
                   + coalesce(TRY_CAST(raw->'message'->'usage'->>'cache_creation_input_tokens' AS BIGINT), 0)) AS t
    FROM landing_transcript_line
    WHERE record_type = 'assistant' AND (raw->'message'->'usage') IS NOT NULL
      AND coalesce(raw->>'isApiErrorMessage', 'false') <> 'true' AND coalesce(raw->'message'->>'model', '') <> '<synthetic>'
      AND ts >= $lo AND ts < $hi
    GROUP BY 1),
ot AS (
    SELECT request_id AS request_key, [max(input_tokens), max(output_tokens), max(cache_read_tokens),
                                       max(cache_creation_tokens)] AS t
    FROM otel_api_request_event WHERE request_id IS NOT NULL AND ts >= $lo AND ts < $hi GROUP BY 1)
SELECT coalesce(tr.request_key, ot.request_key) AS request_key, tr.t AS transcripts, ot.t AS otel_events
FROM tr FULL OUTER JOIN ot ON tr.request_key = ot.request_key
"""


def request_match(wh: Any, ctx: Ctx) -> dict[str, Any]:
    """Requests seen by transcripts and by OTel events, matched by request id: how many agree exactly on
    all four token counts, which differ (with both values), and the tokens only one source has."""
    sql, params = bind(MATCH_SQL, ctx.params())
    rows = wh.query(sql, params)
    both = [r for r in rows if r["transcripts"] is not None and r["otel_events"] is not None]
    differ = [r for r in both if list(r["transcripts"]) != list(r["otel_events"])]
    only_t = [r for r in rows if r["otel_events"] is None]
    only_o = [r for r in rows if r["transcripts"] is None]
    return {"matched": len(both), "equal": len(both) - len(differ), "different": differ[:100],
            "only_transcripts": len(only_t), "only_transcripts_tokens": sum(sum(r["transcripts"]) for r in only_t),
            "only_otel_events": len(only_o), "only_otel_events_tokens": sum(sum(r["otel_events"]) for r in only_o)}


def reconcile(wh: Any, *, since: date | None = None, until: date | None = None, tz: str = "UTC",
              prices: PriceTable, by_person: bool = False) -> dict[str, Any]:
    """Every source's tokens and cost per day × model (× person), the drift from each group's reference,
    the request-level match of transcripts and OTel, and the reasons sources differ."""
    from .catalog import default_range

    since, until = default_range(tz, since, until)
    models = [r["model"] for r in wh.query("SELECT DISTINCT model FROM api_request WHERE model IS NOT NULL")]
    ctx = Ctx(tz=tz, since=since, until=until, prices=prices, models=models)
    sql, params = bind(reconcile_sql(ctx, by_person), ctx.params())
    from .catalog import _plain

    rows = [{k: _plain(v) for k, v in r.items()} for r in wh.query(sql, params)]
    present = sorted({r["source"] for r in rows}, key=SOURCES.index)
    return {"since": since, "until": until, "tz": tz, "by_person": by_person, "rows": rows,
            "requests": request_match(wh, ctx), "sources_present": present,
            "sources_missing": [s for s in SOURCES if s not in present],
            "reasons": {s: REASONS[s] for s in SOURCES},
            "notes": ["API sources (claude_code_analytics, usage_api 1d buckets, cost_api) are UTC days; "
                      f"transcripts and OTel use {tz}"] if tz != "UTC" else []}


def wide(rows: list[dict[str, Any]], by_person: bool = False) -> list[dict[str, Any]]:
    """One line per day × model (× person): each source's total tokens and cost side by side."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        key = (r["day"], r["model"], r.get("person")) if by_person else (r["day"], r["model"])
        line = out.setdefault(key, {"day": r["day"], "model": r["model"], **({"person": r["person"]} if by_person else {})})
        s = r["source"]
        if s != "cost_api":
            line[f"{s}_tokens"] = r["total_tokens"]
        if r["cost_usd"] is not None:
            line[f"{s}_cost"] = r["cost_usd"]
        if r.get("reported_cost_usd") is not None:
            line["otel_reported_cost"] = r["reported_cost_usd"]
        drift = [abs(x) for x in (r["token_drift_pct"], r["cost_drift_pct"]) if x is not None]
        line["max_drift_pct"] = max([line.get("max_drift_pct") or 0, *drift]) if drift else line.get("max_drift_pct")
    cols = ["day", "model", *(["person"] if by_person else []),
            *[f"{s}_tokens" for s in SOURCES if s != "cost_api"], *[f"{s}_cost" for s in SOURCES],
            "otel_reported_cost", "max_drift_pct"]
    return [{c: line.get(c) for c in cols} for line in out.values()]
