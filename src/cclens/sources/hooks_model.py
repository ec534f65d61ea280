"""Folds one new hook event into the hook model tables, independent of arrival order.

Each table row is read, merged in Python and written back (``INSERT OR REPLACE``); every merge rule
is order-free (earliest start, latest end, latest-by-time for modes, counts on first sight of a
thing), so a spooled SessionStart that arrives after the session ended gives the same rows as one
that arrived on time. Called by :func:`cclens.sources.hooks.store_events` inside its transaction.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .hooks import HookEvent

_AGENT_TOOLS = ("Agent", "Task")
_TERMINAL = {"success", "failure", "interrupted", "denied"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _get(wh: Any, table: str, key_col: str, key: str) -> dict[str, Any] | None:
    rows = wh.query(f"SELECT * FROM {table} WHERE {key_col} = ?", [key])
    return dict(rows[0]) if rows else None


def _put(wh: Any, table: str, row: dict[str, Any]) -> None:
    row["updated_at"] = _now()
    cols = list(row)
    wh.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
               [row[c] for c in cols])


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
    except (TypeError, ValueError):
        return None


def _text_len(value: Any) -> int | None:
    return len(value) if isinstance(value, str) else None


def _latest(row: dict[str, Any], col: str, value: str | None, ts: datetime) -> None:
    """Set ``row[col]`` to ``value`` if this event is the newest that carried one."""
    if value is None:
        return
    at = row.get(f"{col}_at")
    if at is None or ts >= at:
        row[col] = value
        row[f"{col}_at"] = ts


def apply_event(wh: Any, ev: "HookEvent", *, capture_content: bool = False) -> None:
    """Fold ``ev`` (already landed, seen for the first time) into the model tables."""
    sid = ev.get("session_id")
    if not sid:
        return
    name = ev.name
    s = _get(wh, "hook_session", "session_id", sid) or {
        "session_id": sid, "start_count": 0, "end_count": 0, "event_count": 0, "prompt_count": 0,
        "tool_use_count": 0, "subagent_count": 0, "compaction_count": 0, "notification_count": 0,
        "stop_failure_count": 0}
    ts = ev.ts
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
        _prompt(wh, ev, sid, capture_content)
    elif name == "StopFailure":
        s["stop_failure_count"] += 1
    elif name == "Notification":
        s["notification_count"] += 1
        wh.execute("INSERT OR REPLACE INTO hook_notification VALUES (?, ?, ?, ?, ?, ?)",
                   [ev.event_id, sid, ts, ev.get("notification_type"), ev.get("title"), ev.get("message")])

    if name in ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionDenied") and ev.get("tool_use_id"):
        s["tool_use_count"] += _tool_event(wh, ev, sid, ev.get("tool_use_id"), capture_content)  # type: ignore[arg-type]
    elif name == "PostToolBatch":
        for call in ev.body.get("tool_calls") or []:
            if isinstance(call, dict) and isinstance(call.get("tool_use_id"), str):
                s["tool_use_count"] += _batch_call(wh, ev, sid, call)
    if name in ("SubagentStart", "SubagentStop") or (ev.get("agent_id") and name in (
            "PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionDenied")):
        s["subagent_count"] += _subagent(wh, ev, sid)
    if name in ("PreCompact", "PostCompact"):
        s["compaction_count"] = rebuild_compactions(wh, sid)
    if name == "SubagentStart" or (name == "PreToolUse" and ev.get("tool_name") in _AGENT_TOOLS):
        pair_subagents(wh, sid)
    _put(wh, "hook_session", s)


def _prompt(wh: Any, ev: "HookEvent", sid: str, capture_content: bool) -> None:
    prompt_id = ev.get("prompt_id")
    if not prompt_id:
        return
    text = ev.body.get("prompt") if isinstance(ev.body.get("prompt"), str) else None
    wh.execute("DELETE FROM prompt WHERE prompt_id = ? AND source = 'hooks'", [prompt_id])
    wh.execute("INSERT INTO prompt (prompt_id, session_id, ts, host, length, source, text) "
               "VALUES (?, ?, ?, ?, ?, 'hooks', ?)",
               [prompt_id, sid, ev.ts, ev.host, _text_len(text), text if capture_content else None])


def _new_tool(ev: "HookEvent", sid: str, tool_use_id: str) -> dict[str, Any]:
    return {"tool_use_id": tool_use_id, "session_id": sid, "status": "running"}


def _fill_tool(row: dict[str, Any], ev: "HookEvent", tool_name: str | None) -> None:
    for col, value in (("prompt_id", ev.get("prompt_id")), ("agent_id", ev.get("agent_id")),
                       ("agent_type", ev.get("agent_type")), ("tool_name", tool_name),
                       ("permission_mode", ev.get("permission_mode"))):
        if value and not row.get(col):
            row[col] = value


def _finish_tool(wh: Any, row: dict[str, Any]) -> None:
    if row["status"] not in _TERMINAL:
        row["status"] = "no_result" if row.get("batch_at") else "running"
    reported = row.get("reported_duration_ms")
    row["duration_ms"] = reported if reported is not None else _ms(row.get("started_at"), row.get("finished_at"))
    _put(wh, "hook_tool_use", row)
    wh.execute("DELETE FROM tool_use WHERE tool_use_id = ? AND source = 'hooks'", [row["tool_use_id"]])
    wh.execute("INSERT INTO tool_use (tool_use_id, session_id, agent_id, ts, tool_name, result_ts, is_error, "
               "source) VALUES (?, ?, ?, ?, ?, ?, ?, 'hooks')",
               [row["tool_use_id"], row["session_id"], row.get("agent_id"), row.get("started_at"),
                row.get("tool_name"), row.get("finished_at"),
                row["status"] in ("failure", "interrupted", "denied") if row["status"] in _TERMINAL else None])


def _tool_event(wh: Any, ev: "HookEvent", sid: str, tool_use_id: str, capture_content: bool) -> int:
    """Apply a tool lifecycle event; returns 1 when this is the first sight of the tool call."""
    row = _get(wh, "hook_tool_use", "tool_use_id", tool_use_id)
    created = row is None
    row = row or _new_tool(ev, sid, tool_use_id)
    _fill_tool(row, ev, ev.get("tool_name"))
    name, ts = ev.name, ev.ts
    if name == "PreToolUse":
        row["started_at"] = _min(row.get("started_at"), ts)
    else:
        row["finished_at"] = _max(row.get("finished_at"), ts)
        if name == "PostToolUse":
            row["status"] = "success"
        elif name == "PostToolUseFailure":
            row["status"] = "interrupted" if ev.body.get("is_interrupt") is True else "failure"
            error = ev.body.get("error")
            if capture_content and isinstance(error, str):
                row["error"] = error[:10000]
        elif name == "PermissionDenied":
            row["status"] = "denied"
        if name in ("PostToolUse", "PostToolUseFailure"):
            reported = _int(ev.body.get("duration_ms"))
            if reported is not None:
                row["reported_duration_ms"] = reported
    _finish_tool(wh, row)
    return int(created)


def _batch_call(wh: Any, ev: "HookEvent", sid: str, call: dict[str, Any]) -> int:
    tool_use_id = call["tool_use_id"]
    row = _get(wh, "hook_tool_use", "tool_use_id", tool_use_id)
    created = row is None
    row = row or _new_tool(ev, sid, tool_use_id)
    tool_name = call.get("tool_name") if isinstance(call.get("tool_name"), str) else None
    _fill_tool(row, ev, tool_name)
    row["batch_at"] = _min(row.get("batch_at"), ev.ts)
    _finish_tool(wh, row)
    return int(created)


def _subagent(wh: Any, ev: "HookEvent", sid: str) -> int:
    """Apply a subagent event (or a subagent's tool event); 1 on first sight of the agent."""
    agent_id = ev.get("agent_id")
    if not agent_id:
        return 0
    row = _get(wh, "hook_subagent", "agent_id", agent_id)
    created = row is None
    row = row or {"agent_id": agent_id, "session_id": sid, "tool_use_count": 0}
    row["agent_type"] = row.get("agent_type") or ev.get("agent_type")
    if ev.name == "SubagentStart":
        row["started_at"] = _min(row.get("started_at"), ev.ts)
    elif ev.name == "SubagentStop":
        row["stopped_at"] = _max(row.get("stopped_at"), ev.ts)
        row["agent_transcript_path"] = ev.get("agent_transcript_path") or row.get("agent_transcript_path")
    elif ev.name == "PreToolUse":
        row["tool_use_count"] += 1
    row["duration_ms"] = _ms(row.get("started_at"), row.get("stopped_at"))
    _put(wh, "hook_subagent", row)
    return int(created)


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
        _put(wh, "hook_compaction", row)
    return len(rows)
