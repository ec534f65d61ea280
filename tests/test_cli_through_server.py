"""While `cclens serve` owns the warehouse, the CLI's reports and ingest go through it (no lock error)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx

from serve_support import ServeProcess, free_port, wait_until

FIXTURE = Path(__file__).parent / "fixtures" / "transcript_main_session.jsonl"


def cclens(db: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "cclens.cli", "--db", str(db), *args], capture_output=True,
                         text=True, timeout=120, env={**os.environ, **(env or {})})
    assert "Traceback" not in out.stderr, out.stderr
    return out


def test_ingest_and_reports_go_through_a_running_server(tmp_path):
    db = tmp_path / "wh.duckdb"
    # watcher off: the lines must arrive through `cclens ingest`, not the server's own tailer
    with ServeProcess(db, env={"CCLENS_SERVER_WATCH_TRANSCRIPTS": "false"}):
        out = cclens(db, "ingest", "transcripts", str(FIXTURE))
        assert out.returncode == 0, out.stderr
        assert "through cclens serve" in out.stderr
        rep = cclens(db, "report", "daily", "--tz", "UTC", "-f", "json")
        assert rep.returncode == 0, rep.stderr
        day = json.loads(rep.stdout)[0]
        assert (day["input_tokens"], day["output_tokens"], day["cache_creation_tokens"], day["cache_read_tokens"]) \
            == (175, 120, 4250, 8150)
        assert abs(day["cost_usd"] - 0.0345125) < 1e-12
        sessions = json.loads(cclens(db, "report", "sessions", "-f", "json").stdout)
        assert sessions[0]["session_id"] == "3649b710-3145-482c-8c8e-916950e37083"
    # and the same report straight from the file once the server has stopped
    direct = json.loads(cclens(db, "report", "daily", "--tz", "UTC", "-f", "json", "--no-refresh").stdout)
    assert direct == [day]


def test_run_ingests_then_serves(tmp_path, isolated_env):
    home = isolated_env
    project = home / ".claude" / "projects" / "-home-dev-repo"
    project.mkdir(parents=True)
    (project / "3649b710-3145-482c-8c8e-916950e37083.jsonl").write_bytes(FIXTURE.read_bytes())
    db = tmp_path / "run.duckdb"
    port, grpc = free_port(), free_port()
    env = {**os.environ, "CCLENS_SERVER_PORT": str(port), "CCLENS_SERVER_GRPC_PORT": str(grpc)}
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "cclens.cli", "--db", str(db), "run"], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200,
                   timeout=90, what="cclens run to start serving")
        text = (tmp_path / "run.log").read_text()
        assert "ingested 1 files" in text and "setup claude-code --server" in text
        rep = cclens(db, "report", "daily", "--tz", "UTC", "-f", "json")
        assert json.loads(rep.stdout)[0]["output_tokens"] == 120
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()


def test_report_session_shows_each_source(tmp_path):
    db = tmp_path / "wh.duckdb"
    assert cclens(db, "ingest", "transcripts", str(FIXTURE), "-q").returncode == 0
    out = cclens(db, "report", "session", "3649b710", "-f", "json")
    assert out.returncode == 0, out.stderr
    view = json.loads(out.stdout)
    sec = view["sources"]["transcripts"]
    assert view["session_id"] == "3649b710-3145-482c-8c8e-916950e37083"
    assert sec["tokens"] == {"input": 175, "output": 120, "cache_read": 8150, "cache_creation": 4250}
    assert abs(sec["cost_usd"] - 0.0345125) < 1e-12 and sec["prompts"] == 1 and sec["tool_uses"] == 2
    missing = cclens(db, "report", "session", "nope-nope")
    assert missing.returncode != 0 and "cclens report sessions" in missing.stderr
