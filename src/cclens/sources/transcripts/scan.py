"""Reading transcript lines: one pass per line that validates it, picks out the envelope the model
needs and writes the landing copy without content.

:func:`scan` runs the C scanner (``native/``, built with the package) when it is there and the Python
reference implementation (:mod:`.scan_reference`) otherwise; both give the same tables, row for row
and byte for byte (``tests/test_transcripts_scan.py`` checks it on generated and arbitrary lines).

The rules
=========

A *line* is the bytes up to a newline (or the end of the chunk). Every line that is not blank gives a
row of the **lines** table; a blank line (nothing but spaces, tabs and carriage returns) is skipped.

Every row has ``idx`` (its row number), ``chunk`` and ``chunk_offset`` (which chunk, where in it),
``byte_length`` (without the newline), ``path``, ``generation`` and ``byte_offset`` (from the chunk's
origin, see :func:`scan`) and ``status``: 0 valid; 1 not UTF-8 (strict: no overlong forms, no surrogates, nothing above
U+10FFFF; this wins over 2); 2 not JSON (RFC 8259, strict: no trailing commas, no NaN, no comments);
3 valid JSON that is not an object. Only status 0 rows have the columns below; the others go to the
quarantine with their bytes.

Fields: first occurrence of a key wins, as in a JSON object lookup. A field read as text is the
value of a JSON string (escapes decoded; an escaped lone surrogate becomes U+FFFD), or the literal
text of a number, ``true`` or ``false``; null, an object or an array read as NULL. A field read as a
boolean is ``true``/``false``, anything else NULL. A token count is an integer literal that fits in
a signed 64-bit integer (negative ones included; the model clamps them at 0), anything else NULL.

======================  ==========================================================================
column                  from
======================  ==========================================================================
type                    ``type`` (text)
subtype                 ``attachment.type``, else ``subtype``, else ``operation`` (first that reads)
session_id              ``sessionId``, else ``session_id``
uuid, timestamp         ``uuid``, ``timestamp`` (text; the timestamp is cast in SQL)
agent_id, cwd, ...      ``agentId``, ``cwd``, ``gitBranch``, ``version``, ``entrypoint``, ``promptId``,
                        ``requestId`` (text)
message_id, model       ``message.id``, ``message.model`` (text)
is_sidechain, ...       ``isSidechain``, ``isApiErrorMessage``, ``isMeta``, ``isCompactSummary`` (boolean)
has_usage               ``message.usage`` is an object
input_tokens, ...       ``message.usage.input_tokens``, ``output_tokens``, ``cache_creation_input_tokens``,
                        ``cache_read_input_tokens``, ``cache_creation.ephemeral_5m_input_tokens``,
                        ``cache_creation.ephemeral_1h_input_tokens`` (count); ``speed``,
                        ``service_tier`` (text)
content_kind            ``message.content``: 0 absent or null, 1 a string, 2 an array, 3 anything else
prompt_chars            code points of ``message.content`` when it is a string (an escaped surrogate
                        pair counts one)
has_tool_result         ``message.content`` has a block whose ``type`` is ``"tool_result"``
raw                     the landing copy (below), as JSON
line_key                ``<session_id>:<uuid>``, or ``<session_id>:h:<md5 of the line's bytes and its
                        newline, when it has one>`` when ``uuid`` reads as NULL (a ``\r`` before the
                        newline belongs to the line; ``session_id`` NULL gives an empty one)
prompt_text             with content capture: ``message.content`` when it is a string
seen                    the line key was already in the run's :func:`key_set` (an earlier line of this
                        scan, or of an earlier scan given the same set); the key is added to it
ts                      ``timestamp`` as a UTC timestamp (microseconds) when it is an unescaped string
                        ``YYYY-MM-DD(T| )HH:MM:SS[.f]`` with 1-6 fraction digits and a zone ``Z`` or
                        ``±HH:MM``, a valid date and time; else NULL (the loader then casts the text)
request_best            an API request line (assistant, with usage, not an API error, not the model
                        ``<synthetic>``) not ``seen``, that is the best of its request in this scan: the
                        request is ``requestId``, else ``msg:`` + ``message.id``, else ``line:`` + the line
                        key; best: most tokens, then not sidechain, then earliest ``ts``, then file order.
                        False on every other valid line
request_first_ts        on a best line: the earliest ``ts`` among its request's lines in the scan
request_first_idx       on a best line: the row of its request's first line in the scan
======================  ==========================================================================

The scan's ``requests_exact`` is False when a request line has a timestamp text that ``ts`` does not
read, or token counts whose sum leaves 64 bits: the loader then ranks that batch's requests itself,
in SQL, rather than trusting ``request_*``.

``message``, ``attachment``, ``message.usage`` and ``message.usage.cache_creation`` are read from the
first member of that name, and only when it is an object (the landing copy still rebuilds every
member of that name that is an object). Keys are compared by their decoded value. **blocks**: one
row per element of an array ``message.content`` that is an object whose first ``type`` is the string
``"tool_use"`` or ``"tool_result"``: ``id`` (a result's ``tool_use_id``), ``name``, ``is_error``, with
the row index of its line.

The landing copy (content capture off): the line's top-level object with these members removed:
``content``, ``lastPrompt``, ``summary``, ``snapshot``, ``toolUseResult`` (but ``{"gitOperation": X}``
is kept in its place when it is an object whose first ``gitOperation`` is not null: a commit id, not
content; the key is written plainly, X as it was, any value but null), ``message`` and ``attachment``
unless they are objects; inside ``message``: ``content``;
inside ``attachment``: ``content``, ``stdout``, ``stderr``, ``addedLines``, ``prompt``, ``file``,
``snippet``. The members kept are written as they were (key and value bytes unchanged), in their
order, separated by ``,`` with no whitespace at the levels rebuilt. With content capture on, the
landing copy is the line as it is (without its newline).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

STATUS_REASONS = {1: "invalid UTF-8", 2: "invalid JSON", 3: "not a JSON object"}

LINE_COLUMNS = (
    "idx", "chunk", "chunk_offset", "byte_length", "status", "path", "generation", "byte_offset",
    "type", "subtype", "session_id", "uuid", "timestamp", "agent_id", "cwd", "git_branch", "version",
    "entrypoint", "prompt_id", "request_id", "message_id", "model", "speed", "service_tier",
    "is_sidechain", "is_api_error", "is_meta", "is_compact_summary", "has_usage",
    "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens",
    "cache_creation_5m_tokens", "cache_creation_1h_tokens",
    "content_kind", "prompt_chars", "has_tool_result",
    "raw", "line_key", "prompt_text", "seen", "ts", "request_best", "request_first_ts", "request_first_idx",
)
BLOCK_COLUMNS = ("line", "kind", "id", "name", "is_error")
BLOCK_TOOL_USE, BLOCK_TOOL_RESULT = 1, 2


class Scanned(Protocol):
    """What :func:`scan` returns. ``lines``/``blocks`` are Arrow-readable tables (they have
    ``__arrow_c_stream__`` and ``num_rows``) that DuckDB scans in place."""

    lines: Any
    blocks: Any
    total_lines: int
    blank_lines: int

    def bad(self) -> list[tuple[int, int, int, int, int]]:
        """``(idx, chunk, chunk_offset, byte_length, status)`` of every line whose status is not 0."""


def _native_scan():
    try:
        from . import _native
    except ImportError:  # built without a C compiler: the reference implementation does the work
        return None
    return _native.scan


_NATIVE = _native_scan()


def native_available() -> bool:
    """Whether the C scanner is built and loaded (it is, wherever ``pip install`` could compile it)."""
    return _NATIVE is not None


def key_set(*, reference: bool = False) -> Any:
    """A new set of line keys for one ingest run, to pass to every :func:`scan` of the run (the same
    implementation as the scans: ``reference`` for the Python one)."""
    if _NATIVE is not None and not reference:
        from . import _native

        return _native.KeySet()
    return set()


def scan(chunks: Sequence[bytes], capture_content: bool = False,
         origins: Sequence[tuple[str, int, int]] | None = None, seen: Any = None, *,
         reference: bool = False) -> Scanned:
    """Scan every line of ``chunks`` (bytes-like, each a run of whole lines of one file). ``origins``:
    one ``(path, generation, start_offset)`` per chunk, which fill the ``path``, ``generation`` and
    ``byte_offset`` (in the file) columns; without them those are NULL, 0 and the offset in the chunk.
    ``seen``: the run's :func:`key_set` (else the keys of this scan only). The C scanner releases the
    GIL, so another thread can scan while DuckDB loads; one key set is used by one scan at a time.
    ``reference`` forces the Python implementation (tests)."""
    if _NATIVE is not None and not reference:
        return _NATIVE(chunks, capture_content, origins, seen)
    from .scan_reference import scan as reference_scan

    return reference_scan(chunks, capture_content, origins, seen)
