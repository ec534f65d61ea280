"""The ``cclens hook`` shim as Claude Code runs it: a subprocess with the payload on stdin.

Whatever the server does (down, slow, 500, garbage), the shim exits 0, prints nothing and returns
within its budget; what it could not deliver is spooled and arrives, once, when the server is back.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from cclens.config import load_settings
from cclens.hook_shim import drain_spool, spool_dir, spool_event
from cclens.server.app import create_app
from serve_support import ThreadServer, free_port, wait_until

BUDGET = 1.0
# Generous bound on the whole subprocess (interpreter start included): a shim without a working
# budget would hang for as long as the slow server holds the connection (forever).
HANG = 8.0


def run_shim(payload: bytes, server: str | None, *extra: str, budget: float = BUDGET) -> tuple[int, bytes, float]:
    args = [sys.executable, "-m", "cclens.hook_shim", "--budget", str(budget), *extra]
    if server:
        args += ["--server", server]
    start = time.monotonic()
    proc = subprocess.run(args, input=payload, capture_output=True, timeout=HANG)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def payload(name: str, i: int, sid: str = "sess-shim") -> bytes:
    return orjson.dumps({"session_id": sid, "hook_event_name": name, "cwd": "/r", "seq_hint": i})


def spooled() -> list[Path]:
    d = spool_dir()
    return sorted(d.glob("*.json")) if d.exists() else []


class BadServer:
    """An HTTP server that misbehaves on purpose: 'slow' (never answers), '500', 'garbage'."""

    def __init__(self, mode: str):
        self.mode = mode
        self.hits = 0
        self.release = threading.Event()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                outer.hits += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if outer.mode == "slow":
                    outer.release.wait(30)
                    return
                if outer.mode == "500":
                    self.send_response(500)
                    body = b'{"detail": "boom"}'
                else:
                    self.send_response(200)
                    body = b"<html>not what you expected</html>"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_shim_survives_every_failure_then_delivers_once(warehouse, db_path):
    down = f"http://127.0.0.1:{free_port()}"
    timings: dict[str, float] = {}
    sent = []
    # server down
    rc, out, timings["down"] = run_shim(payload("SessionStart", 0), down)
    assert (rc, out) == (0, b"")
    sent.append("SessionStart")
    for i, mode in enumerate(["slow", "500", "garbage"], start=1):
        with BadServer(mode) as bad:
            name = ["UserPromptSubmit", "PreToolUse", "PostToolUse"][i - 1]
            rc, out, timings[mode] = run_shim(payload(name, i), bad.url)
            assert (rc, out) == (0, b""), mode
            assert bad.hits >= 1, f"the shim never tried the {mode} server"
            sent.append(name)
    assert len(spooled()) == 4
    # no server configured at all: spool only
    rc, out, timings["no server"] = run_shim(payload("Stop", 5), None)
    assert (rc, out) == (0, b"") and len(spooled()) == 5
    sent.append("Stop")
    for what, secs in timings.items():
        print(f"shim {what}: {secs:.3f}s")
    app = create_app(load_settings(db=db_path), warehouse, router_modules=["hooks"])
    with ThreadServer(app) as srv:
        rc, out, timings["up"] = run_shim(payload("SessionEnd", 6), srv.url)
        assert (rc, out) == (0, b"")
        sent.append("SessionEnd")
        wait_until(lambda: not spooled(), what="spool drained")
    rows = warehouse.query("SELECT event_name, via, host FROM landing_hook_event ORDER BY ts, seq")
    assert [r["event_name"] for r in rows] == sent
    assert {r["via"] for r in rows} == {"command"} and all(r["host"] for r in rows)
    assert warehouse.scalar("SELECT start_source IS NULL AND ended_at IS NOT NULL FROM hook_session")


def test_slow_real_server_commits_late_and_resend_is_deduplicated(warehouse, db_path):
    app = create_app(load_settings(db=db_path), warehouse, router_modules=["hooks"])
    gate = threading.Event()
    with ThreadServer(app) as srv:
        app.state.writer.submit(lambda wh: gate.wait(30))  # the writer is stuck behind a long job
        rc, out, elapsed = run_shim(payload("SessionStart", 0), srv.url)
        assert (rc, out) == (0, b"") and len(spooled()) == 1
        gate.set()  # the request the shim gave up on is now committed by the server ...
        wait_until(lambda: app.state.writer.reader().scalar("SELECT count(*) FROM landing_hook_event") == 1,
                   what="late commit")
        rc, out, _ = run_shim(payload("UserPromptSubmit", 1), srv.url)  # ... and re-sent with the next event
        assert (rc, out) == (0, b"")
        wait_until(lambda: not spooled(), what="spool drained")
        assert srv.url  # keep the server up until here
    assert warehouse.scalar("SELECT count(*) FROM landing_hook_event") == 2
    assert app.state.hook_counters.duplicates == 1


def test_shim_never_fails_whatever_the_input(tmp_path):
    for args, stdin in [(["--budget", "nonsense"], b"{}"), (["--what", "--server"], b"\xff\xfe garbage"),
                        (["--server", "::not a url::"], payload("Stop", 1)), ([], b"")]:
        proc = subprocess.run([sys.executable, "-m", "cclens.hook_shim", *args], input=stdin,
                              capture_output=True, timeout=HANG)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b""), args
    # anything non-empty is kept (the server quarantines what is not a hook payload); empty stdin is not
    assert len(spooled()) == 3


def test_cclens_hook_command_is_the_same_shim():
    proc = subprocess.run([sys.executable, "-m", "cclens.cli", "hook", "--unknown-flag", "--budget", "1"],
                          input=payload("Stop", 1), capture_output=True, timeout=30)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    assert len(spooled()) == 1


def test_concurrent_shims_deliver_each_event_once(warehouse, db_path):
    app = create_app(load_settings(db=db_path), warehouse, router_modules=["hooks"])
    for i in range(30):  # a backlog from an outage
        spool_event(payload("PreToolUse", i), host="lap")
    with ThreadServer(app) as srv:
        # A generous budget: this test is about concurrent drains delivering once, not about the budget
        # (which counts from process start, so on a loaded 2-core CI machine 2 s can pass before stdin is read).
        procs = [subprocess.Popen([sys.executable, "-m", "cclens.hook_shim", "--server", srv.url, "--budget", "10"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(6)]
        for i, p in enumerate(procs):
            p.communicate(payload("PostToolUse", 100 + i), timeout=HANG)
            assert p.returncode == 0
        wait_until(lambda: not spooled(), what="spool drained")
    assert warehouse.scalar("SELECT count(*) FROM landing_hook_event") == 36
    assert warehouse.scalar("SELECT count(DISTINCT event_id) FROM landing_hook_event") == 36


def test_drain_stops_at_deadline_and_keeps_order(tmp_path):
    spool = tmp_path / "spool"
    for i in range(5):
        spool_event(payload("Notification", i), spool=spool, hook_time=1000.0 + i)
    got: list[bytes] = []

    class Ok(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.append(body)
            data = b'{"stored": 5}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        expired = drain_spool(url, None, deadline=time.monotonic() - 1, spool=spool)
        assert (expired.sent, expired.remaining) == (0, 5) and not got
        result = drain_spool(url, "tok", deadline=time.monotonic() + 10, spool=spool)
        assert (result.sent, result.remaining, result.error) == (5, 0, None)
    finally:
        httpd.shutdown()
        httpd.server_close()
    hints = [json.loads(json.loads(line)["body"])["seq_hint"] for line in got[0].splitlines()]
    assert hints == [0, 1, 2, 3, 4]
    assert oct(os.stat(spool).st_mode & 0o777) == "0o700"


def test_flush_command_sends_the_spool_and_reports(warehouse, db_path):
    for i in range(3):
        spool_event(payload("Notification", i), host="lap")
    down = subprocess.run([sys.executable, "-m", "cclens.cli", "hook", "--flush", "--server",
                           f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=HANG)
    assert down.returncode == 1 and "3 left" in down.stdout
    app = create_app(load_settings(db=db_path), warehouse, router_modules=["hooks"])
    with ThreadServer(app) as srv:
        up = subprocess.run([sys.executable, "-m", "cclens.cli", "hook", "--flush", "--server", srv.url],
                            capture_output=True, text=True, timeout=HANG)
    assert up.returncode == 0 and "sent 3 spooled hook event(s); 0 left" in up.stdout
    assert warehouse.scalar("SELECT count(*) FROM hook_notification") == 3 and not spooled()
