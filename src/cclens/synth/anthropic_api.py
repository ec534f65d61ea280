"""A fake of Anthropic's three reporting APIs over generated data, served on a real loopback port.

It implements the documented protocol (``../shared/reference/anthropic-reporting-apis.md``, §5 checklist):

- ``GET /v1/organizations/usage_report/claude_code`` (Claude Code Analytics): one UTC day per call
  (``starting_at=YYYY-MM-DD``), ``limit`` 1..1000 (default 20), ``page``/``next_page``/``has_more``,
  user and API-key actors, separate local and remote rows, sometimes two terminals for one actor,
  a tool map with an undocumented tool now and then, cost in integer cents; an empty day is
  ``{"data":[],"has_more":false,"next_page":null}``; today holds only data older than one hour.
- ``GET /v1/organizations/usage_report/messages`` (usage): 1m/1h/1d buckets, oldest first, empty ones
  included, per-width default/max ``limit``, ``group_by[]`` with every dimension key present and null
  when not grouped, filters ``models[]``, ``workspace_ids[]``, ``api_key_ids[]``, ``service_tiers[]``,
  and ``speed`` only with ``anthropic-beta: fast-mode-2026-02-01``.
- ``GET /v1/organizations/cost_report`` (cost): ``1d`` only, ``group_by[]`` in {workspace_id,
  description}, amounts as decimal strings in cents, priority tier absent, "Code Execution Usage",
  400 "Invalid date range: ending date must be after starting date" when no complete day is asked.
- ``GET /v1/organizations/analytics/users`` and ``/summaries`` (Enterprise Analytics): ``next_page``
  only (no ``has_more``), rows sorted by email, every product block zero-filled, 400 for dates before
  2026-01-01 or after the latest available day (the message names it) or outside an optional rolling
  window, an optional per-org rate limit answered 429 with ``retry-after``.
- Auth: Admin endpoints take ``x-api-key`` (or ``Authorization: Bearer``) from :attr:`admin_keys` and
  answer 401 otherwise; Analytics endpoints take only :attr:`analytics_keys` and answer 404 otherwise.
  The two key sets are disjoint, as in the real API.
- Every response has a ``request-id`` header; errors use the platform envelope
  ``{"type":"error","error":{"type":…,"message":…},"request_id":…}``.
- Injection: :meth:`fail` (429 with ``retry-after``, 5xx, any status, after N good requests),
  :meth:`revise` (a day's numbers change, as the APIs revise recent days), :meth:`expire_cursors` (410).

Data is a pure function of ``(seed, people, days, now, revisions)``: any page can be regenerated, and
the expected data for a test comes from the same generators (:meth:`cc_records`, :meth:`usage_results`,
:meth:`cost_results`, :meth:`users_records`, :meth:`summary_records`).

Use::

    fake = FakeAnthropicAPI(seed=1, people=30, days=20, now=datetime(2026, 6, 15, 12, tzinfo=UTC))
    with fake.serve() as url:            # uvicorn on 127.0.0.1:<free port>
        ...  CCLENS_ANTHROPIC_BASE_URL=url, CCLENS_ANTHROPIC_ADMIN_KEY=fake.ADMIN_KEY

or standalone: ``python -m cclens.synth.anthropic_api --people 2000 --days 365 --port 0`` (prints the URL).

It lives in the package (not under tests/) because ``cclens demo`` serves it too; ``tests/fakes/anthropic_api``
re-exports it.
"""

from __future__ import annotations

import argparse
import base64
import math
import random
import socket
import sys
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from datetime import date, datetime, time as dtime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl

import orjson

UTC = timezone.utc
ORG_ID = "12345678-1234-5678-1234-567812345678"
ENTERPRISE_FIRST_DAY = date(2026, 1, 1)
FAST_MODE_BETA = "fast-mode-2026-02-01"

# model -> (display name, input $/MTok, output $/MTok)
MODELS = {
    "claude-opus-4-8": ("Claude Opus 4.8", Decimal(15), Decimal(75)),
    "claude-sonnet-5": ("Claude Sonnet 5", Decimal(3), Decimal(15)),
    "claude-haiku-4-5": ("Claude Haiku 4.5", Decimal(1), Decimal(5)),
}
MODEL_NAMES = list(MODELS)
DOC_TOOLS = ("edit_tool", "multi_edit_tool", "write_tool", "notebook_edit_tool")
EXTRA_TOOL = "apply_patch_tool"   # not in the docs: the API's tool map is open
TERMINALS = ("vscode", "iTerm.app", "tmux", "cursor", "Apple_Terminal")
USAGE_DIMS = ("api_key_id", "workspace_id", "model", "service_tier", "context_window", "inference_geo",
              "account_id", "service_account_id", "speed")
WIDTHS = {"1m": (timedelta(minutes=1), 60, 1440), "1h": (timedelta(hours=1), 24, 168),
          "1d": (timedelta(days=1), 7, 31)}
TOKEN_TYPES = (("uncached_input_tokens", "Input Tokens", Decimal(1)),
               ("output_tokens", "Output Tokens", None),
               ("cache_read_input_tokens", "Cache Read Input Tokens", Decimal("0.1")),
               ("cache_creation.ephemeral_5m_input_tokens", "5m Cache Write Input Tokens", Decimal("1.25")),
               ("cache_creation.ephemeral_1h_input_tokens", "1h Cache Write Input Tokens", Decimal(2)))
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 410: "invalid_request_error", 413: "request_too_large",
               429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "api_error",
               504: "timeout_error", 529: "overloaded_error"}


class FakeError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class _Rule:
    def __init__(self, path: str, status: int, times: int, after: int, retry_after: str | None):
        self.path, self.status, self.times, self.after, self.retry_after = path, status, times, after, retry_after


class FakeAnthropicAPI:
    """The three reporting APIs over generated data. ``now`` fixes the fake's clock (default: the
    real time, to the minute); ``days`` of history end at ``now``; ``people`` users (plus
    ``max(2, people // 100)`` API-key actors) work on weekdays mostly. See the module docstring."""

    ADMIN_KEY = "sk-ant-admin01-fake-admin-key-0000"
    ANALYTICS_KEY = "sk-ant-api01-fake-analytics-key-0000"

    def __init__(self, seed: int = 0, people: int = 50, days: int = 30, *, now: datetime | None = None,
                 empty_days: set[date] | None = None, enterprise_lag_days: int = 1,
                 enterprise_lookback_days: int | None = None, enterprise_rate_limit: int | None = None,
                 summaries_envelope: str = "summaries", clock: Callable[[], float] = time.monotonic):
        self.seed, self.n_people, self.days = seed, people, days
        self.now = (now or datetime.now(UTC).replace(second=0, microsecond=0)).astimezone(UTC)
        self.admin_keys = {self.ADMIN_KEY}
        self.analytics_keys = {self.ANALYTICS_KEY}
        self.enterprise_lag_days = enterprise_lag_days
        self.enterprise_lookback_days = enterprise_lookback_days
        self.enterprise_rate_limit = enterprise_rate_limit
        self.summaries_envelope = summaries_envelope
        self.clock = clock
        self.revisions: dict[date, int] = {}
        self.requests: list[dict[str, Any]] = []
        self._rules: list[_Rule] = []
        self._cursor_epoch = 0
        self._request_no = 0
        self._enterprise_hits: list[float] = []
        self._lock = threading.RLock()
        self._cache: OrderedDict[tuple, Any] = OrderedDict()
        rng = random.Random(f"{seed}|people")
        self.people = [{"email": f"dev{i:04d}@example.com", "account_id": f"user_{_b32(rng, 20)}",
                        "terminal": rng.choice(TERMINALS)} for i in range(people)]
        self.api_key_actors = [f"ci-key-{k}" for k in range(max(2, people // 100))]
        self.api_key_ids = [f"apikey_{_b32(rng, 20)}" for _ in range(max(3, people // 20))]
        self.workspaces = [None] + [f"wrkspc_{_b32(rng, 20)}" for _ in range(3)]
        self.service_accounts = [f"svac_{_b32(rng, 20)}" for _ in range(2)]
        if empty_days is None:
            empty_days = {self.today - timedelta(days=max(1, days * 2 // 3))} if days >= 5 else set()
        self.empty_days = set(empty_days)

    # -- clock and knobs -------------------------------------------------------------------------
    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def first_day(self) -> date:
        return self.today - timedelta(days=self.days)

    def set_now(self, now: datetime) -> None:
        with self._lock:
            self.now = now.astimezone(UTC)
            self._cache.clear()

    def revise(self, day: date, times: int = 1) -> None:
        """The APIs revise ``day``: every source's numbers for it change (by a few percent)."""
        with self._lock:
            self.revisions[day] = self.revisions.get(day, 0) + times
            self._cache.clear()

    def fail(self, status: int = 500, *, path: str = "", times: int = 1, after: int = 0,
             retry_after: float | str | None = None) -> None:
        """The next ``times`` requests under ``path`` (after ``after`` good ones) answer ``status``."""
        with self._lock:
            self._rules.append(_Rule(path, status, times, after, None if retry_after is None else str(retry_after)))

    def expire_cursors(self) -> None:
        """Cursors issued so far become invalid: a request carrying one is answered 410."""
        with self._lock:
            self._cursor_epoch += 1

    @property
    def latest_enterprise_day(self) -> date:
        return (self.now - timedelta(hours=10)).date() - timedelta(days=self.enterprise_lag_days)

    # -- generated data ---------------------------------------------------------------------------
    def _cached(self, key: tuple, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = make()
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
        return value

    def _has_data(self, day: date) -> bool:
        return self.first_day <= day <= self.today and day not in self.empty_days

    def _scale(self, day: date, value: int, *, partial: float = 1.0) -> int:
        rev = self.revisions.get(day, 0)
        return int(value * (100 + 3 * rev) // 100 * partial)

    def active_people(self, day: date) -> list[int]:
        """Indexes of the people who used Claude Code on ``day``."""
        if not self._has_data(day):
            return []
        def make() -> list[int]:
            rng = random.Random(f"{self.seed}|active|{day}")
            p = 0.7 if day.weekday() < 5 else 0.15
            return [i for i in range(self.n_people) if rng.random() < p]
        return self._cached(("active", day), make)

    def cc_records(self, day: date) -> list[dict[str, Any]]:
        """Every Claude Code Analytics record of ``day``, in the order the API pages them."""
        return self._cached(("cc", day), lambda: self._make_cc(day))

    def _make_cc(self, day: date) -> list[dict[str, Any]]:
        if not self._has_data(day):
            return []
        partial = 1.0
        if day == self.today:  # "only data older than 1 hour is included"
            partial = max(0.0, (self.now - timedelta(hours=1) - _start(day)) / timedelta(days=1))
            if partial <= 0.0:  # the day's first hour: nothing of it is old enough, so no records yet
                return []
        rng = random.Random(f"{self.seed}|cc|{day}")
        out = []
        for i in self.active_people(day):
            person = self.people[i]
            rows = [(False, person["terminal"])]
            r = rng.random()
            if r < 0.1:
                rows.append((True, "web"))
            elif r < 0.15:
                rows.append((False, "tmux" if person["terminal"] != "tmux" else "vscode"))
            for remote, terminal in rows:
                out.append(self._cc_record(rng, day, {"type": "user_actor", "email_address": person["email"]},
                                           remote, terminal, partial))
        for name in self.api_key_actors:
            if rng.random() < (0.8 if day.weekday() < 5 else 0.3):
                out.append(self._cc_record(rng, day, {"type": "api_actor", "api_key_name": name},
                                           False, "non-interactive", partial))
        out.sort(key=lambda r: (r["actor"].get("email_address") or r["actor"].get("api_key_name"),
                                r["is_remote"], r["terminal_type"]))
        return out

    def _cc_record(self, rng: random.Random, day: date, actor: dict, remote: bool, terminal: str,
                   partial: float) -> dict[str, Any]:
        s = lambda v: self._scale(day, v, partial=partial)  # noqa: E731
        tools = {}
        for tool in DOC_TOOLS:
            accepted, rejected = rng.randint(0, 40), rng.randint(0, 6)
            if accepted or rejected or rng.random() < 0.5:  # zero entries sometimes present, sometimes not
                tools[tool] = {"accepted": s(accepted), "rejected": s(rejected)}
        if rng.random() < 0.1:
            tools[EXTRA_TOOL] = {"accepted": s(rng.randint(1, 9)), "rejected": s(rng.randint(0, 2))}
        breakdown = []
        for model in rng.sample(MODEL_NAMES, rng.randint(1, 3)):
            tokens = {"cache_creation": s(rng.randint(0, 50_000)), "cache_read": s(rng.randint(0, 500_000)),
                      "input": s(rng.randint(100, 80_000)), "output": s(rng.randint(50, 30_000))}
            cost = (tokens["input"] * MODELS[model][1] + tokens["output"] * MODELS[model][2]) / 10_000
            breakdown.append({"estimated_cost": {"amount": int(cost), "currency": "USD"}, "model": model,
                              "tokens": tokens})
        return {
            "actor": actor,
            "core_metrics": {"commits_by_claude_code": s(rng.randint(0, 8)),
                             "lines_of_code": {"added": s(rng.randint(0, 900)), "removed": s(rng.randint(0, 300))},
                             "num_sessions": s(rng.randint(1, 15)),
                             "pull_requests_by_claude_code": s(rng.randint(0, 2))},
            "customer_type": "api", "date": f"{day.isoformat()}T00:00:00Z", "is_remote": remote,
            "model_breakdown": breakdown, "organization_id": ORG_ID, "terminal_type": terminal,
            "tool_actions": tools, "subscription_type": None,
        }

    def _usage_hour(self, hour: datetime) -> list[dict[str, Any]]:
        """Fully dimensioned usage results of one hour (each with a ``_minute`` for 1m buckets)."""
        day = hour.date()
        if not self._has_data(day) or hour >= self.now:
            return []
        def make() -> list[dict[str, Any]]:
            rng = random.Random(f"{self.seed}|usage|{hour.isoformat()}")
            busy = (day.weekday() < 5) * (1.0 if 8 <= hour.hour < 19 else 0.25) + 0.1
            n = int(rng.random() * busy * min(40, 5 + self.n_people // 50)) + 1
            merged: dict[tuple, dict[str, Any]] = {}
            for _ in range(n):
                oauth = rng.random() < 0.3
                dims = {
                    "api_key_id": None if oauth or rng.random() < 0.05 else rng.choice(self.api_key_ids),
                    "workspace_id": rng.choice(self.workspaces),
                    "model": rng.choice(MODEL_NAMES),
                    "service_tier": rng.choices(("standard", "batch", "priority"), (8, 1, 1))[0],
                    "context_window": "0-200k" if rng.random() < 0.9 else "200k-1M",
                    "inference_geo": rng.choice(("global", "us", "not_available")),
                    "account_id": self.people[rng.randrange(self.n_people)]["account_id"]
                                  if oauth and self.n_people else None,
                    "service_account_id": rng.choice(self.service_accounts) if rng.random() < 0.03 else None,
                    "speed": "fast" if rng.random() < 0.05 else "standard",
                }
                key = tuple(dims.values())
                vals = merged.setdefault(key, {**dims, "_minute": rng.randrange(60), "uncached_input_tokens": 0,
                                               "output_tokens": 0, "cache_read_input_tokens": 0,
                                               "eph_5m": 0, "eph_1h": 0, "web_search_requests": 0})
                vals["uncached_input_tokens"] += self._scale(day, rng.randint(100, 200_000))
                vals["output_tokens"] += self._scale(day, rng.randint(50, 40_000))
                vals["cache_read_input_tokens"] += self._scale(day, rng.randint(0, 400_000))
                vals["eph_5m"] += self._scale(day, rng.randint(0, 20_000))
                vals["eph_1h"] += self._scale(day, rng.randint(0, 5_000))
                vals["web_search_requests"] += self._scale(day, rng.choice((0, 0, 0, 1, 3)))
            out = list(merged.values())
            if hour + timedelta(hours=1) > self.now:  # the hour in progress holds what happened so far
                frac = (self.now - hour) / timedelta(hours=1)
                out = [{**r, **{k: int(r[k] * frac) for k in _COUNT_KEYS}} for r in out if r["_minute"] < frac * 60]
            return out
        return self._cached(("usage", hour), make)

    def usage_results(self, start: datetime, end: datetime, width: str = "1h",
                      group_by: list[str] | tuple[str, ...] = (), filters: dict[str, list[str]] | None = None,
                      ) -> list[tuple[datetime, list[dict[str, Any]]]]:
        """The buckets of ``[start, end)`` as the API returns them: ``(bucket_start, results)``."""
        step = WIDTHS[width][0]
        out = []
        t = start
        while t < end:
            if width == "1d":
                raw = [r for h in range(24) for r in self._usage_hour(t + timedelta(hours=h))]
            elif width == "1h":
                raw = self._usage_hour(t)
            else:
                raw = [r for r in self._usage_hour(t.replace(minute=0)) if r["_minute"] == t.minute]
            out.append((t, _group_usage(raw, group_by, filters or {})))
            t += step
        return out

    def cost_results(self, day: date, group_by: list[str] | tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """The cost results of one UTC day as the API returns them."""
        return self._cached(("cost", day, tuple(group_by)), lambda: self._make_cost(day, tuple(group_by)))

    def _make_cost(self, day: date, group_by: tuple[str, ...]) -> list[dict[str, Any]]:
        raw = [r for h in range(24) for r in self._usage_hour(_start(day) + timedelta(hours=h))]
        items: list[dict[str, Any]] = []
        for r in raw:
            if r["service_tier"] == "priority":  # "Priority Tier costs are not available in the cost endpoint"
                continue
            display, p_in, p_out = MODELS[r["model"]]
            batch = Decimal("0.5") if r["service_tier"] == "batch" else Decimal(1)
            long = Decimal(2) if r["context_window"] == "200k-1M" else Decimal(1)
            counts = {"uncached_input_tokens": r["uncached_input_tokens"], "output_tokens": r["output_tokens"],
                      "cache_read_input_tokens": r["cache_read_input_tokens"],
                      "cache_creation.ephemeral_5m_input_tokens": r["eph_5m"],
                      "cache_creation.ephemeral_1h_input_tokens": r["eph_1h"]}
            for token_type, label, mult in TOKEN_TYPES:
                price = p_out if mult is None else p_in * mult
                cents = Decimal(counts[token_type]) * price * batch * long / Decimal(10_000)
                items.append({"workspace_id": r["workspace_id"], "description": f"{display} Usage - {label}",
                              "cost_type": "tokens", "model": r["model"], "service_tier": r["service_tier"],
                              "context_window": r["context_window"], "token_type": token_type,
                              "inference_geo": r["inference_geo"], "amount": cents})
            if r["web_search_requests"]:
                items.append({"workspace_id": r["workspace_id"], "description": "Web Search Usage",
                              "cost_type": "web_search", "model": None, "service_tier": None,
                              "context_window": None, "token_type": None, "inference_geo": None,
                              "amount": Decimal(r["web_search_requests"])})
        if raw:
            rng = random.Random(f"{self.seed}|codeexec|{day}")
            if rng.random() < 0.5:
                items.append({"workspace_id": rng.choice(self.workspaces), "description": "Code Execution Usage",
                              "cost_type": "code_execution", "model": None, "service_tier": None,
                              "context_window": None, "token_type": None, "inference_geo": None,
                              "amount": Decimal(self._scale(day, rng.randint(5, 500))) / 10})
        keep_desc = "description" in group_by
        merged: dict[tuple, dict[str, Any]] = {}
        for it in items:
            row = {"currency": "USD",
                   "workspace_id": it["workspace_id"] if "workspace_id" in group_by else None,
                   **{k: (it[k] if keep_desc else None) for k in ("description", "cost_type", "model",
                      "service_tier", "context_window", "token_type", "inference_geo")}}
            key = tuple(row.values())
            acc = merged.setdefault(key, {**row, "amount": Decimal(0)})
            acc["amount"] += it["amount"]
        out = []
        for row in merged.values():
            out.append({**row, "amount": str(row["amount"].quantize(Decimal("0.000001"), ROUND_HALF_EVEN))})
        out.sort(key=lambda r: tuple("" if v is None else str(v) for v in r.values()))
        return out

    def enterprise_active(self, day: date) -> list[int]:
        """People with any claude.ai or Claude Code activity on ``day`` (a superset of CC users)."""
        if not self._has_data(day):
            return []
        def make() -> list[int]:
            rng = random.Random(f"{self.seed}|chat|{day}")
            cc = set(self.active_people(day))
            return sorted(i for i in range(self.n_people) if i in cc or rng.random() < 0.2)
        return self._cached(("eactive", day), make)

    def users_records(self, day: date) -> list[dict[str, Any]]:
        """Every Enterprise ``/users`` record of ``day``, sorted by email."""
        return self._cached(("users", day), lambda: self._make_users(day))

    def _make_users(self, day: date) -> list[dict[str, Any]]:
        by_email: dict[str, list[dict]] = {}
        for rec in self.cc_records(day):
            if rec["actor"]["type"] == "user_actor":
                by_email.setdefault(rec["actor"]["email_address"], []).append(rec)
        rng = random.Random(f"{self.seed}|users|{day}")
        out = []
        for i in self.enterprise_active(day):
            person = self.people[i]
            cc = by_email.get(person["email"], [])
            s = lambda v: self._scale(day, v)  # noqa: E731
            tool = {t: {"accepted_count": sum(r["tool_actions"].get(t, {}).get("accepted", 0) for r in cc),
                        "rejected_count": sum(r["tool_actions"].get(t, {}).get("rejected", 0) for r in cc)}
                    for t in DOC_TOOLS}
            chat = rng.random() < 0.6
            out.append({
                "user": {"id": person["account_id"], "email_address": person["email"], "type": "user"},
                "chat_metrics": {
                    "connectors_used_count": s(rng.randint(0, 4)) if chat else 0,
                    "distinct_artifacts_created_count": s(rng.randint(0, 3)) if chat else 0,
                    "distinct_connectors_used_count": 1 if chat else 0,
                    "distinct_conversation_count": s(rng.randint(1, 8)) if chat else 0,
                    "distinct_files_uploaded_count": s(rng.randint(0, 3)) if chat else 0,
                    "distinct_projects_created_count": rng.randint(0, 1) if chat else 0,
                    "distinct_projects_used_count": rng.randint(0, 2) if chat else 0,
                    "distinct_shared_artifacts_viewed_count": 0,
                    "distinct_skills_used_count": rng.randint(0, 2) if chat else 0,
                    "message_count": s(rng.randint(1, 60)) if chat else 0,
                    "shared_conversations_viewed_count": 0,
                    "thinking_message_count": s(rng.randint(0, 10)) if chat else 0},
                "claude_code_metrics": {
                    "core_metrics": {
                        "commit_count": sum(r["core_metrics"]["commits_by_claude_code"] for r in cc),
                        "distinct_session_count": sum(r["core_metrics"]["num_sessions"] for r in cc),
                        "lines_of_code": {"added_count": sum(r["core_metrics"]["lines_of_code"]["added"] for r in cc),
                                          "removed_count": sum(r["core_metrics"]["lines_of_code"]["removed"] for r in cc)},
                        "pull_request_count": sum(r["core_metrics"]["pull_requests_by_claude_code"] for r in cc)},
                    "tool_actions": tool},
                "cowork_metrics": {"action_count": 0, "connectors_used_count": 0, "dispatch_turn_count": 0,
                                   "distinct_connectors_used_count": 0, "distinct_session_count": 0,
                                   "distinct_skills_used_count": 0, "message_count": 0, "skills_used_count": 0},
                "design_metrics": {"distinct_projects_created_count": 0, "distinct_projects_used_count": 0,
                                   "distinct_session_count": 0, "message_count": 0},
                "office_metrics": {app: {"connectors_used_count": 0, "distinct_connectors_used_count": 0,
                                         "distinct_session_count": 0, "distinct_skills_used_count": 0,
                                         "message_count": s(rng.randint(0, 5)) if app == "excel" and chat else 0,
                                         "skills_used_count": 0}
                                   for app in ("excel", "outlook", "powerpoint", "word")},
                "science_metrics": {"delegation_count": 0, "distinct_session_count": 0, "message_count": 0,
                                    "remote_compute_job_count": 0, "skills_used_count": 0},
                "web_search_count": s(rng.randint(0, 5)) if chat else 0,
            })
        out.sort(key=lambda r: r["user"]["email_address"])
        return out

    def summary_records(self, start: date, end: date) -> list[dict[str, Any]]:
        """``/summaries`` rows for the days of ``[start, end)``."""
        out = []
        d = start
        while d < end:
            window = lambda n: set().union(*(self.enterprise_active(d - timedelta(days=k)) for k in range(n)))  # noqa: E731
            dau, wau, mau = len(self.enterprise_active(d)), len(window(7)), len(window(30))
            seats = self.n_people
            out.append({"starting_at": d.isoformat(), "ending_at": (d + timedelta(days=1)).isoformat(),
                        "daily_active_user_count": dau, "weekly_active_user_count": wau,
                        "monthly_active_user_count": mau, "assigned_seat_count": seats,
                        "pending_invite_count": 2,
                        "daily_adoption_rate": round(dau / seats, 4) if seats else None,
                        "weekly_adoption_rate": round(wau / seats, 4) if seats else None,
                        "monthly_adoption_rate": round(mau / seats, 4) if seats else None,
                        "cowork_daily_active_user_count": 0, "cowork_weekly_active_user_count": 0,
                        "cowork_monthly_active_user_count": 0})
            d += timedelta(days=1)
        return out

    # -- HTTP ----------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """Answer one request: ``(status, headers, body)``. Thread-safe."""
        with self._lock:
            self._request_no += 1
            request_id = f"req_fake{self._request_no:010d}"
            params = parse_qsl(query, keep_blank_values=True)
            entry = {"method": method, "path": path, "params": params, "request_id": request_id,
                     "anthropic_version": headers.get("anthropic-version"),
                     "user_agent": headers.get("user-agent"), "anthropic_beta": headers.get("anthropic-beta"),
                     "key_kind": self._key_kind(headers)}
            self.requests.append(entry)
        out_headers = {"request-id": request_id, "content-type": "application/json"}
        try:
            self._inject(path)
            body = self._route(method, path, params, headers)
            status = 200
        except FakeError as exc:
            status = exc.status
            out_headers.update(exc.headers)
            body = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": exc.message},
                    "request_id": request_id}
        entry["status"] = status
        return status, out_headers, orjson.dumps(body)

    def _key_kind(self, headers: dict[str, str]) -> str:
        key = headers.get("x-api-key")
        if key is None and headers.get("authorization", "").lower().startswith("bearer "):
            key = headers["authorization"][7:]
        if key is None:
            return "none"
        return "admin" if key in self.admin_keys else "analytics" if key in self.analytics_keys else "unknown"

    def _inject(self, path: str) -> None:
        with self._lock:
            for rule in self._rules:
                if rule.times <= 0 or not path.startswith(rule.path):
                    continue
                if rule.after > 0:
                    rule.after -= 1
                    continue
                rule.times -= 1
                headers = {"retry-after": rule.retry_after} if rule.retry_after is not None else {}
                raise FakeError(rule.status, f"injected failure ({rule.status})", headers)

    def _route(self, method: str, path: str, params: list[tuple[str, str]], headers: dict[str, str]) -> Any:
        if method != "GET":
            raise FakeError(405 if path.startswith("/v1/") else 404, f"{method} is not supported here")
        kind = self.requests[-1]["key_kind"]
        if path.startswith("/v1/organizations/analytics/"):
            if kind != "analytics":  # engagement endpoints answer 404 for a missing, bad or Admin key
                raise FakeError(404, "Not found: missing or invalid API key, or the key lacks read:analytics")
            self._enterprise_rate_limit()
            if path == "/v1/organizations/analytics/users":
                return self._users(params)
            if path == "/v1/organizations/analytics/summaries":
                return self._summaries(params)
            raise FakeError(404, f"no endpoint {path}")
        if path.startswith("/v1/organizations/"):
            if kind != "admin":
                raise FakeError(401, "invalid x-api-key")
            if not headers.get("anthropic-version"):
                raise FakeError(400, "anthropic-version: header is required")
            if path == "/v1/organizations/usage_report/claude_code":
                return self._claude_code(params)
            if path == "/v1/organizations/usage_report/messages":
                return self._messages(params, headers)
            if path == "/v1/organizations/cost_report":
                return self._cost(params)
        raise FakeError(404, f"no endpoint {path}")

    def _enterprise_rate_limit(self) -> None:
        if not self.enterprise_rate_limit:
            return
        now = self.clock()
        self._enterprise_hits = [t for t in self._enterprise_hits if now - t < 60]
        if len(self._enterprise_hits) >= self.enterprise_rate_limit:
            wait = 60 - (now - self._enterprise_hits[0])
            raise FakeError(429, "Rate limit exceeded: 60 requests per minute per organization",
                            {"retry-after": str(max(1, math.ceil(wait)))})
        self._enterprise_hits.append(now)

    # -- endpoints --------------------------------------------------------------------------------
    def _claude_code(self, params: list[tuple[str, str]]) -> Any:
        p = _single(params)
        day = _parse_day(p.get("starting_at"), "starting_at")
        limit = _limit(p, 20, 1000)
        offset = self._offset(p.get("page"), f"cc|{day}")
        records = self.cc_records(day)
        return self._paged(records, offset, limit, f"cc|{day}", has_more=True)

    def _messages(self, params: list[tuple[str, str]], headers: dict[str, str]) -> Any:
        p = _single(params)
        width = p.get("bucket_width") or "1d"
        if width not in WIDTHS:
            raise FakeError(400, f"bucket_width: must be one of 1m, 1h, 1d (got {width!r})")
        step, default, maximum = WIDTHS[width]
        group_by = _multi(params, "group_by")
        for g in group_by:
            if g not in USAGE_DIMS:
                raise FakeError(400, f"group_by: unsupported value {g!r}")
        if "speed" in group_by and FAST_MODE_BETA not in (headers.get("anthropic-beta") or ""):
            raise FakeError(400, f"group_by speed requires the anthropic-beta: {FAST_MODE_BETA} header")
        start, end = self._range(p, step)
        limit = _limit(p, default, maximum)
        filters = {"model": _multi(params, "models"), "workspace_id": _multi(params, "workspace_ids"),
                   "api_key_id": _multi(params, "api_key_ids"), "service_tier": _multi(params, "service_tiers")}
        n = int((end - start) / step)
        scope = f"usage|{width}|{_iso(start)}|{_iso(end)}|{','.join(group_by)}"
        offset = self._offset(p.get("page"), scope)
        if offset >= n:
            raise FakeError(400, "page cursor does not match the query")
        first = start + offset * step
        buckets = self.usage_results(first, min(end, first + limit * step), width, group_by,
                                     {k: v for k, v in filters.items() if v})
        data = [{"starting_at": _iso(b), "ending_at": _iso(b + step),
                 "results": [_usage_item(r, "speed" in group_by) for r in results]} for b, results in buckets]
        more = offset + len(data) < n
        return {"data": data, "has_more": more, "next_page": self._cursor(scope, offset + len(data)) if more else None}

    def _cost(self, params: list[tuple[str, str]]) -> Any:
        p = _single(params)
        if (p.get("bucket_width") or "1d") != "1d":
            raise FakeError(400, "bucket_width: cost_report supports only 1d")
        group_by = _multi(params, "group_by")
        for g in group_by:
            if g not in ("workspace_id", "description"):
                raise FakeError(400, f"group_by: unsupported value {g!r}")
        step = timedelta(days=1)
        start, end = self._range(p, step, complete_only=True)
        limit = _limit(p, 7, 31)
        n = int((end - start) / step)
        scope = f"cost|{_iso(start)}|{_iso(end)}|{','.join(group_by)}"
        offset = self._offset(p.get("page"), scope)
        first = start + offset * step
        data = []
        t = first
        while t < end and len(data) < limit:
            data.append({"starting_at": _iso(t), "ending_at": _iso(t + step),
                         "results": self.cost_results(t.date(), group_by)})
            t += step
        more = offset + len(data) < n
        return {"data": data, "has_more": more, "next_page": self._cursor(scope, offset + len(data)) if more else None}

    def _range(self, p: dict[str, str], step: timedelta, complete_only: bool = False) -> tuple[datetime, datetime]:
        if not p.get("starting_at"):
            raise FakeError(400, "starting_at: field required")
        start = _floor(_parse_ts(p["starting_at"], "starting_at"), step)
        default_end = _floor(self.now, step)
        end = _parse_ts(p["ending_at"], "ending_at") if p.get("ending_at") else default_end
        if complete_only:
            end = min(end, default_end)
        end = _floor(end, step)
        if end <= start:
            raise FakeError(400, "Invalid date range: ending date must be after starting date")
        return start, end

    def _users(self, params: list[tuple[str, str]]) -> Any:
        p = _single(params)
        day = _parse_day(p.get("date"), "date")
        self._check_enterprise_day(day, "date")
        limit = _limit(p, 100, 1000)
        offset = self._offset(p.get("page"), f"users|{day}")
        records = self.users_records(day)
        return self._paged(records, offset, limit, f"users|{day}", has_more=False)

    def _summaries(self, params: list[tuple[str, str]]) -> Any:
        p = _single(params)
        start = _parse_day(p.get("starting_date"), "starting_date")
        self._check_enterprise_day(start, "starting_date")
        latest = self.latest_enterprise_day
        end = _parse_day(p["ending_date"], "ending_date") if p.get("ending_date") else latest + timedelta(days=1)
        if end <= start or end > latest + timedelta(days=1) or (end - start).days > 366:
            raise FakeError(400, f"ending_date must be after starting_date, within 366 days, and no later "
                                 f"than {latest + timedelta(days=1)}")
        return {self.summaries_envelope: self.summary_records(start, end), "next_page": None}

    def _check_enterprise_day(self, day: date, name: str) -> None:
        latest = self.latest_enterprise_day
        if day < ENTERPRISE_FIRST_DAY:
            raise FakeError(400, f"{name} must be on or after {ENTERPRISE_FIRST_DAY}")
        if day > latest:
            raise FakeError(400, f"{name} must be no later than the latest available day, {latest}")
        if self.enterprise_lookback_days and day < self.today - timedelta(days=self.enterprise_lookback_days - 1):
            earliest = self.today - timedelta(days=self.enterprise_lookback_days - 1)
            raise FakeError(400, f"{name} is outside the available window; the earliest available day is {earliest}")

    # -- paging ---------------------------------------------------------------------------------
    def _cursor(self, scope: str, offset: int) -> str:
        raw = f"{self._cursor_epoch}|{scope}|{offset}".encode()
        return "page_" + base64.urlsafe_b64encode(raw).decode()

    def _offset(self, cursor: str | None, scope: str) -> int:
        if not cursor:
            return 0
        try:
            raw = base64.urlsafe_b64decode(cursor.removeprefix("page_").encode()).decode()
            epoch_text, rest = raw.split("|", 1)
            got_scope, offset_text = rest.rsplit("|", 1)
            epoch, offset = int(epoch_text), int(offset_text)
        except (ValueError, UnicodeDecodeError):
            raise FakeError(400, "page: invalid cursor") from None
        if epoch != self._cursor_epoch:
            raise FakeError(410, "page cursor is no longer valid; restart from the first page")
        if got_scope != scope:
            raise FakeError(400, "page cursor does not match the query")
        return offset

    def _paged(self, records: list[Any], offset: int, limit: int, scope: str, *, has_more: bool) -> Any:
        chunk = records[offset:offset + limit]
        more = offset + limit < len(records)
        out: dict[str, Any] = {"data": chunk}
        if has_more:
            out["has_more"] = more
        out["next_page"] = self._cursor(scope, offset + limit) if more else None
        return out

    # -- serving --------------------------------------------------------------------------------
    async def asgi(self, scope: dict, receive: Callable, send: Callable) -> None:
        """The ASGI app (plain HTTP only)."""
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        while True:  # drain the request body (GETs have none)
            message = await receive()
            if not message.get("more_body"):
                break
        status, out_headers, body = self.handle(scope["method"], scope["path"],
                                                scope.get("query_string", b"").decode("latin-1"), headers)
        out_headers["content-length"] = str(len(body))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in out_headers.items()]})
        await send({"type": "http.response.body", "body": body})

    def serve(self, host: str = "127.0.0.1", port: int = 0):
        """Serve on a real loopback port with uvicorn in a thread; a context yielding the base URL."""
        return serve_asgi(self.asgi, host, port)


@contextmanager
def serve_asgi(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` with :class:`LoopbackServer` for the duration of the ``with``; yields the base URL."""
    server = LoopbackServer(app, host, port)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


class LoopbackServer:
    """uvicorn serving an ASGI app on a socket bound here (port 0 = a free port), in a thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        # proto=IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (else 40 ms delayed ACKs)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, ws="none", interface="asgi3",
                                timeout_keep_alive=30)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="fake-anthropic-api", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Anthropic API did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


# -- helpers --------------------------------------------------------------------------------------
_COUNT_KEYS = ("uncached_input_tokens", "output_tokens", "cache_read_input_tokens", "eph_5m", "eph_1h",
               "web_search_requests")


def _b32(rng: random.Random, n: int) -> str:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZabcdefghijkmnopqrstuvwxyz"
    return "".join(rng.choice(alphabet) for _ in range(n))


def _start(day: date) -> datetime:
    return datetime.combine(day, dtime(0), tzinfo=UTC)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _floor(ts: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((ts - epoch) // step) * step


def _single(params: list[tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, v in params if not k.endswith("[]")}


def _multi(params: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in params if k == f"{name}[]"]


def _limit(p: dict[str, str], default: int, maximum: int) -> int:
    if "limit" not in p:
        return default
    try:
        limit = int(p["limit"])
    except ValueError:
        raise FakeError(400, "limit: must be an integer") from None
    if not 1 <= limit <= maximum:
        raise FakeError(400, f"limit: must be between 1 and {maximum}")
    return limit


def _parse_day(value: str | None, name: str) -> date:
    if not value:
        raise FakeError(400, f"{name}: field required")
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise FakeError(400, f"{name}: expected a date as YYYY-MM-DD, got {value!r}") from None


def _parse_ts(value: str, name: str) -> datetime:
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FakeError(400, f"{name}: expected an RFC 3339 timestamp, got {value!r}") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def _group_usage(raw: list[dict[str, Any]], group_by: Any, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    merged: dict[tuple, dict[str, Any]] = {}
    for r in raw:
        if any(r[dim] not in allowed for dim, allowed in filters.items()):
            continue
        dims = {d: (r[d] if d in group_by else None) for d in USAGE_DIMS}
        acc = merged.setdefault(tuple(dims.values()), {**dims, **{k: 0 for k in _COUNT_KEYS}})
        for k in _COUNT_KEYS:
            acc[k] += r[k]
    return sorted(merged.values(), key=lambda r: tuple("" if r[d] is None else r[d] for d in USAGE_DIMS))


def _usage_item(r: dict[str, Any], with_speed: bool) -> dict[str, Any]:
    item = {
        "account_id": r["account_id"], "api_key_id": r["api_key_id"],
        "cache_creation": {"ephemeral_1h_input_tokens": r["eph_1h"], "ephemeral_5m_input_tokens": r["eph_5m"]},
        "cache_read_input_tokens": r["cache_read_input_tokens"], "context_window": r["context_window"],
        "inference_geo": r["inference_geo"], "model": r["model"], "output_tokens": r["output_tokens"],
        "server_tool_use": {"web_search_requests": r["web_search_requests"]},
        "service_account_id": r["service_account_id"], "service_tier": r["service_tier"],
        "uncached_input_tokens": r["uncached_input_tokens"], "workspace_id": r["workspace_id"],
    }
    if with_speed:
        item["speed"] = r["speed"]
    return item


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Serve the fake Anthropic reporting APIs on loopback.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--people", type=int, default=50)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--now", help="the fake's clock, RFC 3339 (default: real time)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--enterprise-lookback-days", type=int, default=None)
    args = ap.parse_args(argv)
    now = _parse_ts(args.now, "--now") if args.now else None
    fake = FakeAnthropicAPI(args.seed, args.people, args.days, now=now,
                            enterprise_lookback_days=args.enterprise_lookback_days)
    with fake.serve(args.host, args.port) as url:
        print(url, flush=True)
        print(f"admin key: {fake.ADMIN_KEY}\nanalytics key: {fake.ANALYTICS_KEY}", file=sys.stderr, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
