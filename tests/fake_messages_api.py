"""A fake Anthropic Messages API that the real Claude Code CLI can run against, offline, on 127.0.0.1.

It implements what Claude Code 2.1.x calls (``../shared/reference/real-claude-code.md`` §2.4):

- ``HEAD /`` (a pre-connect), ``POST /v1/messages`` streaming SSE (``stream: true``) and non-streaming,
  ``POST /v1/messages/count_tokens``, ``GET /v1/models``;
- a ``request-id`` response header (Claude Code stores it as transcript ``requestId`` and OTel
  ``request_id``), ``x-api-key`` auth (401 ``authentication_error`` when missing), and injectable
  failures (``fail_next(status, retry_after=…)`` answers 429/529/500 like the real API does);
- scripted conversations with **fixed usage per step**, so token totals are exact.

Scenarios (``FakeMessagesAPI(scenario=…)``):

``write_bash``  the main loop answers, by step (= number of ``tool_result`` blocks already sent):
                0: text + ``Write hello.txt``; 1: ``Bash cat hello.txt``; 2: final text.
``subagent``    the main loop first calls ``Agent`` with a prompt carrying ``SUBAGENT_TASK:``; requests
                whose first user text carries that marker run the ``write_bash`` script; the main loop
                then runs ``Bash cat hello.txt`` and ends with text.
``git_commit``  0: text + ``Write feature.py``; 1: ``Bash git add feature.py && git commit -m …`` (with a
                ``Co-Authored-By: Claude`` trailer; run it in a git repository); 2: final text.
``mcp_call``    the prompt carries ``MCP_CALL: {"tool": "mcp__<server>__<tool>", "input": {…}}``; 0: text + a
                ``tool_use`` of that tool when Claude Code offers it (else text saying it is missing, ending the
                turn); 1: final text. The ``tool_result`` Claude Code sends back is in the next request.
a callable      ``scenario(request: MessagesRequest) -> Reply | None``; ``None`` falls back to ``write_bash``.

Usage per step, as (input, cache_creation, cache_read, output): 0 = 120/4000/0/60, 1 = 30/150/4000/40,
2 = 25/100/4150/20; a ``write_bash`` session totals :data:`WRITE_BASH_TOTALS`, ``subagent`` twice that.
Side queries (no ``Write``/``Bash`` tool, e.g. title generation) answer schema-conforming JSON or short
text with :data:`SIDE_QUERY_USAGE`.

Use::

    with FakeMessagesAPI(scenario="subagent") as api:
        env["ANTHROPIC_BASE_URL"] = api.url
        ...
        api.requests      # every request seen: method, path, headers, body, reply summary

or standalone: ``python tests/fake_messages_api.py --port 18080 --scenario subagent``.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Usage = tuple[int, int, int, int]  # (input, cache_creation, cache_read, output)

STEP_USAGE: list[Usage] = [(120, 4000, 0, 60), (30, 150, 4000, 40), (25, 100, 4150, 20)]
SIDE_QUERY_USAGE: Usage = (50, 0, 0, 10)
WRITE_BASH_TOTALS = {"input": 175, "cache_creation": 4250, "cache_read": 8150, "output": 120}
SUBAGENT_MARKER = "SUBAGENT_TASK:"
HELLO_CONTENT = "hello from fake api\n"


@dataclass
class Reply:
    """One assistant message: content blocks (``text`` / ``tool_use`` dicts), stop reason and usage."""

    content: list[dict[str, Any]]
    usage: Usage
    stop_reason: str = "end_turn"


@dataclass
class MessagesRequest:
    """A parsed ``POST /v1/messages`` as a scenario sees it."""

    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def tool_names(self) -> list[str]:
        return [t.get("name", "") for t in self.body.get("tools") or [] if isinstance(t, dict)]

    @property
    def is_main_loop(self) -> bool:
        """True for the agent loop (main or subagent): it offers ``Write`` or ``Bash``."""
        names = self.tool_names
        return "Write" in names or "Bash" in names

    @property
    def step(self) -> int:
        """How many ``tool_result`` blocks the conversation already holds."""
        n = 0
        for msg in self.body.get("messages") or []:
            content = msg.get("content")
            if isinstance(content, list):
                n += sum(1 for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
        return n

    @property
    def first_user_text(self) -> str:
        for msg in self.body.get("messages") or []:
            if msg.get("role") != "user":
                continue
            content = msg.get("content")
            if isinstance(content, str):
                return content
            return "\n".join(b.get("text", "") for b in content or [] if isinstance(b, dict)
                             and b.get("type") == "text")
        return ""

    @property
    def system_text(self) -> str:
        system = self.body.get("system")
        if isinstance(system, str):
            return system
        return "\n".join(b.get("text", "") for b in system or [] if isinstance(b, dict))

    @property
    def cwd(self) -> str | None:
        """The working directory Claude Code announces in its system prompt (may contain spaces)."""
        m = re.search(r"Primary working directory: (.+)", self.system_text)
        return m.group(1).rstrip() if m else None


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _tool(name: str, inp: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_fake_{name.lower()}_{uuid.uuid4().hex[:12]}", "name": name,
            "input": inp}


def write_bash_script(req: MessagesRequest) -> Reply:
    """Write hello.txt, cat it, finish: the reference scenario."""
    step = min(req.step, 2)
    usage = STEP_USAGE[step]
    if step == 0:
        path = f"{(req.cwd or '.').rstrip('/')}/hello.txt"
        return Reply([_text("I'll create hello.txt."),
                      _tool("Write", {"file_path": path, "content": HELLO_CONTENT})], usage, "tool_use")
    if step == 1:
        return Reply([_tool("Bash", {"command": "cat hello.txt", "description": "Show hello.txt"})],
                     usage, "tool_use")
    return Reply([_text("Done: created hello.txt and printed it.")], usage)


def subagent_script(req: MessagesRequest) -> Reply:
    """Delegate hello.txt to a general-purpose subagent, then cat it and finish."""
    if SUBAGENT_MARKER in req.first_user_text:
        return write_bash_script(req)
    step = min(req.step, 2)
    usage = STEP_USAGE[step]
    if step == 0:
        return Reply([_tool("Agent", {"description": "Create hello.txt",
                                      "prompt": f"{SUBAGENT_MARKER} create hello.txt containing a greeting, "
                                                "then show it with cat.",
                                      "subagent_type": "general-purpose"})], usage, "tool_use")
    if step == 1:
        return Reply([_tool("Bash", {"command": "cat hello.txt", "description": "Show hello.txt"})],
                     usage, "tool_use")
    return Reply([_text("Done: the subagent created hello.txt.")], usage)


GIT_COMMIT_FILE = "feature.py"
GIT_COMMIT_MESSAGE = "PROJ-42: add feature"
GIT_COMMIT_COMMAND = (f"git add {GIT_COMMIT_FILE} && git commit -m '{GIT_COMMIT_MESSAGE}' "
                      "-m 'Co-Authored-By: Claude <noreply@anthropic.com>'")


def git_commit_script(req: MessagesRequest) -> Reply:
    """Write feature.py, commit it with ``git commit`` through Bash (the working directory must be a
    git repository with a user configured), finish. Same usage per step as ``write_bash``."""
    step = min(req.step, 2)
    usage = STEP_USAGE[step]
    if step == 0:
        path = f"{(req.cwd or '.').rstrip('/')}/{GIT_COMMIT_FILE}"
        return Reply([_text(f"I'll create {GIT_COMMIT_FILE}."),
                      _tool("Write", {"file_path": path, "content": "def feature():\n    return 42\n"})],
                     usage, "tool_use")
    if step == 1:
        return Reply([_tool("Bash", {"command": GIT_COMMIT_COMMAND, "description": "Commit the feature"})],
                     usage, "tool_use")
    return Reply([_text(f"Done: committed {GIT_COMMIT_FILE}.")], usage)


MCP_CALL_MARKER = "MCP_CALL:"


def mcp_call_of(req: MessagesRequest) -> dict[str, Any]:
    """The ``{"tool", "input"}`` object after ``MCP_CALL:`` in the first user message ({} if none)."""
    text = req.first_user_text
    at = text.find(MCP_CALL_MARKER)
    if at < 0:
        return {}
    try:
        call, _ = json.JSONDecoder().raw_decode(text[at + len(MCP_CALL_MARKER):].lstrip())
    except ValueError:
        return {}
    return call if isinstance(call, dict) else {}


def mcp_call_script(req: MessagesRequest) -> Reply:
    """Call the MCP tool named in the prompt (``MCP_CALL:``) once, then finish."""
    call = mcp_call_of(req)
    step = min(req.step, 1)
    usage = STEP_USAGE[step]
    if step == 1:
        return Reply([_text("Done: the figures are above.")], usage)
    if call.get("tool") not in req.tool_names:
        return Reply([_text(f"The tool {call.get('tool')!r} is not available here.")], usage)
    return Reply([_text("Let me look that up."), _tool(call["tool"], call.get("input") or {})], usage, "tool_use")


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``tool_result`` blocks of a request body, each with its text joined under ``text``."""
    out = []
    for msg in body.get("messages") or []:
        for block in msg.get("content") if isinstance(msg.get("content"), list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                content = block.get("content")
                parts = [content] if isinstance(content, str) else [
                    c.get("text", "") for c in content or [] if isinstance(c, dict) and c.get("type") == "text"]
                out.append({**block, "text": "\n".join(parts)})
    return out


SCENARIOS: dict[str, Callable[[MessagesRequest], Reply]] = {
    "write_bash": write_bash_script,
    "subagent": subagent_script,
    "git_commit": git_commit_script,
    "mcp_call": mcp_call_script,
}


def _schema_value(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "object":
        return {k: _schema_value(v) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    if "enum" in schema:
        return schema["enum"][0]
    return "Fake session"


def side_query_reply(req: MessagesRequest) -> Reply:
    """Anything outside the agent loop: JSON for a ``json_schema`` output format, else short text."""
    fmt = (req.body.get("output_config") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        return Reply([_text(json.dumps(_schema_value(fmt.get("schema") or {})))], SIDE_QUERY_USAGE)
    return Reply([_text("ok")], SIDE_QUERY_USAGE)


def _usage_json(u: Usage, *, output: int | None = None) -> dict[str, Any]:
    inp, cc, cr, out = u
    return {"input_tokens": inp, "cache_creation_input_tokens": cc, "cache_read_input_tokens": cr,
            "output_tokens": out if output is None else output,
            "cache_creation": {"ephemeral_5m_input_tokens": cc, "ephemeral_1h_input_tokens": 0},
            "service_tier": "standard"}


def _sse_events(message_id: str, model: str, reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": _usage_json(reply.usage, output=1)}}),
        ("ping", {"type": "ping"})]
    for i, block in enumerate(reply.content):
        if block["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                   "delta": {"type": "text_delta", "text": block["text"]}}))
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": start}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(block["input"])}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                                     "usage": _usage_json(reply.usage)}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


@dataclass
class _Failure:
    status: int
    retry_after: float | None
    remaining: int


class FakeMessagesAPI:
    """A threaded HTTP server on a free loopback port speaking the Messages API (see module doc)."""

    def __init__(self, scenario: str | Callable[[MessagesRequest], Reply | None] = "write_bash",
                 *, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None):
        if isinstance(scenario, str):
            if scenario not in SCENARIOS:
                raise ValueError(f"unknown scenario {scenario!r}; choose one of {sorted(SCENARIOS)}")
            self._scenario: Callable[[MessagesRequest], Reply | None] = SCENARIOS[scenario]
        else:
            self._scenario = scenario
        self.api_key = api_key  # when set, x-api-key must equal it
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeMessagesAPI":
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-messages-api",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeMessagesAPI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- scripting -------------------------------------------------------------------------------
    def fail_next(self, status: int = 529, *, count: int = 1, retry_after: float | None = None) -> None:
        """Answer the next ``count`` message requests with ``status`` (an API error body)."""
        with self._lock:
            self._failures.append(_Failure(status, retry_after, count))

    def message_requests(self) -> list[dict[str, Any]]:
        """Recorded ``POST /v1/messages`` calls that were answered with a message."""
        with self._lock:
            return [r for r in self.requests if r["path"].startswith("/v1/messages")
                    and "count_tokens" not in r["path"] and r.get("status") == 200]

    def usage_totals(self) -> dict[str, int]:
        """Sum of the usage this server handed out, by token type."""
        totals = {"input": 0, "cache_creation": 0, "cache_read": 0, "output": 0}
        for r in self.message_requests():
            inp, cc, cr, out = r["usage"]
            totals["input"] += inp
            totals["cache_creation"] += cc
            totals["cache_read"] += cr
            totals["output"] += out
        return totals

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            if not self._failures:
                return None
            f = self._failures[0]
            f.remaining -= 1
            if f.remaining <= 0:
                self._failures.pop(0)
            return f

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def _reply_for(self, req: MessagesRequest) -> Reply:
        if not req.is_main_loop:
            return side_query_reply(req)
        return self._scenario(req) or write_bash_script(req)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "fake-messages-api"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _json(self, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("request-id", f"req_fake_{uuid.uuid4().hex[:16]}")
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, kind: str, message: str, extra: dict[str, str] | None = None):
                self._json(status, {"type": "error", "error": {"type": kind, "message": message}}, extra)

            def do_HEAD(self) -> None:
                api._record({"method": "HEAD", "path": self.path, "status": 200})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                api._record({"method": "GET", "path": self.path, "status": 200})
                if self.path.split("?")[0] == "/v1/models":
                    self._json(200, {"data": [{"type": "model", "id": "claude-opus-4-8",
                                               "display_name": "Claude Opus 4.8"}],
                                     "has_more": False, "first_id": "claude-opus-4-8",
                                     "last_id": "claude-opus-4-8"})
                else:
                    self._json(200, {})

            def do_POST(self) -> None:
                raw = self._body()
                path = self.path.split("?")[0]
                headers = {k.lower(): v for k, v in self.headers.items()}
                entry: dict[str, Any] = {"method": "POST", "path": self.path, "headers": headers}
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    entry["status"] = 400
                    api._record(entry)
                    self._error(400, "invalid_request_error", "body is not JSON")
                    return
                entry["body"] = body
                key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
                if not key or (api.api_key is not None and key != api.api_key):
                    entry["status"] = 401
                    api._record(entry)
                    self._error(401, "authentication_error", "invalid x-api-key")
                    return
                if path == "/v1/messages/count_tokens":
                    entry["status"] = 200
                    api._record(entry)
                    self._json(200, {"input_tokens": max(1, len(raw) // 4)})
                    return
                if path != "/v1/messages":
                    entry["status"] = 404
                    api._record(entry)
                    self._error(404, "not_found_error", f"no route {path}")
                    return
                failure = api._take_failure()
                if failure:
                    entry["status"] = failure.status
                    api._record(entry)
                    kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(failure.status, "api_error")
                    extra = {"retry-after": str(failure.retry_after)} if failure.retry_after is not None else None
                    self._error(failure.status, kind, "injected failure", extra)
                    return
                req = MessagesRequest(body, headers)
                reply = api._reply_for(req)
                message_id = f"msg_fake_{uuid.uuid4().hex[:20]}"
                request_id = f"req_fake_{uuid.uuid4().hex[:16]}"
                model = body.get("model") or "claude-opus-4-8"
                entry.update(status=200, request_id=request_id, message_id=message_id, usage=reply.usage,
                             step=req.step, main_loop=req.is_main_loop,
                             content=[b.get("name") or "text" for b in reply.content],
                             tool_use_ids=[b["id"] for b in reply.content if b.get("type") == "tool_use"],
                             session_header=headers.get("x-claude-code-session-id"))
                api._record(entry)
                if body.get("stream"):
                    self._stream(request_id, _sse_events(message_id, model, reply))
                else:
                    self._json(200, {"id": message_id, "type": "message", "role": "assistant", "model": model,
                                     "content": reply.content, "stop_reason": reply.stop_reason,
                                     "stop_sequence": None, "usage": _usage_json(reply.usage)},
                               {"request-id": request_id})

            def _stream(self, request_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("request-id", request_id)
                self.end_headers()
                for name, data in events:
                    chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Anthropic Messages API for Claude Code.")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--scenario", default="write_bash", choices=sorted(SCENARIOS))
    parser.add_argument("--log", help="append one JSON line per request to this file on exit")
    args = parser.parse_args(argv)
    api = FakeMessagesAPI(args.scenario, port=args.port)
    print(f"fake Messages API on {api.url} (scenario {args.scenario})", flush=True)
    try:
        api._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if args.log:
            with open(args.log, "a") as fh:
                for r in api.requests:
                    fh.write(json.dumps(r, default=str) + "\n")


if __name__ == "__main__":
    main()
