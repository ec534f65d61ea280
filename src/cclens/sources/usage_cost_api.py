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

from ..errors import ConfigError
from ._anthropic import ApiSource, Unit, append_rows, as_decimal, as_int, dig, floor_day, floor_to, iso, parse_ts
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
        cols: dict[str, list] = {c: [] for c in (
            "bucket_start", "bucket_end", "bucket_width", "grouping", *USAGE_DIMENSIONS,
            "uncached_input_tokens", "cache_creation_5m_tokens", "cache_creation_1h_tokens",
            "cache_read_tokens", "output_tokens", "web_search_requests", "fetched_at", "run_id")}
        for bucket in (b for p in pages for b in p.records):
            start, end = parse_ts(bucket["starting_at"]), parse_ts(bucket["ending_at"])
            if not unit.start <= start < unit.end:
                continue  # never write outside the range this unit replaced
            for res in bucket.get("results") or []:
                cols["bucket_start"].append(start)
                cols["bucket_end"].append(end)
                cols["bucket_width"].append(self.width)
                cols["grouping"].append(self.grouping)
                for dim in USAGE_DIMENSIONS:
                    cols[dim].append(res.get(dim))
                cols["uncached_input_tokens"].append(as_int(res.get("uncached_input_tokens")))
                cols["cache_creation_5m_tokens"].append(as_int(dig(res, "cache_creation", "ephemeral_5m_input_tokens")))
                cols["cache_creation_1h_tokens"].append(as_int(dig(res, "cache_creation", "ephemeral_1h_input_tokens")))
                cols["cache_read_tokens"].append(as_int(res.get("cache_read_input_tokens")))
                cols["output_tokens"].append(as_int(res.get("output_tokens")))
                cols["web_search_requests"].append(as_int(dig(res, "server_tool_use", "web_search_requests")))
                cols["fetched_at"].append(fetched_at)
                cols["run_id"].append(run_id)
        return append_rows(wh, "usage_bucket", cols)


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
        cols: dict[str, list] = {c: [] for c in (
            "day", "grouping", *COST_DIMENSIONS, "currency", "amount_cents", "amount_raw", "fetched_at", "run_id")}
        for bucket in (b for p in pages for b in p.records):
            start = parse_ts(bucket["starting_at"])
            if not unit.start <= start < unit.end:
                continue
            for res in bucket.get("results") or []:
                raw = res.get("amount")
                cols["day"].append(start.date())
                cols["grouping"].append(self.grouping)
                for dim in COST_DIMENSIONS:
                    cols[dim].append(res.get(dim))
                cols["currency"].append(res.get("currency"))
                cols["amount_cents"].append(str(as_decimal(raw)))
                cols["amount_raw"].append("" if raw is None else str(raw))
                cols["fetched_at"].append(fetched_at)
                cols["run_id"].append(run_id)
        return append_rows(wh, "cost_day", cols)
