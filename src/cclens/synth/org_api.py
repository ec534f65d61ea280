"""The Anthropic reporting APIs of a synthetic :class:`~cclens.synth.org.Org`.

:class:`OrgAnthropicAPI` is the protocol fake (:class:`~cclens.synth.anthropic_api.FakeAnthropicAPI`:
paging, auth, errors) serving the organisation's own activity instead of random numbers:

* Claude Code Analytics: one record per first-party person (and API-key actor) and UTC day, from
  the same sessions that OTel, transcripts and hooks report (sessions, lines, commits, PRs, edit tool
  decisions, tokens and estimated cost per model). The Bedrock team is absent, as on the real API.
* Usage: hourly buckets of every first-party request (people by ``account_id``, CI bots by
  ``api_key_id`` in their own workspace); Cost: those tokens at list price (cents, as decimal strings).
* Enterprise Analytics: the fake's own derivation from the Claude Code records, plus chat activity.

API-key actors (CI bots) run headless sessions that only these APIs see.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from ..model.pricing import PriceTable, bundled_table
from .anthropic_api import FakeAnthropicAPI
from .org import EDIT_TOOLS, MODELS, UTC, Org

CI_WORKSPACE = "wrkspc_01CiAutomationWorkspace0"
_TOKEN_TYPES = (("uncached_input_tokens", "Input Tokens", "input"), ("output_tokens", "Output Tokens", "output"),
                ("cache_read_input_tokens", "Cache Read Input Tokens", "cache_read"),
                ("eph_5m", "5m Cache Write Input Tokens", "cache_write_5m"),
                ("eph_1h", "1h Cache Write Input Tokens", "cache_write_1h"))
_TOKEN_TYPE_NAMES = {"eph_5m": "cache_creation.ephemeral_5m_input_tokens",
                     "eph_1h": "cache_creation.ephemeral_1h_input_tokens"}
_DISPLAY = {"claude-opus-4-8": "Claude Opus 4.8", "claude-sonnet-4-5-20250929": "Claude Sonnet 4.5",
            "claude-haiku-4-5-20251001": "Claude Haiku 4.5"}


def _empty_actor() -> dict[str, Any]:
    return {"sessions": 0, "added": 0, "removed": 0, "commits": 0, "prs": 0,
            "tools": defaultdict(lambda: [0, 0]), "models": defaultdict(lambda: [0, 0, 0, 0])}


class OrgAnthropicAPI(FakeAnthropicAPI):
    """The reporting APIs over ``org`` (see the module docstring)."""

    def __init__(self, org: Org, *, prices: PriceTable | None = None, **kwargs: Any):
        self.org = org
        self.prices = prices or bundled_table()
        first_party = [p for p in org.people if not p.bedrock]
        super().__init__(seed=org.seed, people=len(first_party), days=org.days - 1, now=org.now,
                         empty_days=set(), **kwargs)
        self.people = [{"email": p.email, "account_id": p.account_id, "terminal": p.terminal} for p in first_party]
        self.api_key_actors = [k.name for k in org.api_keys]
        self.api_key_ids = [k.api_key_id for k in org.api_keys]
        self.workspaces = [None, CI_WORKSPACE]
        self._index = {p.email: i for i, p in enumerate(first_party)}
        self._cc: dict[date, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
        self._hours: dict[datetime, dict[tuple, dict[str, Any]]] = defaultdict(dict)
        self._build()

    # -- the organisation's activity, aggregated as the APIs report it ---------------------------
    def _build(self) -> None:
        for s in self.org.sessions:
            p = s.person
            if p.bedrock:
                continue
            actor = self._actor(s.start.date(), "user", p.email)
            actor["sessions"] += 1
            for t in s.tools:
                actor["added"] += t.lines_added
                actor["removed"] += t.lines_removed
                actor["commits"] += t.commit
                actor["prs"] += t.pull_request
                if t.name in EDIT_TOOLS:
                    actor["tools"][EDIT_TOOLS[t.name]][0 if t.decision == "accept" else 1] += 1
            for r in s.requests:
                self._add_request(r.ts, r.model, r.input, r.output, r.cache_read, r.cache_5m, r.cache_1h,
                                  ("user", p.email), account_id=p.account_id)
        self._bots()

    def _actor(self, day: date, kind: str, name: str) -> dict[str, Any]:
        return self._cc[day].setdefault((kind, name), _empty_actor())

    def _add_request(self, ts: datetime, model: str, inp: int, out: int, read: int, c5: int, c1: int,
                     actor: tuple[str, str], *, account_id: str | None = None, api_key_id: str | None = None) -> None:
        day = ts.astimezone(UTC).date()
        a = self._actor(day, *actor)
        m = a["models"][model]
        m[0] += inp
        m[1] += out
        m[2] += read
        m[3] += c5 + c1
        hour = ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        dims = {"api_key_id": api_key_id, "workspace_id": CI_WORKSPACE if api_key_id else None, "model": model,
                "service_tier": "standard", "context_window": "0-200k", "inference_geo": "global",
                "account_id": account_id, "service_account_id": None, "speed": "standard"}
        key = tuple(dims.values())
        b = self._hours[hour].setdefault(key, {**dims, "_minute": ts.minute, "uncached_input_tokens": 0,
                                               "output_tokens": 0, "cache_read_input_tokens": 0, "eph_5m": 0,
                                               "eph_1h": 0, "web_search_requests": 0})
        b["uncached_input_tokens"] += inp
        b["output_tokens"] += out
        b["cache_read_input_tokens"] += read
        b["eph_5m"] += c5
        b["eph_1h"] += c1

    def _bots(self) -> None:
        """CI bots: headless sessions around the clock, seen only by the Anthropic APIs."""
        for bot in self.org.api_keys:
            rng = random.Random(f"bot|{self.org.seed}|{bot.name}")
            for offset in range(self.org.days):
                day = self.org.day(offset)
                n = int(bot.per_day * (1 if day.weekday() < 5 else 0.2) * (0.5 + rng.random()))
                for _ in range(n):
                    ts = datetime(day.year, day.month, day.day, rng.randrange(24), rng.randrange(60), tzinfo=UTC)
                    if ts >= self.org.now - timedelta(hours=1):
                        continue
                    a = self._actor(day, "api_key", bot.name)
                    a["sessions"] += 1
                    edits = rng.randint(0, 6)
                    a["tools"]["edit_tool"][0] += edits
                    a["added"] += edits * rng.randint(2, 30)
                    a["removed"] += edits * rng.randint(0, 10)
                    a["commits"] += rng.random() < 0.3
                    a["prs"] += rng.random() < 0.1
                    model = MODELS["haiku"] if bot.name == "ci-review-bot" else MODELS["sonnet"]
                    for k in range(rng.randint(3, 20)):
                        self._add_request(ts + timedelta(seconds=20 * k), model, rng.randint(5, 300),
                                          rng.randint(50, 1500), rng.randint(5_000, 60_000), rng.randint(0, 8000),
                                          0, ("api_key", bot.name), api_key_id=bot.api_key_id)

    # -- the fake's generators, overridden ---------------------------------------------------------
    def active_people(self, day: date) -> list[int]:
        return sorted(self._index[name] for kind, name in self._cc.get(day, {}) if kind == "user")

    def _make_cc(self, day: date) -> list[dict[str, Any]]:
        if not self._has_data(day):
            return []
        out = []
        for (kind, name), a in self._cc.get(day, {}).items():
            if kind == "user":
                actor = {"type": "user_actor", "email_address": name}
                terminal = self.people[self._index[name]]["terminal"]
            else:
                actor, terminal = {"type": "api_actor", "api_key_name": name}, "non-interactive"
            breakdown = []
            for model, (inp, outp, read, cc) in sorted(a["models"].items()):
                cost = self.prices.cost(model, input_tokens=inp, output_tokens=outp, cache_read=read,
                                        cache_write_5m=cc) or 0.0
                breakdown.append({"estimated_cost": {"amount": int(round(cost * 100)), "currency": "USD"},
                                  "model": model, "tokens": {"cache_creation": cc, "cache_read": read,
                                                             "input": inp, "output": outp}})
            out.append({
                "actor": actor,
                "core_metrics": {"commits_by_claude_code": a["commits"],
                                 "lines_of_code": {"added": a["added"], "removed": a["removed"]},
                                 "num_sessions": a["sessions"], "pull_requests_by_claude_code": a["prs"]},
                "customer_type": "api", "date": f"{day.isoformat()}T00:00:00Z", "is_remote": False,
                "model_breakdown": breakdown, "organization_id": self.org_id, "terminal_type": terminal,
                "tool_actions": {tool: {"accepted": acc, "rejected": rej} for tool, (acc, rej) in a["tools"].items()},
                "subscription_type": None,
            })
        out.sort(key=lambda r: (r["actor"].get("email_address") or r["actor"].get("api_key_name"),))
        return out

    @property
    def org_id(self) -> str:
        from .org import ORG_ID

        return ORG_ID

    def _usage_hour(self, hour: datetime) -> list[dict[str, Any]]:
        if hour >= self.now:
            return []
        return [dict(v) for v in self._hours.get(hour, {}).values()]

    def _make_cost(self, day: date, group_by: tuple[str, ...]) -> list[dict[str, Any]]:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        items: list[dict[str, Any]] = []
        for h in range(24):
            for r in self._usage_hour(start + timedelta(hours=h)):
                price = self.prices.resolve(r["model"])
                if price is None:
                    continue
                display = _DISPLAY.get(r["model"], r["model"])
                for key, label, rate in _TOKEN_TYPES:
                    cents = Decimal(r[key]) * Decimal(str(getattr(price, rate))) / Decimal(10_000)
                    items.append({"workspace_id": r["workspace_id"], "description": f"{display} Usage - {label}",
                                  "cost_type": "tokens", "model": r["model"], "service_tier": r["service_tier"],
                                  "context_window": r["context_window"],
                                  "token_type": _TOKEN_TYPE_NAMES.get(key, key), "inference_geo": r["inference_geo"],
                                  "amount": cents})
        keep_desc = "description" in group_by
        merged: dict[tuple, dict[str, Any]] = {}
        for it in items:
            row = {"currency": "USD", "workspace_id": it["workspace_id"] if "workspace_id" in group_by else None,
                   **{k: (it[k] if keep_desc else None) for k in ("description", "cost_type", "model", "service_tier",
                                                                  "context_window", "token_type", "inference_geo")}}
            acc = merged.setdefault(tuple(row.values()), {**row, "amount": Decimal(0)})
            acc["amount"] += it["amount"]
        out = [{**row, "amount": str(row["amount"].quantize(Decimal("0.000001"), ROUND_HALF_EVEN))}
               for row in merged.values()]
        out.sort(key=lambda r: tuple("" if v is None else str(v) for v in r.values()))
        return out
