"""The hooks source library: landing, content stripping, modelling, order independence (no sockets)."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cclens.sources.hooks import (
    HookEvent, HookPayloadError, parse_envelopes, parse_http_hook, session_hooks, store_events, strip_content,
)

T0 = datetime(2026, 11, 25, 11, 29, 54, tzinfo=timezone.utc)
SID = "3649b710-3145-482c-8c8e-916950e37083"


def fixture_bodies(fixtures, name="command_hooks_one_per_event.jsonl"):
    return [json.loads(line)["body"] for line in (fixtures / name).read_text().splitlines()]


def ev(body, i, *, via="http", event_id=None, host=None):
    ts = T0 + timedelta(milliseconds=100 * i)
    return HookEvent(body, event_id or f"e{i:04d}", ts, ts, via, host)


def session_events(sid=SID, *, subagent=False):
    """A Write→Bash session (and optionally an Agent call running them in a subagent), as bodies."""
    base = {"session_id": sid, "transcript_path": f"/h/.claude/projects/-r/{sid}.jsonl", "cwd": "/r"}
    pid = "p-1"

    def b(name, **kw):
        return {**base, "hook_event_name": name, **kw}

    out = [b("SessionStart", source="startup"),
           b("UserPromptSubmit", prompt_id=pid, permission_mode="bypassPermissions", prompt="create hello.txt")]
    agent = {}
    if subagent:
        out += [b("PreToolUse", prompt_id=pid, tool_name="Agent", tool_use_id="tu-agent",
                  tool_input={"prompt": "SUBAGENT_TASK"}),
                b("SubagentStart", prompt_id=pid, agent_id="ag1", agent_type="general-purpose")]
        agent = {"agent_id": "ag1", "agent_type": "general-purpose"}
    for tu, tool in (("tu-write", "Write"), ("tu-bash", "Bash")):
        out += [b("PreToolUse", prompt_id=pid, permission_mode="bypassPermissions", tool_name=tool,
                  tool_use_id=tu, tool_input={"x": 1}, **agent),
                b("PostToolUse", prompt_id=pid, tool_name=tool, tool_use_id=tu, tool_input={"x": 1},
                  tool_response={"ok": True}, duration_ms=15 if tool == "Write" else 40, **agent),
                b("PostToolBatch", prompt_id=pid, tool_calls=[{"tool_name": tool, "tool_use_id": tu,
                                                               "tool_input": {}, "tool_response": "ok"}], **agent)]
    if subagent:
        out += [b("SubagentStop", prompt_id=pid, agent_id="ag1", agent_type="general-purpose",
                  agent_transcript_path="/h/sub/agent-ag1.jsonl", last_assistant_message="done"),
                b("PostToolUse", prompt_id=pid, tool_name="Agent", tool_use_id="tu-agent", tool_response="x")]
    out += [b("MessageDisplay", prompt_id=pid, delta="Done.", index=0, final=True),
            b("Stop", prompt_id=pid, permission_mode="plan", last_assistant_message="Done."),
            b("PreCompact", trigger="manual"), b("PostCompact", trigger="manual", compact_summary="sum"),
            b("PreCompact", trigger="auto"), b("PostCompact", trigger="auto", compact_summary="summary"),
            b("Notification", notification_type="idle_prompt", message="waiting"),
            b("SessionEnd", prompt_id=pid, reason="other")]
    return out


def model_snapshot(wh):
    def rows(sql):
        return [{k: v for k, v in r.items() if k != "updated_at"} for r in wh.query(sql)]

    return {
        "session": rows("SELECT * FROM hook_session ORDER BY session_id"),
        "tools": rows("SELECT * FROM hook_tool_use ORDER BY tool_use_id"),
        "subagents": rows("SELECT * FROM hook_subagent ORDER BY agent_id"),
        "compactions": rows("SELECT * EXCLUDE (compaction_id) FROM hook_compaction ORDER BY started_at"),
        "notifications": rows("SELECT * FROM hook_notification ORDER BY event_id"),
        "prompt": rows("SELECT * FROM prompt ORDER BY prompt_id"),
        "tool_use": rows("SELECT * FROM tool_use ORDER BY tool_use_id"),
    }


def test_real_payloads_model_a_session(warehouse, fixtures):
    bodies = [b for b in fixture_bodies(fixtures) if b["session_id"] == SID]
    assert [b["hook_event_name"] for b in bodies][:3] == ["SessionStart", "UserPromptSubmit", "MessageDisplay"]
    with warehouse.transaction():
        stats = store_events(warehouse, [ev(b, i) for i, b in enumerate(bodies)])
    assert stats.stored == len(bodies) and stats.duplicates == 0
    s = warehouse.query("SELECT * FROM hook_session")[0]
    assert s["session_id"] == SID
    assert s["start_source"] == "startup" and s["end_reason"] == "other"
    assert s["started_at"] == T0 and s["ended_at"] == T0 + timedelta(milliseconds=100 * (len(bodies) - 1))
    assert s["cwd"] == "/home/dev/runs/final-json/repo"
    assert s["transcript_path"].endswith(f"{SID}.jsonl")
    assert s["permission_mode"] == "bypassPermissions"
    assert s["prompt_count"] == 1 and s["event_count"] == len(bodies)
    tools = warehouse.query("SELECT tool_name, status, duration_ms, reported_duration_ms FROM hook_tool_use")
    assert {t["tool_name"]: t["status"] for t in tools} == {"Write": "success"}
    assert tools[0]["duration_ms"] == 15 == tools[0]["reported_duration_ms"]
    prompt = warehouse.query("SELECT * FROM prompt")[0]
    assert prompt["prompt_id"] == "342adb50-3590-4f55-a771-d32b549b7c17" and prompt["source"] == "hooks"
    assert prompt["length"] == len("create hello.txt") and prompt["text"] is None
    # content is not kept by default
    raws = [r["raw"] for r in warehouse.query("SELECT raw FROM landing_hook_event")]
    assert not any("create hello.txt" in r or "hello from fake api" in r for r in raws)
    omitted = warehouse.scalar("SELECT omitted FROM landing_hook_event WHERE event_name = 'UserPromptSubmit'")
    assert omitted == ["prompt"]


def test_capture_content_keeps_payload(warehouse, fixtures):
    bodies = [b for b in fixture_bodies(fixtures) if b["session_id"] == SID]
    store_events(warehouse, [ev(b, i) for i, b in enumerate(bodies)], capture_content=True)
    assert warehouse.scalar("SELECT text FROM prompt") == "create hello.txt"
    raw = json.loads(warehouse.scalar("SELECT raw FROM landing_hook_event WHERE event_name = 'PreToolUse'"))
    assert raw["tool_input"]["content"] == "hello from fake api\n"


def test_failure_and_resume_payloads(warehouse, fixtures):
    bodies = fixture_bodies(fixtures)
    failure = next(b for b in bodies if b["hook_event_name"] == "PostToolUseFailure")
    resume = next(b for b in bodies if b.get("source") == "resume")
    store_events(warehouse, [ev(failure, 0), ev(resume, 1)], capture_content=True)
    tool = warehouse.query("SELECT * FROM hook_tool_use")[0]
    assert tool["status"] == "failure" and tool["duration_ms"] == 135 and tool["error"].startswith("Exit code 1")
    assert warehouse.scalar("SELECT start_source FROM hook_session WHERE session_id = ?",
                            [resume["session_id"]]) == "resume"


def test_subagent_lifecycle(warehouse):
    events = [ev(b, i) for i, b in enumerate(session_events(subagent=True))]
    store_events(warehouse, events)
    sub = warehouse.query("SELECT * FROM hook_subagent")[0]
    assert sub["agent_id"] == "ag1" and sub["agent_type"] == "general-purpose"
    assert sub["parent_tool_use_id"] == "tu-agent"
    assert sub["tool_use_count"] == 2 and sub["duration_ms"] == 700
    assert sub["agent_transcript_path"] == "/h/sub/agent-ag1.jsonl"
    tools = {t["tool_use_id"]: t for t in warehouse.query("SELECT * FROM hook_tool_use")}
    assert tools["tu-write"]["agent_id"] == "ag1" and tools["tu-agent"]["agent_id"] is None
    assert tools["tu-agent"]["status"] == "success" and tools["tu-agent"]["duration_ms"] == 900
    s = warehouse.query("SELECT * FROM hook_session")[0]
    assert (s["tool_use_count"], s["subagent_count"], s["permission_mode"]) == (3, 1, "plan")
    assert warehouse.scalar("SELECT count(*) FROM tool_use WHERE source = 'hooks'") == 3


def test_compaction_notification_and_unknown_events(warehouse):
    base = {"session_id": "s2", "cwd": "/r"}
    bodies = [{**base, "hook_event_name": "PreCompact", "trigger": "auto", "custom_instructions": "secret"},
              {**base, "hook_event_name": "PostCompact", "trigger": "auto", "compact_summary": "x" * 42},
              {**base, "hook_event_name": "Notification", "notification_type": "idle_prompt",
               "title": "Claude Code", "message": "Claude is waiting for your input"},
              {**base, "hook_event_name": "StopFailure", "error": "rate_limit", "last_assistant_message": "429"},
              {**base, "hook_event_name": "FutureEvent2030", "whatever": [1, 2]}]
    stats = store_events(warehouse, [ev(b, i) for i, b in enumerate(bodies)])
    assert stats.stored == 5
    comp = warehouse.query("SELECT * FROM hook_compaction")[0]
    assert (comp["trigger"], comp["summary_length"], comp["duration_ms"]) == ("auto", 42, 100)
    note = warehouse.query("SELECT * FROM hook_notification")[0]
    assert note["notification_type"] == "idle_prompt" and note["message"].startswith("Claude is waiting")
    s = warehouse.query("SELECT * FROM hook_session")[0]
    assert (s["compaction_count"], s["notification_count"], s["stop_failure_count"]) == (1, 1, 1)
    raw = json.loads(warehouse.scalar("SELECT raw FROM landing_hook_event WHERE event_name = 'StopFailure'"))
    assert raw["error"] == "rate_limit" and "last_assistant_message" not in raw
    assert warehouse.scalar("SELECT count(*) FROM landing_hook_event WHERE event_name = 'FutureEvent2030'") == 1


def test_duplicates_are_stored_once(warehouse):
    events = [ev(b, i, via="command") for i, b in enumerate(session_events())]
    store_events(warehouse, events)
    before = model_snapshot(warehouse)
    stats = store_events(warehouse, events[3:7] + events[:2])
    assert stats.stored == 0 and stats.duplicates == 6
    assert model_snapshot(warehouse) == before
    assert warehouse.scalar("SELECT count(*) FROM landing_hook_event") == len(events)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), subagent=st.booleans(), batch=st.integers(1, 8))
def test_model_does_not_depend_on_arrival_order_or_batching(tmp_path_factory, seed, subagent, batch):
    """In order one at a time, or shuffled in batches of any size: the same model."""
    from cclens.warehouse import open_warehouse

    events = [ev(b, i) for i, b in enumerate(session_events(subagent=subagent))]
    shuffled = events[:]
    random.Random(seed).shuffle(shuffled)
    snaps = []
    for order, size in ((events, 1), (shuffled, batch)):
        wh = open_warehouse(":memory:")
        try:
            for i in range(0, len(order), size):
                with wh.transaction():
                    store_events(wh, order[i:i + size])
            snaps.append(model_snapshot(wh))
        finally:
            wh.close()
    assert snaps[0] == snaps[1]


def test_parse_http_and_envelopes():
    body = {"session_id": "s", "hook_event_name": "Stop"}
    e = parse_http_hook(orjson.dumps(body), remote_addr="127.0.0.1")
    assert e.via == "http" and e.name == "Stop" and e.ts == e.received_at
    for bad in (b"", b"not json", b"[1]", b'{"session_id": "s"}'):
        with pytest.raises(HookPayloadError):
            parse_http_hook(bad)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    lines = [orjson.dumps({"id": "a", "hook_time": 100.0, "host": "lap", "body": orjson.dumps(body).decode()}),
             b"garbage", orjson.dumps({"id": "b", "body": "{oops"}),
             orjson.dumps({"id": "c", "hook_time": 130.0, "body": body})]
    events, rejects = parse_envelopes(b"\n".join(lines) + b"\n\n", received_at=now, sent_time=160.0)
    assert [x.event_id for x in events] == ["a", "c"] and len(rejects) == 2
    assert events[0].ts == now - timedelta(seconds=60) and events[1].ts == now - timedelta(seconds=30)
    assert events[0].host == "lap" and events[0].via == "command"


def test_strip_content_nested():
    body = {"hook_event_name": "PostToolBatch", "tool_calls": [{"tool_name": "Bash", "tool_use_id": "t",
                                                                "tool_input": {"command": "rm"},
                                                                "tool_response": "x"}],
            "background_tasks": [{"id": "b", "command": "sleep 1"}]}
    clean, omitted = strip_content("PostToolBatch", body)
    assert clean["tool_calls"] == [{"tool_name": "Bash", "tool_use_id": "t"}]
    assert clean["background_tasks"] == [{"id": "b"}]
    assert set(omitted) == {"tool_calls[].tool_input", "tool_calls[].tool_response", "background_tasks[].command"}


def test_session_hooks_view(warehouse):
    store_events(warehouse, [ev(b, i) for i, b in enumerate(session_events(subagent=True))])
    view = session_hooks(warehouse, SID)
    assert (view["prompts"], view["tool_uses"], view["subagents"], view["compactions"]) == (1, 3, 1, 2)
    detail = view["detail"]
    assert detail["session"]["start_source"] == "startup"
    names = [e["event"] for e in detail["timeline"]]
    assert names[:4] == ["SessionStart", "UserPromptSubmit", "PreToolUse", "SubagentStart"]
    assert names[-1] == "SessionEnd" and len(names) == view["events"]
    assert [t["tool_name"] for t in detail["tool_uses"]] == ["Agent", "Write", "Bash"]
    assert detail["subagents"][0]["agent_id"] == "ag1"
    assert [(c["trigger"], c["summary_length"], c["duration_ms"]) for c in detail["compactions"]] == [
        ("manual", 3, 100), ("auto", 7, 100)]
    assert len(detail["notifications"]) == view["notifications"] == 1
    assert session_hooks(warehouse, str(uuid.uuid4())) is None
