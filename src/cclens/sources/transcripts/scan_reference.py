"""The rules of :mod:`.scan`, in Python: the executable specification the C scanner is tested against.

It gives the same tables as the C scanner, row for row and byte for byte, and is written to be read,
not to be fast (it is used where the C extension could not be built, and by the tests). A line is
first parsed into a tree that remembers where each value's bytes are (the landing copy keeps keys
and values verbatim, which :mod:`json` cannot tell us); the envelope and the landing copy are then
read off that tree.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from dataclasses import dataclass, field
from typing import Sequence

import pyarrow as pa

from .scan import BLOCK_COLUMNS, BLOCK_TOOL_RESULT, BLOCK_TOOL_USE, LINE_COLUMNS

# ---- the JSON grammar (RFC 8259), over bytes ------------------------------------------------------

WHITESPACE = re.compile(rb"[ \t\n\r]*")
# One character of a string other than a quote or backslash: printable ASCII, or one well-formed UTF-8
# sequence (RFC 3629: no overlong forms, no surrogates U+D800..DFFF, nothing above U+10FFFF).
_CHAR = (rb"[\x20\x21\x23-\x5b\x5d-\x7f]"
         rb"|[\xc2-\xdf][\x80-\xbf]"
         rb"|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
         rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}")
_ESCAPE = rb'\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}'
STRING = re.compile(rb'"((?:' + _CHAR + rb"|" + _ESCAPE + rb')*)"')
NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
LITERALS = {ord("t"): b"true", ord("f"): b"false", ord("n"): b"null"}

_SIMPLE_ESCAPES = {b'"': '"', b"\\": "\\", b"/": "/", b"b": "\b", b"f": "\f", b"n": "\n", b"r": "\r",
                   b"t": "\t"}
_ESCAPE_IN_BODY = re.compile(rb'\\(?:u([0-9a-fA-F]{4})|(["\\/bfnrt]))')


class NotJson(ValueError):
    """The bytes are not one JSON value (the line's status is then 1 or 2)."""


def unescape(body: bytes) -> str:
    """The value of a valid string body (the bytes between the quotes). An escaped surrogate pair is
    one code point; an escaped lone surrogate becomes U+FFFD (a text column must be valid UTF-8)."""
    units: list[str | int] = []  # decoded text, and \\uXXXX code units still to pair up
    pos = 0
    for m in _ESCAPE_IN_BODY.finditer(body):
        if m.start() > pos:
            units.append(body[pos:m.start()].decode("utf-8"))
        units.append(int(m[1], 16) if m[1] else _SIMPLE_ESCAPES[m[2]])
        pos = m.end()
    units.append(body[pos:].decode("utf-8"))
    out = []
    i = 0
    while i < len(units):
        unit = units[i]
        if isinstance(unit, str):
            out.append(unit)
        elif 0xD800 <= unit <= 0xDBFF and i + 1 < len(units) and isinstance(units[i + 1], int) \
                and 0xDC00 <= units[i + 1] <= 0xDFFF:  # a high surrogate directly followed by a low one
            out.append(chr(0x10000 + ((unit - 0xD800) << 10) + (units[i + 1] - 0xDC00)))
            i += 1
        elif 0xD800 <= unit <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(chr(unit))
        i += 1
    return "".join(out)


@dataclass(eq=False)
class Value:
    """A JSON value of a line and where its bytes are (``line[start:end]``)."""

    kind: str  # "object", "array", "string", "number", "true", "false" or "null"
    start: int
    end: int = -1
    text: str | None = None  # a string's value (see unescape), a number's literal text
    integer: bool = False  # a number without fraction or exponent
    members: list[Member] = field(default_factory=list)  # an object's, in order, duplicates included
    items: list[Value] = field(default_factory=list)  # an array's


@dataclass(eq=False)
class Member:
    """A member of an object: its key's value, the key's token (quotes included) and its value."""

    name: str
    key: bytes
    value: Value


def parse(line: bytes) -> Value:
    """The JSON value of ``line`` (whitespace around it allowed), or :class:`NotJson`. Containers are
    followed with a stack, not recursion: a line may nest deeper than Python's recursion limit."""
    pos = WHITESPACE.match(line).end()
    open_containers: list[Value] = []
    keys: list[tuple[str, bytes]] = []  # the key of the member being read, per open object

    def key_at(pos: int) -> int:  # a key and its colon at pos; returns where the value starts
        m = STRING.match(line, pos)
        if not m:
            raise NotJson(pos)
        keys.append((unescape(m[1]), m[0]))
        pos = WHITESPACE.match(line, m.end()).end()
        if line[pos:pos + 1] != b":":
            raise NotJson(pos)
        return WHITESPACE.match(line, pos + 1).end()

    while True:
        # A value starts at pos: a scalar is read whole, a container is opened.
        first = line[pos] if pos < len(line) else None
        if first in (ord("{"), ord("[")):
            value = Value("object" if first == ord("{") else "array", pos)
            pos = WHITESPACE.match(line, pos + 1).end()
            if line[pos:pos + 1] == (b"}" if value.kind == "object" else b"]"):
                value.end = pos = pos + 1
            else:
                open_containers.append(value)
                if value.kind == "object":
                    pos = key_at(pos)
                continue
        elif first == ord('"'):
            m = STRING.match(line, pos)
            if not m:
                raise NotJson(pos)
            value = Value("string", pos, m.end(), text=unescape(m[1]))
            pos = m.end()
        elif first in LITERALS:
            word = LITERALS[first]
            if not line.startswith(word, pos):
                raise NotJson(pos)
            value = Value(word.decode(), pos, pos + len(word))
            pos += len(word)
        else:
            m = NUMBER.match(line, pos)
            if not m:
                raise NotJson(pos)
            value = Value("number", pos, m.end(), text=m[0].decode(), integer=not (m[1] or m[2]))
            pos = m.end()
        # A value ended at pos: it belongs to the innermost open container, which goes on or closes.
        while True:
            if not open_containers:
                if WHITESPACE.match(line, pos).end() != len(line):
                    raise NotJson(pos)
                return value
            container = open_containers[-1]
            if container.kind == "object":
                name, key = keys.pop()
                container.members.append(Member(name, key, value))
            else:
                container.items.append(value)
            pos = WHITESPACE.match(line, pos).end()
            sep = line[pos:pos + 1]
            if sep == b",":
                pos = WHITESPACE.match(line, pos + 1).end()
                if container.kind == "object":
                    pos = key_at(pos)
                break
            if sep != (b"}" if container.kind == "object" else b"]"):
                raise NotJson(pos)
            container.end = pos = pos + 1
            value = open_containers.pop()


# ---- reading fields -------------------------------------------------------------------------------

def member(obj: Value | None, name: str) -> Value | None:
    """The first member called ``name`` of ``obj`` (as a JSON object lookup), if ``obj`` is an object."""
    if obj is None or obj.kind != "object":
        return None
    return next((m.value for m in obj.members if m.name == name), None)


def an_object(value: Value | None) -> Value | None:
    return value if value is not None and value.kind == "object" else None


def as_text(value: Value | None) -> str | None:
    """A string's value, or the literal text of a number, ``true`` or ``false``; NULL otherwise."""
    if value is None or value.kind in ("null", "object", "array"):
        return None
    return value.text if value.kind in ("string", "number") else value.kind


def coalesce_text(*values: Value | None) -> str | None:
    return next((t for t in map(as_text, values) if t is not None), None)


def as_bool(value: Value | None) -> bool | None:
    return {"true": True, "false": False}.get(value.kind) if value is not None else None


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def as_count(value: Value | None) -> int | None:
    """An integer literal that fits in 64 bits; NULL otherwise."""
    if value is None or value.kind != "number" or not value.integer:
        return None
    if len(value.text.lstrip("-")) > 19:  # cannot fit (and int() refuses very long digit strings)
        return None
    n = int(value.text)
    return n if INT64_MIN <= n <= INT64_MAX else None


CONTENT_KINDS = {None: 0, "null": 0, "string": 1, "array": 2}  # anything else: 3


def envelope(root: Value) -> tuple[dict, list[dict]]:
    """The envelope columns of a line whose value is the object ``root``, and its tool blocks."""
    message = an_object(member(root, "message"))
    attachment = an_object(member(root, "attachment"))
    usage = an_object(member(message, "usage"))
    cache_creation = an_object(member(usage, "cache_creation"))
    content = member(message, "content")
    blocks = []
    for item in content.items if content is not None and content.kind == "array" else ():
        if item.kind != "object":
            continue
        block_type = member(item, "type")
        block_type = block_type.text if block_type is not None and block_type.kind == "string" else None
        if block_type == "tool_use":
            blocks.append({"kind": BLOCK_TOOL_USE, "id": as_text(member(item, "id")),
                           "name": as_text(member(item, "name")), "is_error": as_bool(member(item, "is_error"))})
        elif block_type == "tool_result":  # a result names the tool use it answers
            blocks.append({"kind": BLOCK_TOOL_RESULT, "id": as_text(member(item, "tool_use_id")),
                           "name": as_text(member(item, "name")), "is_error": as_bool(member(item, "is_error"))})
    kind = CONTENT_KINDS.get(content.kind if content is not None else None, 3)
    columns = {
        "type": as_text(member(root, "type")),
        "subtype": coalesce_text(member(attachment, "type"), member(root, "subtype"), member(root, "operation")),
        "session_id": coalesce_text(member(root, "sessionId"), member(root, "session_id")),
        "uuid": as_text(member(root, "uuid")),
        "timestamp": as_text(member(root, "timestamp")),
        "agent_id": as_text(member(root, "agentId")),
        "cwd": as_text(member(root, "cwd")),
        "git_branch": as_text(member(root, "gitBranch")),
        "version": as_text(member(root, "version")),
        "entrypoint": as_text(member(root, "entrypoint")),
        "prompt_id": as_text(member(root, "promptId")),
        "request_id": as_text(member(root, "requestId")),
        "message_id": as_text(member(message, "id")),
        "model": as_text(member(message, "model")),
        "speed": as_text(member(usage, "speed")),
        "service_tier": as_text(member(usage, "service_tier")),
        "is_sidechain": as_bool(member(root, "isSidechain")),
        "is_api_error": as_bool(member(root, "isApiErrorMessage")),
        "is_meta": as_bool(member(root, "isMeta")),
        "is_compact_summary": as_bool(member(root, "isCompactSummary")),
        "has_usage": usage is not None,
        "input_tokens": as_count(member(usage, "input_tokens")),
        "output_tokens": as_count(member(usage, "output_tokens")),
        "cache_creation_tokens": as_count(member(usage, "cache_creation_input_tokens")),
        "cache_read_tokens": as_count(member(usage, "cache_read_input_tokens")),
        "cache_creation_5m_tokens": as_count(member(cache_creation, "ephemeral_5m_input_tokens")),
        "cache_creation_1h_tokens": as_count(member(cache_creation, "ephemeral_1h_input_tokens")),
        "content_kind": kind,
        # Code points of the value; a lone surrogate is one either way (U+FFFD here, itself in json).
        "prompt_chars": len(content.text) if kind == 1 else None,
        "has_tool_result": any(b["kind"] == BLOCK_TOOL_RESULT for b in blocks),
        "prompt_text": content.text if kind == 1 else None,
    }
    return columns, blocks


# ---- the landing copy -----------------------------------------------------------------------------

TOP_STRIPPED = {"content", "lastPrompt", "summary", "snapshot"}
NESTED_STRIPPED = {
    "message": {"content"},
    "attachment": {"content", "stdout", "stderr", "addedLines", "prompt", "file", "snippet"},
}


def landing_copy(line: bytes, root: Value) -> bytes:
    """The line's object without its content (see the rules in :mod:`.scan`): members kept are written
    as they were, in their order, with no whitespace at the levels rebuilt."""

    def verbatim(m: Member) -> bytes:
        return m.key + b":" + line[m.value.start:m.value.end]

    kept = []
    for m in root.members:
        if m.name in TOP_STRIPPED:
            continue
        if m.name in NESTED_STRIPPED:
            if m.value.kind != "object":  # an unknown shape may be content
                continue
            inner = [verbatim(n) for n in m.value.members if n.name not in NESTED_STRIPPED[m.name]]
            kept.append(m.key + b":{" + b",".join(inner) + b"}")
        elif m.name == "toolUseResult":
            git = member(m.value, "gitOperation")  # the commit a Bash call made: an id, not content
            if git is not None and git.kind != "null":
                kept.append(m.key + b':{"gitOperation":' + line[git.start:git.end] + b"}")
        else:
            kept.append(verbatim(m))
    return b"{" + b",".join(kept) + b"}"


def line_key(line: bytes, has_newline: bool, session_id: str | None, uuid: str | None) -> str:
    """``<session_id>:<uuid>``, or ``<session_id>:h:<md5>`` of the line and its newline (if it has
    one) when the uuid reads as NULL."""
    if uuid is None:
        uuid = "h:" + hashlib.md5(line + b"\n" if has_newline else line).hexdigest()
    return f"{session_id or ''}:{uuid}"


# ---- a scan ---------------------------------------------------------------------------------------

BLANK = re.compile(rb"[ \t\r]*")

LINE_TYPES = {"idx": pa.int32(), "chunk": pa.int32(), "chunk_offset": pa.int64(), "byte_length": pa.int32(),
              "status": pa.int8(), "path": pa.string(), "generation": pa.int32(), "byte_offset": pa.int64(),
              "is_sidechain": pa.bool_(), "is_api_error": pa.bool_(), "is_meta": pa.bool_(),
              "is_compact_summary": pa.bool_(), "has_usage": pa.bool_(), "has_tool_result": pa.bool_(),
              "input_tokens": pa.int64(), "output_tokens": pa.int64(), "cache_creation_tokens": pa.int64(),
              "cache_read_tokens": pa.int64(), "cache_creation_5m_tokens": pa.int64(),
              "cache_creation_1h_tokens": pa.int64(), "prompt_chars": pa.int64(), "content_kind": pa.int8(),
              "seen": pa.bool_(), "ts": pa.timestamp("us", tz="UTC"), "request_best": pa.bool_(),
              "request_first_ts": pa.timestamp("us", tz="UTC"), "request_first_idx": pa.int32()}
# every other column but raw is text
BLOCK_TYPES = {"line": pa.int32(), "kind": pa.int8(), "is_error": pa.bool_()}  # id, name: text


def _line_field(name: str) -> pa.Field:
    if name != "raw":
        return pa.field(name, LINE_TYPES.get(name, pa.string()))
    if hasattr(pa, "json_"):  # pyarrow >= 19 knows the canonical JSON extension type
        return pa.field(name, pa.json_(pa.string()))
    return pa.field(name, pa.string(), metadata={"ARROW:extension:name": "arrow.json",
                                                 "ARROW:extension:metadata": ""})


LINE_SCHEMA = pa.schema([_line_field(name) for name in LINE_COLUMNS])
BLOCK_SCHEMA = pa.schema([pa.field(name, BLOCK_TYPES.get(name, pa.string())) for name in BLOCK_COLUMNS])


TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?:(Z)|([+-])(\d{2}):(\d{2}))")


def parse_timestamp(line: bytes, value: Value | None) -> datetime | None:
    """``timestamp`` as the scanner reads it: the ISO form with a zone, from a string with no escape."""
    if value is None or value.kind != "string" or b"\\" in line[value.start:value.end]:
        return None
    m = TIMESTAMP.fullmatch(value.text)
    if m is None:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        at = datetime(y, mo, d, h, mi, s, int((m.group(7) or "0").ljust(6, "0")), tzinfo=timezone.utc)
    except ValueError:  # no such date or time
        return None
    if m.group(9):
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return None
        at -= (1 if m.group(9) == "+" else -1) * timedelta(hours=oh, minutes=om)
    return at


INT64 = (-2**63, 2**63 - 1)


def is_request(root: Value, row: dict) -> bool:
    """An API request line: assistant, with usage, not an API error, not the <synthetic> model."""
    type_, model = member(root, "type"), member(an_object(member(root, "message")), "model")
    return (type_ is not None and type_.kind == "string" and type_.text == "assistant" and row["has_usage"]
            and row["is_api_error"] is not True
            and not (model is not None and model.kind == "string" and model.text == "<synthetic>"))


def add_request(requests: dict, row: dict, timestamp: Value | None) -> bool:
    """Count ``row`` in its request (key: requestId, else msg:<message id>, else line:<line key>), the
    best line ranked by total tokens (largest first), not sidechain, earliest timestamp, then file
    order; returns True when the line has a total or a timestamp only SQL reads (see the C scanner)."""
    key = (row["request_id"] if row["request_id"] is not None
           else "msg:" + row["message_id"] if row["message_id"] is not None else "line:" + row["line_key"])
    total = sum(row[c] or 0 for c in ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens"))
    inexact = not INT64[0] <= total <= INT64[1] or (row["ts"] is None and as_text(timestamp) is not None)
    rank = (-total, row["is_sidechain"] is True, row["ts"] is None, row["ts"] or 0)
    r = requests.get(key)
    if r is None:
        requests[key] = {"best": row["idx"], "rank": rank, "first": row["idx"], "first_ts": row["ts"]}
    else:
        if rank < r["rank"]:
            r["best"], r["rank"] = row["idx"], rank
        if row["ts"] is not None and (r["first_ts"] is None or row["ts"] < r["first_ts"]):
            r["first_ts"] = row["ts"]
    return inexact


def status_of(line: bytes) -> tuple[int, Value | None]:
    """The line's status (0 an object, 1 not UTF-8, 2 not JSON, 3 not an object) and its value."""
    try:
        value = parse(line)
    except NotJson:
        try:
            line.decode("utf-8")  # Python's decoder is strict in the same ways as the grammar above
        except UnicodeDecodeError:
            return 1, None
        return 2, None
    return (0, value) if value.kind == "object" else (3, None)


class ReferenceScan:
    """What :func:`scan` returns: the same interface as the C scanner's result (:class:`.scan.Scanned`),
    with pyarrow tables."""

    def __init__(self, lines: pa.Table, blocks: pa.Table, bad: list, total_lines: int, blank_lines: int,
                 requests_exact: bool):
        self.lines, self.blocks = lines, blocks
        self.total_lines, self.blank_lines = total_lines, blank_lines
        self.requests_exact = requests_exact
        self._bad = bad

    def bad(self) -> list[tuple[int, int, int, int, int]]:
        """``(idx, chunk, chunk_offset, byte_length, status)`` of every line whose status is not 0."""
        return list(self._bad)


def scan(chunks: Sequence[bytes], capture_content: bool = False,
         origins: Sequence[tuple[str, int, int]] | None = None, seen: set[str] | None = None) -> ReferenceScan:
    """Scan every line of ``chunks`` by the rules of :mod:`.scan`; ``origins`` as in :func:`.scan.scan`;
    ``seen``: the run's line keys (a set, which gets this scan's keys added), else this scan's only."""
    if origins is not None and len(origins) != len(chunks):
        raise ValueError("one origin per chunk")
    seen = set() if seen is None else seen
    rows, block_rows, bad = [], [], []
    requests: dict[str, dict] = {}
    inexact = False
    total = blank = 0
    for chunk_no, chunk in enumerate(chunks):
        data = bytes(chunk)
        path, generation, start = origins[chunk_no] if origins is not None else (None, 0, 0)
        pos = 0
        while pos < len(data):
            newline = data.find(b"\n", pos)
            end = newline if newline >= 0 else len(data)
            line = data[pos:end]
            total += 1
            if BLANK.fullmatch(line):
                blank += 1
            else:
                status, root = status_of(line)
                row = dict.fromkeys(LINE_COLUMNS)
                row.update(idx=len(rows), chunk=chunk_no, chunk_offset=pos, byte_length=len(line), status=status,
                           path=path, generation=generation, byte_offset=start + pos)
                if status == 0:
                    columns, blocks = envelope(root)
                    row.update(columns)
                    row["raw"] = line.decode("utf-8") if capture_content else landing_copy(line, root).decode("utf-8")
                    row["line_key"] = line_key(line, newline >= 0, row["session_id"], row["uuid"])
                    row["ts"] = parse_timestamp(line, member(root, "timestamp"))
                    row["seen"] = row["line_key"] in seen
                    row["request_best"] = False
                    if not row["seen"] and is_request(root, row):
                        inexact |= add_request(requests, row, member(root, "timestamp"))
                    seen.add(row["line_key"])
                    if not capture_content:
                        row["prompt_text"] = None
                    block_rows += [{"line": row["idx"], **b} for b in blocks]
                else:
                    bad.append((row["idx"], chunk_no, pos, len(line), status))
                rows.append(row)
            pos = end + 1
    for r in requests.values():  # each request's best line, with its earliest timestamp and first row
        best = rows[r["best"]]
        best.update(request_best=True, request_first_ts=r["first_ts"], request_first_idx=r["first"])
    return ReferenceScan(pa.Table.from_pylist(rows, schema=LINE_SCHEMA),
                         pa.Table.from_pylist(block_rows, schema=BLOCK_SCHEMA), bad, total, blank, not inexact)
