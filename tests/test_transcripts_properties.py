"""Property tests: arbitrary input never crashes the ingester; any split of appends equals one ingest."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from cclens.sources.transcripts import Chunk, ingest_chunks, ingest_paths
from cclens.warehouse import open_warehouse

FIXTURE = Path(__file__).parent / "fixtures" / "transcript_main_session.jsonl"
REAL_LINES = FIXTURE.read_bytes().splitlines()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _mutated_record(data) -> bytes:
    """A real line with one field replaced by an arbitrary JSON value (wrong types, nulls, nesting)."""
    rec = json.loads(data.draw(st.sampled_from(REAL_LINES)))
    key = data.draw(st.sampled_from(sorted(rec) + ["message", "usage", "requestId"]))
    if key == "usage" and isinstance(rec.get("message"), dict):
        rec["message"]["usage"] = data.draw(json_values)
    else:
        rec[key] = data.draw(json_values)
    return json.dumps(rec).encode()


line_strategy = st.one_of(
    st.binary(max_size=200).filter(lambda b: b"\n" not in b),
    st.text(max_size=200).map(lambda s: s.replace("\n", " ").encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(REAL_LINES),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(line_strategy, min_size=1, max_size=25), data=st.data())
def test_arbitrary_lines_never_crash_and_are_all_accounted_for(lines, data):
    lines = lines + [_mutated_record(data) for _ in range(data.draw(st.integers(0, 5)))]
    payload = b"\n".join(lines) + b"\n"
    wh = open_warehouse(":memory:")
    try:
        stats = ingest_chunks(wh, [Chunk(path="/p/f.jsonl", file_id="1:1", head_hash=None, generation=1,
                                         start_offset=0, data=payload, size=len(payload))], host="h")
        nonblank = sum(1 for ln in lines if ln.strip(b" \t\r\n"))  # blank = spaces, tabs, CR, LF only
        landed = wh.scalar("SELECT count(*) FROM landing_transcript_line")
        distinct = wh.scalar("SELECT count(DISTINCT line_key) FROM landing_transcript_line")
        assert landed == distinct
        assert stats.quarantined <= nonblank
        # every non-blank line is either quarantined or landed (or a duplicate key of a landed line)
        assert landed + stats.quarantined <= nonblank
        assert wh.scalar("SELECT count(*) FROM quarantine") == stats.quarantined
        # token sums are never negative
        assert wh.scalar("SELECT count(*) FROM api_request WHERE least(input_tokens, output_tokens, "
                         "cache_creation_tokens, cache_read_tokens) < 0") == 0
    finally:
        wh.close()


def _snapshot(wh):
    req = wh.query("""SELECT request_key, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens,
                             ts, origin_offset FROM api_request ORDER BY request_key""")
    land = wh.query("SELECT line_key, byte_offset FROM landing_transcript_line ORDER BY line_key")
    q = wh.scalar("SELECT count(*) FROM quarantine")
    # a session's rows merge the aggregates of each run's lines with those of the lines landed before
    model = (wh.query("SELECT * EXCLUDE (transcript_path, updated_at) FROM session ORDER BY session_id"),
             wh.query("SELECT * FROM prompt ORDER BY prompt_id"),
             wh.query("SELECT * FROM tool_use ORDER BY tool_use_id"),
             wh.query("SELECT * FROM session_agent ORDER BY ALL"),
             wh.query("SELECT * FROM session_prompt ORDER BY ALL"))
    return req, land, q, model


CORPUS_LINES = REAL_LINES + [b'{"broken', b"", b"[1]"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(0, len(b"\n".join(CORPUS_LINES)) + 1), max_size=6))
def test_any_split_of_appends_equals_one_ingest(tmp_path_factory, cuts):
    payload = b"\n".join(CORPUS_LINES) + b"\n"
    base = tmp_path_factory.mktemp("split")
    whole, parts = base / "whole" / "s.jsonl", base / "parts" / "s.jsonl"
    whole.parent.mkdir()
    parts.parent.mkdir()
    whole.write_bytes(payload)
    once = open_warehouse(":memory:")
    ingest_paths(once, [whole.parent], host="h", include_defaults=False)
    inc = open_warehouse(":memory:")
    pos = 0
    for cut in sorted(set(cuts)) + [len(payload)]:
        with open(parts, "ab") as fh:
            fh.write(payload[pos:cut])
        pos = max(pos, cut)
        ingest_paths(inc, [parts.parent], host="h", include_defaults=False)
    ingest_paths(inc, [parts.parent], host="h", include_defaults=False)  # and once more: no change
    a, b = _snapshot(once), _snapshot(inc)
    assert a == b
    assert a[3][0] and a[3][0][0]["line_count"] > 0 and a[3][2]
    once.close()
    inc.close()
