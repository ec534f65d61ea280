"""Reports over the Anthropic reporting API tables (``cc_*``, ``usage_bucket``, ``cost_day``,
``engagement_*``), for every surface.

::

    rows = api_report(wh, "claude_code_analytics", by="day", since=date(2026, 6, 1))
    cov = coverage(wh, "usage")    # what range has been pulled, when, and the last error

Daily sources (Claude Code Analytics, cost, Enterprise) are UTC days: their key is ``utc_day`` and
``tz`` does not move them. Usage buckets are hours (or minutes), so ``usage`` by day uses ``tz``
(unless the buckets are 1d). ``since``/``until`` are inclusive days on the same basis.
A source never synced has no rows, and :func:`coverage` says so: never shown as zero.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson

from ..errors import QueryError

SOURCES = ("claude_code_analytics", "usage", "cost", "enterprise_analytics")

GROUPINGS = {
    "claude_code_analytics": ("day", "actor", "model"),
    "usage": ("day", "model", "workspace", "api_key", "account", "service_tier"),
    "cost": ("day", "workspace", "description", "model", "cost_type"),
    "enterprise_analytics": ("day", "user"),
}


def api_report(wh: Any, source: str, *, by: str = "day", since: date | None = None, until: date | None = None,
               tz: str = "UTC") -> list[dict[str, Any]]:
    """Rows of ``source`` grouped ``by`` (see :data:`GROUPINGS`), oldest/largest first."""
    if source not in GROUPINGS:
        raise QueryError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    if by not in GROUPINGS[source]:
        raise QueryError(f"--by {by} is not available for {source}; use one of {', '.join(GROUPINGS[source])}")
    return {"claude_code_analytics": _cc, "usage": _usage, "cost": _cost,
            "enterprise_analytics": _enterprise}[source](wh, by, since, until, tz)


def _range(col: str, since: date | None, until: date | None) -> tuple[str, list[Any]]:
    clauses, params = ["TRUE"], []
    if since:
        clauses.append(f"{col} >= ?")
        params.append(since)
    if until:
        clauses.append(f"{col} <= ?")
        params.append(until)
    return " AND ".join(clauses), params


def _cc(wh: Any, by: str, since: date | None, until: date | None, tz: str) -> list[dict[str, Any]]:
    where, params = _range("day", since, until)
    tokens = """sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                sum(cache_read_tokens) AS cache_read_tokens, sum(cache_creation_tokens) AS cache_creation_tokens,
                round(sum(estimated_cost_cents) / 100, 2)::DOUBLE AS estimated_cost_usd"""
    if by == "model":
        return wh.query(f"""SELECT model, count(DISTINCT (actor_type, actor_id)) AS actors, {tokens}
                            FROM cc_daily WHERE {where} GROUP BY model ORDER BY estimated_cost_usd DESC""", params)
    key, name = ("day", "utc_day") if by == "day" else ("actor_id", "actor")
    extra = ", any_value(actor_type) AS actor_type" if by == "actor" else ", count(DISTINCT (actor_type, actor_id)) AS actors"
    order = "1" if by == "day" else "estimated_cost_usd DESC NULLS LAST, 1"
    return wh.query(f"""
        WITH a AS (SELECT {key} AS k {extra}, sum(num_sessions) AS sessions, sum(lines_added) AS lines_added,
                          sum(lines_removed) AS lines_removed, sum(commits) AS commits,
                          sum(pull_requests) AS pull_requests
                   FROM cc_actor_day WHERE {where} GROUP BY 1),
             t AS (SELECT {key} AS k, sum(accepted) AS tool_accepted, sum(rejected) AS tool_rejected
                   FROM cc_tool_action WHERE {where} GROUP BY 1),
             m AS (SELECT {key} AS k, {tokens} FROM cc_daily WHERE {where} GROUP BY 1)
        SELECT a.k AS {name}, a.* EXCLUDE (k), t.tool_accepted, t.tool_rejected,
               round(t.tool_accepted / nullif(t.tool_accepted + t.tool_rejected, 0), 4) AS accept_rate,
               m.* EXCLUDE (k)
        FROM a LEFT JOIN t USING (k) LEFT JOIN m USING (k)
        ORDER BY {order}""", params * 3)


_USAGE_KEYS = {"model": "model", "workspace": "workspace_id", "api_key": "api_key_id", "account": "account_id",
               "service_tier": "service_tier"}


def _usage(wh: Any, by: str, since: date | None, until: date | None, tz: str) -> list[dict[str, Any]]:
    local_day = "CASE WHEN bucket_width = '1d' THEN timezone('UTC', bucket_start)::DATE ELSE timezone(?, bucket_start)::DATE END"
    where, params = _range(local_day, since, until)
    params = _interleave(tz, params)  # each use of local_day takes the zone first
    if by == "day":
        key, name = local_day, "day"
        key_params = [tz]
    else:
        key, name = _USAGE_KEYS[by], by
        key_params = []
    return wh.query(f"""
        SELECT {key} AS {name}, sum(uncached_input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(cache_read_tokens) AS cache_read_tokens,
               sum(cache_creation_5m_tokens + cache_creation_1h_tokens) AS cache_creation_tokens,
               sum(web_search_requests) AS web_search_requests, count(DISTINCT bucket_start) AS buckets
        FROM usage_bucket WHERE {where} GROUP BY 1
        ORDER BY {"1" if by == "day" else "output_tokens DESC, 1"}""", key_params + params)


def _interleave(tz: str, params: list[Any]) -> list[Any]:
    out: list[Any] = []
    for p in params:
        out.extend([tz, p])
    return out


_COST_KEYS = {"workspace": "workspace_id", "description": "description", "model": "model", "cost_type": "cost_type"}


def _cost(wh: Any, by: str, since: date | None, until: date | None, tz: str) -> list[dict[str, Any]]:
    where, params = _range("day", since, until)
    key, name = ("day", "utc_day") if by == "day" else (_COST_KEYS[by], by)
    return wh.query(f"""
        SELECT {key} AS {name}, round(sum(amount_cents) / 100, 2)::DOUBLE AS cost_usd, any_value(currency) AS currency
        FROM cost_day WHERE {where} GROUP BY 1
        ORDER BY {"1" if by == "day" else "cost_usd DESC, 1"}""", params)


def _enterprise(wh: Any, by: str, since: date | None, until: date | None, tz: str) -> list[dict[str, Any]]:
    where, params = _range("day", since, until)
    key, name = ("day", "utc_day") if by == "day" else ("email", "user")
    users = "count(DISTINCT user_id) AS users, " if by == "day" else "count(*) AS active_days, "
    return wh.query(f"""
        SELECT {key} AS {name}, {users}
               sum(chat_message_count) AS chat_messages, sum(cc_session_count) AS cc_sessions,
               sum(cc_commit_count) AS cc_commits, sum(cc_pull_request_count) AS cc_pull_requests,
               sum(cc_lines_added) AS cc_lines_added, sum(cc_tool_accepted) AS cc_tool_accepted,
               sum(web_search_count) AS web_searches
        FROM engagement_day WHERE {where} GROUP BY 1
        ORDER BY {"1" if by == "day" else "cc_lines_added DESC NULLS LAST, 1"}""", params)


def coverage(wh: Any, source: str) -> dict[str, Any]:
    """What has been pulled for ``source``: ``synced`` (bool), ``covered_from``/``covered_until``
    (UTC, exclusive end), ``last_success``, ``last_error``."""
    rows = wh.query("SELECT cursor::VARCHAR AS cursor, last_success, last_attempt, last_error "
                    "FROM source_state WHERE source = ?", [source])
    if not rows:
        return {"source": source, "synced": False, "covered_from": None, "covered_until": None,
                "last_success": None, "last_error": None}
    row = rows[0]
    cursor = orjson.loads(row["cursor"]) if row["cursor"] else {}
    return {"source": source, "synced": bool(cursor.get("done_until")),
            "covered_from": cursor.get("start"), "covered_until": cursor.get("done_until"),
            "last_success": row["last_success"], "last_error": row["last_error"]}
