"""``cclens ship`` against a real server: same warehouse as a local ingest, through crashes and file churn."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from cclens.config import load_settings
from cclens.server.app import create_app
from cclens.ship import (GONE_KEEP_DAYS, ShipState, collect_batch, decode_batch, encode_batch, forget_gone,
                         ship_once, state_path)
from cclens.sources.transcripts import discover, ingest_paths
from cclens.synth.transcripts import generate
from cclens.warehouse import open_warehouse
from serve_support import ServeProcess, ThreadServer, wait_until
from ship_support import assert_same, run_ship_once, ship_cmd, ship_state, shipped_all, snapshot

HOST = "shiphost"


@pytest.fixture(autouse=True)
def ship_env(monkeypatch):
    monkeypatch.setenv("CCLENS_HOST", HOST)
    monkeypatch.setenv("CCLENS_SERVER_WATCH_TRANSCRIPTS", "0")  # only `cclens ship` feeds the server


@pytest.fixture
def projects(isolated_env) -> Path:
    return isolated_env / ".claude" / "projects"


def transcript_app(warehouse, db_path):
    return create_app(load_settings(db=db_path), warehouse, router_modules=["transcripts_api"])


def local_snapshot(tmp_path: Path, *, strict: bool = True, wh=None):
    own = wh is None
    wh = wh or open_warehouse(tmp_path / f"local-{uuid.uuid4().hex[:6]}.duckdb")
    try:
        if own:
            ingest_paths(wh, None, host=HOST)
        return snapshot(wh, strict=strict)
    finally:
        if own:
            wh.close()


def fresh_lines(fixtures: Path, session_id: str, n: int) -> bytes:
    """``n`` new, unique transcript lines of ``session_id`` shaped like the real capture."""
    template = [json.loads(x) for x in (fixtures / "transcript_main_session.jsonl").read_text().splitlines()]
    out = []
    for i in range(n):
        line = dict(template[i % len(template)])
        line["sessionId"] = session_id
        if "uuid" in line:
            line["uuid"] = str(uuid.uuid4())
        if line.get("type") == "assistant":
            line["message"] = {**line["message"], "id": f"msg_{uuid.uuid4().hex[:20]}"}
            line["requestId"] = f"req_{uuid.uuid4().hex[:16]}"
        out.append(json.dumps(line).encode() + b"\n")
    return b"".join(out)


def test_wire_format_round_trip(projects):
    generate(projects, target_bytes=200_000, seed=3)
    files = discover()
    chunks, after, _ = collect_batch(files, {}, max_bytes=50_000)
    assert chunks and sum(len(c.data) for c in chunks) <= 50_000 + max(len(c.data) for c in chunks)
    host, chunks2, after2 = decode_batch(encode_batch("h", chunks, after))
    assert (host, chunks2, after2) == ("h", chunks, after)
    body = encode_batch("h", chunks, after)
    for bad in (b"", b"{}\n", body[:-3], body + b"x", body.replace(b"cclens-transcripts/1", b"other/9")):
        with pytest.raises(ValueError):
            decode_batch(bad)


def test_ship_equals_local_ingest_and_resumes(warehouse, db_path, projects, tmp_path):
    generate(projects, target_bytes=600_000, seed=5)
    with ThreadServer(transcript_app(warehouse, db_path)) as srv:
        first = run_ship_once(srv.url, "--batch-bytes", "100000")
        assert first.returncode == 0, first.stderr
        lines = warehouse.scalar("SELECT count(*) FROM landing_transcript_line")
        again = run_ship_once(srv.url)
        assert again.returncode == 0 and "up to date: 0 bytes" in again.stderr
        assert warehouse.scalar("SELECT count(*) FROM landing_transcript_line") == lines
        assert_same(snapshot(warehouse), local_snapshot(tmp_path))
        state = ship_state(srv.url)
        assert state["host"] == HOST and state["last_error"] is None and len(state["cursors"]) == len(discover())
        subagents = [p for p in state["cursors"] if "/subagents/" in p]
        assert subagents, "subagent transcripts are shipped too"


def test_ship_refuses_bad_token_and_reports_down_server(warehouse, db_path, projects):
    generate(projects, target_bytes=50_000, seed=2)
    app = create_app(load_settings(db=db_path), warehouse, router_modules=["transcripts_api"], require_auth=True)
    with ThreadServer(app) as srv:
        r = run_ship_once(srv.url, "--token", "ccl_bad_token")
        assert r.returncode == 1 and "refused the token" in r.stderr and "Traceback" not in r.stderr
        assert warehouse.scalar("SELECT count(*) FROM landing_transcript_line") == 0
    r = run_ship_once(srv.url)
    assert r.returncode == 1 and "cannot ship to" in r.stderr and "Traceback" not in r.stderr
    assert "cannot ship to" in ship_state(srv.url)["last_error"]


def test_kill_9_of_ship_mid_batch(warehouse, db_path, projects, tmp_path):
    generate(projects, target_bytes=400_000, seed=8)
    app = transcript_app(warehouse, db_path)
    with ThreadServer(app) as srv:
        threading = __import__("threading")
        gate, holding = threading.Event(), threading.Event()
        writer = app.state.writer
        writer.submit(lambda wh: (holding.set(), gate.wait(60)))  # the server will sit on the next batch
        wait_until(holding.is_set, what="the writer held")  # else the queued gate job counts as the batch
        proc = subprocess.Popen(ship_cmd(srv.url, "--once", "--batch-bytes", "150000"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: len(writer._jobs) >= 1, what="a batch waiting in the server")
        proc.send_signal(signal.SIGKILL)  # ship dies while its request is in flight
        proc.wait(30)
        gate.set()  # ... and the server commits that batch anyway
        wait_until(lambda: writer.reader().scalar("SELECT count(*) FROM landing_transcript_line") > 0,
                   what="the orphaned batch committed")
        assert not ship_state(srv.url).get("cursors"), "nothing was acknowledged to the dead shipper"
        r = run_ship_once(srv.url, "--batch-bytes", "150000")
        assert r.returncode == 0, r.stderr
    assert_same(snapshot(warehouse), local_snapshot(tmp_path))


def test_kill_9_of_server_mid_request(db_path, projects, tmp_path):
    generate(projects, target_bytes=1_500_000, seed=9)
    files = discover()
    server = ServeProcess(db_path, grpc=False).start()
    url = server.url
    log = open(tmp_path / "ship.log", "wb")
    ship = subprocess.Popen(ship_cmd(url, "--interval", "0.2", "--batch-bytes", "40000"),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: ship_state(url).get("shipped_bytes", 0) > 200_000, what="shipping under way")
        assert not shipped_all(url, files)
        server.kill()  # kill -9 while batches are flowing
        restarted = ServeProcess(db_path, grpc=False)
        restarted.port, restarted.url, restarted.args = server.port, server.url, server.args
        restarted.start()
        wait_until(lambda: shipped_all(url, files), timeout=120, what="shipping complete after the restart")
        assert ship.poll() is None, "ship keeps running through a server crash"
    finally:
        ship.send_signal(signal.SIGTERM)
        ship.wait(30)
        log.close()
    restarted.stop()
    wh = open_warehouse(db_path)
    try:
        assert_same(snapshot(wh), local_snapshot(tmp_path))
    finally:
        wh.close()


def test_files_appended_rotated_and_truncated_while_shipping(warehouse, db_path, projects, tmp_path, fixtures):
    generate(projects, target_bytes=1_000_000, seed=4)
    local = open_warehouse(tmp_path / "local.duckdb")
    mains = sorted(p for p in discover() if "/subagents/" not in str(p))
    a, b, c = mains[0], mains[1], mains[2]
    with ThreadServer(transcript_app(warehouse, db_path)) as srv:
        log = open(tmp_path / "ship.log", "wb")
        ship = subprocess.Popen(ship_cmd(srv.url, "--interval", "0.1", "--batch-bytes", "60000"),
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            def step(what: str) -> None:
                wait_until(lambda: shipped_all(srv.url, discover()), timeout=60, what=f"shipped after {what}")
                ingest_paths(local, None, host=HOST)

            step("start")
            # appended, with a partial last line that is completed later
            more = fresh_lines(fixtures, a.stem, 6)
            with open(a, "ab") as fh:
                fh.write(more[: len(more) - 40])
            step("append with a partial line")
            with open(a, "ab") as fh:
                fh.write(more[len(more) - 40:])
            step("partial line completed")
            # rotated: moved aside (still a transcript) and a new file started under the old name
            a.rename(a.with_name(a.stem + "-rotated.jsonl"))
            a.write_bytes(fresh_lines(fixtures, a.stem, 5))
            step("rotation")
            # truncated and rewritten in place, and truncated to nothing
            with open(b, "r+b") as fh:
                fh.truncate(0)
                fh.write(fresh_lines(fixtures, b.stem, 4))
            step("truncate and rewrite")
            with open(c, "r+b") as fh:
                fh.truncate(0)
            step("truncate to empty")
            with open(c, "ab") as fh:
                fh.write(fresh_lines(fixtures, c.stem, 3))
            step("append after truncation")
        finally:
            ship.send_signal(signal.SIGTERM)
            assert ship.wait(30) == 0
            log.close()
    try:
        assert_same(snapshot(warehouse), local_snapshot(tmp_path, wh=local))
    finally:
        local.close()


def test_state_file_survives_restart(tmp_path):
    path = tmp_path / "s.json"
    st = ShipState.load(path, server="http://x", host="h")
    assert st.cursors == {}
    from cclens.sources.transcripts import FileCursor

    st.cursors["/a.jsonl"] = FileCursor("/a.jsonl", "1:2", "ab", 2, 10, 10, 1.5, 3)
    st.save()
    again = ShipState.load(path, server="http://x", host="h")
    assert again.cursors == st.cursors
    assert ShipState.load(path, server="http://x", host="other").cursors == {}  # another host starts over
    path.write_text("{broken")
    from cclens.errors import ConfigError

    with pytest.raises(ConfigError, match="delete it"):
        ShipState.load(path, server="http://x", host="h")
    assert state_path("https://cclens.example.com:8443/").name == "cclens-example-com-8443.json"


def test_a_file_missing_for_one_pass_keeps_its_cursor(tmp_path, projects, fixtures):
    """A pass that walks while a transcript is moved aside and not yet recreated must not forget its
    cursor: the recreated file is then another file (a new generation), as a local ingest sees it."""
    a = projects / "-home-dev-repo" / "s1.jsonl"
    a.parent.mkdir(parents=True)
    a.write_bytes(fresh_lines(fixtures, "s1", 4))
    sent: list = []

    def send(body: bytes) -> dict:
        _, chunks, _ = decode_batch(body)
        sent.extend(chunks)
        return {"chunks": len(chunks)}

    state = ShipState.load(tmp_path / "state.json", server="http://x", host="h")
    ship_once(state, send)
    key = str(a)
    assert [c.generation for c in sent] == [1] and state.cursors[key].generation == 1
    rotated = a.with_name("s1-rotated.jsonl")
    a.rename(rotated)
    sent.clear()
    ship_once(state, send)  # the walk finds only the rotated copy
    assert [(c.path, c.generation) for c in sent] == [(str(rotated), 1)]
    assert key in state.cursors and key in state.gone
    again = ShipState.load(state.path, server="http://x", host="h")  # and it survives a restart
    assert again.gone == state.gone and key in again.cursors
    a.write_bytes(fresh_lines(fixtures, "s1", 3))
    sent.clear()
    ship_once(again, send)
    assert [(c.path, c.generation, c.start_offset) for c in sent] == [(key, 2, 0)]
    assert key not in again.gone


def test_cursors_of_files_gone_for_long_are_dropped(tmp_path):
    from datetime import datetime, timedelta, timezone

    from cclens.sources.transcripts import FileCursor

    st = ShipState(tmp_path / "s.json", "http://x", "h")
    for p in ("/a.jsonl", "/b.jsonl"):
        st.cursors[p] = FileCursor(p, "1:2", "ab", 1, 10, 10, 1.5, 3)
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    forget_gone(st, {"/b.jsonl"}, now=t0)
    assert set(st.cursors) == {"/a.jsonl", "/b.jsonl"} and set(st.gone) == {"/a.jsonl"}
    forget_gone(st, {"/b.jsonl"}, now=t0 + timedelta(days=GONE_KEEP_DAYS) - timedelta(seconds=1))
    assert "/a.jsonl" in st.cursors
    forget_gone(st, {"/b.jsonl"}, now=t0 + timedelta(days=GONE_KEEP_DAYS, seconds=1))
    assert set(st.cursors) == {"/b.jsonl"} and st.gone == {}
    st.gone["/b.jsonl"] = "not a time"  # a hand-edited state file does not stop the pass
    forget_gone(st, set(), now=t0)
    assert st.gone == {"/b.jsonl": t0.isoformat(timespec="seconds")}


def test_serve_tails_this_machines_transcripts_on_loopback(warehouse, db_path, projects, tmp_path, fixtures,
                                                           monkeypatch):
    monkeypatch.delenv("CCLENS_SERVER_WATCH_TRANSCRIPTS")
    generate(projects, target_bytes=200_000, seed=6)
    app = transcript_app(warehouse, db_path)
    assert app.state.transcript_tailer.interval > 0
    with ThreadServer(app):
        reader = app.state.writer.reader
        wait_until(lambda: reader().scalar("SELECT count(*) FROM transcript_file") == len(discover()),
                   what="the local tailer caught up")
        target = sorted(p for p in discover() if "/subagents/" not in str(p))[0]
        with open(target, "ab") as fh:
            fh.write(fresh_lines(fixtures, target.stem, 3))
        size = target.stat().st_size
        wait_until(lambda: reader().scalar("SELECT byte_offset FROM transcript_file WHERE path = ?",
                                           [str(target)]) == size, what="the appended lines")
    assert_same(snapshot(warehouse), local_snapshot(tmp_path))
    monkeypatch.setenv("CCLENS_SERVER_WATCH_TRANSCRIPTS", "0")
    assert not hasattr(transcript_app(warehouse, db_path).state, "transcript_tailer")
    monkeypatch.delenv("CCLENS_SERVER_WATCH_TRANSCRIPTS")
    remote = load_settings(db=db_path)
    remote.server_host = "0.0.0.0"
    assert not hasattr(create_app(remote, warehouse, router_modules=["transcripts_api"]).state, "transcript_tailer")


def test_collect_batch_keys_a_file_name_that_is_not_utf8_as_read_new_does(tmp_path):
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/s\xff.jsonl"))
    odd.write_bytes(fresh_lines(Path(__file__).parent / "fixtures", "s-odd", 2))
    cursors: dict = {}
    chunks, after, _ = collect_batch([odd], cursors)
    assert [c.path for c in chunks] == [str(tmp_path) + "/s\\xff.jsonl"]
    json.dumps([c.path for c in after])  # the state file can hold it
    cursors.update({c.path: c for c in after})
    assert collect_batch([odd], cursors) == ([], [], {})  # found again: nothing is sent twice
