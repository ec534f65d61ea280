"""The hooks source: Claude Code hook events, landed as they arrived and modelled into lifecycles.

Events reach cclens two ways: an HTTP hook POSTs the payload to ``cclens serve`` (``/hooks``), or the
``cclens hook`` shim (a command hook) wraps it in an envelope ``{"id", "hook_time", "host", "body"}``
and POSTs a batch of envelopes (``/hooks/batch``), re-sending what it spooled while the server was away.

:func:`parse_http_hook` and :func:`parse_envelopes` turn requests into :class:`HookEvent`;
:func:`store_events` lands them (``landing_hook_event``, once per ``event_id``) and updates the model
tables (``hook_session``, ``hook_tool_use``, ``hook_subagent``, ``hook_compaction``,
``hook_notification``; plus ``prompt`` and ``tool_use`` rows with ``source = 'hooks'``) so that the
result does not depend on the order events arrive in. :func:`session_hooks` is the session view's
``hooks`` section. Nothing here imports FastAPI: the server route and tests call it directly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from ..errors import SourceError
from .hooks_model import apply_events

# The hook events of Claude Code 2.1.x (from the binary's own enum); others are stored all the same.
KNOWN_EVENTS = (
    "PreToolUse", "PostToolUse", "PostToolUseFailure", "PostToolBatch", "Notification", "UserPromptSubmit",
    "UserPromptExpansion", "SessionStart", "SessionEnd", "Stop", "StopFailure", "SubagentStart",
    "SubagentStop", "PreCompact", "PostCompact", "PermissionRequest", "PermissionDenied", "Setup",
    "TeammateIdle", "TaskCreated", "TaskCompleted", "Elicitation", "ElicitationResult", "ConfigChange",
    "WorktreeCreate", "WorktreeRemove", "InstructionsLoaded", "CwdChanged", "FileChanged", "MessageDisplay",
)
# Fields holding what a user typed, a model wrote or a tool read/produced: kept only with capture_content.
CONTENT_FIELDS = ("prompt", "tool_input", "tool_response", "last_assistant_message", "delta",
                  "compact_summary", "custom_instructions", "command_args", "content", "error",
                  "error_details", "initialUserMessage", "additionalContext")
_NESTED_CONTENT = {"tool_calls": ("tool_input", "tool_response"),
                   "background_tasks": ("command", "description", "prompt"),
                   "session_crons": ("prompt",)}
# StopFailure's ``error`` is an enum (rate_limit, overloaded …), not content.
_KEEP_BY_EVENT = {"StopFailure": {"error"}}
# The text whose length is kept even when content is not (content_length).
_TEXT_FIELD = {"UserPromptSubmit": "prompt", "UserPromptExpansion": "prompt", "PostCompact": "compact_summary",
               "MessageDisplay": "delta", "Stop": "last_assistant_message", "SubagentStop": "last_assistant_message"}
TOOL_EVENTS = {"PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionDenied"}
AGENT_TOOLS = ("Agent", "Task")
MAX_RAW_QUARANTINE = 64 * 1024
_CHUNK = 400


class HookPayloadError(SourceError):
    """A hook request body that is not a JSON object with ``hook_event_name``."""


@dataclass
class HookEvent:
    """One hook call as received: the payload and what the receiver knows about it."""

    body: dict[str, Any]
    event_id: str
    ts: datetime
    received_at: datetime
    via: str  # 'http' or 'command'
    host: str | None = None
    remote_addr: str | None = None

    @property
    def name(self) -> str:
        return str(self.body.get("hook_event_name"))

    def get(self, key: str) -> str | None:
        """``body[key]`` as a non-empty string, else None (payloads are not trusted to be typed)."""
        value = self.body.get(key)
        if value is None or value == "" or isinstance(value, (dict, list)):
            return None
        return str(value)


@dataclass
class StoreStats:
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    sessions: set[str] = field(default_factory=set)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _load_body(raw: bytes | str) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HookPayloadError(f"hook payload is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise HookPayloadError("hook payload is not a JSON object")
    name = body.get("hook_event_name")
    if not isinstance(name, str) or not name:
        raise HookPayloadError("hook payload has no hook_event_name")
    return body


def parse_http_hook(raw: bytes, *, received_at: datetime | None = None, remote_addr: str | None = None,
                    host: str | None = None) -> HookEvent:
    """An HTTP hook call: the body is the payload itself. Raises :class:`HookPayloadError`."""
    received_at = received_at or _now()
    return HookEvent(_load_body(raw), uuid.uuid4().hex, received_at, received_at, "http", host, remote_addr)


def parse_envelopes(raw: bytes, *, received_at: datetime | None = None, sent_time: float | None = None,
                    remote_addr: str | None = None) -> tuple[list[HookEvent], list[tuple[str, str]]]:
    """A shim batch: one JSON envelope per line. Returns ``(events, rejects)``, rejects as (raw, reason).

    The event time is the server's clock minus how long the event waited on the client (``sent_time -
    hook_time``, both client clock), so client clock skew does not reorder events.
    """
    received_at = received_at or _now()
    events: list[HookEvent] = []
    rejects: list[tuple[str, str]] = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        text = line.decode("utf-8", "replace")
        try:
            env = orjson.loads(line)
            if not isinstance(env, dict) or not isinstance(env.get("id"), str) or not env["id"]:
                raise HookPayloadError("envelope has no id")
            payload = env.get("body")
            body = _load_body(payload.encode() if isinstance(payload, str) else orjson.dumps(payload))
        except (orjson.JSONDecodeError, HookPayloadError) as exc:
            rejects.append((text, str(exc) if isinstance(exc, HookPayloadError) else f"envelope is not JSON ({exc})"))
            continue
        ts = received_at
        hook_time = env.get("hook_time")
        if isinstance(hook_time, (int, float)) and isinstance(sent_time, (int, float)):
            waited = max(0.0, float(sent_time) - float(hook_time))
            ts = received_at - timedelta(seconds=min(waited, 366 * 86400))
        host = env.get("host") if isinstance(env.get("host"), str) else None
        events.append(HookEvent(body, env["id"][:128], ts, received_at, "command", host, remote_addr))
    return events, rejects


def strip_content(event_name: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The payload without content fields, and the names of those removed."""
    keep = _KEEP_BY_EVENT.get(event_name, set())
    clean: dict[str, Any] = {}
    omitted: list[str] = []
    for key, value in body.items():
        if key in CONTENT_FIELDS and key not in keep:
            omitted.append(key)
            # The commit a Bash call made is an id, not content: keep it for exact session→commit lineage.
            if key == "tool_response" and isinstance(value, dict) and isinstance(value.get("gitOperation"), dict):
                clean[key] = {"gitOperation": value["gitOperation"]}
        elif key in _NESTED_CONTENT and isinstance(value, list):
            drop = _NESTED_CONTENT[key]
            items = []
            for item in value:
                if isinstance(item, dict):
                    gone = [k for k in drop if k in item]
                    omitted.extend(f"{key}[].{k}" for k in gone if f"{key}[].{k}" not in omitted)
                    item = {k: v for k, v in item.items() if k not in drop}
                items.append(item)
            clean[key] = items
        else:
            clean[key] = value
    return clean, omitted


def _content_length(ev: HookEvent) -> int | None:
    text = ev.body.get(_TEXT_FIELD.get(ev.name, ""))
    return len(text) if isinstance(text, str) else None


def quarantine(wh: Any, raw: bytes | str, reason: str, *, origin: str, host: str | None = None) -> None:
    """Keep a request that could not be read, with why (never lose what arrived)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    wh.execute("INSERT INTO quarantine (source, origin, reason, raw, host, received_at) VALUES (?, ?, ?, ?, ?, ?)",
               ["hooks", origin, reason, text[:MAX_RAW_QUARANTINE], host, _now()])


def store_events(wh: Any, events: list[HookEvent], *, capture_content: bool = False) -> StoreStats:
    """Land ``events`` (each ``event_id`` once) and fold the new ones into the model tables.

    Run it inside one transaction (the server's writer does); a batch costs little more than one
    event. Safe to call again with the same events: duplicates are counted, not stored. ``seq``
    follows the order of ``events``.
    """
    stats = StoreStats()
    if not events:
        return stats
    ids = list(dict.fromkeys(e.event_id for e in events))
    seen: set[str] = set()
    for i in range(0, len(ids), _CHUNK):
        part = ids[i:i + _CHUNK]
        seen |= {r["event_id"] for r in wh.query(
            f"SELECT event_id FROM landing_hook_event WHERE event_id IN ({', '.join('?' * len(part))})", part)}
    new: list[HookEvent] = []
    for ev in events:
        if ev.event_id in seen:
            stats.duplicates += 1
            continue
        seen.add(ev.event_id)
        new.append(ev)
    if not new:
        return stats
    seqs = sorted(r["s"] for r in wh.query("SELECT nextval('hook_event_seq') AS s FROM range(?)", [len(new)]))
    cols = ("event_id, seq, event_name, session_id, prompt_id, tool_use_id, tool_name, agent_id, agent_type, ts, "
            "received_at, via, host, remote_addr, raw, omitted, content_length")
    rows = []
    for seq, ev in zip(seqs, new):
        raw, omitted = (ev.body, []) if capture_content else strip_content(ev.name, ev.body)
        rows.append([ev.event_id, seq, ev.name[:200], ev.get("session_id"), ev.get("prompt_id"),
                     ev.get("tool_use_id"), ev.get("tool_name"), ev.get("agent_id"), ev.get("agent_type"), ev.ts,
                     ev.received_at, ev.via, ev.host, ev.remote_addr, orjson.dumps(raw, default=str).decode(),
                     omitted, _content_length(ev)])
        if ev.get("session_id"):
            stats.sessions.add(ev.get("session_id"))  # type: ignore[arg-type]
    for i in range(0, len(rows), _CHUNK):
        part = rows[i:i + _CHUNK]
        values = ", ".join(["(" + ", ".join("?" * 17) + ")"] * len(part))
        wh.execute(f"INSERT INTO landing_hook_event ({cols}) VALUES {values}", [x for r in part for x in r])
    stats.stored = len(new)
    apply_events(wh, new, capture_content=capture_content)
    return stats


def session_hooks(wh: Any, session_id: str, *, limit: int = 2000) -> dict[str, Any] | None:
    """The ``hooks`` section of the session view, or None when no hook event names this session.

    Counts use the same names as the other sources' sections (``prompts``, ``tool_uses``, ``events``,
    ``first_ts``, ``last_ts``); hooks carry no token usage, so there are no ``tokens``. ``detail`` holds
    the lifecycle: the session row, the ``timeline`` of events (by time, then arrival), tool calls with
    durations, subagents, compactions and notifications.
    """
    sessions = wh.query("SELECT * EXCLUDE (cwd_at, permission_mode_at, updated_at) FROM hook_session "
                        "WHERE session_id = ?", [session_id])
    if not sessions:
        return None
    s = dict(sessions[0])
    timeline = wh.query(
        "SELECT seq, ts, event_name AS event, via, prompt_id, tool_name, tool_use_id, agent_id, agent_type "
        "FROM landing_hook_event WHERE session_id = ? ORDER BY ts, seq LIMIT ?", [session_id, limit])
    tools = wh.query("SELECT * EXCLUDE (updated_at) FROM hook_tool_use WHERE session_id = ? "
                     "ORDER BY started_at NULLS LAST, tool_use_id", [session_id])
    subagents = wh.query("SELECT * EXCLUDE (updated_at) FROM hook_subagent WHERE session_id = ? "
                         "ORDER BY started_at NULLS LAST, agent_id", [session_id])
    compactions = wh.query("SELECT * EXCLUDE (updated_at) FROM hook_compaction WHERE session_id = ? "
                           "ORDER BY coalesce(started_at, finished_at)", [session_id])
    notifications = wh.query("SELECT * FROM hook_notification WHERE session_id = ? ORDER BY ts", [session_id])
    return {
        "events": s["event_count"], "prompts": s["prompt_count"], "tool_uses": s["tool_use_count"],
        "subagents": s["subagent_count"], "compactions": s["compaction_count"],
        "notifications": s["notification_count"], "first_ts": s["first_event_at"], "last_ts": s["last_event_at"],
        "detail": {"session": s, "timeline": timeline, "timeline_truncated": len(timeline) >= limit,
                   "tool_uses": tools, "subagents": subagents, "compactions": compactions,
                   "notifications": notifications},
    }
