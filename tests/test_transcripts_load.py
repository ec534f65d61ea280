"""Loading mechanics of the transcript source: the read-ahead thread, quarantine reasons with a single
parse per line, batching, and the bulk-load settings being restored."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cclens.sources.transcripts import ingest_paths
from cclens.sources.transcripts.load import prepared

FIXTURE = Path(__file__).parent / "fixtures" / "transcript_main_session.jsonl"


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cclens-transcript-reader"]


def test_read_ahead_yields_every_batch_in_order_with_its_table():
    chunks = [[], [], []]  # empty batches still carry cursors; their table has no rows
    got = list(prepared(iter([(c, [f"cursor{i}"], i) for i, c in enumerate(chunks)])))
    assert [g[1] for g in got] == [["cursor0"], ["cursor1"], ["cursor2"]]
    assert all(g[3]["txt"] == [] for g in got)  # small batches are plain lists
    assert not _reader_threads()


def test_read_ahead_raises_a_reading_error_in_the_consumer():
    def batches():
        yield [], ["c0"], 0
        raise OSError("disk went away")

    it = prepared(batches())
    assert next(it)[1] == ["c0"]
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


def test_small_and_large_batches_give_identical_input(tmp_path):
    """Small batches go to DuckDB as lists, large ones as Arrow; line keys hash the text, so both must
    produce exactly the same rows (a line seen once in each form must land once)."""
    from cclens.sources.transcripts.files import read_new
    from cclens.sources.transcripts.load import _batch_lists, _batch_table

    f = tmp_path / "s.jsonl"
    f.write_bytes(FIXTURE.read_bytes() + b'{"a":\n' + b"\xff\xfe x\n" + b"\n" + b"42\n" + b'{"type":"x"}\r\n')
    chunk, _ = read_new(f, None)
    lists = _batch_lists([chunk])
    assert _batch_table([chunk]).to_pylist() == [dict(zip(lists, row)) for row in zip(*lists.values())]


def test_a_line_without_uuid_lands_once_whichever_batch_form_reads_it(warehouse, tmp_path, monkeypatch):
    from cclens.sources.transcripts import load

    line = b'{"type":"summary","summary":"s","leafUuid":"x","sessionId":"s1"}\n'
    a, b = tmp_path / "a" / "s.jsonl", tmp_path / "b" / "s.jsonl"
    for f in (a, b):
        f.parent.mkdir()
        f.write_bytes(line)
    ingest_paths(warehouse, [a], host="h", include_defaults=False)           # lists
    monkeypatch.setattr(load, "SMALL_BATCH_BYTES", 0)
    ingest_paths(warehouse, [b], host="h", include_defaults=False)           # Arrow
    assert warehouse.scalar("SELECT count(*) FROM landing_transcript_line") == 1


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


def test_an_older_warehouse_keeps_its_landing_rows_when_raw_moves_to_zstd(tmp_path):
    """Migration transcripts v2 rebuilds the landing table from its live definition: same columns, same
    NOT NULLs, same rows, and the landing copy stored zstd-compressed."""
    from cclens.warehouse import open_warehouse

    db = tmp_path / "w.duckdb"
    wh = open_warehouse(db)
    ingest_paths(wh, [FIXTURE], host="h", include_defaults=False)
    before = wh.query("SELECT * FROM landing_transcript_line ORDER BY line_key")
    columns = wh.query("SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
                       "WHERE table_name = 'landing_transcript_line' ORDER BY column_index")
    # back to the v1 table (default compression) with the same rows, and only v1 recorded
    from cclens.warehouse.migrations import registered, split_statements

    wh.execute("CREATE TABLE old AS SELECT * FROM landing_transcript_line")
    wh.execute("DROP TABLE landing_transcript_line")
    for stmt in split_statements(registered()["transcripts"][0]):
        wh.execute(stmt)
    wh.execute("INSERT INTO landing_transcript_line SELECT * FROM old")
    wh.execute("DROP TABLE old")
    wh.execute("DELETE FROM schema_migrations WHERE component = 'transcripts' AND version = 2")
    wh.close()

    wh = open_warehouse(db)  # runs v2 again
    assert wh.query("SELECT * FROM landing_transcript_line ORDER BY line_key") == before
    wh.checkpoint()
    after = wh.query("SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
                     "WHERE table_name = 'landing_transcript_line' ORDER BY column_index")
    compression = {r["compression"] for r in wh.query(
        "SELECT DISTINCT compression FROM pragma_storage_info('landing_transcript_line') "
        "WHERE column_name = 'raw' AND segment_type <> 'VALIDITY'")}
    wh.close()
    assert [c["is_nullable"] for c in after if c["column_name"] == "line_key"] == [False]
    assert len(after) == len(columns) and [c["column_name"] for c in after] == [c["column_name"] for c in columns]
    assert compression == {"ZSTD"}
