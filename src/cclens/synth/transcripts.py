"""Write a corpus of Claude Code transcripts shaped like the real ones (Claude Code 2.x).

What it reproduces, because each of these has broken a parser somewhere:
- one assistant reply written as several lines (one per content block) sharing ``message.id``,
  ``requestId`` and usage; sometimes an early *streaming snapshot* with fewer output tokens;
- tool uses answered by user lines with ``tool_result`` blocks and a structured ``toolUseResult``;
- subagent transcripts in ``<session>/subagents/agent-<id>.jsonl`` with ``isSidechain`` and the
  parent's ``sessionId``; a few replies copied into another session file (as resumes did);
- metadata records (queue-operation, attachment, last-prompt, file-history-snapshot, system), an
  unknown record type, ``<synthetic>`` API-error messages, and junk lines (invalid JSON, non-objects).

The generator is deterministic for a seed. It returns the exact token totals it wrote (after the
dedupe rules), so tests can check any consumer against ground truth.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

MODELS = ["claude-opus-4-8", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"]
TOOLS = ["Bash", "Read", "Edit", "Write", "Grep", "Glob"]
WORDS = ("the quick brown fox jumps over lazy dogs while compilers emit warnings about unused variables "
         "and tests pass or fail depending on fixtures in the repository").split()


@dataclass
class Truth:
    """Ground truth of a generated corpus: per (UTC day, model) token sums of unique requests."""

    by_day_model: dict[tuple[str, str], dict[str, int]] = field(default_factory=lambda: defaultdict(
        lambda: {"input": 0, "output": 0, "cache_creation": 0, "cache_read": 0, "requests": 0}))
    files: int = 0
    bytes: int = 0
    lines: int = 0
    junk_lines: int = 0

    def totals(self) -> dict[str, int]:
        out = {"input": 0, "output": 0, "cache_creation": 0, "cache_read": 0, "requests": 0}
        for v in self.by_day_model.values():
            for k in out:
                out[k] += v[k]
        return out


def _text(rng: random.Random, n_bytes: int) -> str:
    words = []
    size = 0
    while size < n_bytes:
        w = rng.choice(WORDS)
        words.append(w)
        size += len(w) + 1
    return " ".join(words)


class _Writer:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "ab")
        self.bytes = 0
        self.lines = 0

    def line(self, obj) -> None:
        data = (obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))).encode() + b"\n"
        self.fh.write(data)
        self.bytes += len(data)
        self.lines += 1

    def close(self) -> None:
        self.fh.close()


def generate(root: Path, *, target_bytes: int = 5_000_000, seed: int = 7, start: datetime | None = None,
             days: int = 20, projects: int = 5, junk: bool = True, subagents: bool = True,
             long_context: bool = False) -> Truth:
    """Write transcripts under ``root`` (a ``projects`` folder) until about ``target_bytes``; return the truth."""
    rng = random.Random(seed)
    truth = Truth()
    start = start or datetime(2026, 10, 1, 8, 0, tzinfo=timezone.utc)
    project_dirs = [f"/home/dev/work/repo-{i}" for i in range(projects)]
    written = 0
    session_no = 0
    copied: list[dict] = []
    while written < target_bytes:
        session_no += 1
        cwd = rng.choice(project_dirs)
        slug = cwd.replace("/", "-")
        sid = str(uuid.UUID(int=rng.getrandbits(128)))
        t = start + timedelta(days=rng.randrange(days), hours=rng.randrange(14), minutes=rng.randrange(60))
        path = root / slug / f"{sid}.jsonl"
        w = _Writer(path)
        model = rng.choice(MODELS)
        base = {"userType": "external", "entrypoint": "cli", "cwd": cwd, "sessionId": sid,
                "version": "2.1.197", "gitBranch": rng.choice(["main", "feature/x", "HEAD"])}
        w.line({"type": "queue-operation", "operation": "enqueue", "timestamp": _ts(t), "sessionId": sid,
                "content": "hello"})
        parent = None
        for _turn in range(rng.randint(1, 4)):
            t += timedelta(seconds=rng.randint(5, 120))
            parent = _prompt(w, rng, base, t, parent)
            for _step in range(rng.randint(1, 6)):
                t += timedelta(seconds=rng.randint(1, 40))
                parent, rec = _reply(w, rng, base, t, parent, model, truth, long_context)
                if rng.random() < 0.02:
                    copied.append(rec)
                if subagents and rng.random() < 0.05:
                    written += _subagent(root / slug / sid / "subagents", rng, base, t, model, truth, long_context)
                t += timedelta(seconds=rng.randint(1, 20))
                parent = _tool_result(w, rng, base, t, parent)
            if junk and rng.random() < 0.1:
                w.line('{"type":"assistant","message":{"id":"broken"')  # truncated JSON
                w.line("[1, 2, 3]")
                truth.junk_lines += 2
            if rng.random() < 0.1:
                w.line({"type": "assistant", "uuid": str(uuid.uuid4()), "timestamp": _ts(t), **base,
                        "isApiErrorMessage": True, "error": "rate_limit",
                        "message": {"id": str(uuid.uuid4()), "model": "<synthetic>", "role": "assistant",
                                    "content": [{"type": "text", "text": "limit reached"}],
                                    "usage": {"input_tokens": 0, "output_tokens": 0,
                                              "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})
            if rng.random() < 0.05:
                w.line({"type": "some-future-record", "sessionId": sid, "timestamp": _ts(t), "payload": {"x": 1}})
        if copied and rng.random() < 0.3:
            rec = copied.pop()
            w.line({**rec, "uuid": str(uuid.uuid4())})  # a reply copied from another session: counted once
        w.line({"type": "last-prompt", "lastPrompt": "done", "sessionId": sid})
        w.line({"type": "file-history-snapshot", "messageId": str(uuid.uuid4()),
                "snapshot": {"trackedFileBackups": {}, "timestamp": _ts(t)}, "isSnapshotUpdate": False})
        w.close()
        written += w.bytes
        truth.files += 1
        truth.lines += w.lines
    truth.bytes = written
    return truth


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _prompt(w: _Writer, rng, base, t, parent) -> str:
    u = str(uuid.UUID(int=rng.getrandbits(128)))
    w.line({"parentUuid": parent, "isSidechain": False, "promptId": str(uuid.UUID(int=rng.getrandbits(128))),
            "type": "user", "message": {"role": "user", "content": _text(rng, rng.randint(20, 400))},
            "uuid": u, "timestamp": _ts(t), "permissionMode": "default", "promptSource": "typed", **base})
    w.line({"parentUuid": u, "isSidechain": False, "type": "attachment",
            "attachment": {"type": "hook_success", "hookName": "UserPromptSubmit", "stdout": "{}", "exitCode": 0},
            "uuid": str(uuid.UUID(int=rng.getrandbits(128))), "timestamp": _ts(t), **base})
    return u


def _usage(rng, long_context: bool) -> dict:
    inp = rng.randint(1, 300)
    cc = rng.randint(0, 20000)
    one_h = cc if rng.random() < 0.2 else 0
    cr = rng.randint(0, 400_000 if long_context and rng.random() < 0.2 else 150_000)
    return {"input_tokens": inp, "cache_creation_input_tokens": cc, "cache_read_input_tokens": cr,
            "output_tokens": rng.randint(1, 3000), "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
            "service_tier": "standard", "cache_creation": {"ephemeral_1h_input_tokens": one_h,
                                                           "ephemeral_5m_input_tokens": cc - one_h},
            "inference_geo": "", "iterations": [], "speed": "standard"}


def _reply(w: _Writer, rng, base, t, parent, model, truth: Truth, long_context: bool, extra=None):
    msg_id = "msg_" + uuid.UUID(int=rng.getrandbits(128)).hex[:24]
    req_id = "req_" + uuid.UUID(int=rng.getrandbits(128)).hex[:24]
    usage = _usage(rng, long_context)
    blocks = [{"type": "thinking", "thinking": "", "signature": "sig" + "x" * rng.randint(50, 400)},
              {"type": "text", "text": _text(rng, rng.randint(50, 1500))},
              {"type": "tool_use", "id": "toolu_" + uuid.UUID(int=rng.getrandbits(128)).hex[:20],
               "name": rng.choice(TOOLS), "input": {"command": _text(rng, rng.randint(10, 300))}}]
    rec = None
    snapshot = rng.random() < 0.15
    for i, block in enumerate(blocks):
        u = dict(usage)
        if snapshot and i == 0:
            u["output_tokens"] = max(1, usage["output_tokens"] // 3)  # streaming snapshot, smaller
        rec = {"parentUuid": parent, "isSidechain": False, **(extra or {}),
               "message": {"model": model, "id": msg_id, "type": "message", "role": "assistant",
                           "content": [block], "stop_reason": "tool_use" if i == 2 else None,
                           "stop_sequence": None, "usage": u},
               "requestId": req_id, "type": "assistant", "uuid": str(uuid.UUID(int=rng.getrandbits(128))),
               "timestamp": _ts(t + timedelta(milliseconds=200 * i)), **base}
        if extra and "sessionId" in extra:
            rec["sessionId"] = extra["sessionId"]
        w.line(rec)
        parent = rec["uuid"]
    day = t.astimezone(timezone.utc).strftime("%Y-%m-%d")
    agg = truth.by_day_model[(day, model)]
    agg["input"] += usage["input_tokens"]
    agg["output"] += usage["output_tokens"]
    agg["cache_creation"] += usage["cache_creation_input_tokens"]
    agg["cache_read"] += usage["cache_read_input_tokens"]
    agg["requests"] += 1
    tool_id = blocks[2]["id"]
    w._last_tool = tool_id  # type: ignore[attr-defined]
    return parent, rec


def _tool_result(w: _Writer, rng, base, t, parent) -> str:
    u = str(uuid.UUID(int=rng.getrandbits(128)))
    out = _text(rng, rng.choice([100, 300, 800, 1500, 3000, 8000, 20000]))
    w.line({"parentUuid": parent, "isSidechain": False, "type": "user",
            "message": {"role": "user", "content": [{"tool_use_id": getattr(w, "_last_tool", "toolu_x"),
                                                     "type": "tool_result", "content": out, "is_error": False}]},
            "uuid": u, "timestamp": _ts(t), "toolUseResult": {"stdout": out, "stderr": "", "interrupted": False},
            "sourceToolAssistantUUID": parent, **base})
    return u


def _subagent(folder: Path, rng, base, t, model, truth: Truth, long_context: bool) -> int:
    agent_id = "a" + uuid.UUID(int=rng.getrandbits(128)).hex[:16]
    w = _Writer(folder / f"agent-{agent_id}.jsonl")
    extra = {"isSidechain": True, "agentId": agent_id}
    parent = None
    for _ in range(rng.randint(1, 3)):
        parent, _rec = _reply(w, rng, base, t, parent, model, truth, long_context, extra=extra)
        parent = _tool_result(w, rng, base, t, parent)
    w.close()
    (folder / f"agent-{agent_id}.meta.json").write_text(json.dumps({"agentType": "general-purpose"}))
    truth.files += 1
    truth.lines += w.lines
    return w.bytes
