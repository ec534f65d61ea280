"""Folds new hook events into the hook model tables, a batch at a time, independent of arrival order.

The rows a batch touches are read once (``… WHERE id IN (…)``), merged in Python and written back
with one multi-row ``INSERT OR REPLACE`` per table: DuckDB point writes cost milliseconds each, a
batch of hundreds of events costs about the same as one. Every merge rule is order-free (earliest
start, latest end, latest-by-time for modes, counts on first sight of a thing), so a spooled
SessionStart that arrives after the session ended gives the same rows as one that arrived on time.
Subagent→Agent-call pairing and compactions are recomputed per session from what is stored.
Called by :func:`cclens.sources.hooks.store_events` inside its transaction.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from .hooks import HookEvent

_AGENT_TOOLS = ("Agent", "Task")
_TERMINAL = {"success", "failure", "interrupted", "denied"}
_TOOL_LIFECYCLE = ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionDenied")
_CHUNK = 400  # rows per statement
_COLUMNS: dict[str, list[str]] = {}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _columns(wh: Any, table: str) -> list[str]:
    if table not in _COLUMNS:
        _COLUMNS[table] = [r["column_name"] for r in wh.query(f"DESCRIBE {table}")]
    return _COLUMNS[table]


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def _load(wh: Any, table: str, key: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for part in _chunks(sorted(set(ids))):
        for row in wh.query(f"SELECT * FROM {table} WHERE {key} IN ({', '.join('?' * len(part))})", part):
            out[row[key]] = dict(row)
    return out


def _put_many(wh: Any, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = _columns(wh, table)
    now = _now()
    for part in _chunks(rows):
        values = ", ".join(["(" + ", ".join("?" * len(cols)) + ")"] * len(part))
        params = [now if c == "updated_at" else r.get(c) for r in part for c in cols]
        wh.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(cols)}) VALUES {values}", params)


def _replace_source_rows(wh: Any, table: str, key: str, rows: list[dict[str, Any]], cols: list[str]) -> None:
    """Replace the ``source = 'hooks'`` rows of ``table`` (no primary key there) for ``rows``' keys."""
    for part in _chunks(rows):
        wh.execute(f"DELETE FROM {table} WHERE source = 'hooks' AND {key} IN ({', '.join('?' * len(part))})",
                   [r[key] for r in part])
        values = ", ".join(["(" + ", ".join("?" * len(cols)) + ", 'hooks')"] * len(part))
        wh.execute(f"INSERT INTO {table} ({', '.join(cols)}, source) VALUES {values}",
                   [r.get(c) for r in part for c in cols])


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds() * 1000))


def _int(value: Any) -> int | None:
    try:
        return int(float(value)) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError, OverflowError):
        return None


def _latest(row: dict[str, Any], col: str, value: str | None, ts: datetime) -> None:
    """Set ``row[col]`` to ``value`` if this event is the newest that carried one."""
    if value is None:
        return
    at = row.get(f"{col}_at")
    if at is None or ts >= at:
        row[col] = value
        row[f"{col}_at"] = ts


def _batch_calls(ev: "HookEvent") -> list[dict[str, Any]]:
    if ev.name != "PostToolBatch":
        return []
    return [c for c in ev.body.get("tool_calls") or [] if isinstance(c, dict) and isinstance(c.get("tool_use_id"), str)]


class _Batch:
    """The model rows a batch of events touches, loaded once and written back once."""

    def __init__(self, wh: Any, events: list["HookEvent"], capture_content: bool):
        self.wh = wh
        self.capture = capture_content
        self.sessions = _load(wh, "hook_session", "session_id", (e.get("session_id") for e in events))
        tool_ids = [e.get("tool_use_id") for e in events if e.name in _TOOL_LIFECYCLE and e.get("tool_use_id")]
        tool_ids += [c["tool_use_id"] for e in events for c in _batch_calls(e)]
        self.tools = _load(wh, "hook_tool_use", "tool_use_id", tool_ids)
        agent_ids = [e.get("agent_id") for e in events if e.get("agent_id")]
        self.subagents = _load(wh, "hook_subagent", "agent_id", agent_ids)
        self.touched_tools: set[str] = set()
        self.touched_agents: set[str] = set()
        self.notifications: list[dict[str, Any]] = []
        self.prompts: dict[str, dict[str, Any]] = {}
        self.pair: set[str] = set()
        self.compact: set[str] = set()

    # -- per event ---------------------------------------------------------------------------------
    def apply(self, ev: "HookEvent") -> None:
        sid = ev.get("session_id")
        if not sid:
            return
        name, ts = ev.name, ev.ts
        s = self.sessions.get(sid)
        if s is None:
            s = self.sessions[sid] = {
                "session_id": sid, "start_count": 0, "end_count": 0, "event_count": 0, "prompt_count": 0,
                "tool_use_count": 0, "subagent_count": 0, "compaction_count": 0, "notification_count": 0,
                "stop_failure_count": 0}
        s["host"] = s.get("host") or ev.host
        _latest(s, "cwd", ev.get("cwd"), ts)
        _latest(s, "permission_mode", ev.get("permission_mode"), ts)
        s["transcript_path"] = s.get("transcript_path") or ev.get("transcript_path")
        s["first_event_at"] = _min(s.get("first_event_at"), ts)
        s["last_event_at"] = _max(s.get("last_event_at"), ts)
        s["event_count"] += 1
        if name == "SessionStart":
            if s.get("started_at") is None or ts < s["started_at"]:
                s["started_at"] = ts
                s["start_source"] = ev.get("source")
            s["start_count"] += 1
            s["model"] = ev.get("model") or s.get("model")
            s["agent_type"] = ev.get("agent_type") or s.get("agent_type")
        elif name == "SessionEnd":
            if s.get("ended_at") is None or ts >= s["ended_at"]:
                s["ended_at"] = ts
                s["end_reason"] = ev.get("reason")
            s["end_count"] += 1
        elif name == "UserPromptSubmit":
            s["prompt_count"] += 1
            self._prompt(ev, sid)
        elif name == "StopFailure":
            s["stop_failure_count"] += 1
        elif name == "Notification":
            s["notification_count"] += 1
            self.notifications.append({"event_id": ev.event_id, "session_id": sid, "ts": ts,
                                       "notification_type": ev.get("notification_type"), "title": ev.get("title"),
                                       "message": ev.get("message")})
        if name in _TOOL_LIFECYCLE and ev.get("tool_use_id"):
            s["tool_use_count"] += self._tool_event(ev, sid, ev.get("tool_use_id"))  # type: ignore[arg-type]
        for call in _batch_calls(ev):
            s["tool_use_count"] += self._batch_call(ev, sid, call)
        if name in ("SubagentStart", "SubagentStop") or (ev.get("agent_id") and name in _TOOL_LIFECYCLE):
            s["subagent_count"] += self._subagent(ev, sid)
        if name in ("PreCompact", "PostCompact"):
            self.compact.add(sid)
        if name == "SubagentStart" or (name == "PreToolUse" and ev.get("tool_name") in _AGENT_TOOLS):
            self.pair.add(sid)

    def _prompt(self, ev: "HookEvent", sid: str) -> None:
        prompt_id = ev.get("prompt_id")
        if not prompt_id:
            return
        text = ev.body.get("prompt") if isinstance(ev.body.get("prompt"), str) else None
        self.prompts[prompt_id] = {"prompt_id": prompt_id, "session_id": sid, "ts": ev.ts, "host": ev.host,
                                   "length": len(text) if text is not None else None,
                                   "text": text if self.capture else None}

    def _tool(self, ev: "HookEvent", sid: str, tool_use_id: str, tool_name: str | None) -> tuple[dict[str, Any], int]:
        row = self.tools.get(tool_use_id)
        created = row is None
        if row is None:
            row = self.tools[tool_use_id] = {"tool_use_id": tool_use_id, "session_id": sid, "status": "running"}
        for col, value in (("prompt_id", ev.get("prompt_id")), ("agent_id", ev.get("agent_id")),
                           ("agent_type", ev.get("agent_type")), ("tool_name", tool_name),
                           ("permission_mode", ev.get("permission_mode"))):
            if value and not row.get(col):
                row[col] = value
        self.touched_tools.add(tool_use_id)
        return row, int(created)

    def _tool_event(self, ev: "HookEvent", sid: str, tool_use_id: str) -> int:
        row, created = self._tool(ev, sid, tool_use_id, ev.get("tool_name"))
        name, ts = ev.name, ev.ts
        if name == "PreToolUse":
            row["started_at"] = _min(row.get("started_at"), ts)
            return created
        row["finished_at"] = _max(row.get("finished_at"), ts)
        if name == "PostToolUse":
            row["status"] = "success"
        elif name == "PostToolUseFailure":
            row["status"] = "interrupted" if ev.body.get("is_interrupt") is True else "failure"
            error = ev.body.get("error")
            if self.capture and isinstance(error, str):
                row["error"] = error[:10000]
        elif name == "PermissionDenied":
            row["status"] = "denied"
        if name in ("PostToolUse", "PostToolUseFailure"):
            reported = _int(ev.body.get("duration_ms"))
            if reported is not None:
                row["reported_duration_ms"] = reported
        return created

    def _batch_call(self, ev: "HookEvent", sid: str, call: dict[str, Any]) -> int:
        tool_name = call.get("tool_name") if isinstance(call.get("tool_name"), str) else None
        row, created = self._tool(ev, sid, call["tool_use_id"], tool_name)
        row["batch_at"] = _min(row.get("batch_at"), ev.ts)
        return created

    def _subagent(self, ev: "HookEvent", sid: str) -> int:
        agent_id = ev.get("agent_id")
        if not agent_id:
            return 0
        row = self.subagents.get(agent_id)
        created = row is None
        if row is None:
            row = self.subagents[agent_id] = {"agent_id": agent_id, "session_id": sid, "tool_use_count": 0}
        row["agent_type"] = row.get("agent_type") or ev.get("agent_type")
        if ev.name == "SubagentStart":
            row["started_at"] = _min(row.get("started_at"), ev.ts)
        elif ev.name == "SubagentStop":
            row["stopped_at"] = _max(row.get("stopped_at"), ev.ts)
            row["agent_transcript_path"] = ev.get("agent_transcript_path") or row.get("agent_transcript_path")
        elif ev.name == "PreToolUse":
            row["tool_use_count"] += 1
        self.touched_agents.add(agent_id)
        return int(created)

    # -- write back -----------------------------------------------------------------------------------
    def flush(self) -> None:
        tools = [self.tools[t] for t in sorted(self.touched_tools)]
        for row in tools:
            if row["status"] not in _TERMINAL:
                row["status"] = "no_result" if row.get("batch_at") else "running"
            reported = row.get("reported_duration_ms")
            row["duration_ms"] = reported if reported is not None else _ms(row.get("started_at"),
                                                                             row.get("finished_at"))
        agents = [self.subagents[a] for a in sorted(self.touched_agents)]
        for row in agents:
            row["duration_ms"] = _ms(row.get("started_at"), row.get("stopped_at"))
        _put_many(self.wh, "hook_session", list(self.sessions.values()))
        _put_many(self.wh, "hook_tool_use", tools)
        _put_many(self.wh, "hook_subagent", agents)
        _put_many(self.wh, "hook_notification", self.notifications)
        canonical = [{"tool_use_id": r["tool_use_id"], "session_id": r["session_id"], "agent_id": r.get("agent_id"),
                      "ts": r.get("started_at"), "tool_name": r.get("tool_name"), "result_ts": r.get("finished_at"),
                      "is_error": (r["status"] in ("failure", "interrupted", "denied"))
                      if r["status"] in _TERMINAL else None} for r in tools]
        _replace_source_rows(self.wh, "tool_use", "tool_use_id", canonical,
                             ["tool_use_id", "session_id", "agent_id", "ts", "tool_name", "result_ts", "is_error"])
        _replace_source_rows(self.wh, "prompt", "prompt_id", list(self.prompts.values()),
                             ["prompt_id", "session_id", "ts", "host", "length", "text"])
        for sid in sorted(self.pair):
            pair_subagents(self.wh, sid)
        for sid in sorted(self.compact):
            n = rebuild_compactions(self.wh, sid)
            self.wh.execute("UPDATE hook_session SET compaction_count = ? WHERE session_id = ?", [n, sid])


def apply_events(wh: Any, events: list["HookEvent"], *, capture_content: bool = False) -> None:
    """Fold ``events`` (already landed, each seen for the first time) into the model tables."""
    events = [e for e in events if e.get("session_id")]
    if not events:
        return
    batch = _Batch(wh, events, capture_content)
    for ev in events:
        batch.apply(ev)
    batch.flush()


def pair_subagents(wh: Any, sid: str) -> None:
    """Link each subagent of the session to the Agent/Task call that spawned it.

    Hooks do not carry that link, so it is inferred: subagents in start order each take the earliest
    not yet taken Agent/Task call that started before them. It depends only on the start times, so
    it is recomputed whole whenever one of them is learned, whatever the arrival order.
    """
    calls = wh.query("SELECT tool_use_id, started_at FROM hook_tool_use WHERE session_id = ? "
                     "AND tool_name IN (?, ?) AND started_at IS NOT NULL ORDER BY started_at, tool_use_id",
                     [sid, *_AGENT_TOOLS])
    agents = wh.query("SELECT agent_id, started_at, parent_tool_use_id FROM hook_subagent WHERE session_id = ? "
                      "ORDER BY started_at NULLS LAST, agent_id", [sid])
    taken: set[str] = set()
    for agent in agents:
        parent = None
        if agent["started_at"] is not None:
            parent = next((c["tool_use_id"] for c in calls if c["tool_use_id"] not in taken
                           and c["started_at"] <= agent["started_at"]), None)
        if parent:
            taken.add(parent)
        if parent != agent["parent_tool_use_id"]:
            wh.execute("UPDATE hook_subagent SET parent_tool_use_id = ? WHERE agent_id = ?",
                       [parent, agent["agent_id"]])


def rebuild_compactions(wh: Any, sid: str) -> int:
    """Re-pair the session's PreCompact/PostCompact events (each PostCompact closes the latest open
    PreCompact before it); returns how many compactions the session has. Compactions are rare, so
    rebuilding from landing is cheap, and it makes the pairing independent of arrival order."""
    events = wh.query("SELECT event_id, event_name, ts, raw->>'trigger' AS trigger, content_length "
                      "FROM landing_hook_event WHERE session_id = ? AND event_name IN ('PreCompact', 'PostCompact') "
                      "ORDER BY ts, seq", [sid])
    rows: list[dict[str, Any]] = []
    open_rows: list[dict[str, Any]] = []
    for e in events:
        if e["event_name"] == "PreCompact":
            row = {"compaction_id": e["event_id"], "session_id": sid, "trigger": e["trigger"],
                   "started_at": e["ts"], "finished_at": None, "summary_length": None}
            rows.append(row)
            open_rows.append(row)
            continue
        row = open_rows.pop() if open_rows else None
        if row is None:
            row = {"compaction_id": e["event_id"], "session_id": sid, "trigger": e["trigger"], "started_at": None}
            rows.append(row)
        row["finished_at"] = e["ts"]
        row["summary_length"] = e["content_length"]
        row["trigger"] = row["trigger"] or e["trigger"]
    wh.execute("DELETE FROM hook_compaction WHERE session_id = ?", [sid])
    for row in rows:
        row["duration_ms"] = _ms(row.get("started_at"), row.get("finished_at"))
    _put_many(wh, "hook_compaction", rows)
    return len(rows)
