"""Loading mechanics of the transcript source: the read-ahead thread, quarantine reasons with a single
pass per line, batching and segments, and the bulk-load settings being restored."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from cclens.sources.transcripts import ingest_paths
from cclens.sources.transcripts.load import prepared

FIXTURE = Path(__file__).parent / "fixtures" / "transcript_main_session.jsonl"


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cclens-transcript-reader"]


def test_read_ahead_yields_every_batch_in_order_with_its_scan():
    chunks = [[], [], []]  # empty batches still carry cursors; their tables have no rows
    got = list(prepared(iter([(c, [f"cursor{i}"], i) for i, c in enumerate(chunks)])))
    assert [g[0] for g in got] == [["cursor0"], ["cursor1"], ["cursor2"]]
    assert [g[1] for g in got] == [0, 1, 2]
    assert all(g[2].scanned.lines.num_rows == 0 and g[2].quarantine == [] for g in got)
    assert not _reader_threads()


def test_batches_read_by_either_thread_come_out_in_order(monkeypatch):
    """The consumer reads the scanner's next batch while it would wait for it (load._Feed); whoever
    reads, the batches are scanned and handed over in order, each once."""
    import time

    from cclens.sources.transcripts import load

    real = load.scan_batch

    def slow_scan(*args, **kwargs):
        time.sleep(0.05)  # a scan slower than a read: the consumer gets to read
        return real(*args, **kwargs)

    monkeypatch.setattr(load, "scan_batch", slow_scan)
    readers: list[str] = []

    def batches():
        for i in range(12):
            readers.append(threading.current_thread().name)
            yield [], [f"c{i}"], i

    got = [g[0] for g in prepared(batches())]
    assert got == [[f"c{i}"] for i in range(12)]
    assert "MainThread" in readers and "cclens-transcript-reader" in readers, readers
    assert not _reader_threads()


def test_read_ahead_raises_a_reading_error_in_the_consumer():
    def batches():
        yield [], ["c0"], 0
        raise OSError("disk went away")

    it = prepared(batches())
    assert next(it)[0] == ["c0"]
    with pytest.raises(OSError, match="disk went away"):
        next(it)
    assert not _reader_threads()


def test_read_ahead_thread_stops_when_the_consumer_fails():
    produced = []

    def batches():
        for i in range(1000):
            produced.append(i)
            yield [], [i], 0

    with pytest.raises(RuntimeError):
        for _ in prepared(batches()):
            raise RuntimeError("loading failed")
    assert not _reader_threads()
    assert len(produced) < 10  # it stopped reading ahead instead of draining the input


@pytest.mark.parametrize("line, reason", [
    (b'{"type": "assistant", "message": {', "invalid JSON"),
    (b"null", "not a JSON object"),
    (b"[1, 2]", "not a JSON object"),
    (b'"just a string"', "not a JSON object"),
    (b"  \t", None),                       # blank: skipped, not quarantined
    (b' \t{"type": "some-future-record", "uuid": "u-1", "sessionId": "s"}', None),  # leading spaces are fine
])
def test_each_line_is_classified_once(warehouse, tmp_path, line, reason):
    f = tmp_path / "s.jsonl"
    f.write_bytes(line + b"\n")
    stats = ingest_paths(warehouse, [f], host="h", include_defaults=False)
    rows = warehouse.query("SELECT reason, byte_offset FROM quarantine")
    landed = warehouse.scalar("SELECT count(*) FROM landing_transcript_line")
    if reason is None:
        assert rows == [] and stats.quarantined == 0
        assert landed == (0 if not line.strip() else 1)
    else:
        assert rows == [{"reason": reason, "byte_offset": 0}] and stats.quarantined == 1
        assert landed == 0


def test_small_batches_give_the_same_result_and_settings_are_restored(warehouse, tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    for i in range(4):
        (root / f"s{i}.jsonl").write_bytes(FIXTURE.read_bytes())
    before = warehouse.query("SELECT current_setting('threads') AS t, current_setting('memory_limit') AS m")
    stats = ingest_paths(warehouse, [root], host="h", include_defaults=False, batch_bytes=4096)
    after = warehouse.query("SELECT current_setting('threads') AS t, current_setting('memory_limit') AS m")
    assert after == before
    # four copies of one session: every line lands once, every request counts once
    assert stats.files == 4
    assert warehouse.scalar("SELECT sum(output_tokens) FROM api_request") == 120
    assert warehouse.scalar("SELECT count(*) FROM landing_transcript_line") == \
        len([x for x in FIXTURE.read_bytes().splitlines() if x.strip()])


def _tables(wh) -> dict[str, list]:
    """Every transcript-fed table, ordered, without the columns that say when or in which run."""
    return {
        "landing": wh.query("SELECT * EXCLUDE (run_id, ingested_at) FROM landing_transcript_line ORDER BY line_key"),
        "api_request": wh.query("SELECT * EXCLUDE (updated_at) FROM api_request ORDER BY request_key"),
        "session": wh.query("SELECT * EXCLUDE (updated_at) FROM session ORDER BY session_id"),
        "session_agent": wh.query("SELECT * FROM session_agent ORDER BY ALL"),
        "session_prompt": wh.query("SELECT * FROM session_prompt ORDER BY ALL"),
        "prompt": wh.query("SELECT * FROM prompt ORDER BY prompt_id"),
        "tool_use": wh.query("SELECT * FROM tool_use ORDER BY tool_use_id"),
        "quarantine": wh.query("SELECT source, origin, byte_offset, reason, raw FROM quarantine ORDER BY origin, byte_offset"),
    }


def test_any_batching_gives_the_same_warehouse(tmp_path):
    """Batches (what is read and scanned at a time) and segments (what commits together) are only
    performance knobs: one big segment, many small segments and one-file batches end identical."""
    from cclens.synth.transcripts import generate
    from cclens.warehouse import open_warehouse

    generate(tmp_path / "projects", target_bytes=400_000, seed=11, days=3)
    results = []
    for name, kw in {"one segment": {}, "small batches": {"batch_bytes": 20_000},
                     "small segments": {"batch_bytes": 20_000, "segment_bytes": 50_000}}.items():
        wh = open_warehouse(tmp_path / f"{name}.duckdb")
        stats = ingest_paths(wh, [tmp_path / "projects"], host="h", include_defaults=False, **kw)
        results.append((stats.new_lines, stats.new_requests, stats.quarantined, _tables(wh)))
        wh.close()
    assert results[0][3]["api_request"] and results[0][3]["tool_use"] and results[0][3]["quarantine"]
    assert results[1] == results[0] and results[2] == results[0]


def test_reading_ahead_of_a_new_warehouse_gives_the_same_warehouse_and_is_dropped_when_it_has_cursors(tmp_path):
    """A first ingest starts reading before the warehouse is open (ingest.read_ahead). Its warehouse
    equals a planned ingest's; a warehouse that turns out to have cursors (another process made it
    meanwhile) ignores what was read ahead and plans, so nothing is read or counted twice."""
    from cclens.sources.transcripts.files import scan
    from cclens.sources.transcripts.ingest import read_ahead
    from cclens.synth.transcripts import generate
    from cclens.warehouse import open_warehouse

    projects = tmp_path / "projects"
    generate(projects, target_bytes=300_000, seed=5, days=2)
    planned = open_warehouse(tmp_path / "planned.duckdb")
    expected = ingest_paths(planned, [projects], host="h", include_defaults=False)

    ahead = read_ahead(scan([projects], include_defaults=False))
    assert _reader_threads()  # reading already, before any warehouse is open
    fresh = open_warehouse(tmp_path / "ahead.duckdb")
    got = ingest_paths(fresh, [projects], host="h", include_defaults=False, ahead=ahead)
    assert (got.files, got.lines, got.new_lines, got.new_requests, got.quarantined) == (
        expected.files, expected.lines, expected.new_lines, expected.new_requests, expected.quarantined)
    assert _tables(fresh) == _tables(planned)
    assert not _reader_threads()

    with open(next(projects.rglob("*.jsonl")), "ab") as fh:  # one more line where cursors exist
        fh.write(FIXTURE.read_bytes().splitlines(keepends=True)[1])
    stale = read_ahead(scan([projects], include_defaults=False))  # as if the file had not existed
    again = ingest_paths(fresh, [projects], host="h", include_defaults=False, ahead=stale)
    assert (again.files, again.new_lines) == (1, 1)  # planned from the cursors: only the new line
    assert not _reader_threads()
    fresh.close()
    planned.close()


def test_requests_ranked_by_the_scanner_or_in_sql_give_the_same_warehouse(tmp_path, monkeypatch):
    """The scanner marks each request's best line per batch; a batch it cannot mark (a timestamp only
    DuckDB's cast reads, here one without a zone) is ranked in SQL. Both give the same rows."""
    from cclens.sources.transcripts import load
    from cclens.synth.transcripts import generate
    from cclens.warehouse import open_warehouse

    generate(tmp_path / "projects", target_bytes=400_000, seed=13, days=3)
    odd = tmp_path / "projects" / "odd" / "s.jsonl"
    odd.parent.mkdir()
    reply = {"type": "assistant", "sessionId": "odd", "requestId": "r-odd", "message": {"id": "m-odd",
             "model": "claude-sonnet-4-5", "usage": {"input_tokens": 3, "output_tokens": 1}}}
    odd.write_text("\n".join(json.dumps({**reply, "uuid": f"u{i}", "timestamp": t, "message": {
        **reply["message"], "usage": {"input_tokens": 3, "output_tokens": n}}})
        for i, (t, n) in enumerate([("2026-10-02 10:00:00", 1), ("2026-10-02T09:00:00+02:00", 4),
                                   ("2026-10-02 11:00:00", 4)])) + "\n")
    results = []
    for marked, native in ((True, True), (True, False), (False, False)):
        monkeypatch.setattr(load, "MARKED_REQUESTS", marked)
        monkeypatch.setattr(load, "NATIVE_PARTS", native)
        wh = open_warehouse(tmp_path / f"{marked}-{native}.duckdb")
        wh.execute("SET TimeZone = 'UTC'")
        ingest_paths(wh, [tmp_path / "projects"], host="h", include_defaults=False, batch_bytes=100_000)
        results.append(_tables(wh))
        wh.close()
    assert results[0]["api_request"] and results[1] == results[0] and results[2] == results[0]
    odd_row = [r for r in results[0]["api_request"] if r["request_key"] == "r-odd"]
    assert odd_row[0]["output_tokens"] == 4 and str(odd_row[0]["ts"]).startswith("2026-10-02 07:00:00")


def test_nothing_reads_a_scan_after_it_is_released(tmp_path, monkeypatch):
    """A segment frees each batch's scanned buffers once its statements ran (DuckDB would keep them to
    the end of the transaction). Overwritten before they are freed, they must leave the warehouse as
    it is without: nothing stored still pointed into them."""
    from cclens.sources.transcripts import load
    from cclens.sources.transcripts.scan import native_available
    from cclens.synth.transcripts import generate
    from cclens.warehouse import open_warehouse

    if not native_available():
        pytest.skip("the reference scanner's tables are pyarrow's and are not released")
    generate(tmp_path / "projects", target_bytes=400_000, seed=12, days=3)
    results = []
    for poison in (False, True):
        monkeypatch.setattr(load, "POISON_RELEASED", poison)
        wh = open_warehouse(tmp_path / f"{poison}.duckdb")
        ingest_paths(wh, [tmp_path / "projects"], host="h", include_defaults=False, batch_bytes=50_000)
        results.append(_tables(wh))
        wh.close()
    assert results[0]["landing"] and results[1] == results[0]


def test_a_line_without_uuid_lands_once_from_any_file_and_run(warehouse, tmp_path):
    """Its key is the hash of the line: the same line in two files, read in one run or in two, lands once."""
    import hashlib

    line = b'{"type":"summary","summary":"s","leafUuid":"x","sessionId":"s1"}\n'
    files = [tmp_path / d / "s.jsonl" for d in ("a", "b", "c")]
    for f in files:
        f.parent.mkdir()
        f.write_bytes(line)
    ingest_paths(warehouse, files[:2], host="h", include_defaults=False)   # two copies in one batch
    ingest_paths(warehouse, files[2:], host="h", include_defaults=False)   # and one in a later run
    rows = warehouse.query("SELECT line_key, path FROM landing_transcript_line")
    assert rows == [{"line_key": "s1:h:" + hashlib.md5(line).hexdigest(), "path": str(files[0])}]


def test_landing_copy_loses_content_but_gains_no_keys(warehouse, tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_text("\n".join([
        '{"type":"user","uuid":"u1","sessionId":"s","message":{"role":"user","content":"secret prompt"}}',
        '{"type":"z","uuid":"u2","sessionId":"s","keep":{"a":1}}',
        '{"type":"attachment","uuid":"u3","sessionId":"s","attachment":{"type":"file","content":"body","path":"/a"}}',
        '{"type":"x","uuid":"u4","sessionId":"s","message":"a secret string"}',
    ]) + "\n")
    ingest_paths(warehouse, [f], host="h", include_defaults=False)
    raw = {r["line_uuid"]: r["raw"] for r in warehouse.query("SELECT line_uuid, raw FROM landing_transcript_line")}
    assert raw["u1"] == '{"type":"user","uuid":"u1","sessionId":"s","message":{"role":"user"}}'
    assert raw["u2"] == '{"type":"z","uuid":"u2","sessionId":"s","keep":{"a":1}}'  # no message/attachment added
    assert raw["u3"] == '{"type":"attachment","uuid":"u3","sessionId":"s","attachment":{"type":"file","path":"/a"}}'
    assert "secret" not in raw["u4"]


def test_landing_reads_its_fields_as_the_scanner_does_and_an_older_warehouse_upgrades(tmp_path):
    """Since v3 the landing columns that restate a field (cwd, agent_id, …) are read from the landing
    copy by the landing_transcript_line view: for every line they equal what the scanner read, and a
    v1 warehouse (every column stored in one table) upgrades through v2 (zstd) and v3 to the same rows."""
    from cclens.sources.transcripts.scan import scan
    from cclens.synth.transcripts import generate
    from cclens.warehouse import open_warehouse
    from cclens.warehouse.migrations import registered, split_statements
    from cclens.warehouse.schema.transcripts import LANDING_STORED

    generate(tmp_path / "projects", target_bytes=600_000, seed=5, days=2)
    files = sorted((tmp_path / "projects").rglob("*.jsonl")) + [FIXTURE]
    db = tmp_path / "w.duckdb"
    wh = open_warehouse(db)
    ingest_paths(wh, files, host="h", include_defaults=False)
    scanned = scan([f.read_bytes() for f in files], False, [(str(f), 1, 0) for f in files])
    wh.register("_scanned", scanned.lines)
    derived = "subtype, line_uuid, agent_id, is_sidechain, cwd, git_branch, version, entrypoint, prompt_id"
    mismatched = wh.query(f"""
        SELECT l.line_key FROM landing_transcript_line l JOIN _scanned s USING (line_key)
        WHERE ({", ".join("l." + c for c in derived.split(", "))}) IS DISTINCT FROM (s.subtype, s.uuid, s.agent_id, s.is_sidechain, s.cwd, s.git_branch,
                                            s.version, s.entrypoint, s.prompt_id)""")
    checked = wh.scalar("SELECT count(*) FROM landing_transcript_line l JOIN _scanned s USING (line_key)")
    assert mismatched == [] and checked == wh.scalar("SELECT count(*) FROM landing_transcript_line") > 150
    assert wh.scalar("SELECT count(DISTINCT cwd) FROM landing_transcript_line") > 1

    # the same rows in the table as it was in v1 (every column stored, default compression), only v1 recorded
    before = wh.query("SELECT * FROM landing_transcript_line ORDER BY line_key")
    wh.execute("CREATE TABLE old AS SELECT * FROM landing_transcript_line")
    wh.execute("DROP VIEW landing_transcript_line")
    wh.execute("DROP TABLE landing_transcript_line_stored")
    for stmt in split_statements(registered()["transcripts"][0]):
        wh.execute(stmt)
    wh.execute("INSERT INTO landing_transcript_line SELECT * FROM old")
    wh.execute("DROP TABLE old")
    wh.execute("DELETE FROM schema_migrations WHERE component = 'transcripts' AND version > 1")
    wh.unregister("_scanned")
    wh.close()
    wh = open_warehouse(db)  # runs v2 (zstd) and v3 (slim table and view)
    try:
        assert wh.query("SELECT * FROM landing_transcript_line ORDER BY line_key") == before
        stored = wh.query("SELECT column_name, is_nullable FROM duckdb_columns() "
                          "WHERE table_name = 'landing_transcript_line_stored' ORDER BY column_index")
        assert [c["column_name"] for c in stored] == LANDING_STORED.split(", ")
        assert {c["column_name"] for c in stored if not c["is_nullable"]} == {
            "line_key", "host", "path", "generation", "byte_offset", "byte_length", "ingested_at"}
        wh.checkpoint()
        assert {r["compression"] for r in wh.query(
            "SELECT DISTINCT compression FROM pragma_storage_info('landing_transcript_line_stored') "
            "WHERE column_name = 'raw' AND segment_type <> 'VALIDITY'")} == {"ZSTD"}
    finally:
        wh.close()


def test_appends_to_sessions_of_an_older_warehouse_merge_as_one_ingest(tmp_path):
    """Appending to a session merges the new lines into its ``session`` row, whose ranking timestamps
    and distinct subagents and prompts are kept (model v3), without reading its landed lines back. A
    warehouse made before that gets them from its landed lines on open (transcripts v4); appends to
    its sessions then give the warehouse one ingest of everything gives."""
    from cclens.synth.transcripts import generate
    from cclens.warehouse import open_warehouse

    generate(tmp_path / "all" / "projects", target_bytes=300_000, seed=8, days=3)
    files = sorted((tmp_path / "all").rglob("*.jsonl"))
    halves = []
    for f in files:  # every file cut in two at a line end: the second half appends to its sessions
        data = f.read_bytes()
        cut = data.rfind(b"\n", 0, len(data) // 2) + 1
        halves.append((tmp_path / "inc" / f.relative_to(tmp_path / "all"), data[:cut], data[cut:]))
    for target, first, _ in halves:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(first)
    inc = tmp_path / "inc.duckdb"
    wh = open_warehouse(inc)
    ingest_paths(wh, [tmp_path / "inc"], host="h", include_defaults=False)
    state = _tables(wh)
    assert any(a["session_id"] for a in state["session_agent"]) and state["session_prompt"]
    # as a warehouse from before model v3 and transcripts v4 is: no merge state at all
    wh.execute("ALTER TABLE session DROP COLUMN cwd_ts; ALTER TABLE session DROP COLUMN branch_ts; "
               "ALTER TABLE session DROP COLUMN entrypoint_ts; DROP TABLE session_agent; DROP TABLE session_prompt")
    wh.execute("DELETE FROM schema_migrations WHERE (component, version) IN (('model', 3), ('transcripts', 4))")
    wh.close()
    wh = open_warehouse(inc)  # the upgrade reads the state back from landing, once
    assert _tables(wh) == state
    for target, _, rest in halves:
        with open(target, "ab") as fh:
            fh.write(rest)
    ingest_paths(wh, [tmp_path / "inc"], host="h", include_defaults=False)
    whole = open_warehouse(tmp_path / "whole.duckdb")
    ingest_paths(whole, [tmp_path / "all"], host="h", include_defaults=False)
    got, want = _tables(wh), _tables(whole)
    for rows in (got, want):  # the two corpora live in different folders
        for r in rows["session"]:
            r["transcript_path"] = r["transcript_path"] and r["transcript_path"].split("projects/")[1]
        for r in rows["landing"] + rows["api_request"] + rows["tool_use"] + rows["prompt"]:
            for key in ("path", "origin_path"):
                if r.get(key):
                    r[key] = r[key].split("projects/")[1]
        for r in rows["quarantine"]:
            r["origin"] = r["origin"].split("projects/")[1]
    assert got["session"] and {r["line_count"] for r in got["session"]} != {None}
    for name in want:
        assert got[name] == want[name], name
    wh.close()
    whole.close()


def _odd_lines() -> list[dict]:
    """Lines that exercise every rule of the per-batch reduction: sessions whose fields come and go,
    equal timestamps, missing or unreadable ones, subagents, sidechains, prompts of every content
    kind, meta lines and compaction summaries, tool uses and results, copies of a line."""
    base = {"sessionId": "s-odd", "cwd": "/a", "gitBranch": "main", "version": "2.1.9", "entrypoint": "cli"}
    out = []
    for i, extra in enumerate([
        {"type": "user", "timestamp": "2026-10-02T10:00:00Z", "message": {"role": "user", "content": "hi"},
         "promptId": "p1"},
        {"type": "user", "timestamp": "2026-10-02T10:00:00Z", "cwd": "/b", "gitBranch": "dev", "version": "2.1.10",
         "entrypoint": "sdk", "message": {"role": "user", "content": [{"type": "text", "text": "x"}]}},
        {"type": "user", "timestamp": "2026-10-02T09:59:59Z", "cwd": None, "isMeta": True,
         "message": {"role": "user", "content": "meta"}},
        {"type": "user", "isCompactSummary": True, "timestamp": "2026-10-02T10:01:00Z",
         "message": {"role": "user", "content": "summary"}},
        {"type": "user", "timestamp": "2026-10-02T10:02:00Z", "message": {"role": "user", "content": {"odd": 1}}},
        {"type": "user", "timestamp": "2026-10-02T10:03:00Z", "promptId": "p2",
         "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True},
                                                   {"type": "tool_result", "tool_use_id": "t2"}]}},
        {"type": "assistant", "timestamp": "2026-10-02T10:02:30Z", "requestId": "r1", "agentId": "ag1",
         "isSidechain": True, "message": {"id": "m1", "model": "claude-sonnet-4-5",
         "usage": {"input_tokens": 5, "output_tokens": 2}, "content": [
             {"type": "tool_use", "id": "t1", "name": "Bash"}, {"type": "tool_use", "name": "NoId"},
             {"type": "tool_use", "id": "t2", "name": "Read"}]}},
        {"type": "assistant", "timestamp": "2026-10-02T10:02:31Z", "message": {"id": "m2", "model": "claude-opus-4-5",
         "usage": {"input_tokens": 1, "cache_read_input_tokens": 7}}, "version": "2.0.99"},
        {"type": "assistant", "timestamp": "2026-10-02T10:02:31Z", "agentId": "ag2",
         "message": {"id": "m3", "model": "claude-opus-4-5", "usage": {"output_tokens": 9}}},
        {"type": "system", "subtype": "x", "cwd": "/c"},
        {"type": "summary", "sessionId": None, "summary": "no session"},
        {"type": "user", "sessionId": "s-two", "timestamp": "2026-10-03T00:00:00Z",
         "message": {"role": "user", "content": "other session"}, "agentId": "ag9"},
    ]):
        line = {**base, "uuid": f"u{i}", **extra}
        out.append({k: v for k, v in line.items() if v is not None or k == "cwd"})
    return out


def test_the_scanners_parts_equal_the_sql_reduction(tmp_path):
    """reduce.c makes, per batch, the rows load._reduce's SQL makes from the batch's new lines; a batch
    the scanner says it reduced exactly (parts_exact) must give identical part tables both ways."""
    from cclens.sources.transcripts import load
    from cclens.sources.transcripts.files import discover
    from cclens.sources.transcripts.ingest import _read_batches
    from cclens.sources.transcripts.scan import key_set, native_available
    from cclens.synth.transcripts import generate
    from cclens.warehouse import arrow_streams, open_warehouse

    if not native_available():
        pytest.skip("the parts are the C scanner's")
    generate(tmp_path / "projects", target_bytes=600_000, seed=21, days=3)
    odd = tmp_path / "projects" / "odd" / "s.jsonl"
    odd.parent.mkdir()
    lines = [json.dumps(x) for x in _odd_lines()]
    odd.write_text("\n".join(lines + lines[:3]) + "\n")  # the copies at the end are not new
    files = discover([tmp_path / "projects"], include_defaults=False)
    wh = open_warehouse(tmp_path / "wh.duckdb")
    wh.execute("SET threads = 1")  # as bulk_load: ties go to the first line in both
    seen = key_set()
    compared = 0
    for content in (False, True):
        for chunks, _, _ in _read_batches([(f, None) for f in files], 150_000, []):
            batch = load.scan_batch(chunks, content, seen)
            scanned = batch.scanned
            arrow_streams.enable(scanned.lines)
            if not (scanned.requests_exact and scanned.parts_exact):
                continue
            wh.register("_tl_lines", scanned.lines)
            wh.register("_tl_blocks", scanned.blocks)
            got = {}
            for way in ("sql", "native"):
                with wh.transaction():
                    if way == "sql":
                        load._reduce(wh, load._new_lines("_tl_lines", 3, False), 3, content, marked=True, first=True)
                    else:
                        load._reduce_native(wh, scanned.parts, 3, content, first=True)
                    got[way] = {t: wh.rows(f"SELECT * FROM {t} ORDER BY ALL", []) for t in load._PARTS}
                    wh.execute("; ".join(f"DROP TABLE {t}" for t in load._PARTS))
            wh.unregister("_tl_lines")
            wh.unregister("_tl_blocks")
            for t in load._PARTS:
                assert got["native"][t] == got["sql"][t], t
            compared += 1
            assert sum(len(v) for v in got["sql"].values()) > 0
        seen = key_set()  # the second pass, with content: every line new again
    assert compared >= 4
    wh.close()


def test_a_batch_with_a_timestamp_the_scanner_cannot_read_is_reduced_in_sql():
    from cclens.sources.transcripts.scan import native_available, scan

    if not native_available():
        pytest.skip("the parts are the C scanner's")
    good = json.dumps({"type": "user", "sessionId": "s", "uuid": "a", "timestamp": "2026-10-02T10:00:00Z"})
    odd = json.dumps({"type": "user", "sessionId": "s", "uuid": "b", "timestamp": "2026-10-02 10:00:00"})
    assert scan([(good + "\n").encode()]).parts_exact
    assert not scan([(good + "\n" + odd + "\n").encode()]).parts_exact
    assert scan([(good + "\n" + json.dumps({"type": "user", "uuid": "c", "timestamp": 5}) + "\n").encode()]
                ).parts_exact is False  # a number: text the scanner does not read as a time
