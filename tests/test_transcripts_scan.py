"""The line scanner: the C scanner and the Python reference give the same tables, and both follow the
rules of ``cclens.sources.transcripts.scan`` as checked by a third reading of them built on Python's
own ``json`` module (the *oracle* below), on real captures, a synthetic corpus and generated lines."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cclens.sources.transcripts.scan import (BLOCK_COLUMNS, BLOCK_TOOL_RESULT, BLOCK_TOOL_USE, LINE_COLUMNS,
                                             key_set, native_available, scan)
from cclens.synth.transcripts import generate

FIXTURE = Path(__file__).parent / "fixtures" / "transcript_main_session.jsonl"


def lines_of(data: bytes) -> list[bytes]:
    """The lines of ``data`` as the scanner cuts them: at each newline, none after a final one."""
    lines = data.split(b"\n")
    if not data or data.endswith(b"\n"):
        lines.pop()
    return lines


REAL_LINES = lines_of(FIXTURE.read_bytes())
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_PROPERTY = settings(PROPERTY, max_examples=80)  # generating a shaped line costs more than scanning it


# ---- running both scanners -----------------------------------------------------------------------

@dataclass
class Result:
    lines: list[dict]
    blocks: list[dict]
    bad: list[tuple]
    total_lines: int
    blank_lines: int


def assert_tables_equal(c: pa.Table, ref: pa.Table, what: str) -> None:
    assert c.schema.equals(ref.schema, check_metadata=True), f"{what} schema:\nC: {c.schema}\nreference: {ref.schema}"
    if c.equals(ref):
        return
    for i, (a, b) in enumerate(zip(c.to_pylist(), ref.to_pylist())):
        diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
        assert not diff, f"{what} row {i} differs (C, reference): {diff}"
    assert c.num_rows == ref.num_rows, f"{what}: {c.num_rows} rows in C, {ref.num_rows} in the reference"


class KeySets:
    """A run's key set for each scanner."""

    def __init__(self):
        self.c, self.reference = key_set(), key_set(reference=True)


def scan_both(chunks: list[bytes], capture: bool = False, origins=None, seen: KeySets | None = None) -> Result:
    """Scan with the C scanner and the reference, check they agree exactly, return the rows."""
    ref = scan(chunks, capture, origins, seen and seen.reference, reference=True)
    if native_available():
        c = scan(chunks, capture, origins, seen and seen.c)
        assert_tables_equal(pa.table(c.lines), ref.lines, "lines")
        assert_tables_equal(pa.table(c.blocks), ref.blocks, "blocks")
        assert c.bad() == ref.bad()
        assert (c.total_lines, c.blank_lines) == (ref.total_lines, ref.blank_lines)
    return Result(ref.lines.to_pylist(), ref.blocks.to_pylist(), ref.bad(), ref.total_lines, ref.blank_lines)


# ---- the oracle: the rules read off Python's json module ------------------------------------------

class Obj(list):
    """A JSON object as its (key, value) pairs, in order, duplicates kept."""


@dataclass(frozen=True)
class Num:
    text: str  # the literal
    integer: bool


MISSING = object()


def _reject(constant):
    raise ValueError(f"{constant} is not JSON")


def loads(text: str):
    return json.loads(text, object_pairs_hook=Obj, parse_int=lambda s: Num(s, True),
                      parse_float=lambda s: Num(s, False), parse_constant=_reject)


def expected_status(line: bytes) -> int:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return 1
    try:
        value = loads(text)
    except ValueError:
        return 2
    return 0 if isinstance(value, Obj) else 3


def get(obj, key):
    """First wins, as the rules say (``json.loads`` would keep the last)."""
    if not isinstance(obj, Obj):
        return MISSING
    return next((v for k, v in obj if k == key), MISSING)


def is_array(value) -> bool:
    return isinstance(value, list) and not isinstance(value, Obj)


def obj(value):
    return value if isinstance(value, Obj) else MISSING


def no_surrogates(s: str) -> str:
    return re.sub("[\ud800-\udfff]", "\ufffd", s)


def text(v):
    if isinstance(v, str):
        return no_surrogates(v)
    if isinstance(v, Num):
        return v.text
    return {True: "true", False: "false"}.get(v) if isinstance(v, bool) else None


def boolean(v):
    return v if isinstance(v, bool) else None


def count(v):
    if not isinstance(v, Num) or not v.integer or len(v.text) > 20:
        return None
    n = int(v.text)
    return n if -(2**63) <= n < 2**63 else None


def first_text(*values):
    return next((t for t in map(text, values) if t is not None), None)


def expected_envelope(root: Obj) -> tuple[dict, list[dict]]:
    message, attachment = obj(get(root, "message")), obj(get(root, "attachment"))
    usage = obj(get(message, "usage"))
    cache = obj(get(usage, "cache_creation"))
    content = get(message, "content")
    blocks = []
    for block in content if is_array(content) else []:
        kind = {"tool_use": BLOCK_TOOL_USE, "tool_result": BLOCK_TOOL_RESULT}.get(get(block, "type")) \
            if isinstance(get(block, "type"), str) else None
        if kind:
            blocks.append({"kind": kind, "id": text(get(block, "id" if kind == BLOCK_TOOL_USE else "tool_use_id")),
                           "name": text(get(block, "name")), "is_error": boolean(get(block, "is_error"))})
    if content is MISSING or content is None:
        content_kind = 0
    elif isinstance(content, str):
        content_kind = 1
    else:
        content_kind = 2 if is_array(content) else 3
    fields = {
        "type": text(get(root, "type")),
        "subtype": first_text(get(attachment, "type"), get(root, "subtype"), get(root, "operation")),
        "session_id": first_text(get(root, "sessionId"), get(root, "session_id")),
        "uuid": text(get(root, "uuid")), "timestamp": text(get(root, "timestamp")),
        "agent_id": text(get(root, "agentId")), "cwd": text(get(root, "cwd")),
        "git_branch": text(get(root, "gitBranch")), "version": text(get(root, "version")),
        "entrypoint": text(get(root, "entrypoint")), "prompt_id": text(get(root, "promptId")),
        "request_id": text(get(root, "requestId")),
        "message_id": text(get(message, "id")), "model": text(get(message, "model")),
        "speed": text(get(usage, "speed")), "service_tier": text(get(usage, "service_tier")),
        "is_sidechain": boolean(get(root, "isSidechain")), "is_api_error": boolean(get(root, "isApiErrorMessage")),
        "is_meta": boolean(get(root, "isMeta")), "is_compact_summary": boolean(get(root, "isCompactSummary")),
        "has_usage": usage is not MISSING,
        "input_tokens": count(get(usage, "input_tokens")), "output_tokens": count(get(usage, "output_tokens")),
        "cache_creation_tokens": count(get(usage, "cache_creation_input_tokens")),
        "cache_read_tokens": count(get(usage, "cache_read_input_tokens")),
        "cache_creation_5m_tokens": count(get(cache, "ephemeral_5m_input_tokens")),
        "cache_creation_1h_tokens": count(get(cache, "ephemeral_1h_input_tokens")),
        "content_kind": content_kind,
        "prompt_chars": len(content) if content_kind == 1 else None,  # json: a lone surrogate is one
        "has_tool_result": any(b["kind"] == BLOCK_TOOL_RESULT for b in blocks),
    }
    return fields, blocks


TOP_STRIPPED = {"content", "lastPrompt", "summary", "snapshot"}
NESTED_STRIPPED = {"message": {"content"},
                   "attachment": {"content", "stdout", "stderr", "addedLines", "prompt", "file", "snippet"}}


def expected_landing(root: Obj) -> Obj:
    """The landing copy as parsed: ``root`` without its content. Compared as pair lists, so the members
    kept, their order and their duplicates all count (stricter than comparing first-wins dicts)."""
    out = Obj()
    for key, value in root:
        if key in TOP_STRIPPED:
            continue
        if key in NESTED_STRIPPED:
            if isinstance(value, Obj):
                out.append((key, Obj((k, v) for k, v in value if k not in NESTED_STRIPPED[key])))
        elif key == "toolUseResult":
            git = get(value, "gitOperation")
            if git is not MISSING and git is not None:
                out.append((key, Obj([("gitOperation", git)])))
        else:
            out.append((key, value))
    return out


def assert_no_content(landing: Obj) -> None:
    for key, value in landing:
        assert key not in TOP_STRIPPED
        if key in NESTED_STRIPPED:
            assert isinstance(value, Obj) and not {k for k, _ in value} & NESTED_STRIPPED[key]
        if key == "toolUseResult":
            assert [k for k, _ in value] == ["gitOperation"] and value[0][1] is not None


def check_against_oracle(lines: list[bytes], result: Result, capture: bool, newline_after_last: bool = True,
                         keys: set[str] | None = None) -> None:
    """Every row of ``result`` (the scan of ``lines`` joined by newlines) is what the rules say; ``keys``:
    the line keys of the run before this scan (updated)."""
    keys = set() if keys is None else keys
    rows = iter(result.lines)
    blocks = iter(result.blocks)
    for n, line in enumerate(lines):
        if re.fullmatch(rb"[ \t\r]*", line):
            continue
        row = next(rows)
        status = expected_status(line)
        assert row["status"] == status, (line, row["status"], status)
        assert row["byte_length"] == len(line)
        if status:
            assert all(row[c] is None for c in LINE_COLUMNS[LINE_COLUMNS.index("type"):]), row
            continue
        root = loads(line.decode())
        fields, want_blocks = expected_envelope(root)
        got = {k: row[k] for k in fields}
        assert got == fields, (line, {k: (got[k], fields[k]) for k in fields if got[k] != fields[k]})
        assert [{k: b[k] for k in BLOCK_COLUMNS if k != "line"} for b in (next(blocks) for _ in want_blocks)] \
            == want_blocks, line
        content = get(get(root, "message"), "content") if isinstance(get(root, "message"), Obj) else MISSING
        if capture:
            assert row["raw"] == line.decode()
            assert row["prompt_text"] == (no_surrogates(content) if isinstance(content, str) else None)
        else:
            landing = loads(row["raw"])
            assert landing == expected_landing(root), (line, row["raw"])
            assert_no_content(landing)
            assert row["prompt_text"] is None
        uuid = fields["uuid"]
        if uuid is None:
            has_newline = newline_after_last or n < len(lines) - 1
            uuid = "h:" + hashlib.md5(line + b"\n" * has_newline).hexdigest()
        assert row["line_key"] == f"{fields['session_id'] or ''}:{uuid}"
        assert row["seen"] is (row["line_key"] in keys)
        keys.add(row["line_key"])
    assert next(rows, None) is None and next(blocks, None) is None


def scan_and_check(lines: list[bytes], capture: bool = False, newline_after_last: bool = True) -> Result:
    data = b"\n".join(lines) + (b"\n" if newline_after_last else b"")
    result = scan_both([data], capture)
    check_against_oracle(lines_of(data), result, capture, newline_after_last)
    return result


# ---- real and synthetic transcripts ---------------------------------------------------------------

def test_schemas_are_the_documented_columns():
    result = scan([b'{"a":1}\n'], reference=True)
    assert tuple(result.lines.column_names) == LINE_COLUMNS
    assert tuple(result.blocks.column_names) == BLOCK_COLUMNS
    assert result.lines.schema.field("raw").type.extension_name == "arrow.json"
    scan_both([b'{"a":1}\n'])  # and the C scanner's schema is the same, field metadata included


@pytest.mark.parametrize("capture", [False, True])
def test_real_capture(capture):
    result = scan_and_check(REAL_LINES, capture)
    assert len(result.lines) == len(REAL_LINES) and not result.bad
    assert {r["type"] for r in result.lines} >= {"user", "assistant", "attachment", "queue-operation"}
    assert any(r["has_usage"] and r["output_tokens"] for r in result.lines)
    assert any(b["kind"] == BLOCK_TOOL_USE for b in result.blocks)
    assert any(b["kind"] == BLOCK_TOOL_RESULT for b in result.blocks)


@pytest.mark.parametrize("capture", [False, True])
def test_synthetic_corpus(tmp_path, capture):
    truth = generate(tmp_path, target_bytes=150_000, seed=11)
    files = sorted(tmp_path.rglob("*.jsonl"))
    assert len(files) > 1
    for path in files:
        check_against_oracle(lines_of(path.read_bytes()), scan_both([path.read_bytes()], capture), capture)
    result = scan_both([p.read_bytes() for p in files], capture,
                       [(str(p), 1, 0) for p in files])
    assert result.total_lines == truth.lines and len(result.bad) == truth.junk_lines
    assert {status for *_, status in result.bad} <= {2, 3}


# ---- worked examples: the rules, one at a time ----------------------------------------------------

def row_of(line: bytes, capture: bool = False) -> dict:
    result = scan_both([line + b"\n"], capture)
    check_against_oracle([line], result, capture)
    (row,) = result.lines
    return row


@pytest.mark.parametrize("line, status", [
    (b'{"a":1}', 0), (b' \t{ "a" : [ 1 , { } ] }\r', 0), (b"[1]", 3), (b'"x"', 3), (b"1", 3), (b"null", 3),
    (b'{"a":1,}', 2), (b"{'a':1}", 2), (b'{"a":NaN}', 2), (b'{"a":-Infinity}', 2), (b'{"a":01}', 2),
    (b'{"a":1.}', 2), (b'{"a":.5}', 2), (b'{"a":+1}', 2), (b'{"a":1} x', 2), (b'{"a":1}{}', 2),
    (b'{"a":"\x01"}', 2), (b'{"a":"\\x"}', 2), (b'{"a":"\\u12"}', 2), (b'{"a":1} // c', 2), (b"\x0c{}", 2),
    (b"\xef\xbb\xbf{}", 2), (b'{"a":"\x00"}', 2), (b'{"a":tru}', 2), (b'{"a":"x}', 2),
    (b'{"a":"\xff"}', 1), (b'{"a":"\xc0\x80"}', 1), (b'{"a":"\xed\xa0\x80"}', 1), (b'{"a":"\xf4\x90\x80\x80"}', 1),
    (b'{"a":1,}\xe9', 1),  # not UTF-8 wins over not JSON
])
def test_status(line, status):
    result = scan_both([line])
    assert [r["status"] for r in result.lines] == [status] == [expected_status(line)]
    assert result.bad == ([(0, 0, 0, len(line), status)] if status else [])


def test_blank_lines_count_but_give_no_row():
    result = scan_both([b"\n \t\r\n{}\r\n\n   "])
    assert (result.total_lines, result.blank_lines, len(result.lines)) == (5, 4, 1)
    assert result.lines[0]["chunk_offset"] == 5 and result.lines[0]["byte_length"] == 3  # "{}\r"


@pytest.mark.parametrize("line, raw", [
    (b'{ "type" : "user" , "content" : "x" , "n" : [ 1 , 2 ] }', b'{"type":"user","n":[ 1 , 2 ]}'),
    (b'{"\\u0063ontent":"x","a":1}', b'{"a":1}'),  # an escaped key is the key it spells
    (b'{"message":"hi","attachment":[1],"toolUseResult":"out"}', b"{}"),
    (b'{"message":{"id":"m","content":[{"type":"text"}],"usage":{"input_tokens":1}},"x":{"content":1}}',
     b'{"message":{"id":"m","usage":{"input_tokens":1}},"x":{"content":1}}'),
    (b'{"attachment":{"type":"t","content":1,"stdout":2,"stderr":3,"addedLines":4,"prompt":5,"file":6,'
     b'"snippet":7,"keep":8}}', b'{"attachment":{"type":"t","keep":8}}'),
    (b'{"toolUseResult":{"stdout":"x","gitOperation" : {"commit": "abc"}}}',
     b'{"toolUseResult":{"gitOperation":{"commit": "abc"}}}'),
    (b'{"toolUseResult":{"gitOperation":null,"gitOperation":"abc"}}', b"{}"),  # the first decides
    (b'{"toolUseResult":{"git\\u004fperation":[1]}}', b'{"toolUseResult":{"gitOperation":[1]}}'),  # key rewritten
    (b'{"message":1,"message":{"id":"m"}}', b'{"message":{"id":"m"}}'),
    (b'{"lastPrompt":"p","summary":"s","snapshot":{},"content":[]}', b"{}"),
])
def test_landing_copy(line, raw):
    assert row_of(line)["raw"] == raw.decode()
    assert row_of(line, capture=True)["raw"] == line.decode()


@pytest.mark.parametrize("line, column, value", [
    (b'{"type":"\\ud800x"}', "type", "\ufffdx"),  # a lone surrogate becomes U+FFFD
    (b'{"type":"\\ud83d\\ude00\\n\\u00e9"}', "type", "\U0001f600\n\u00e9"),
    (b'{"type":-1.5E+3}', "type", "-1.5E+3"),  # a number reads as its literal text
    (b'{"type":true}', "type", "true"),
    (b'{"type":null,"type":"x"}', "type", None),  # first wins, even when it is null
    (b'{"subtype":null,"operation":"op"}', "subtype", "op"),
    (b'{"attachment":{"type":"a"},"subtype":"s"}', "subtype", "a"),
    (b'{"message":{"usage":{"input_tokens":9223372036854775807}}}', "input_tokens", 2**63 - 1),
    (b'{"message":{"usage":{"input_tokens":-9223372036854775808}}}', "input_tokens", -(2**63)),
    (b'{"message":{"usage":{"input_tokens":9223372036854775808}}}', "input_tokens", None),
    (b'{"message":{"usage":{"input_tokens":-5}}}', "input_tokens", -5),  # signed 64 bits
    (b'{"message":{"usage":{"input_tokens":1.0}}}', "input_tokens", None),
    (b'{"message":{"usage":{"input_tokens":1e3}}}', "input_tokens", None),
    (b'{"message":{"usage":{"input_tokens":"5"}}}', "input_tokens", None),
    (b'{"message":{"usage":{"input_tokens":' + b"9" * 5000 + b"}}}", "input_tokens", None),
    (b'{"message":{"usage":null}}', "has_usage", False),
    (b'{"message":{"usage":{"cache_creation":{"ephemeral_1h_input_tokens":7}}}}', "cache_creation_1h_tokens", 7),
    (b'{"isMeta":"true"}', "is_meta", None),
    (b'{"message":{"content":"\\ud83d\\ude00\\ud800a\xc3\xa9"}}', "prompt_chars", 4),
    (b'{"message":{"content":null}}', "content_kind", 0),
    (b'{"message":{"content":{}}}', "content_kind", 3),
    (b'{"message":{"content":[]}}', "content_kind", 2),
    (b'{"message":{"content":[{"type":"tool_\\u0072esult","tool_use_id":"t1"}]}}', "has_tool_result", True),
    (b'{"sessionId":{"a":1},"session_id":"s","uuid":"u"}', "line_key", "s:u"),
    (b'{"uuid":"u"}', "line_key", ":u"),
])
def test_fields(line, column, value):
    assert row_of(line)[column] == value


def test_line_key_hashes_the_line_with_its_newline_when_there_is_no_uuid():
    line = b'{"sessionId":"s","uuid":null}'
    with_newline = scan_both([line + b"\n"]).lines[0]["line_key"]
    assert with_newline == "s:h:" + hashlib.md5(line + b"\n").hexdigest()
    crlf = scan_both([line + b"\r\n"]).lines[0]["line_key"]
    assert crlf == "s:h:" + hashlib.md5(line + b"\r\n").hexdigest()
    last = scan_both([line]).lines[0]["line_key"]  # the end of a chunk, no newline: just the bytes
    assert last == "s:h:" + hashlib.md5(line).hexdigest()


def test_blocks():
    line = (b'{"message":{"content":[{"type":"tool_use","id":"a","name":"Bash","input":{}},"text",'
            b'{"type":"tool_result","tool_use_id":"a","is_error":true,"content":"x"},{"type":"text","id":"z"},'
            b'{"type":1,"id":"y"},{"type":"tool_use","type":"text","id":"b"}]},'
            b'"message":{"content":[{"type":"tool_use","id":"c"}]}}')
    result = scan_both([b"{}\n" + line + b"\n"])
    assert result.blocks == [
        {"line": 1, "kind": BLOCK_TOOL_USE, "id": "a", "name": "Bash", "is_error": None},
        {"line": 1, "kind": BLOCK_TOOL_RESULT, "id": "a", "name": None, "is_error": True},
        {"line": 1, "kind": BLOCK_TOOL_USE, "id": "b", "name": None, "is_error": None},
    ]
    assert result.lines[1]["has_tool_result"] is True


def test_blocks_read_name_and_is_error_whatever_their_kind():
    """What C does (the rules' table names ``name`` for tool uses and ``is_error`` for results only)."""
    line = (b'{"message":{"content":[{"type":"tool_use","id":"a","name":"Bash","is_error":false},'
            b'{"type":"tool_result","tool_use_id":"a","id":"x","name":"Bash","is_error":"yes"}]}}')
    assert scan_both([line]).blocks == [
        {"line": 0, "kind": BLOCK_TOOL_USE, "id": "a", "name": "Bash", "is_error": False},
        {"line": 0, "kind": BLOCK_TOOL_RESULT, "id": "a", "name": "Bash", "is_error": None},
    ]


def test_capture_content_keeps_the_line_and_the_prompt():
    line = b' {"message":{"content":"hi \\ud800 \\u00e9"},"toolUseResult":{"stdout":"x"}} \r'
    row = row_of(line, capture=True)
    assert (row["raw"], row["prompt_text"], row["prompt_chars"]) == (line.decode(), "hi \ufffd \u00e9", 6)
    assert row_of(line)["prompt_text"] is None


def test_special_bytes_at_every_offset_of_a_long_string():
    """The C string scanner reads 16 bytes at a time: put each kind of byte that stops it at every offset."""
    special = [b'\\"', b"\\\\", b"\\n", b"\\u00e9", b"\\ud83d\\ude00", b"\\ud800", b"\\u12", b"\\q", b'"', b"\x01",
               b"\x7f", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xc3", b"\xe2\x82", b"\xff", b"\xed\xa0\x80"]
    lines = [b'{"type":"' + b"a" * at + byte + b"b" * (40 - at) + b'","message":{"content":"' + b"c" * at + byte + b'"}}'
             for byte in special for at in range(41)]
    scan_and_check(lines)


def test_every_truncation_of_real_lines():
    lines = [line[:n] for line in REAL_LINES[:3] for n in range(len(line) + 1)]
    scan_and_check(lines)
    scan_and_check(lines, capture=True)


def test_deep_nesting():
    """Deeper than Python's json module (or recursion) goes."""
    deep = b"[" * 50_000 + b"]" * 50_000
    (row,) = scan_both([b'{"a":' + deep + b',"message":{"content":[' + deep + b"]}}"]).lines
    assert row["status"] == 0 and deep.decode() in row["raw"] and row["content_kind"] == 2
    assert scan_both([b'{"a":' + b"[" * 50_000 + b"]" * 49_999 + b"}"]).lines[0]["status"] == 2


def test_origins():
    chunks = [b'{"a":1}\n[]\n', b'\n{"b":2}']
    rows = scan_both(chunks, origins=[("/p/a.jsonl", 3, 100), ("/p/a.jsonl", 3, 111)]).lines
    assert [(r["path"], r["generation"], r["byte_offset"], r["chunk"], r["chunk_offset"]) for r in rows] == [
        ("/p/a.jsonl", 3, 100, 0, 0), ("/p/a.jsonl", 3, 108, 0, 8), ("/p/a.jsonl", 3, 112, 1, 1)]
    rows = scan_both(chunks).lines
    assert [(r["path"], r["generation"], r["byte_offset"]) for r in rows] == [(None, 0, 0), (None, 0, 8), (None, 0, 1)]
    for reference in (True, False):
        with pytest.raises(ValueError):
            scan(chunks, False, [("/p", 1, 0)], reference=reference)


def test_seen_marks_a_line_key_met_before_in_the_run():
    copy = b'{"sessionId":"s","uuid":"u","type":"user"}'
    no_uuid = b'{"sessionId":"s","type":"x"}'
    run = KeySets()
    first = scan_both([copy + b"\n" + no_uuid + b"\n[]\n" + copy + b"\n" + no_uuid + b" \n"], seen=run)
    assert [r["seen"] for r in first.lines] == [False, False, None, True, False]  # a space: another hash
    again = scan_both([no_uuid + b"\n", copy], seen=run)  # another batch of the same run
    assert [r["seen"] for r in again.lines] == [True, True]
    assert len(run.reference) == 3 and (not native_available() or len(run.c) == 3)
    alone = scan_both([copy + b"\n" + copy])  # without a run's set: this scan's keys only
    assert [r["seen"] for r in alone.lines] == [False, True]


# ---- generated lines -------------------------------------------------------------------------------

WS = st.sampled_from(["", "", "", " ", "  ", "\t", "\r", " \t\r "])
ESCAPES = [r"\"", r"\\", r"\/", r"\b", r"\f", r"\n", r"\r", r"\t", r"\u00e9", r"\u00E9", r"\u0000", r"\u2028",
           r"\ud83d\ude00", r"\uD83D\uDE00", r"\ud800", r"\udfff", r"\ud800\u0041", r"\udc00\ud800",
           r"\ud800\ud800\udc00", r"\ud800\n\udc00", r"\u005c"]
PLAIN = st.text(st.characters(min_codepoint=0x20, blacklist_categories=("Cs",), blacklist_characters='"\\'),
                max_size=6)
STRING_BODY = st.lists(st.one_of(PLAIN, st.sampled_from(ESCAPES)), max_size=5).map("".join)
DIGITS = st.text("0123456789", min_size=1, max_size=4)


@st.composite
def number(draw) -> str:
    whole = draw(st.one_of(st.just("0"), st.integers(1, 10**25).map(str), st.sampled_from(
        ["9223372036854775807", "9223372036854775808", "18446744073709551616", "1" * 300])))
    fraction = draw(st.one_of(st.just(""), DIGITS.map(lambda d: "." + d)))
    exponent = draw(st.one_of(st.just(""), st.tuples(st.sampled_from("eE"), st.sampled_from(["", "+", "-"]),
                                                    DIGITS).map("".join)))
    return draw(st.sampled_from(["", "-"])) + whole + fraction + exponent


def escaped_key(name: str):
    """The key ``name``, some of its characters written as \\u escapes."""
    return st.lists(st.integers(0, 3).map(lambda n: n == 0), min_size=len(name), max_size=len(name)).map(
        lambda flags: "".join(f"\\u{ord(c):04x}" if flag else c for c, flag in zip(name, flags)))


def key_token(names: list[str]):
    known = st.sampled_from(names).flatmap(lambda n: st.one_of(st.just(n), st.just(n), escaped_key(n)))
    return st.one_of(known, known, STRING_BODY).map(lambda body: f'"{body}"')


SCALAR = st.one_of(STRING_BODY.map(lambda b: f'"{b}"'), number(), st.sampled_from(["true", "false", "null"]))


@st.composite
def array_of(draw, items, min_size: int = 0) -> str:
    values = draw(st.lists(items, min_size=min_size, max_size=4))
    if not values:
        return "[" + draw(WS) + "]"
    return "[" + ",".join(draw(WS) + v + draw(WS) for v in values) + "]"


@st.composite
def object_of(draw, members) -> str:
    pairs = draw(st.lists(members, max_size=7))
    if not pairs:
        return "{" + draw(WS) + "}"
    return "{" + ",".join(f"{draw(WS)}{k}{draw(WS)}:{draw(WS)}{v}{draw(WS)}" for k, v in pairs) + "}"


ANY = st.recursive(SCALAR, lambda inner: array_of(inner) | object_of(st.tuples(key_token(["a", "content"]), inner)),
                   max_leaves=8)


def member(name: str, value):
    """A member ``name`` (its key sometimes escaped) whose value is mostly from ``value``, else anything."""
    key = st.one_of(st.just(name), st.just(name), escaped_key(name)).map(lambda k: f'"{k}"')
    return st.tuples(key, st.one_of(value, value, ANY))


def shaped(fields: dict, often: tuple[str, ...] = ()):
    """An object whose members come from ``fields`` (name → strategy of the value), the ``often`` ones
    more often, with wrong types, duplicates and other keys too."""
    any_field = st.sampled_from(list(fields)).flatmap(lambda n: member(n, fields[n]))
    return object_of(st.one_of(*(member(n, fields[n]) for n in often), any_field, any_field,
                               st.tuples(key_token(list(fields)), ANY)))


def words(*choices):
    return st.sampled_from(choices).map(lambda s: f'"{s}"')


COUNT = st.one_of(st.integers(-5, 10**6).map(str), number())
CACHE_CREATION = shaped({"ephemeral_5m_input_tokens": COUNT, "ephemeral_1h_input_tokens": COUNT})
USAGE = shaped({"input_tokens": COUNT, "output_tokens": COUNT, "cache_creation_input_tokens": COUNT,
                "cache_read_input_tokens": COUNT, "speed": words("standard", "fast"),
                "service_tier": words("standard"), "cache_creation": CACHE_CREATION},
               often=("input_tokens", "cache_creation"))
BLOCK = shaped({"type": st.one_of(words("tool_use", "tool_result", "text"), escaped_key("tool_result").map(
                    lambda k: f'"{k}"')), "id": words("toolu_1", "toolu_2"), "name": words("Bash", "Read"),
                "tool_use_id": words("toolu_1"), "is_error": st.sampled_from(["true", "false"]),
                "content": ANY, "input": ANY}, often=("type", "type", "id"))
MESSAGE = shaped({"id": words("msg_1"), "model": words("claude-opus-4-8"), "role": words("user", "assistant"),
                  "content": st.one_of(SCALAR, array_of(st.one_of(BLOCK, BLOCK, ANY), min_size=1)),
                  "usage": USAGE},
                 often=("content", "content", "usage"))
ATTACHMENT = shaped({name: ANY for name in ["content", "stdout", "stderr", "addedLines", "prompt", "file",
                                            "snippet", "other"]} | {"type": words("skill_listing", "file")},
                    often=("type",))
TOOL_USE_RESULT = shaped({"gitOperation": st.one_of(words("abc123"), ANY), "stdout": ANY, "stderr": ANY},
                         often=("gitOperation",))
TOP_FIELDS = {name: st.one_of(SCALAR, words("x")) for name in [
    "type", "subtype", "operation", "uuid", "sessionId", "session_id", "timestamp", "agentId", "cwd", "gitBranch",
    "version", "entrypoint", "promptId", "requestId", "isSidechain", "isApiErrorMessage", "isMeta",
    "isCompactSummary", "content", "lastPrompt", "summary", "snapshot"]}
TRANSCRIPT_LINE = shaped(TOP_FIELDS | {"message": MESSAGE, "attachment": ATTACHMENT,
                                       "toolUseResult": TOOL_USE_RESULT},
                         often=("message", "message", "attachment", "toolUseResult"))

NAMES = sorted({*TOP_FIELDS, "message", "attachment", "toolUseResult", "id", "model", "content", "usage",
                "input_tokens", "output_tokens", "cache_creation", "ephemeral_5m_input_tokens", "gitOperation",
                "tool_use_id", "is_error", "name", "stdout", "addedLines"})
REPLACEMENT = st.one_of(SCALAR, ANY, MESSAGE, USAGE, BLOCK, ATTACHMENT, TOOL_USE_RESULT, CACHE_CREATION,
                        words("tool_use", "tool_result"))


@st.composite
def real_with_changes(draw) -> str:
    """A real line with a few members set (or added) somewhere in it to generated JSON text, written
    compactly or spaciously, escaping non-ASCII or not."""
    record = json.loads(draw(st.sampled_from(REAL_LINES)))
    replacements = []
    for n in range(draw(st.integers(1, 3))):
        container = record
        while True:
            children = [v for v in (container.values() if isinstance(container, dict) else container)
                        if isinstance(v, (dict, list)) and v]
            if not children or draw(st.integers(0, 2)) == 0:
                break
            container = draw(st.sampled_from(children))
        placeholder = f"@replacement{n}@"
        if isinstance(container, dict):
            container[draw(st.sampled_from(sorted(container) + NAMES))] = placeholder
        else:
            container[draw(st.integers(0, len(container) - 1))] = placeholder
        replacements.append((placeholder, draw(REPLACEMENT)))
    text = json.dumps(record, ensure_ascii=draw(st.booleans()),
                      separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    for placeholder, value in replacements:
        text = text.replace(f'"{placeholder}"', value)
    return text


BREAKAGE = [b",", b"NaN", b"Infinity", b"-", b"//", b"/*x*/", b"\x00", b"\x1f", b"\xff", b"\xc0\x80", b"\xe9",
            b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"'", b"}", b"]", b"{", b"[", b"\\", b'"', b"0", b"\\u12",
            b"\\x", b":", b" ", b"\xc3\xa9", b"tru", b"1e", b".5", b"\xef\xbb\xbf"]


@st.composite
def broken(draw, lines) -> bytes:
    """A generated line, sometimes with a few bytes replaced, inserted or cut (mostly invalid then)."""
    line = draw(lines).encode()
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
        at = draw(st.integers(0, len(line)))
        cut = draw(st.integers(0, min(3, len(line) - at)))
        line = line[:at] + draw(st.sampled_from(BREAKAGE) | st.just(b"")) + line[at + cut:]
    return line.replace(b"\n", b" ")


@PROPERTY
@given(data=st.lists(st.binary(max_size=120), max_size=6).map(b"\n".join), capture=st.booleans())
def test_arbitrary_bytes_never_crash_and_both_agree(data, capture):
    result = scan_both([data], capture)
    check_against_oracle(lines_of(data), result, capture, newline_after_last=data.endswith(b"\n"))
    assert result.total_lines == len(lines_of(data))


@SLOW_PROPERTY
@given(lines=st.lists(broken(st.one_of(TRANSCRIPT_LINE, real_with_changes())), min_size=1, max_size=4),
       capture=st.booleans())
def test_transcript_shaped_lines(lines, capture):
    """Status agrees with json.loads and UTF-8 decoding; fields and the landing copy follow the rules."""
    scan_and_check(lines, capture)


@PROPERTY
@given(lines=st.lists(broken(ANY), min_size=1, max_size=4))
def test_any_json_value(lines):
    scan_and_check(lines)


LINE = st.one_of(st.sampled_from(REAL_LINES), broken(TRANSCRIPT_LINE), real_with_changes().map(str.encode),
                 st.sampled_from([b"", b" \r", b"[1]"]), TRANSCRIPT_LINE.map(lambda s: s.encode() + b"\r"))


@settings(PROPERTY, max_examples=40)
@given(lines=st.lists(LINE, min_size=1, max_size=12), final_newline=st.booleans(), capture=st.booleans(),
       data=st.data())
def test_splitting_at_line_boundaries_gives_the_same_rows(lines, final_newline, capture, data):
    whole = b"\n".join(lines) + (b"\n" if final_newline else b"")
    starts = sorted({0} | {len(b"\n".join(lines[:i])) + 1 for i in range(1, len(lines))})
    cuts = sorted(data.draw(st.sets(st.sampled_from(starts[1:]), max_size=len(starts) - 1)) if len(starts) > 1
                  else [])
    bounds = [0, *cuts, len(whole)]
    chunks = [whole[a:b] for a, b in zip(bounds, bounds[1:])]
    one = scan_both([whole], capture, [("/f.jsonl", 2, 0)])
    split = scan_both(chunks, capture, [("/f.jsonl", 2, a) for a in bounds[:-1]])

    def placeless(rows):
        return [{k: v for k, v in r.items() if k not in ("chunk", "chunk_offset")} for r in rows]

    assert placeless(split.lines) == placeless(one.lines)
    assert split.blocks == one.blocks
    assert [(i, n, s) for i, _, _, n, s in split.bad] == [(i, n, s) for i, _, _, n, s in one.bad]
    assert (split.total_lines, split.blank_lines) == (one.total_lines, one.blank_lines)

    # One scan per chunk, the run's key set shared: the same rows, ``seen`` included (``idx`` restarts,
    # and a request's best line is the best of its scan: the loader merges scans).
    run = KeySets()
    scans = [scan_both([chunk], capture, [("/f.jsonl", 2, a)], seen=run) for chunk, a in zip(chunks, bounds)]
    per_scan = [r for result in scans for r in result.lines]
    per_scan_columns = ("idx", "chunk", "chunk_offset", "request_best", "request_first_ts", "request_first_idx")

    def unplaced(rows):
        return [{k: v for k, v in r.items() if k not in per_scan_columns} for r in rows]

    assert unplaced(per_scan) == unplaced(one.lines)


# ---- timestamps ------------------------------------------------------------------------------------

@st.composite
def timestamp_text(draw) -> str:
    """Timestamps in and around the form the scanner reads (the rest it leaves to DuckDB's cast)."""
    y = draw(st.sampled_from(["0001", "1969", "1970", "2000", "2024", "2026", "9999", "2023", "20x6"]))
    mo, d = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    h, mi, s = draw(st.integers(0, 25)), draw(st.integers(0, 61)), draw(st.integers(0, 61))
    sep = draw(st.sampled_from(["T", "t", " ", "_"]))
    frac = draw(st.sampled_from(["", ".0", ".5", ".123", ".000", ".123456", ".1234567", "."]))
    zone = draw(st.sampled_from(["Z", "z", "", "+00:00", "+05:30", "-01:00", "-23:59", "+24:00", "+0530", "+05"]))
    return f"{y}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{zone}"


ACCEPTED = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)")


def _valid_instant(text: str) -> bool:
    from datetime import datetime

    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return int(text[-5:-3]) < 24 if text[-6:-5] in "+-" else True


@PROPERTY
@given(values=st.lists(timestamp_text(), min_size=1, max_size=20))
def test_a_timestamp_read_by_the_scanner_is_what_duckdb_casts_it_to(values):
    """``ts`` is the instant DuckDB's own cast of the text gives, in any session time zone (the scanner
    reads only texts with a zone, and leaves the others to the cast); every text of that form with a
    real date and time is read; both scanners agree."""
    import duckdb

    data = "".join(json.dumps({"uuid": str(i), "timestamp": v}) + "\n" for i, v in enumerate(values)).encode()
    scan_both([data])
    lines = scan([data]).lines
    con = duckdb.connect()
    con.register("l", lines)
    for zone in ("UTC", "America/New_York", "Asia/Kolkata"):
        con.execute(f"SET TimeZone = '{zone}'")
        wrong = con.execute("""SELECT "timestamp", ts, try_cast("timestamp" AS TIMESTAMPTZ) FROM l
                               WHERE ts IS NOT NULL AND ts IS DISTINCT FROM try_cast("timestamp" AS TIMESTAMPTZ)""").fetchall()
        assert wrong == [], zone
    read = dict(con.execute("SELECT \"timestamp\", ts IS NOT NULL FROM l").fetchall())
    for v in values:
        assert read[v] == bool(ACCEPTED.fullmatch(v) and _valid_instant(v)), v
