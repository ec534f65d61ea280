"""Sources ``usage`` and ``cost``: the Usage & Cost Admin API.

``usage``: ``GET /v1/organizations/usage_report/messages`` with ``bucket_width`` 1m/1h/1d (setting
``anthropic_usage_bucket_width``, default 1h) and ``group_by[]`` (setting ``anthropic_usage_group_by``,
default model, workspace_id, api_key_id, service_tier, context_window, inference_geo, account_id).
The API returns every bucket in the range, oldest first, empty ones as ``results: []``; each result
carries every dimension, null when not grouped (and also null for the default workspace and for
Workbench usage, so a null is kept as null, never guessed). A unit is as many buckets as one page may
hold (1m: a day; 1h: 7 days; 1d: 31 days). Only complete buckets are asked for
(``ending_at`` = now rounded down to the bucket), and the last day is re-fetched every run since data
lands within about 5 minutes "though delays may occasionally be longer". Grouping by ``speed`` sends
the ``anthropic-beta: fast-mode-2026-02-01`` header the API requires for it.

``cost``: ``GET /v1/organizations/cost_report``, daily buckets only, grouped by ``workspace_id`` and
``description`` (which makes the API fill in model, token type, tier, context window and geo).
``amount`` is a decimal string in the lowest currency unit (cents): stored exactly, as sent and as
DECIMAL cents. Only complete UTC days are asked for: a window holding no complete day is answered
400 "Invalid date range". Priority Tier costs are not in this endpoint (Anthropic's rule).
The last 3 days are re-fetched every run. Both use the Admin API key (``anthropic_admin_key``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Sequence

import orjson

from ..errors import ConfigError
from ._anthropic import PAGE, ApiSource, Unit, each_page, floor_day, floor_to, iso
from ._http import ApiClient, Page

USAGE_PATH = "/v1/organizations/usage_report/messages"
COST_PATH = "/v1/organizations/cost_report"

# bucket width -> (duration, max buckets per page)
WIDTHS = {"1m": (timedelta(minutes=1), 1440), "1h": (timedelta(hours=1), 168), "1d": (timedelta(days=1), 31)}
USAGE_DIMENSIONS = ("api_key_id", "workspace_id", "model", "service_tier", "context_window",
                    "inference_geo", "account_id", "service_account_id", "speed")
DEFAULT_USAGE_GROUP_BY = ["model", "workspace_id", "api_key_id", "service_tier", "context_window",
                          "inference_geo", "account_id"]
COST_DIMENSIONS = ("workspace_id", "description", "cost_type", "model", "service_tier", "context_window",
                   "token_type", "inference_geo")
COST_GROUP_BY = ["workspace_id", "description"]
FAST_MODE_BETA = "fast-mode-2026-02-01"
USAGE_PAGE_LIMIT: int | None = None   # buckets per page; None = the width's maximum (tests lower it)
COST_PAGE_LIMIT = 31
ADMIN_HINT = "an Admin API key, sk-ant-admin01-…, created in Console > Settings > Admin keys"


class UsageSource(ApiSource):
    """Token usage per time bucket x group (see the module docstring)."""

    name = "usage"
    key_setting = "anthropic_admin_key"
    key_hint = ADMIN_HINT
    interval = timedelta(minutes=5)
    revisable = timedelta(days=1)
    tables = ("usage_bucket",)

    def __init__(self, settings: Any):
        super().__init__(settings)
        self.width = getattr(settings, "anthropic_usage_bucket_width", "1h") or "1h"
        if self.width not in WIDTHS:
            raise ConfigError(f"anthropic_usage_bucket_width is {self.width!r}; use one of 1m, 1h, 1d")
        group_by = getattr(settings, "anthropic_usage_group_by", None)
        self.group_by = list(DEFAULT_USAGE_GROUP_BY if group_by is None else group_by)
        unknown = [g for g in self.group_by if g not in USAGE_DIMENSIONS]
        if unknown:
            raise ConfigError(f"anthropic_usage_group_by has unknown dimension(s) {', '.join(unknown)}; "
                              f"use any of {', '.join(USAGE_DIMENSIONS)}")
        self.grain, self.limit = WIDTHS[self.width]
        self.unit_span = self.grain * self.limit
        self.grouping = ",".join(sorted(self.group_by))

    def cursor_tag(self) -> str:
        return f"{self.width}|{self.grouping}"

    def headers(self) -> dict[str, str]:
        return {"anthropic-beta": FAST_MODE_BETA} if "speed" in self.group_by else {}

    def available_end(self, now: datetime) -> datetime:
        return floor_to(now, self.grain)

    def fetch(self, client: ApiClient, unit: Unit) -> list[Page]:
        return client.fetch_all(USAGE_PATH, {
            "starting_at": iso(unit.start), "ending_at": iso(unit.end), "bucket_width": self.width,
            "limit": min(USAGE_PAGE_LIMIT or self.limit, self.limit), "group_by": self.group_by})

    def replace(self, wh: Any, unit: Unit, pages: Sequence[Page], fetched_at: datetime,
                run_id: str) -> int:
        wh.execute("DELETE FROM usage_bucket WHERE bucket_width = ? AND bucket_start >= ? AND bucket_start < ?",
                   [self.width, unit.start, unit.end])
        dims = ", ".join(f"res.{d}" for d in USAGE_DIMENSIONS)
        # Only buckets inside the unit are written: never outside the range this unit replaced.
        return each_page(wh, pages, f"""
            INSERT INTO usage_bucket (bucket_start, bucket_end, bucket_width, grouping, {", ".join(USAGE_DIMENSIONS)},
                uncached_input_tokens, cache_creation_5m_tokens, cache_creation_1h_tokens, cache_read_tokens,
                output_tokens, web_search_requests, fetched_at, run_id)
            SELECT start_ts, end_ts, ?, ?, {dims},
                   coalesce(res.uncached_input_tokens, 0), coalesce(res.cache_creation.ephemeral_5m_input_tokens, 0),
                   coalesce(res.cache_creation.ephemeral_1h_input_tokens, 0), coalesce(res.cache_read_input_tokens, 0),
                   coalesce(res.output_tokens, 0), coalesce(res.server_tool_use.web_search_requests, 0), ?, ?
            FROM (SELECT b.starting_at::TIMESTAMPTZ AS start_ts, b.ending_at::TIMESTAMPTZ AS end_ts,
                         unnest(b.results) AS res
                  FROM (SELECT unnest(from_json(decode(payload), '{USAGE_SPEC}').data) AS b FROM {PAGE}))
            WHERE start_ts >= ? AND start_ts < ?""",
            before=[self.width, self.grouping, fetched_at, run_id], after=[unit.start, unit.end])


class CostSource(ApiSource):
    """Billed cost per UTC day x workspace x description (see the module docstring)."""

    name = "cost"
    key_setting = "anthropic_admin_key"
    key_hint = ADMIN_HINT
    interval = timedelta(days=1)
    revisable = timedelta(days=3)
    tables = ("cost_day",)

    def __init__(self, settings: Any):
        super().__init__(settings)
        self.grain = timedelta(days=1)
        self.unit_span = timedelta(days=31)
        self.grouping = ",".join(sorted(COST_GROUP_BY))

    def available_end(self, now: datetime) -> datetime:
        return floor_day(now)

    def fetch(self, client: ApiClient, unit: Unit) -> list[Page]:
        days = (unit.end - unit.start).days
        return client.fetch_all(COST_PATH, {
            "starting_at": iso(unit.start), "ending_at": iso(unit.end), "bucket_width": "1d",
            "limit": max(1, min(COST_PAGE_LIMIT, days)), "group_by": COST_GROUP_BY})

    def replace(self, wh: Any, unit: Unit, pages: Sequence[Page], fetched_at: datetime,
                run_id: str) -> int:
        wh.execute("DELETE FROM cost_day WHERE day >= ? AND day < ?", [unit.start.date(), unit.end.date()])
        dims = ", ".join(f"res.{d}" for d in COST_DIMENSIONS)
        return each_page(wh, pages, f"""
            INSERT INTO cost_day (day, grouping, {", ".join(COST_DIMENSIONS)}, currency, amount_cents, amount_raw,
                                  fetched_at, run_id)
            SELECT start_ts::DATE, ?, {dims}, res.currency,
                   coalesce(TRY_CAST(res.amount AS DECIMAL(38, 12)), 0), coalesce(res.amount, ''), ?, ?
            FROM (SELECT timezone('UTC', b.starting_at::TIMESTAMPTZ) AS start_ts, unnest(b.results) AS res
                  FROM (SELECT unnest(from_json(decode(payload), '{COST_SPEC}').data) AS b FROM {PAGE}))
            WHERE start_ts >= ? AND start_ts < ?""",
            before=[self.grouping, fetched_at, run_id],
            after=[unit.start.replace(tzinfo=None), unit.end.replace(tzinfo=None)])


_TOKENS = {"uncached_input_tokens": "BIGINT", "cache_read_input_tokens": "BIGINT", "output_tokens": "BIGINT",
           "cache_creation": {"ephemeral_5m_input_tokens": "BIGINT", "ephemeral_1h_input_tokens": "BIGINT"},
           "server_tool_use": {"web_search_requests": "BIGINT"}}
USAGE_SPEC = orjson.dumps({"data": [{"starting_at": "VARCHAR", "ending_at": "VARCHAR", "results": [
    {**{d: "VARCHAR" for d in USAGE_DIMENSIONS}, **_TOKENS}]}]}).decode()
# amount stays text: it is a decimal string in cents, parsed exactly by DuckDB.
COST_SPEC = orjson.dumps({"data": [{"starting_at": "VARCHAR", "ending_at": "VARCHAR", "results": [
    {**{d: "VARCHAR" for d in COST_DIMENSIONS}, "currency": "VARCHAR", "amount": "VARCHAR"}]}]}).decode()
