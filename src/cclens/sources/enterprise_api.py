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

from ._anthropic import (ApiSource, Unit, UnitNotAvailable, append_rows, as_int, as_opt_int, day_start,
                         dig)
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
        self.unit_span = timedelta(days=7)
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
        days = sorted({d for d in map(_page_day, user_pages) if d is not None})
        written = 0
        if days:  # only days the API answered: a day it no longer serves keeps what we have
            wh.execute("DELETE FROM engagement_day WHERE list_contains(?, day)", [days])
            written += append_rows(wh, "engagement_day", _engagement_columns(user_pages, fetched_at, run_id))
        rows = [r for p in summary_pages for r in (p.data.get("summaries") or p.data.get("data") or [])]
        cols = _summary_columns(rows, unit, fetched_at, run_id)
        if cols["day"]:
            wh.execute("DELETE FROM engagement_summary_day WHERE list_contains(?, day)", [sorted(set(cols["day"]))])
            written += append_rows(wh, "engagement_summary_day", cols)
        return written


def _named_day(exc: ApiRequestError) -> date | None:
    match = _DATE_RE.search(exc.api_message or "")
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def _page_day(page: Page) -> date | None:
    for name, value in page.params:
        if name == "date":
            return date.fromisoformat(value)
    return None


def _sum(obj: Any, *paths: tuple[str, ...]) -> int:
    return sum(as_int(dig(obj, *p)) for p in paths)


def _engagement_columns(pages: Sequence[Page], fetched_at: datetime, run_id: str) -> dict[str, list]:
    cols: dict[str, list] = {c: [] for c in (
        "day", "user_id", "email", "chat_message_count", "chat_conversation_count",
        "chat_thinking_message_count", "chat_artifacts_created_count", "chat_projects_created_count",
        "cc_commit_count", "cc_pull_request_count", "cc_lines_added", "cc_lines_removed",
        "cc_session_count", "cc_tool_accepted", "cc_tool_rejected", "web_search_count",
        "cowork_message_count", "design_message_count", "office_message_count", "science_message_count",
        "last_activity_date", "record", "fetched_at", "run_id")}
    for page in pages:
        day = _page_day(page)
        for rec in page.records:
            if not isinstance(rec, dict):
                continue
            user = rec.get("user") or {}
            chat = rec.get("chat_metrics") or {}
            cc = rec.get("claude_code_metrics") or {}
            core = cc.get("core_metrics") or {}
            last = rec.get("last_activity_date")
            values = {
                "day": day, "user_id": user.get("id"), "email": user.get("email_address"),
                "chat_message_count": as_opt_int(chat.get("message_count")),
                "chat_conversation_count": as_opt_int(chat.get("distinct_conversation_count")),
                "chat_thinking_message_count": as_opt_int(chat.get("thinking_message_count")),
                "chat_artifacts_created_count": as_opt_int(chat.get("distinct_artifacts_created_count")),
                "chat_projects_created_count": as_opt_int(chat.get("distinct_projects_created_count")),
                "cc_commit_count": as_opt_int(core.get("commit_count")),
                "cc_pull_request_count": as_opt_int(core.get("pull_request_count")),
                "cc_lines_added": as_opt_int(dig(core, "lines_of_code", "added_count")),
                "cc_lines_removed": as_opt_int(dig(core, "lines_of_code", "removed_count")),
                "cc_session_count": as_opt_int(core.get("distinct_session_count")),
                "cc_tool_accepted": _sum(cc, *(("tool_actions", t, "accepted_count") for t in CC_TOOLS)),
                "cc_tool_rejected": _sum(cc, *(("tool_actions", t, "rejected_count") for t in CC_TOOLS)),
                "web_search_count": as_opt_int(rec.get("web_search_count")),
                "cowork_message_count": as_opt_int(dig(rec, "cowork_metrics", "message_count")),
                "design_message_count": as_opt_int(dig(rec, "design_metrics", "message_count")),
                "office_message_count": _sum(rec, *(("office_metrics", a, "message_count") for a in OFFICE_APPS)),
                "science_message_count": as_opt_int(dig(rec, "science_metrics", "message_count")),
                "last_activity_date": _as_date(last),
                "record": orjson.dumps(rec).decode(),
                "fetched_at": fetched_at, "run_id": run_id,
            }
            for c, v in values.items():
                cols[c].append(v)
    return cols


def _as_date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _summary_columns(rows: Sequence[Any], unit: Unit, fetched_at: datetime, run_id: str) -> dict[str, list]:
    cols: dict[str, list] = {c: [] for c in (
        "day", "daily_active_user_count", "weekly_active_user_count", "monthly_active_user_count",
        "assigned_seat_count", "pending_invite_count", "daily_adoption_rate", "weekly_adoption_rate",
        "monthly_adoption_rate", "record", "fetched_at", "run_id")}
    for rec in rows:
        if not isinstance(rec, dict):
            continue
        day = _as_date(rec.get("starting_at") or rec.get("starting_date") or rec.get("date"))
        if day is None or not unit.start.date() <= day < unit.end.date():
            continue
        cols["day"].append(day)
        for c in ("daily_active_user_count", "weekly_active_user_count", "monthly_active_user_count",
                  "assigned_seat_count", "pending_invite_count"):
            cols[c].append(as_opt_int(rec.get(c)))
        for c in ("daily_adoption_rate", "weekly_adoption_rate", "monthly_adoption_rate"):
            v = rec.get(c)
            cols[c].append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None)
        cols["record"].append(orjson.dumps(rec).decode())
        cols["fetched_at"].append(fetched_at)
        cols["run_id"].append(run_id)
    return cols
