"""Source ``claude_code_analytics``: the Claude Code Analytics API.

``GET /v1/organizations/usage_report/claude_code?starting_at=YYYY-MM-DD&limit=1000`` returns one UTC
day per call, paged with ``page``/``next_page``/``has_more``. Each record is one actor's activity for
the day; local and remote (``is_remote``) usage come as separate records, and whether records also
split by ``terminal_type`` is not documented, so rows are kept per actor x is_remote x terminal_type
and any exact repeats are summed (never dropped). DuckDB parses the pages (``from_json``), which is
what makes a 2,000-actor year a matter of seconds. Actors are users (``email_address``) or API keys
(``api_key_name``). ``tool_actions`` is a map: every tool is kept, known or not.
``estimated_cost.amount`` is in minor units (US cents) and stored as such.

Freshness: data appears within about an hour and "only data older than 1 hour is included", so the
current UTC day is asked for only from 01:00 UTC, and the last 3 days are re-fetched on every run.
Uses the Admin API key (``anthropic_admin_key``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Sequence

import orjson

from ._anthropic import PAGE, ApiSource, Unit, each_page, floor_day
from ._http import ApiClient, Page

PATH = "/v1/organizations/usage_report/claude_code"
PAGE_LIMIT = 1000

class ClaudeCodeAnalyticsSource(ApiSource):
    """Per actor x UTC day Claude Code metrics (see the module docstring)."""

    name = "claude_code_analytics"
    key_setting = "anthropic_admin_key"
    key_hint = "an Admin API key, sk-ant-admin01-…, created in Console > Settings > Admin keys"
    interval = timedelta(hours=1)
    revisable = timedelta(days=3)
    tables = ("cc_actor_day", "cc_tool_action", "cc_daily")

    def __init__(self, settings: Any):
        super().__init__(settings)
        self.grain = timedelta(days=1)
        self.unit_span = timedelta(days=7)  # one call per day; days are written a week at a time

    def available_end(self, now: datetime) -> datetime:
        return floor_day(now - timedelta(hours=1)) + timedelta(days=1)

    def fetch(self, client: ApiClient, unit: Unit) -> list[Page]:
        return [page for day in unit.days()
                for page in client.fetch_all(PATH, {"starting_at": day.isoformat(), "limit": PAGE_LIMIT})]

    def replace(self, wh: Any, unit: Unit, pages: Sequence[Page], fetched_at: datetime,
                run_id: str) -> int:
        first, end = unit.start.date(), unit.end.date()
        for table in self.tables:
            wh.execute(f"DELETE FROM {table} WHERE day >= ? AND day < ?", [first, end])
        # DuckDB parses the pages, one at a time: one typed record per row of _cc_record.
        wh.execute(f"CREATE OR REPLACE TEMP TABLE _cc_record AS {RECORD_SELECT} LIMIT 0", [None, None, None])
        each_page(wh, pages, f"INSERT INTO _cc_record {RECORD_SELECT}")
        key = "day, actor_type, actor_id, is_remote, terminal_type"
        rows = wh.scalar(f"""
            INSERT INTO cc_actor_day (day, actor_type, actor_id, email, api_key_name, is_remote, terminal_type,
                organization_id, customer_type, subscription_type, num_sessions, lines_added, lines_removed,
                commits, pull_requests, records, fetched_at, run_id)
            SELECT day, actor_type, actor_id, any_value(email), any_value(api_key_name), is_remote,
                   terminal_type, any_value(organization_id),
                   any_value(customer_type), any_value(subscription_type),
                   coalesce(sum(core.num_sessions), 0), coalesce(sum(core.lines_of_code.added), 0),
                   coalesce(sum(core.lines_of_code.removed), 0), coalesce(sum(core.commits_by_claude_code), 0),
                   coalesce(sum(core.pull_requests_by_claude_code), 0), count(*), ?, ?
            FROM _cc_record GROUP BY {key}""", [fetched_at, run_id]) or 0
        rows += wh.scalar(f"""
            INSERT INTO cc_tool_action (day, actor_type, actor_id, is_remote, terminal_type, tool, accepted, rejected)
            SELECT {key}, t.key, coalesce(sum(t.value.accepted), 0), coalesce(sum(t.value.rejected), 0)
            FROM (SELECT *, unnest(map_entries(tools)) AS t FROM _cc_record)
            GROUP BY {key}, t.key""") or 0
        rows += wh.scalar(f"""
            INSERT INTO cc_daily (day, actor_type, actor_id, email, api_key_name, is_remote, terminal_type, model,
                input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, estimated_cost_cents,
                currency, fetched_at, run_id)
            SELECT day, actor_type, actor_id, any_value(email), any_value(api_key_name), is_remote,
                   terminal_type, coalesce(m.model, ''), coalesce(sum(m.tokens.input), 0),
                   coalesce(sum(m.tokens.output), 0), coalesce(sum(m.tokens.cache_read), 0),
                   coalesce(sum(m.tokens.cache_creation), 0), coalesce(sum(m.estimated_cost.amount), 0),
                   any_value(m.estimated_cost.currency), ?, ?
            FROM (SELECT *, unnest(models) AS m FROM _cc_record)
            GROUP BY {key}, coalesce(m.model, '')""", [fetched_at, run_id]) or 0
        wh.execute("DROP TABLE IF EXISTS _cc_record")
        return int(rows)


# The shape DuckDB reads each page into (documented fields; others are ignored here but kept in landing).
RECORD_SPEC = orjson.dumps({"data": [{
    "actor": {"type": "VARCHAR", "email_address": "VARCHAR", "api_key_name": "VARCHAR"},
    "core_metrics": {"num_sessions": "BIGINT", "lines_of_code": {"added": "BIGINT", "removed": "BIGINT"},
                     "commits_by_claude_code": "BIGINT", "pull_requests_by_claude_code": "BIGINT"},
    "customer_type": "VARCHAR", "subscription_type": "VARCHAR", "terminal_type": "VARCHAR",
    "is_remote": "BOOLEAN", "organization_id": "VARCHAR",
    "tool_actions": "MAP(VARCHAR, STRUCT(accepted BIGINT, rejected BIGINT))",
    "model_breakdown": [{"model": "VARCHAR",
                         "tokens": {"input": "BIGINT", "output": "BIGINT", "cache_read": "BIGINT",
                                    "cache_creation": "BIGINT"},
                         "estimated_cost": {"amount": "DECIMAL(20,6)", "currency": "VARCHAR"}}],
}]}).decode()
RECORD_SELECT = f"""
    SELECT day, CASE WHEN r.actor.type = 'user_actor' THEN 'user'
                     WHEN r.actor.type = 'api_actor' THEN 'api_key'
                     WHEN r.actor.email_address IS NOT NULL THEN 'user'
                     WHEN r.actor.api_key_name IS NOT NULL THEN 'api_key'
                     ELSE coalesce(r.actor.type, 'unknown') END AS actor_type,
           coalesce(r.actor.email_address, r.actor.api_key_name, '') AS actor_id,
           r.actor.email_address AS email, r.actor.api_key_name AS api_key_name,
           coalesce(r.is_remote, false) AS is_remote, coalesce(r.terminal_type, '') AS terminal_type,
           r.organization_id, r.customer_type, r.subscription_type,
           r.core_metrics AS core, r.tool_actions AS tools, r.model_breakdown AS models
    FROM (SELECT day, unnest(from_json(decode(payload), '{RECORD_SPEC}').data) AS r FROM {PAGE})"""
