"""End to end with the real Claude Code CLI, offline, against a real ``cclens serve``.

``cclens setup claude-code`` configures a throwaway HOME; Claude Code (npm ``@anthropic-ai/claude-code``,
pinned in ``.ci/install-deps``) runs headless against the fake Messages API on 127.0.0.1 twice: a
Write → Bash session exporting OTLP as http/json, and a subagent session as http/protobuf. HTTP hooks
and the ``cclens hook`` shim (SessionStart) report to the server, ``cclens ship`` pushes the
transcripts. Then, per session: each source's token totals equal Claude Code's own
``--output-format json`` usage, the ids join (session, prompt, tool use, request), and the hook
events arrive in order.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from cclens.hook_shim import spool_dir
from cclens.warehouse import open_warehouse
from fake_messages_api import FakeMessagesAPI
from serve_support import ServeProcess, wait_until
from ship_support import run_ship_once

ROOT = Path(__file__).resolve().parents[1]
CLAUDE = ROOT / ".tools" / "node_modules" / ".bin" / "claude"
SEQUENCES = json.loads((Path(__file__).parent / "fixtures" / "hook_sequences.json").read_text())
TOKEN_KEYS = {"input": "inputTokens", "output": "outputTokens", "cache_read": "cacheReadInputTokens",
              "cache_creation": "cacheCreationInputTokens"}

pytestmark = pytest.mark.slow


def claude_binary() -> Path:
    """The pinned Claude Code from .tools (installed on demand); skip only when npm is missing."""
    if not CLAUDE.exists():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed, so the real Claude Code CLI cannot be installed (.ci/install-deps)")
        subprocess.run(["bash", str(ROOT / ".ci" / "install-deps")], check=False, timeout=600)
    assert CLAUDE.exists(), f"{CLAUDE} is missing after .ci/install-deps; run it and read its warnings"
    return CLAUDE


def cclens(*args: str, db: Path | None = None) -> subprocess.CompletedProcess:
    pre = ["--db", str(db)] if db else []
    return subprocess.run([sys.executable, "-m", "cclens.cli", *pre, *args], capture_output=True, text=True,
                          timeout=120)


def run_claude(binary: Path, api: FakeMessagesAPI, repo: Path, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLAUDE", "OTEL_", "ANTHROPIC_", "CCLENS_"))}
    env.update(HOME=str(home), ANTHROPIC_BASE_URL=api.url, ANTHROPIC_API_KEY="sk-ant-fake",
               CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1", DISABLE_ERROR_REPORTING="1")
    if os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"  # --dangerously-skip-permissions refuses root otherwise
    proc = subprocess.run([str(binary), "-p", "create hello.txt", "--output-format", "json",
                           "--dangerously-skip-permissions"], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, f"claude failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


def claude_totals(result: dict) -> dict[str, int]:
    """Claude Code's own usage for the session; ``modelUsage`` includes subagents (``usage`` does not)."""
    return {k: int(sum(m[v] for m in result["modelUsage"].values())) for k, v in TOKEN_KEYS.items()}


def test_real_claude_code_end_to_end(tmp_path, isolated_env):
    binary = claude_binary()
    home = isolated_env
    db = tmp_path / "server" / "cclens.duckdb"
    db.parent.mkdir()
    server = ServeProcess(db, "--require-auth", grpc=False, env={"CCLENS_SERVER_WATCH_TRANSCRIPTS": "0"}).start()
    runs = []
    try:
        ingest = cclens("token", "create", "--role", "ingest", "--name", "laptops", db=db)
        viewer = cclens("token", "create", "--role", "viewer", db=db)
        assert ingest.returncode == 0 and viewer.returncode == 0, ingest.stderr + viewer.stderr
        token, viewer_token = ingest.stdout.strip(), viewer.stdout.strip()
        for scenario, protocol in (("write_bash", "http/json"), ("subagent", "http/protobuf")):
            setup = cclens("setup", "claude-code", "--server", server.url, "--token", token, "--protocol", protocol,
                           "--write")
            assert setup.returncode == 0, setup.stderr
            # A fresh repo per run: Write refuses to overwrite a file it has not read (hello.txt).
            repo = tmp_path / f"work repo {scenario}"  # a space in the path, as users have
            repo.mkdir()
            subprocess.run(["git", "init", "-q", str(repo)], check=True)
            with FakeMessagesAPI(scenario) as api:
                result = run_claude(binary, api, repo, home)
                runs.append({"scenario": scenario, "protocol": protocol, "result": result,
                             "api": api.message_requests(), "api_totals": api.usage_totals()})
        pending = list(spool_dir().glob("*.json")) if spool_dir().exists() else []
        assert not pending, "the shim delivered SessionStart itself (with the token from the settings env)"
        shipped = run_ship_once(server.url, "--token", token)
        assert shipped.returncode == 0, shipped.stderr
        doctor = cclens("doctor", "--format", "json")
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr

        def session(sid: str) -> dict:
            r = httpx.get(f"{server.url}/api/v1/sessions/{sid}", headers={"Authorization": f"Bearer {viewer_token}"},
                          timeout=10)
            return r.json() if r.status_code == 200 else {}

        for run in runs:
            sid, expected = run["result"]["session_id"], claude_totals(run["result"])
            assert run["api_totals"] == expected, "the fake API handed out what Claude Code counted"

            def complete(sid=sid, expected=expected):
                view = session(sid).get("sources", {})
                otel, tr = view.get("otel") or {}, view.get("transcripts") or {}
                metrics = (otel.get("metrics") or {}).get("tokens")
                return "hooks" in view and otel.get("tokens") == expected == tr.get("tokens") == metrics and view

            view = wait_until(complete, timeout=60, what=f"all sources for {run['scenario']} session {sid}")
            run["view"] = view
    finally:
        code = server.stop()
    assert code == 0, server.log()[-3000:]

    wh = open_warehouse(db)
    try:
        for run in runs:
            check_session(wh, run)
    finally:
        wh.close()


def check_session(wh, run: dict) -> None:
    sid, scenario = run["result"]["session_id"], run["scenario"]
    api = run["api"]
    hooks = run["view"]["hooks"]
    # -- the session id joins everywhere ---------------------------------------------------------------
    assert {r["session_header"] for r in api} == {sid}
    assert hooks["detail"]["session"]["transcript_path"].endswith(f"{sid}.jsonl")
    assert wh.scalar("SELECT count(*) FROM landing_transcript_line WHERE session_id = ?", [sid]) > 0
    # -- OTLP arrived in the protocol configured for this run ----------------------------------------------
    formats = {r["payload_format"] for r in wh.query(
        "SELECT DISTINCT l.payload_format FROM otel_event e JOIN landing_otlp_request l USING (request_id) "
        "WHERE e.session_id = ?", [sid])}
    assert formats == {"json" if run["protocol"] == "http/json" else "protobuf"}
    # -- request ids: fake API = transcripts = OTel ---------------------------------------------------------
    api_requests = {r["request_id"] for r in api}
    transcript_requests = {r["request_id"] for r in wh.query(
        "SELECT request_id FROM api_request WHERE session_id = ? AND from_transcripts", [sid])}
    otel_requests = {r["request_id"] for r in wh.query(
        "SELECT DISTINCT request_id FROM otel_api_request_event WHERE session_id = ?", [sid])}
    assert api_requests == transcript_requests == otel_requests
    assert wh.scalar("SELECT bool_and(from_otel AND from_transcripts) FROM api_request WHERE session_id = ?", [sid])
    # -- prompt ids: hooks = transcripts = OTel -------------------------------------------------------------
    prompts = {src: {r["prompt_id"] for r in wh.query(
        "SELECT prompt_id FROM prompt WHERE session_id = ? AND source = ?", [sid, src])}
        for src in ("hooks", "transcripts", "otel")}
    assert len(prompts["hooks"]) == 1 and prompts["hooks"] == prompts["transcripts"] == prompts["otel"], prompts
    # -- tool use ids: fake API = hooks = transcripts = OTel ----------------------------------------------
    api_tools = {t for r in api for t in r["tool_use_ids"]}
    tools = {src: {r["tool_use_id"] for r in wh.query(
        "SELECT tool_use_id FROM tool_use WHERE session_id = ? AND source = ?", [sid, src])}
        for src in ("hooks", "transcripts")}
    otel_tools = {r["tool_use_id"] for r in wh.query(
        "SELECT DISTINCT tool_use_id FROM otel_tool_result WHERE session_id = ?", [sid])}
    assert api_tools == tools["hooks"] == tools["transcripts"] == otel_tools, (api_tools, tools, otel_tools)
    lifecycles = wh.query("SELECT * FROM hook_tool_use WHERE session_id = ?", [sid])
    assert all(t["status"] == "success" and t["duration_ms"] is not None for t in lifecycles)
    # -- hook events arrive in order; SessionStart came through the shim -------------------------------------
    events = wh.query("SELECT event_name, via FROM landing_hook_event WHERE session_id = ? ORDER BY ts, seq", [sid])
    expected = SEQUENCES["command_hooks(write_bash)" if scenario == "write_bash" else "command_hooks"]
    assert [e["event_name"] for e in events] == expected
    assert [e["via"] for e in events] == ["command"] + ["http"] * (len(expected) - 1)
    s = hooks["detail"]["session"]
    assert (s["start_source"], s["end_reason"], s["permission_mode"]) == ("startup", "other", "bypassPermissions")
    assert s["cwd"].endswith(f"work repo {scenario}") and s["host"]
    if scenario == "subagent":
        (sub,) = hooks["detail"]["subagents"]
        agent_call = next(r["tool_use_ids"][0] for r in api if r["content"] == ["Agent"])
        assert sub["agent_type"] == "general-purpose" and sub["parent_tool_use_id"] == agent_call
        assert sub["tool_use_count"] == 2 and sub["duration_ms"] is not None
        assert Path(sub["agent_transcript_path"]).name == f"agent-{sub['agent_id']}.jsonl"
        shipped = wh.scalar("SELECT count(*) FROM landing_transcript_line WHERE path = ?",
                            [sub["agent_transcript_path"]])
        assert shipped > 0, "the subagent transcript was shipped"
