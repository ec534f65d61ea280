"""Source ``claude_code_analytics``: the Claude Code Analytics API.

``GET /v1/organizations/usage_report/claude_code?starting_at=YYYY-MM-DD&limit=1000`` returns one UTC
day per call, paged with ``page``/``next_page``/``has_more``. Each record is one actor's activity for
the day; local and remote (``is_remote``) usage come as separate records, and whether records also
split by ``terminal_type`` is not documented, so rows are kept per actor x is_remote x terminal_type
and any exact repeats are summed (never dropped). Actors are users (``email_address``) or API keys
(``api_key_name``). ``tool_actions`` is a map: every tool is kept, known or not.
``estimated_cost.amount`` is in minor units (US cents) and stored as such.

Freshness: data appears within about an hour and "only data older than 1 hour is included", so the
current UTC day is asked for only from 01:00 UTC, and the last 3 days are re-fetched on every run.
Uses the Admin API key (``anthropic_admin_key``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Sequence

from ._anthropic import ApiSource, Unit, append_rows, as_decimal, as_int, dig, floor_day
from ._http import ApiClient, Page

PATH = "/v1/organizations/usage_report/claude_code"
PAGE_LIMIT = 1000

ActorKey = tuple[str, str, bool, str]  # (actor_type, actor_id, is_remote, terminal_type)


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
        self.unit_span = self.grain = timedelta(days=1)

    def available_end(self, now: datetime) -> datetime:
        return floor_day(now - timedelta(hours=1)) + timedelta(days=1)

    def fetch(self, client: ApiClient, unit: Unit) -> list[Page]:
        return client.fetch_all(PATH, {"starting_at": unit.start.date().isoformat(), "limit": PAGE_LIMIT})

    def replace(self, wh: Any, unit: Unit, pages: Sequence[Page], fetched_at: datetime,
                run_id: str) -> int:
        day = unit.start.date()
        for table in self.tables:
            wh.execute(f"DELETE FROM {table} WHERE day = ?", [day])
        tables = day_tables(day, (r for p in pages for r in p.records), fetched_at, run_id)
        return sum(append_rows(wh, name, cols) for name, cols in tables.items())


def actor_of(record: dict[str, Any]) -> tuple[str, str, str | None, str | None]:
    """(actor_type, actor_id, email, api_key_name) of a record; unknown actor types are kept."""
    actor = record.get("actor") or {}
    kind = actor.get("type")
    if kind == "user_actor" or (kind is None and actor.get("email_address")):
        email = actor.get("email_address") or ""
        return "user", email, email or None, None
    if kind == "api_actor" or actor.get("api_key_name"):
        name = actor.get("api_key_name") or ""
        return "api_key", name, None, name or None
    ident = next((str(v) for k, v in sorted(actor.items()) if k != "type" and v), "")
    return str(kind or "unknown"), ident, None, None


def day_tables(day: date, records: Any, fetched_at: datetime, run_id: str) -> dict[str, dict[str, list]]:
    """The column lists of ``cc_actor_day``, ``cc_tool_action`` and ``cc_daily`` for one day's
    records. Records with the same actor x is_remote x terminal_type are summed."""
    actors: dict[ActorKey, dict[str, Any]] = {}
    tools: dict[tuple[ActorKey, str], list[int]] = {}
    models: dict[tuple[ActorKey, str], list[Any]] = {}
    for rec in records:
        if not isinstance(rec, dict):
            continue
        actor_type, actor_id, email, key_name = actor_of(rec)
        key: ActorKey = (actor_type, actor_id, bool(rec.get("is_remote")), str(rec.get("terminal_type") or ""))
        core = rec.get("core_metrics") or {}
        row = actors.get(key)
        if row is None:
            row = actors[key] = {
                "email": email, "api_key_name": key_name,
                "organization_id": rec.get("organization_id"), "customer_type": rec.get("customer_type"),
                "subscription_type": rec.get("subscription_type"),
                "num_sessions": 0, "lines_added": 0, "lines_removed": 0, "commits": 0,
                "pull_requests": 0, "records": 0,
            }
        row["num_sessions"] += as_int(core.get("num_sessions"))
        row["lines_added"] += as_int(dig(core, "lines_of_code", "added"))
        row["lines_removed"] += as_int(dig(core, "lines_of_code", "removed"))
        row["commits"] += as_int(core.get("commits_by_claude_code"))
        row["pull_requests"] += as_int(core.get("pull_requests_by_claude_code"))
        row["records"] += 1
        for tool, counts in (rec.get("tool_actions") or {}).items():
            acc = tools.setdefault((key, str(tool)), [0, 0])
            acc[0] += as_int(dig(counts, "accepted"))
            acc[1] += as_int(dig(counts, "rejected"))
        for entry in rec.get("model_breakdown") or []:
            if not isinstance(entry, dict):
                continue
            tokens = entry.get("tokens") or {}
            cost = entry.get("estimated_cost") or {}
            acc2 = models.setdefault((key, str(entry.get("model") or "")),
                                     [0, 0, 0, 0, as_decimal(0), cost.get("currency")])
            acc2[0] += as_int(tokens.get("input"))
            acc2[1] += as_int(tokens.get("output"))
            acc2[2] += as_int(tokens.get("cache_read"))
            acc2[3] += as_int(tokens.get("cache_creation"))
            acc2[4] += as_decimal(cost.get("amount"))

    actor_cols: dict[str, list] = {c: [] for c in (
        "day", "actor_type", "actor_id", "email", "api_key_name", "is_remote", "terminal_type",
        "organization_id", "customer_type", "subscription_type", "num_sessions", "lines_added",
        "lines_removed", "commits", "pull_requests", "records", "fetched_at", "run_id")}
    for (actor_type, actor_id, remote, terminal), row in actors.items():
        for c, v in (("day", day), ("actor_type", actor_type), ("actor_id", actor_id),
                     ("is_remote", remote), ("terminal_type", terminal), ("fetched_at", fetched_at),
                     ("run_id", run_id)):
            actor_cols[c].append(v)
        for c in ("email", "api_key_name", "organization_id", "customer_type", "subscription_type",
                  "num_sessions", "lines_added", "lines_removed", "commits", "pull_requests", "records"):
            actor_cols[c].append(row[c])

    tool_cols: dict[str, list] = {c: [] for c in (
        "day", "actor_type", "actor_id", "is_remote", "terminal_type", "tool", "accepted", "rejected")}
    for ((actor_type, actor_id, remote, terminal), tool), (accepted, rejected) in tools.items():
        for c, v in zip(tool_cols, (day, actor_type, actor_id, remote, terminal, tool, accepted, rejected)):
            tool_cols[c].append(v)

    model_cols: dict[str, list] = {c: [] for c in (
        "day", "actor_type", "actor_id", "email", "api_key_name", "is_remote", "terminal_type", "model",
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens",
        "estimated_cost_cents", "currency", "fetched_at", "run_id")}
    for ((actor_type, actor_id, remote, terminal), model), acc in models.items():
        row = actors[(actor_type, actor_id, remote, terminal)]
        values = (day, actor_type, actor_id, row["email"], row["api_key_name"], remote, terminal, model,
                  acc[0], acc[1], acc[2], acc[3], str(acc[4]), acc[5], fetched_at, run_id)
        for c, v in zip(model_cols, values):
            model_cols[c].append(v)
    return {"cc_actor_day": actor_cols, "cc_tool_action": tool_cols, "cc_daily": model_cols}
