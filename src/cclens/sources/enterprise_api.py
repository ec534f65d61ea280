"""Source ``enterprise_analytics``: the Claude Enterprise Analytics API.

``GET /v1/organizations/analytics/users?date=YYYY-MM-DD&limit=1000`` gives one row per user for one
UTC day (chat, Claude Code, cowork, design, office and science metrics; product blocks are always
present, zero-filled). Paging is ``page``/``next_page`` only: there is no ``has_more``.
``GET /v1/organizations/analytics/summaries?starting_date=…&ending_date=…`` gives one row per day
(daily/weekly/monthly active users, seats, adoption); its envelope is documented as ``summaries``
while the SDKs read ``data``, so both are accepted.

It uses its own key (``anthropic_analytics_key``: an Analytics API key with scope
``read:analytics``, created by the Primary Owner in claude.ai); an Admin key does not work here, and a
bad key is answered 404 on these endpoints. The API is limited to 60 requests a minute per
organisation, so the client throttles itself to that.

Never asks for a date the API rejects: nothing before 2026-01-01, nothing older than
``anthropic_enterprise_lookback_days`` (default 90, the documented rolling window), never today or
later, and nothing after the latest aggregated day: day N-1 is aggregated at 10:00 UTC on day N, so the
latest day asked is ``(now - 10h).date() - anthropic_enterprise_lag_days`` (default 1). If the API
still says a day is too recent (its message names the latest available day), the run stops there
without error and picks it up next time. Values "may be revised by a few percent over the following
days": the last 7 days are re-fetched every run. The warehouse keeps every day it ever fetched, so
history outlives the API's rolling window.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any, Sequence

import orjson

from ._anthropic import PAGE, ApiSource, Unit, UnitNotAvailable, day_start, each_page, page_day
from ._http import ApiClient, ApiRequestError, Page

USERS_PATH = "/v1/organizations/analytics/users"
SUMMARIES_PATH = "/v1/organizations/analytics/summaries"
FIRST_DAY = date(2026, 1, 1)
PAGE_LIMIT = 1000
_DATE_RE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
CC_TOOLS = ("edit_tool", "multi_edit_tool", "write_tool", "notebook_edit_tool")
OFFICE_APPS = ("excel", "outlook", "powerpoint", "word")


class EnterpriseAnalyticsSource(ApiSource):
    """Per user x UTC day engagement, plus the org's daily summaries (see the module docstring)."""

    name = "enterprise_analytics"
    key_setting = "anthropic_analytics_key"
    key_hint = ("an Analytics API key with scope read:analytics, created by the Primary Owner in "
                "claude.ai > Organization settings > API; an Admin key does not work here")
    auth_statuses = (401, 403, 404)
    rate_per_minute = 60.0
    interval = timedelta(days=1)
    revisable = timedelta(days=7)
    tables = ("engagement_day", "engagement_summary_day")

    def __init__(self, settings: Any):
        super().__init__(settings)
        self.grain = timedelta(days=1)
        self.unit_span = timedelta(days=2)  # /users pages are big: a small unit keeps a sync's memory low
        self.lag_days = int(getattr(settings, "anthropic_enterprise_lag_days", 1))
        self.lookback_days = getattr(settings, "anthropic_enterprise_lookback_days", 90)

    def earliest(self, now: datetime) -> datetime:
        first = FIRST_DAY
        if self.lookback_days:
            first = max(first, now.date() - timedelta(days=int(self.lookback_days) - 1))
        return day_start(first)

    def available_end(self, now: datetime) -> datetime:
        latest = (now - timedelta(hours=10)).date() - timedelta(days=max(self.lag_days, 1))
        latest = min(latest, now.date() - timedelta(days=1))
        return day_start(latest) + timedelta(days=1)

    def fetch(self, client: ApiClient, unit: Unit) -> list[Page]:
        pages: list[Page] = []
        for day in unit.days():
            try:
                pages.extend(client.fetch_all(USERS_PATH, {"date": day.isoformat(), "limit": PAGE_LIMIT},
                                              has_more_field=False))
            except ApiRequestError as exc:
                said = _named_day(exc)
                if exc.status != 400 or said is None:
                    raise
                if said < day:  # the API's latest available day is earlier than we computed
                    raise UnitNotAvailable(
                        f"{self.name}: the API says the latest available day is {said}; days from "
                        f"{day} will be fetched once available", pages=pages, end=day_start(day)) from None
                # An old day the API no longer serves: skip it (what we kept of it stays).
                self.notes.append(f"{self.name}: the API no longer serves {day} ({exc.api_message[:120]})")
        pages.extend(self._summaries(client, unit))
        return pages

    def _summaries(self, client: ApiClient, unit: Unit) -> list[Page]:
        try:
            return client.fetch_all(SUMMARIES_PATH, {"starting_date": unit.start.date().isoformat(),
                                                     "ending_date": unit.end.date().isoformat()},
                                    has_more_field=False)
        except ApiRequestError as exc:
            self.notes.append(f"{self.name}: daily summaries unavailable for {unit.key} "
                              f"(HTTP {exc.status}: {exc.api_message[:120]}); user rows are still kept")
            return []

    def replace(self, wh: Any, unit: Unit, pages: Sequence[Page], fetched_at: datetime,
                run_id: str) -> int:
        user_pages = [p for p in pages if p.url.endswith(USERS_PATH)]
        summary_pages = [p for p in pages if p.url.endswith(SUMMARIES_PATH)]
        # Only days the API answered are replaced: a day it no longer serves keeps what we have.
        days = sorted({d for d in map(page_day, user_pages) if d is not None})
        if days:
            wh.execute("DELETE FROM engagement_day WHERE list_contains(?, day)", [days])
        written = each_page(wh, user_pages, f"""
            INSERT INTO engagement_day (day, user_id, email, chat_message_count, chat_conversation_count,
                chat_thinking_message_count, chat_artifacts_created_count, chat_projects_created_count,
                cc_commit_count, cc_pull_request_count, cc_lines_added, cc_lines_removed, cc_session_count,
                cc_tool_accepted, cc_tool_rejected, web_search_count, cowork_message_count, design_message_count,
                office_message_count, science_message_count, last_activity_date, fetched_at, run_id)
            SELECT day, r.user.id, r.user.email_address, r.chat_metrics.message_count,
                   r.chat_metrics.distinct_conversation_count, r.chat_metrics.thinking_message_count,
                   r.chat_metrics.distinct_artifacts_created_count, r.chat_metrics.distinct_projects_created_count,
                   r.claude_code_metrics.core_metrics.commit_count, r.claude_code_metrics.core_metrics.pull_request_count,
                   r.claude_code_metrics.core_metrics.lines_of_code.added_count,
                   r.claude_code_metrics.core_metrics.lines_of_code.removed_count,
                   r.claude_code_metrics.core_metrics.distinct_session_count,
                   {" + ".join(f"coalesce(r.claude_code_metrics.tool_actions.{t}.accepted_count, 0)" for t in CC_TOOLS)},
                   {" + ".join(f"coalesce(r.claude_code_metrics.tool_actions.{t}.rejected_count, 0)" for t in CC_TOOLS)},
                   r.web_search_count, r.cowork_metrics.message_count, r.design_metrics.message_count,
                   {" + ".join(f"coalesce(r.office_metrics.{a}.message_count, 0)" for a in OFFICE_APPS)},
                   r.science_metrics.message_count, TRY_CAST(left(r.last_activity_date, 10) AS DATE), ?, ?
            FROM (SELECT day, unnest(from_json(decode(payload), '{PAGE_SPEC}').data) AS r FROM {PAGE})""",
            before=[fetched_at, run_id])
        # /summaries: documented as {"summaries": [...]}, read by the SDKs as {"data": [...]}.
        summary_select = f"""
            SELECT TRY_CAST(left(coalesce(rec->>'starting_at', rec->>'starting_date', rec->>'date'), 10) AS DATE) AS day,
                   rec
            FROM (SELECT unnest(CASE WHEN json_exists(decode(payload), '$.summaries') THEN json_extract(decode(payload), '$.summaries[*]')
                                     ELSE json_extract(decode(payload), '$.data[*]') END) AS rec
                  FROM {PAGE})
            WHERE day >= ? AND day < ?"""
        wh.execute(f"CREATE OR REPLACE TEMP TABLE _engagement_summary AS {summary_select} LIMIT 0",
                   [None, None, None, None, None])
        each_page(wh, summary_pages, f"INSERT INTO _engagement_summary {summary_select}",
                  after=[unit.start.date(), unit.end.date()])
        wh.execute("DELETE FROM engagement_summary_day WHERE day IN (SELECT day FROM _engagement_summary)")
        written += wh.scalar("""
            INSERT INTO engagement_summary_day (day, daily_active_user_count, weekly_active_user_count,
                monthly_active_user_count, assigned_seat_count, pending_invite_count, daily_adoption_rate,
                weekly_adoption_rate, monthly_adoption_rate, record, fetched_at, run_id)
            SELECT day, TRY_CAST(rec->>'daily_active_user_count' AS BIGINT),
                   TRY_CAST(rec->>'weekly_active_user_count' AS BIGINT),
                   TRY_CAST(rec->>'monthly_active_user_count' AS BIGINT),
                   TRY_CAST(rec->>'assigned_seat_count' AS BIGINT), TRY_CAST(rec->>'pending_invite_count' AS BIGINT),
                   TRY_CAST(rec->>'daily_adoption_rate' AS DOUBLE), TRY_CAST(rec->>'weekly_adoption_rate' AS DOUBLE),
                   TRY_CAST(rec->>'monthly_adoption_rate' AS DOUBLE), rec, ?, ?
            FROM _engagement_summary""", [fetched_at, run_id]) or 0
        wh.execute("DROP TABLE IF EXISTS _engagement_summary")
        return int(written)


def _named_day(exc: ApiRequestError) -> date | None:
    match = _DATE_RE.search(exc.api_message or "")
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


_COUNTS = {"accepted_count": "BIGINT", "rejected_count": "BIGINT"}
USER_SPEC = orjson.dumps({
    "user": {"id": "VARCHAR", "email_address": "VARCHAR"},
    "chat_metrics": {k: "BIGINT" for k in ("message_count", "distinct_conversation_count", "thinking_message_count",
                                           "distinct_artifacts_created_count", "distinct_projects_created_count")},
    "claude_code_metrics": {
        "core_metrics": {"commit_count": "BIGINT", "pull_request_count": "BIGINT", "distinct_session_count": "BIGINT",
                         "lines_of_code": {"added_count": "BIGINT", "removed_count": "BIGINT"}},
        "tool_actions": {t: _COUNTS for t in CC_TOOLS}},
    "web_search_count": "BIGINT",
    "cowork_metrics": {"message_count": "BIGINT"}, "design_metrics": {"message_count": "BIGINT"},
    "office_metrics": {a: {"message_count": "BIGINT"} for a in OFFICE_APPS},
    "science_metrics": {"message_count": "BIGINT"},
    "last_activity_date": "VARCHAR",
}).decode()
PAGE_SPEC = f'{{"data": [{USER_SPEC}]}}'
