"""The real Claude Code CLI (2.1.197, offline against the fake Messages API) exporting OTLP over **gRPC**
with **cumulative** metrics, then a ``--continue`` run over http/protobuf: the two things the reference
captures never exercised. Token totals from events and from the delta-converted metrics must equal
Claude Code's own usage, and the throwaway session id of ``--continue`` must be linked, not counted."""

from __future__ import annotations

import json
import os
import subprocess

import httpx2 as httpx
import pytest

from fake_messages_api import FakeMessagesAPI
from serve_support import ServeProcess, wait_until
from test_e2e_claude_code import claude_binary, claude_totals

pytestmark = pytest.mark.slow


def run_claude(binary, api, repo, home, otel: dict[str, str], *extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE", "OTEL_", "ANTHROPIC_", "CCLENS_"))}
    env.update(HOME=str(home), ANTHROPIC_BASE_URL=api.url, ANTHROPIC_API_KEY="sk-ant-fake",
               CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1", DISABLE_ERROR_REPORTING="1",
               CLAUDE_CODE_ENABLE_TELEMETRY="1", OTEL_METRICS_EXPORTER="otlp", OTEL_LOGS_EXPORTER="otlp",
               OTEL_METRIC_EXPORT_INTERVAL="500", OTEL_LOGS_EXPORT_INTERVAL="500", **otel)
    if os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"
    proc = subprocess.run([str(binary), "-p", "create hello.txt", "--output-format", "json",
                           "--dangerously-skip-permissions", *extra], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, f"claude failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


def test_grpc_cumulative_and_continue(tmp_path, isolated_env):
    binary = claude_binary()
    db = tmp_path / "srv" / "wh.duckdb"
    db.parent.mkdir()
    server = ServeProcess(db, env={"CCLENS_SERVER_WATCH_TRANSCRIPTS": "0"}).start()
    try:
        repo = tmp_path / "repo"
        repo.mkdir()
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        with FakeMessagesAPI("write_bash") as api:
            first = run_claude(binary, api, repo, isolated_env, {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.grpc_port}",
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "cumulative"})
            second = run_claude(binary, api, repo, isolated_env, {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": server.url},
                "--continue")
        sid = first["session_id"]
        assert second["session_id"] == sid, "--continue resumes the same session"
        totals = {k: claude_totals(first)[k] + claude_totals(second)[k] for k in claude_totals(first)}

        def view():
            r = httpx.get(f"{server.url}/api/v1/sessions/{sid}", timeout=10)
            if r.status_code != 200:
                return None
            v = r.json()
            otel = v["sources"].get("otel") or {}
            metrics = (otel.get("metrics") or {}).get("tokens")
            return v if otel.get("tokens") == totals == metrics and v.get("continued_via") else None

        try:
            v = wait_until(view, timeout=60, what="OTel tokens (events and metrics) equal Claude Code's usage")
        except AssertionError:  # show what arrived
            print("expected", totals, httpx.get(f"{server.url}/api/v1/sessions/{sid}").text, server.log()[-3000:])
            raise
        otel = v["sources"]["otel"]
        assert otel["requests"] >= 2 and otel["prompts"] == 2
        assert otel["metrics"]["cost_usd"] == pytest.approx(first["total_cost_usd"] + second["total_cost_usd"])
        (transient,) = v["continued_via"]
        assert transient != sid
        from cclens.client import RemoteWarehouse, find_server
        from cclens.config import load_settings

        with RemoteWarehouse(find_server(load_settings(db=db))) as wh:
            receivers = {r["receiver"] for r in wh.query("SELECT DISTINCT receiver FROM landing_otlp_request")}
            assert receivers == {"grpc", "http"}
            temporality = {r["temporality"] for r in wh.query(
                "SELECT DISTINCT temporality FROM otel_point p JOIN landing_otlp_request l USING (request_id) "
                "WHERE l.receiver = 'grpc' AND p.metric_name = 'claude_code.token.usage'")}
            assert temporality == {"cumulative"}
            t = wh.query("SELECT * FROM otel_session WHERE session_id = ?", [transient])[0]
            assert t["transient"] and t["start_type"] == "continue" and t["api_requests"] == 0
            assert wh.scalar("SELECT count(*) FROM api_request WHERE session_id = ?", [transient]) == 0
    finally:
        code = server.stop()
    assert code == 0, server.log()[-3000:]
