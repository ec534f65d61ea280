"""Write an :class:`~cclens.synth.org.Org`'s sessions out the way Claude Code does.

* :func:`write_transcripts` – session files ``<root>/<host>/projects/<slug>/<session>.jsonl`` (and
  ``<session>/subagents/agent-<id>.jsonl``) in the 2.1.x format, for the people who ship transcripts.
  Auxiliary requests (session titles) are not in transcripts, as in Claude Code.
* :func:`otlp_requests` – OTLP/HTTP protobuf bodies (``/v1/logs`` and ``/v1/metrics``) with the events and
  delta metrics Claude Code exports, for sessions after the person's telemetry roll-out.
* :func:`hook_batches` – NDJSON envelopes of the ``cclens hook`` shim (``/hooks/batch``) for sessions after
  the person's hooks roll-out; ``hook_time`` is the event time, so the server dates them correctly.

Bedrock, API-key and Vertex users send only ``user.id`` and ``session.id`` in OTel; OAuth users also
``user.email``, ``user.account_uuid`` and ``organization.id``, as documented.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from ..model.pricing import PriceTable, bundled_table
from .org import EDIT_TOOLS, LANGUAGES, ORG_ID, Org, Person, Request, Session

# -- transcripts -----------------------------------------------------------------------------------


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _usage(r: Request) -> dict[str, Any]:
    return {"input_tokens": r.input, "cache_creation_input_tokens": r.cache_creation,
            "cache_read_input_tokens": r.cache_read, "output_tokens": r.output,
            "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0}, "service_tier": "standard",
            "cache_creation": {"ephemeral_1h_input_tokens": r.cache_1h, "ephemeral_5m_input_tokens": r.cache_5m},
            "inference_geo": "", "iterations": [], "speed": "standard"}


def session_lines(s: Session) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The main transcript's records and each subagent's (by agent id), in file order."""
    base = {"userType": "external", "entrypoint": s.entrypoint, "cwd": s.cwd, "sessionId": s.session_id,
            "version": s.version, "gitBranch": s.branch}
    tools_by_req: dict[str, list] = defaultdict(list)
    for t in s.tools:
        tools_by_req[t.request_id].append(t)
    main: list[dict[str, Any]] = []
    agents: dict[str, list[dict[str, Any]]] = defaultdict(list)
    parents: dict[str | None, str | None] = {}
    prompts = {p.prompt_id: p for p in s.prompts}
    seen_prompts: set[str] = set()
    for r in s.requests:
        if r.query_source == "generate_session_title":
            continue
        out = agents[r.agent_id] if r.agent_id else main
        extra = {"isSidechain": True, "agentId": r.agent_id} if r.agent_id else {"isSidechain": False}
        if r.prompt_id and r.prompt_id not in seen_prompts and not r.agent_id:
            seen_prompts.add(r.prompt_id)
            p = prompts[r.prompt_id]
            u = str(uuid.uuid5(uuid.NAMESPACE_URL, p.prompt_id))
            out.append({"parentUuid": parents.get(None), "isSidechain": False, "promptId": p.prompt_id,
                        "type": "user", "message": {"role": "user", "content": "x" * p.length}, "uuid": u,
                        "timestamp": _ts(p.ts), "permissionMode": "default", "promptSource": "typed", **base})
            parents[None] = u
        tools = tools_by_req.get(r.request_id, [])
        blocks: list[dict[str, Any]] = [{"type": "text", "text": "Working on it."}]
        blocks += [{"type": "tool_use", "id": t.tool_use_id, "name": t.name, "input": {}} for t in tools]
        for i, block in enumerate(blocks):
            u = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{r.request_id}|{i}"))
            out.append({"parentUuid": parents.get(r.agent_id), **extra,
                        "message": {"model": r.model, "id": r.message_id, "type": "message", "role": "assistant",
                                    "content": [block], "stop_reason": "tool_use" if tools else "end_turn",
                                    "stop_sequence": None, "usage": _usage(r)},
                        "requestId": r.request_id, "type": "assistant", "uuid": u, "timestamp": _ts(r.ts), **base})
            parents[r.agent_id] = u
        for t in tools:
            u = str(uuid.uuid5(uuid.NAMESPACE_URL, t.tool_use_id))
            out.append({"parentUuid": parents.get(r.agent_id), **extra, "promptId": t.prompt_id, "type": "user",
                        "message": {"role": "user", "content": [{"tool_use_id": t.tool_use_id, "type": "tool_result",
                                                                 "content": "ok", "is_error": not t.success}]},
                        "uuid": u, "timestamp": _ts(t.result_ts), "sourceToolAssistantUUID": parents.get(r.agent_id),
                        **base})
            parents[r.agent_id] = u
    return main, dict(agents)


def write_transcripts(org: Org, root: Path) -> dict[str, Path]:
    """Write the transcripts of every person who ships them; returns ``{host: projects folder}``."""
    out: dict[str, Path] = {}
    for s in org.sessions:
        if not s.person.ships:
            continue
        projects = root / s.person.host / "projects"
        out[s.person.host] = projects
        folder = projects / s.cwd.replace("/", "-").replace(".", "-")
        folder.mkdir(parents=True, exist_ok=True)
        main, agents = session_lines(s)
        _write(folder / f"{s.session_id}.jsonl", main)
        for agent_id, lines in agents.items():
            sub = folder / s.session_id / "subagents"
            sub.mkdir(parents=True, exist_ok=True)
            _write(sub / f"agent-{agent_id}.jsonl", lines)
            agent_type = next((a.agent_type for a in s.subagents if a.agent_id == agent_id), "general-purpose")
            (sub / f"agent-{agent_id}.meta.json").write_text(json.dumps({"agentType": agent_type}))
    return out


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    with open(path, "w") as fh:
        for rec in records:
            fh.write(json.dumps(rec, separators=(",", ":")) + "\n")


# -- OTLP ------------------------------------------------------------------------------------------


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _ns(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000) * 1000


def _resource(p: Person, version: str) -> Resource:
    return Resource(attributes=[_kv("service.name", "claude-code"), _kv("service.version", version),
                                _kv("os.type", "darwin" if "-mbp-" in p.host else "linux"),
                                _kv("host.arch", "arm64" if "-mbp-" in p.host else "amd64"),
                                _kv("host.name", p.host)])


def _standard(p: Person, s: Session) -> dict[str, Any]:
    out: dict[str, Any] = {"user.id": p.user_id, "session.id": s.session_id, "terminal.type": p.terminal}
    if not p.bedrock:
        out.update({"user.email": p.email, "user.account_uuid": p.account_uuid, "organization.id": ORG_ID})
    return out


def _qs_class(qs: str) -> str:
    return "main" if qs.startswith(("repl_main_thread", "sdk")) else "subagent" if qs.startswith("agent:") else "auxiliary"


def session_events(s: Session, prices: PriceTable) -> list[tuple[datetime, str, dict[str, Any]]]:
    """``(time, event name, attributes)`` of the events Claude Code logs for ``s``, in order."""
    p = s.person
    ev: list[tuple[datetime, str, dict[str, Any]]] = []
    for pr in s.prompts:
        ev.append((pr.ts, "user_prompt", {"prompt.id": pr.prompt_id, "prompt_length": str(pr.length),
                                          "prompt": "<REDACTED>"}))
    for r in s.requests:
        cost = prices.cost(r.model, input_tokens=r.input, output_tokens=r.output, cache_write_5m=r.cache_5m,
                           cache_write_1h=r.cache_1h, cache_read=r.cache_read) or 0.0
        attrs = {"model": r.model, "input_tokens": r.input, "output_tokens": r.output,
                 "cache_read_tokens": r.cache_read, "cache_creation_tokens": r.cache_creation,
                 "cost_usd": cost, "cost_usd_micros": int(round(cost * 1e6)), "duration_ms": r.duration_ms,
                 "request_id": r.request_id, "speed": "normal", "query_source": r.query_source, "effort": "high"}
        if r.prompt_id:
            attrs["prompt.id"] = r.prompt_id
        ev.append((r.ts, "api_request", attrs))
    for t in s.tools:
        base = {"prompt.id": t.prompt_id, "tool_name": t.name, "tool_use_id": t.tool_use_id}
        ev.append((t.ts, "tool_decision", {**base, "decision": t.decision, "source": "config" if
                                           t.decision == "accept" else "user_reject"}))
        if t.decision == "accept":
            ev.append((t.result_ts, "tool_result", {**base, "success": "true" if t.success else "false",
                                                    "duration_ms": str(int((t.result_ts - t.ts).total_seconds() * 1000)),
                                                    "decision_type": "accept", "decision_source": "config"}))
    ev.sort(key=lambda e: e[0])
    std = _standard(p, s)
    return [(t, name, {**std, "event.name": name, "event.timestamp": _ts(t), "event.sequence": i, **a})
            for i, (t, name, a) in enumerate(ev)]


def session_metrics(s: Session, prices: PriceTable) -> list[tuple[str, str, dict[str, Any], float]]:
    """``(metric, unit, attributes, delta value)`` Claude Code exports for ``s`` (one export at its end)."""
    p = s.person
    sums: dict[tuple, float] = defaultdict(float)
    sums[("claude_code.session.count", "", (("start_type", "fresh"),))] += 1
    for r in s.requests:
        attrs = (("model", r.model), ("query_source", _qs_class(r.query_source)), ("effort", "high"))
        for typ, n in (("input", r.input), ("output", r.output), ("cacheRead", r.cache_read),
                       ("cacheCreation", r.cache_creation)):
            sums[("claude_code.token.usage", "tokens", attrs + (("type", typ),))] += n
        sums[("claude_code.cost.usage", "USD", attrs)] += prices.cost(
            r.model, input_tokens=r.input, output_tokens=r.output, cache_write_5m=r.cache_5m,
            cache_write_1h=r.cache_1h, cache_read=r.cache_read) or 0.0
    lang = LANGUAGES.get(p.team, "unknown")
    model = s.requests[-1].model if s.requests else None
    for t in s.tools:
        if t.name in EDIT_TOOLS and t.name != "MultiEdit":
            sums[("claude_code.code_edit_tool.decision", "", (("decision", t.decision), ("source", "config"),
                                                              ("tool_name", t.name), ("language", lang)))] += 1
        if t.lines_added:
            sums[("claude_code.lines_of_code.count", "", (("type", "added"), ("model", model)))] += t.lines_added
        if t.lines_removed:
            sums[("claude_code.lines_of_code.count", "", (("type", "removed"), ("model", model)))] += t.lines_removed
        if t.commit:
            sums[("claude_code.commit.count", "", ())] += 1
        if t.pull_request:
            sums[("claude_code.pull_request.count", "", ())] += 1
    busy = sum(r.duration_ms for r in s.requests) / 1000
    sums[("claude_code.active_time.total", "s", (("type", "cli"),))] += round(busy, 3)
    sums[("claude_code.active_time.total", "s", (("type", "user"),))] += round(len(s.prompts) * 21.5, 3)
    std = {k: v for k, v in _standard(p, s).items()}
    return [(name, unit, {**std, **dict(attrs)}, value) for (name, unit, attrs), value in sums.items()]


def otlp_requests(org: Org, sessions: list[Session], *, prices: PriceTable | None = None,
                  max_records: int = 4000) -> Iterator[tuple[str, bytes]]:
    """``(path, protobuf body)`` pairs for the sessions' events and metrics, a few thousand records each,
    grouped per host (one resource each) as exporters batch them."""
    prices = prices or bundled_table()
    logs = ExportLogsServiceRequest()
    metrics = ExportMetricsServiceRequest()
    n_logs = n_points = 0
    for s in sessions:
        if not org.otel_on(s):
            continue
        res = _resource(s.person, s.version)
        rl = logs.resource_logs.add(resource=res)
        sl = rl.scope_logs.add()
        sl.scope.name, sl.scope.version = "com.anthropic.claude_code.events", s.version
        for t, name, attrs in session_events(s, prices):
            rec = sl.log_records.add(time_unix_nano=_ns(t), observed_time_unix_nano=_ns(t))
            rec.body.string_value = f"claude_code.{name}"
            rec.attributes.extend(_kv(k, v) for k, v in attrs.items())
            n_logs += 1
        rm = metrics.resource_metrics.add(resource=res)
        sm = rm.scope_metrics.add()
        sm.scope.name, sm.scope.version = "com.anthropic.claude_code", s.version
        by_name: dict[str, Any] = {}
        for name, unit, attrs, value in session_metrics(s, prices):
            m = by_name.get(name)
            if m is None:
                m = by_name[name] = sm.metrics.add(name=name, unit=unit)
                m.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
                m.sum.is_monotonic = True
            dp = m.sum.data_points.add(start_time_unix_nano=_ns(s.start), time_unix_nano=_ns(s.end))
            dp.attributes.extend(_kv(k, v) for k, v in attrs.items())
            dp.as_double = float(value)
            n_points += 1
        if n_logs >= max_records:
            yield "/v1/logs", logs.SerializeToString()
            logs, n_logs = ExportLogsServiceRequest(), 0
        if n_points >= max_records:
            yield "/v1/metrics", metrics.SerializeToString()
            metrics, n_points = ExportMetricsServiceRequest(), 0
    if n_logs:
        yield "/v1/logs", logs.SerializeToString()
    if n_points:
        yield "/v1/metrics", metrics.SerializeToString()


# -- hooks -----------------------------------------------------------------------------------------


def session_hooks(s: Session) -> list[tuple[datetime, dict[str, Any]]]:
    """``(time, payload)`` of every hook Claude Code calls during ``s`` (content fields left out)."""
    p = s.person
    path = f"/home/{p.key.split('.')[0]}/.claude/projects/{s.cwd.replace('/', '-')}/{s.session_id}.jsonl"
    base = {"session_id": s.session_id, "transcript_path": path, "cwd": s.cwd}
    out: list[tuple[datetime, dict[str, Any]]] = [(s.start, {**base, "hook_event_name": "SessionStart",
                                                           "source": "startup"})]
    for pr in s.prompts:
        out.append((pr.ts, {**base, "prompt_id": pr.prompt_id, "permission_mode": "default",
                            "hook_event_name": "UserPromptSubmit"}))
        out.append((pr.end or pr.ts, {**base, "prompt_id": pr.prompt_id, "permission_mode": "default",
                                      "hook_event_name": "Stop", "stop_hook_active": False}))
    for t in s.tools:
        agent = {"agent_id": t.agent_id, "agent_type": next(
            (a.agent_type for a in s.subagents if a.agent_id == t.agent_id), None)} if t.agent_id else {}
        tb = {**base, "prompt_id": t.prompt_id, "permission_mode": "default", **agent, "tool_name": t.name,
              "tool_use_id": t.tool_use_id}
        out.append((t.ts, {**tb, "hook_event_name": "PreToolUse"}))
        if t.decision == "reject":
            out.append((t.result_ts, {**tb, "hook_event_name": "PermissionDenied", "reason": "user rejected"}))
        elif t.success:
            out.append((t.result_ts, {**tb, "hook_event_name": "PostToolUse"}))
        else:
            out.append((t.result_ts, {**tb, "hook_event_name": "PostToolUseFailure", "is_interrupt": False,
                                      "duration_ms": int((t.result_ts - t.ts).total_seconds() * 1000)}))
    for a in s.subagents:
        ab = {**base, "prompt_id": a.prompt_id, "agent_id": a.agent_id, "agent_type": a.agent_type}
        out.append((a.start, {**ab, "hook_event_name": "SubagentStart"}))
        out.append((a.end, {**ab, "hook_event_name": "SubagentStop", "stop_hook_active": False,
                            "agent_transcript_path": path.replace(".jsonl", f"/subagents/agent-{a.agent_id}.jsonl")}))
    out.append((s.end, {**base, "hook_event_name": "SessionEnd", "reason": "prompt_input_exit"}))
    out.sort(key=lambda e: e[0])
    return out


def hook_batches(org: Org, sessions: list[Session], *, per_batch: int = 2000) -> Iterator[bytes]:
    """NDJSON bodies for ``POST /hooks/batch`` (the shim's envelopes) of the sessions with hooks on."""
    lines: list[bytes] = []
    for s in sessions:
        if not org.hooks_on(s):
            continue
        for i, (t, body) in enumerate(session_hooks(s)):
            env = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{s.session_id}|{i}")), "hook_time": t.timestamp(),
                   "host": s.person.host, "body": body}
            lines.append(json.dumps(env, separators=(",", ":")).encode())
        if len(lines) >= per_batch:
            yield b"\n".join(lines) + b"\n"
            lines = []
    if lines:
        yield b"\n".join(lines) + b"\n"


# -- people file ---------------------------------------------------------------------------------------


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_people_file(org: Org, path: Path) -> Path:
    """The organisation's people file (TOML, docs/people.md): teams, people, their identities in every
    source, managers; the first steady member of Web moves to Platform halfway through the period."""
    from datetime import timedelta

    lines = []
    for t in org.teams:
        lines += ["[[team]]", f"id = {_toml(t.key)}", f"name = {_toml(t.name)}", ""]
    mover = next((p for p in org.people if p.team == "web" and p.archetype == "steady"), None)
    half = org.start + timedelta(days=org.days // 2)
    for p in org.people:
        aliases = [f'otel_user_id = [{_toml(p.user_id)}]', f"host = [{_toml(p.host)}]"]
        if not p.bedrock:
            aliases += [f"anthropic_account = [{_toml(p.account_id)}]", f"otel_account_uuid = [{_toml(p.account_uuid)}]"]
        lines += ["[[person]]", f"id = {_toml(p.key)}", f"name = {_toml(p.name)}", f"emails = [{_toml(p.email)}]"]
        if p.manager:
            lines.append(f"manager = {_toml(p.manager)}")
        if p is mover:
            lines.append(f'memberships = [{{team = "web", to = "{half - timedelta(days=1)}"}}, '
                         f'{{team = "platform", from = "{half}"}}]')
        else:
            lines.append(f"team = {_toml(p.team)}")
        lines += ["[person.aliases]", *aliases, ""]
    path.write_text("\n".join(lines))
    return path
