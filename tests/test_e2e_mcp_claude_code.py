"""End to end: the real Claude Code CLI (2.1.197, headless, offline) uses the cclens MCP server.

A real ``cclens serve`` (--require-auth) holds the golden organisation of tests/metrics_support.py.
``cclens setup claude-code --mcp-only`` writes the MCP entry into a throwaway ``~/.claude.json``: first the
HTTP endpoint ``/mcp`` with a viewer token, then stdio (``cclens mcp``, which goes through the running
server). Each time Claude Code runs against the fake Messages API (scenario ``mcp_call``): the test checks
that the cclens tools are in the ``tools`` of the request Claude Code sends (``mcp__cclens__<tool>``), the
fake API answers with a ``tool_use`` of ``get_metric``, and the ``tool_result`` Claude Code sends back in
the next request holds the figures the REST API gives for the same question. The call is in the audit log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cclens.server.auth import create_token
from cclens.warehouse import open_warehouse
from fake_messages_api import FakeMessagesAPI, tool_results
from mcp_support import MARCH, TOOLS, rest, rest_sql
from metrics_support import build_org
from serve_support import ServeProcess
from test_e2e_claude_code import claude_binary

pytestmark = pytest.mark.slow

QUESTION = {"name": "tokens", "group_by": ["team"], **MARCH}


def cclens(*args: str, db: Path | None = None) -> subprocess.CompletedProcess:
    pre = ["--db", str(db)] if db else []
    return subprocess.run([sys.executable, "-m", "cclens.cli", *pre, *args], capture_output=True, text=True,
                          timeout=120)


def run_claude(binary: Path, api: FakeMessagesAPI, cwd: Path, home: Path, prompt: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE", "OTEL_", "ANTHROPIC_", "CCLENS_"))}
    env.update(HOME=str(home), ANTHROPIC_BASE_URL=api.url, ANTHROPIC_API_KEY="sk-ant-fake",
               CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1", DISABLE_ERROR_REPORTING="1",
               MCP_TIMEOUT="60000", MCP_TOOL_TIMEOUT="60000",
               # headless runs connect MCP servers in the background by default; wait for them instead
               MCP_CONNECTION_NONBLOCKING="false")
    if os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"  # --dangerously-skip-permissions refuses root otherwise
    proc = subprocess.run([str(binary), "-p", prompt, "--output-format", "json", "--dangerously-skip-permissions"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"claude failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


def figures(text: str, key: str) -> dict[str, int | float | None]:
    """``{key value: value}`` from a get_metric tool result as Claude Code passed it to the model: the
    structured content as JSON (what 2.1.197 sends when a tool returns structured content), or the text
    rendering (``key | … | value | sources``)."""
    if text.lstrip().startswith("{"):
        return {r[key]: r["value"] for r in json.loads(text)["rows"]}
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith(f"{key} | "))
    cols = lines[head].split(" | ")
    out = {}
    for line in lines[head + 1:]:
        cells = line.split(" | ")
        if len(cells) != len(cols):
            break
        row = dict(zip(cols, cells))
        v = row["value"]
        out[row[key]] = None if v == "—" else (float(v) if "." in v else int(v))
    return out


def test_claude_code_queries_cclens_through_mcp(tmp_path, isolated_env):
    binary = claude_binary()
    home = isolated_env
    db = tmp_path / "server" / "cclens.duckdb"
    db.parent.mkdir()
    wh = open_warehouse(db)
    build_org(wh, db.parent)
    viewer_id, viewer = create_token(wh, "viewer", "claude code")
    _, analyst = create_token(wh, "analyst")
    wh.close()
    work = tmp_path / "work repo"
    work.mkdir()
    prompt = "How many tokens did each team use in March 2026? MCP_CALL: " + json.dumps(
        {"tool": "mcp__cclens__get_metric", "input": QUESTION})
    server = ServeProcess(db, "--require-auth", grpc=False, env={"CCLENS_SERVER_WATCH_TRANSCRIPTS": "0"}).start()
    try:
        want = rest(server.url, viewer, "/api/v1/metrics/tokens", group_by="team", **MARCH)["rows"]
        want = {r["team"]: r["value"] for r in want}
        assert want == {"platform": 2270, "web": 10980, "(no team)": 12020}
        for transport, extra in (("http", ["--server", server.url, "--mcp-token", viewer]),
                                 ("stdio", ["--mcp-transport", "stdio"])):
            setup = cclens("setup", "claude-code", "--mcp-only", *extra, "--write", db=db)
            assert setup.returncode == 0, setup.stderr
            config = json.loads((home / ".claude.json").read_text())["mcpServers"]["cclens"]
            assert config["type"] == transport
            with FakeMessagesAPI("mcp_call") as api:
                result = run_claude(binary, api, work, home, prompt)
                requests = [r for r in api.message_requests() if r["main_loop"]]
            first = requests[0]["body"]
            offered = {t.get("name") for t in first.get("tools") or []}
            assert {f"mcp__cclens__{t}" for t in TOOLS} <= offered, sorted(offered)
            tool = next(t for t in first["tools"] if t.get("name") == "mcp__cclens__get_metric")
            assert "tokens" in tool["input_schema"]["properties"]["name"]["enum"]
            assert requests[0]["content"] == ["text", "mcp__cclens__get_metric"]
            call_id = requests[0]["tool_use_ids"][0]
            (answer,) = [b for b in tool_results(requests[1]["body"]) if b["tool_use_id"] == call_id]
            assert not answer.get("is_error"), answer["text"]
            assert figures(answer["text"], "team") == want, answer["text"]
            if answer["text"].lstrip().startswith("{"):   # the whole structured result, provenance included
                body = json.loads(answer["text"])
                assert body["unit"] == "tokens" and all(r["sources"] for r in body["rows"])
            assert result["is_error"] is False and result["num_turns"] >= 2
        audit = rest_sql(server.url, analyst, "SELECT principal, role, surface, action, arguments, ok FROM audit_log "
                                              "WHERE action = 'tools/call get_metric' ORDER BY ts")
        rows = [dict(zip(audit["columns"], r)) for r in audit["rows"]]
        assert [(r["surface"], r["principal"], r["role"], r["ok"]) for r in rows] == [
            ("mcp-http", viewer_id, "viewer", True), ("mcp-stdio", rows[1]["principal"], "local", True)]
        assert all(json.loads(r["arguments"]) == QUESTION for r in rows)
    finally:
        code = server.stop()
    assert code == 0, server.log()[-3000:]
