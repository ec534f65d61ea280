"""Loading transcript lines into landing and the model, batches in transactions of a segment each.

Python reads bytes (on the scanner thread, or on the loading thread while it would wait: :class:`_Feed`);
the scanner (:mod:`.scan`, C) reads every line once, on its thread one batch ahead, into typed columns,
the landing copy without content and the batch's share of the model (``Scanned.parts``), which DuckDB
reads in place (Arrow C stream; nothing is copied and no JSON is parsed again). Per batch
(:class:`Segment`):

1. lines that are not UTF-8, not JSON, or not a JSON object go to ``quarantine`` with file and offset;
2. every other line lands in ``landing_transcript_line`` (stored in ``..._stored``) once per line key
   (``sessionId:uuid``, or a hash of the line when it has no uuid), content fields removed unless
   content capture is on;
3. assistant lines with usage become ``api_request`` rows keyed by request id: the several lines of
   one reply (one per content block) and copies in other files count once, keeping the largest usage;
   a sidechain replay of a message under another request id is dropped (as ccusage does);
4. prompts, tool uses and tool results are modelled, and the sessions touched are rebuilt (1 and 2
   per batch, 3 and 4 reduced per batch, by the scanner where it can, and merged per segment);
5. the file cursors advance, in the segment's transaction, so a crash leaves no half-ingested batch.
"""

from __future__ import annotations

import queue
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

from ...metrics.rollup import mark_dirty
from ...warehouse.schema.transcripts import LANDING_STORED
from .files import Chunk, FileCursor
from .scan import STATUS_REASONS, Scanned, key_set, scan
from .stats import IngestStats

QUARANTINE_RAW_LIMIT = 4096

# Tests set this: a released scan's buffers are overwritten before they are freed, so a statement
# that still read them after release would store garbage (tests/test_transcripts_load.py).
POISON_RELEASED = False
# Tests clear this to reduce every batch's requests in SQL, as batches the scanner cannot mark are.
MARKED_REQUESTS = True
# Tests clear this to reduce every batch in SQL (_reduce) rather than take the scanner's parts.
NATIVE_PARTS = True

# While a run loads many batches: DuckDB's own memory cap (it spills past it; keeps peak RSS flat
# whatever the corpus size), and a write-ahead log that may grow to this size before it is folded
# into the file, so a cold ingest compresses and writes each row group once at the end of the run
# instead of at every few batches.
BULK_MEMORY_LIMIT = "256MB"
BULK_CHECKPOINT_THRESHOLD = "64MB"
BULK_BYTES = 16 * 1024 * 1024  # a run of more input than this (DuckDB's own checkpoint threshold) is bulk


@contextmanager
def bulk_load(wh, pending_bytes: int) -> Iterator[None]:
    """Settings for a run of segments (:class:`Segment`) on ``wh``'s connection, restored after.
    A run of more than 16 MB (DuckDB's own checkpoint threshold) ends with one checkpoint, so the
    next process opening the file does not replay a long log; smaller runs leave that to DuckDB.
    Each segment still commits on its own: a crash loses nothing that was committed."""
    wh.execute(f"SET memory_limit = '{BULK_MEMORY_LIMIT}'")
    # One thread: two were no faster for the landing insert nor the merges (measured on 500 MB), and
    # the other core scans the next batch.
    wh.execute("SET threads = 1")
    if pending_bytes > BULK_BYTES:
        wh.execute(f"SET checkpoint_threshold = '{BULK_CHECKPOINT_THRESHOLD}'")
    try:
        yield
    finally:
        wh.execute("RESET memory_limit")
        wh.execute("RESET threads")
        wh.execute("RESET checkpoint_threshold")
    if pending_bytes > BULK_BYTES:
        wh.checkpoint()


@dataclass
class ScannedBatch:
    """A batch after the scan: the tables DuckDB reads, where each chunk came from, and the lines that
    are not valid, ready for the quarantine. It no longer holds the chunks' bytes."""

    scanned: Scanned
    quarantine: list[tuple[str, int, str, str]]  # (path, byte offset, reason, first 4 KB as text)
    files: int
    bytes: int


def scan_batch(chunks: list[Chunk], capture_content: bool = False, seen=None) -> ScannedBatch:
    """Scan ``chunks`` (:func:`~.scan.scan`) and take out what the load needs of their bytes. The
    chunks are scanned in file order (path, generation, offset), so of several lines with one key the
    first in that order is the one that lands, whatever order the chunks came in. ``seen``: the run's
    key set (:func:`~.scan.key_set`), else one for this batch."""
    chunks = sorted(chunks, key=lambda c: (c.path, c.generation, c.start_offset))
    scanned = scan([c.data for c in chunks], capture_content,
                   [(c.path, c.generation, c.start_offset) for c in chunks], seen)
    quarantine = []
    for _idx, chunk, pos, length, status in scanned.bad():
        c = chunks[chunk]
        line = bytes(c.data[pos:pos + length])
        if status == 1:  # not UTF-8: escaped, so the quarantine can show it
            shown = line.decode("utf-8", "backslashreplace")
        else:  # the text with its newline, as the line reads
            shown = (line + c.data[pos + length:pos + length + 1]).decode("utf-8")
        quarantine.append((c.path, c.start_offset + pos, STATUS_REASONS[status], shown[:QUARANTINE_RAW_LIMIT]))
    return ScannedBatch(scanned=scanned, quarantine=quarantine, files=len({c.path for c in chunks}),
                        bytes=sum(len(c.data) for c in chunks))


class _Feed:
    """The raw batches of :func:`prepared`, in order, read by whichever thread asks first: the scanner
    when it has nothing to scan, or the consumer (:meth:`prefetch`) in the time it would otherwise
    wait for the scanner, so that reading files and scanning lines run on different cores."""

    def __init__(self, batches: Iterator, end: object):
        self._it = iter(batches)
        self._end = end
        self._cond = threading.Condition()
        self._read: dict[int, object] = {}  # batches read and not yet taken, by sequence number
        self._next = 0  # the sequence number of the next batch to read
        self._reading = False
        self._done = False  # the end, or an error, was read

    def _read_one(self) -> None:
        """Read the next batch (called with the condition held; released while reading)."""
        seq = self._next
        self._reading = True
        self._cond.release()
        interrupted = None
        try:
            try:
                item = next(self._it)
            except StopIteration:
                item = self._end
            except Exception as exc:  # handed on, in order, to the consumer, which raises it
                item = exc
            except BaseException as exc:  # Ctrl-C while the consumer reads: raised there, at once
                interrupted, item = exc, self._end
        finally:
            self._cond.acquire()
            self._reading = False
        self._next = seq + 1
        self._read[seq] = item
        if item is self._end or isinstance(item, BaseException):
            self._done = True
        self._cond.notify_all()
        if interrupted is not None:
            raise interrupted

    def take(self, seq: int, stop: threading.Event) -> object:
        """Batch ``seq`` (reading it if nobody is), or the end when ``stop`` is set."""
        with self._cond:
            while seq not in self._read:
                if stop.is_set():
                    return self._end
                if not self._reading and not self._done:
                    self._read_one()
                else:
                    self._cond.wait(0.1)
            return self._read.pop(seq)

    def prefetch(self) -> None:
        """Read one batch ahead if none waits to be scanned and nobody is reading."""
        with self._cond:
            if not self._read and not self._reading and not self._done:
                self._read_one()


def prepared(batches: Iterator[tuple[list[Chunk], list[FileCursor], int]], capture_content: bool = False
             ) -> "Prepared":
    """``batches`` scanned (:func:`scan_batch`) ahead on a background thread, so that scanning lines
    overlaps with loading the previous batch in DuckDB; the files are read by the scanner thread or
    by the consumer, whichever is free first (:class:`_Feed`). A batch's bytes are let go once it is
    scanned; at most one batch is read ahead of the one being scanned and one scanned batch waits
    while the one before loads. An error while reading is raised here, in order; when the consumer
    stops, the scanner stops too."""
    q: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    end = object()
    feed = _Feed(batches, end)
    seen = key_set()  # the run's: a line key seen in an earlier batch is not new

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            seq = 0
            while not stop.is_set():
                item = feed.take(seq, stop)
                seq += 1
                if item is end or isinstance(item, BaseException):
                    put(item)
                    return
                chunks, cursors, size = item  # type: ignore[misc]
                del item
                done = (cursors, size, scan_batch(chunks, capture_content, seen))
                del chunks
                if not put(done):
                    return
                del done
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    worker = threading.Thread(target=produce, name="cclens-transcript-reader", daemon=True)
    worker.start()  # now, not at the first next(): a read ahead (ingest.read_ahead) starts at once
    return Prepared(q, stop, end, worker, feed)


class Prepared:
    """The consuming side of :func:`prepared`: iterate for the scanned batches, in order; :meth:`close`
    stops the reader thread, whether or not anything was taken (iterating to the end closes too)."""

    def __init__(self, q: queue.Queue, stop: threading.Event, end: object, worker: threading.Thread,
                 feed: _Feed):
        self._q, self._stop, self._end, self._worker, self._feed = q, stop, end, worker, feed

    def __iter__(self) -> "Prepared":
        return self

    def __next__(self) -> tuple[list[FileCursor], int, ScannedBatch]:
        if self._q.empty():  # the scanner is busy: read its next batch meanwhile
            self._feed.prefetch()
        item = self._q.get()
        if item is self._end:
            self.close()
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        while self._worker.is_alive():  # unblock a producer waiting on a full queue, then let it end
            try:
                self._q.get_nowait()
            except queue.Empty:
                pass
            self._worker.join(timeout=0.05)

    def __del__(self) -> None:  # dropped without close() (a loop that raised): stop reading anyway
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def ingest_chunks(wh, chunks: list[Chunk], *, host: str, capture_content: bool = False,
                  cursors: list[FileCursor] | None = None, run_id: str | None = None) -> IngestStats:
    """Land and model ``chunks`` (complete lines from one host) in one transaction.

    Idempotent: the same lines ingested again (from the same or another file, by a local ingest or a
    shipper) change nothing. ``cursors``, when given, are stored in ``transcript_file`` in the same
    transaction; otherwise a cursor is derived from each chunk's end.
    """
    if cursors is None:
        cursors = [FileCursor(path=c.path, file_id=c.file_id, head_hash=c.head_hash, generation=c.generation,
                              size=c.size, offset=c.end_offset, mtime=c.mtime,
                              lines=0) for c in chunks]
    batch = scan_batch(chunks, capture_content)
    with wh.transaction():
        segment = Segment(wh, host=host, capture_content=capture_content, run_id=run_id)
        segment.add(batch, cursors)
        return segment.finish()


class Segment:
    """Batches loaded in one transaction (the caller's). Each batch lands as it comes and leaves, in
    small scratch tables, what the model needs of its new lines already reduced (the best line of each
    request, the first of each prompt and tool use, each session's aggregates); :meth:`finish` merges
    them, writes the model and stores the cursors. Reducing a batch while the next one is read keeps
    the model's statements small, where running them on every line at the end of a segment, or on
    every batch against the model tables, cost most of a cold ingest."""

    def __init__(self, wh, *, host: str, capture_content: bool, run_id: str | None = None):
        self.wh = wh
        self.host = host
        self.capture_content = capture_content
        self.run_id = run_id or uuid.uuid4().hex
        self.now = datetime.now(timezone.utc)  # also tells this segment's landed lines apart
        self.stats = IngestStats()
        self.batches = 0
        _drop_scratch(wh)
        wh.execute("CREATE TEMP TABLE _tl_dup (batch INTEGER, idx INTEGER)")
        # Lines without a session share the key prefix ':'; landed ones from before can only be found
        # by looking, which is needed only if there are any.
        self.sessionless_landed = wh.scalar(
            "SELECT count(*) FROM (SELECT 1 FROM landing_transcript_line_stored WHERE session_id IS NULL LIMIT 1)") > 0

    def add(self, batch: ScannedBatch, cursors: list[FileCursor]) -> None:
        """Quarantine, land and reduce one scanned batch."""
        wh, scanned, number = self.wh, batch.scanned, self.batches
        self.stats.add(IngestStats(files=batch.files, bytes=batch.bytes, lines=scanned.total_lines))
        wh.register("_tl_lines", scanned.lines)
        wh.register("_tl_blocks", scanned.blocks)
        try:
            landed_before = _mark_landed(wh, self.sessionless_landed, number)
            new = _new_lines("_tl_lines", number, landed_before)
            self.stats.quarantined += _quarantine(wh, batch.quarantine, self.host, self.run_id)
            self.stats.new_lines += _land(wh, new, self.host, self.run_id, self.now)
            # The scanner marks each request's best line unless a line it cannot rank as SQL would
            # (or a copy landed before, which it cannot know of) is in the batch.
            marked = MARKED_REQUESTS and getattr(scanned, "requests_exact", False) and not landed_before
            if marked and NATIVE_PARTS and getattr(scanned, "parts_exact", False):
                _reduce_native(wh, scanned.parts, number, self.capture_content, first=number == 0)
            else:
                _reduce(wh, new, number, self.capture_content, marked=marked, first=number == 0)
        finally:
            wh.unregister("_tl_lines")
            wh.unregister("_tl_blocks")
            # DuckDB keeps every object a transaction read until it ends, though each statement
            # copied what it stored: without this a segment would hold all its batches' buffers.
            _release(batch.scanned)
        # The batch's cursors now, in the same transaction: a cold run's DuckDB thread has time
        # between batches (it waits for the reader), and none to spare at the end of a segment.
        _store_cursors(wh, self.host, cursors, self.now)
        self.batches += 1

    def finish(self) -> IngestStats:
        """Merge the batches' reductions into the model (requests, prompts, tool uses, sessions); the
        cursors were stored with each batch."""
        wh = self.wh
        if self.batches:
            self.stats.new_requests, self.stats.updated_requests = _model_requests(wh, self.host, self.now)
            if self.stats.new_requests:
                _price_new_models(wh)
            _model_prompts_and_tools(wh, self.host)
            _rebuild_sessions(wh, self.host, self.now)
        # Before COMMIT, which then has only the warehouse's own changes to write. After a failure the
        # rollback drops them (they were made in the transaction), and the failed transaction would
        # refuse this anyway, hiding the first error behind its own.
        _drop_scratch(wh)
        return self.stats


def _release(scanned: Scanned) -> None:
    """Free a scan's buffers when the scanner can (the C one can)."""
    release = getattr(scanned, "release", None)
    if release is not None:
        release(poison=POISON_RELEASED)


def _request_key(t: str = "") -> str:
    """A request line's request (requestId, else the message id, else the line); ``t``: ``"l."`` etc."""
    return f"coalesce({t}request_id, 'msg:' || {t}message_id, 'line:' || {t}line_key)"


def _total_tokens(t: str = "") -> str:
    """A request line's tokens, all kinds (the first rank of the best line of a request)."""
    return (f"coalesce({t}input_tokens, 0) + coalesce({t}output_tokens, 0) + coalesce({t}cache_creation_tokens, 0)"
            f" + coalesce({t}cache_read_tokens, 0)")

_PARTS = ("_tl_req_part", "_tl_prompt_part", "_tl_tool_part", "_tl_result_part", "_tl_session_part",
          "_tl_session_agent", "_tl_session_prompt")
_SCRATCH_TABLES = ("_tl_dup", "_tl_req", "_tl_sessions") + _PARTS


def _drop_scratch(wh) -> None:
    wh.execute("; ".join(f"DROP TABLE IF EXISTS {name}" for name in _SCRATCH_TABLES))


def _request_part_columns() -> str:
    """The columns of a request part after its key, first time and origin, from a request line ``l``
    (``_reduce`` and ``_reduce_native`` select the same): what ranks it, then what the model keeps."""
    return f"""{_total_tokens("l.")} AS total, coalesce(l.is_sidechain, false) AS sidechain, l.ts AS line_ts,
           l.path AS line_path, l.byte_offset AS line_offset, l.request_id, l.message_id, l.session_id, l.agent_id,
           l.is_sidechain, l.model, l.input_tokens, l.output_tokens, l.cache_creation_tokens,
           l.cache_creation_5m_tokens, l.cache_creation_1h_tokens, l.cache_read_tokens, l.speed, l.service_tier,
           l.cwd, l.git_branch, l.version, l.prompt_id"""


def _new_lines(table: str, number: int, landed_before: bool) -> str:
    """The SELECT of batch ``number``'s new lines from its scanned ``table``: valid, new to this run
    (``seen`` false: the scanner keeps the run's keys), and not landed by an earlier run (``_tl_dup``,
    when :func:`_mark_landed` found some). ``ts``: as the scanner read it, else DuckDB's cast of the
    text (the scanner reads only the ISO form with a zone that Claude Code writes, as the cast would)."""
    dup = f" AND l.idx NOT IN (SELECT idx FROM _tl_dup WHERE batch = {number})" if landed_before else ""
    return f"""SELECT coalesce(l.ts, try_cast(l."timestamp" AS TIMESTAMPTZ)) AS ts,
                      l.* EXCLUDE (chunk, chunk_offset, status, "timestamp", seen, ts)
               FROM {table} l WHERE l.status = 0 AND NOT l.seen{dup}"""


def _mark_landed(wh, sessionless_landed: bool, number: int) -> bool:
    """Add to ``_tl_dup`` the lines of batch ``number`` (registered as ``_tl_lines``) that are new to
    this run but were landed by an earlier one; False when there are none. A line key starts
    with its session, and every session with landed lines has its ``session`` row (both commit in the
    same transaction), so landing is searched only for the batch's sessions that have one (and for
    lines without a session, if any such landed): a cold ingest never reads landing back, and an
    update reads only the sessions it appends to."""
    prior = [r["session"] for r in wh.query("""
        SELECT DISTINCT coalesce(l.session_id, '') AS session FROM _tl_lines l
        WHERE l.status = 0 AND NOT l.seen AND (l.session_id IN (SELECT session_id FROM session)
                                               OR (l.session_id IS NULL AND ?))""", [sessionless_landed])]
    if not prior:
        return False
    found = wh.scalar("""
    INSERT INTO _tl_dup
    SELECT ?, l.idx FROM _tl_lines l
    WHERE l.status = 0 AND NOT l.seen AND coalesce(l.session_id, '') IN (SELECT unnest(?::VARCHAR[]))
      AND l.line_key IN (SELECT x.line_key FROM landing_transcript_line_stored x
                         WHERE coalesce(x.session_id, '') IN (SELECT unnest(?::VARCHAR[])))
    """, [number, prior, prior])
    return bool(found)  # appended to sessions, but none of these lines was landed: nothing to leave out


def _reduce(wh, new: str, number: int, capture_content: bool, *, marked: bool, first: bool) -> None:
    """Add batch ``number``'s share of the model to the part tables (``new``: the SELECT of its new
    lines, :func:`_new_lines`); :func:`_model_requests`, :func:`_model_prompts_and_tools` and
    :func:`_rebuild_sessions` merge them. A part row keeps what merging needs: the request's best line
    with what ranks it and the earliest timestamp and origin among its lines, a session's aggregates
    with the timestamps that rank them. ``marked``: the scanner marked each request's best line
    (``request_best``, with ``request_first_ts`` and ``request_first_idx``) by the same rule."""
    into = (lambda t: f"CREATE TEMP TABLE {t} AS") if first else (lambda t: f"INSERT INTO {t}")
    part = f"({number}::BIGINT << 32)"
    text = "prompt_text" if capture_content else "NULL::VARCHAR"
    # Requests: the line with the largest usage (non-sidechain first, then the earliest) gives the
    # tokens; the earliest line gives the ts and the origin, whatever the batching.
    columns = _request_part_columns()
    if marked:
        wh.execute(into("_tl_req_part") + f"""
        SELECT {part} + l.idx AS part, {_request_key("l.")} AS request_key, l.request_first_ts AS first_ts, {{'p': f.path, 'o': f.byte_offset}} AS first_origin, {columns}
        FROM ({new}) l JOIN _tl_lines f ON f.idx = l.request_first_idx
        WHERE l.request_best""")
    else:
        wh.execute(into("_tl_req_part") + f"""
    WITH n AS ({new}), candidate AS (
        SELECT idx, {_request_key()} AS request_key, ts, path, byte_offset,
               coalesce(is_sidechain, false) AS sidechain, {_total_tokens()} AS total
        FROM n
        WHERE type = 'assistant' AND has_usage AND NOT coalesce(is_api_error, false)
          AND coalesce(model, '') <> '<synthetic>'
    ), best AS (
        SELECT request_key, arg_min(idx, (-total, sidechain, coalesce(ts, 'infinity'::TIMESTAMPTZ), path, byte_offset)) AS idx,
               min(ts) AS first_ts, min({{'p': path, 'o': byte_offset}}) AS first_origin
        FROM candidate GROUP BY request_key
    )
    SELECT {part} + l.idx AS part, b.request_key, b.first_ts, b.first_origin, {columns}
    FROM best b JOIN n l ON l.idx = b.idx""")
    # A prompt is a user line whose content is text (a string, or blocks none of which is a tool
    # result) and not injected by Claude Code; its length is known when the content is a string.
    wh.execute(into("_tl_prompt_part") + f"""
    SELECT coalesce(prompt_id, uuid) AS prompt_id, session_id, ts, prompt_chars AS length, {text} AS text,
           path, byte_offset
    FROM ({new})
    WHERE type = 'user' AND NOT coalesce(is_meta, false) AND NOT coalesce(is_compact_summary, false)
      AND coalesce(prompt_id, uuid) IS NOT NULL AND content_kind IN (1, 2) AND NOT has_tool_result""")
    wh.execute(into("_tl_tool_part") + f"""
    SELECT b.id AS tool_use_id, n.session_id, coalesce(n.request_id, 'msg:' || n.message_id) AS request_key,
           n.agent_id, n.ts, b.name AS tool_name, n.path, n.byte_offset
    FROM _tl_blocks b JOIN ({new}) n ON n.idx = b.line
    WHERE b.kind = 1 AND n.type = 'assistant' AND b.id IS NOT NULL""")
    wh.execute(into("_tl_result_part") + f"""
    SELECT b.id AS tool_use_id, b.is_error, n.ts
    FROM _tl_blocks b JOIN ({new}) n ON n.idx = b.line
    WHERE b.kind = 2 AND n.type = 'user' AND b.id IS NOT NULL""")
    wh.execute(into("_tl_session_part") + _SESSION_AGGREGATES.format(lines=new))
    wh.execute(into("_tl_session_agent") + f"""
    SELECT DISTINCT session_id, agent_id FROM ({new}) WHERE session_id IS NOT NULL AND agent_id IS NOT NULL""")
    wh.execute(into("_tl_session_prompt") + f"""
    SELECT DISTINCT session_id, prompt_id FROM ({new})
    WHERE session_id IS NOT NULL AND type = 'user' AND prompt_id IS NOT NULL""")


def _reduce_native(wh, parts: dict, number: int, capture_content: bool, *, first: bool) -> None:
    """:func:`_reduce` of batch ``number`` from the scanner's parts (``Scanned.parts``), which hold
    the rows its SQL selects from the new lines, already filtered, and each session's aggregates
    (reduce.c). Valid only when every new line is new to the warehouse too (no ``_tl_dup``), the
    scanner marked the requests (``requests_exact``) and read every new line's timestamp
    (``parts_exact``): then ``ts`` is the column ``_new_lines`` computes. Same columns, same order,
    so the two mix in one segment."""
    into = (lambda t: f"CREATE TEMP TABLE {t} AS") if first else (lambda t: f"INSERT INTO {t}")
    part = f"({number}::BIGINT << 32)"
    text = "prompt_text" if capture_content else "NULL::VARCHAR"
    columns = _request_part_columns()
    statements = {
        "_tl_req_part": f"""SELECT {part} + l.idx AS part, {_request_key("l.")} AS request_key, l.request_first_ts AS first_ts,
                                   {{'p': l.first_path, 'o': l.first_offset}} AS first_origin, {columns}
                            FROM _tl_c_requests l""",
        "_tl_prompt_part": f"""SELECT coalesce(prompt_id, uuid) AS prompt_id, session_id, ts, prompt_chars AS length,
                                      {text} AS text, path, byte_offset FROM _tl_c_prompts""",
        "_tl_tool_part": """SELECT id AS tool_use_id, session_id, coalesce(request_id, 'msg:' || message_id) AS request_key,
                                   agent_id, ts, name AS tool_name, path, byte_offset FROM _tl_c_tools""",
        "_tl_result_part": "SELECT id AS tool_use_id, is_error, ts FROM _tl_c_results",
        "_tl_session_part": """SELECT session_id, first_ts, last_ts, cwd, cwd_ts, git_branch, branch_ts, version, entrypoint,
                                      entrypoint_ts, transcript_path, lines FROM _tl_c_sessions""",
        "_tl_session_agent": "SELECT session_id, agent_id FROM _tl_c_session_agents",
        "_tl_session_prompt": "SELECT session_id, prompt_id FROM _tl_c_session_prompts",
    }
    names = [f"_tl_c_{name}" for name in parts]
    for name, table in zip(names, parts.values()):
        wh.register(name, table)
    try:
        for target, select in statements.items():
            wh.execute(into(target) + " " + select)
    finally:
        for name in names:
            wh.unregister(name)


# A session's aggregates over some of its lines ({lines}: a SELECT with the columns of a line), with
# the timestamps that rank them, so that aggregates over parts of its lines merge into the whole's.
_SESSION_AGGREGATES = """
    SELECT session_id, min(ts) AS first_ts, max(ts) AS last_ts,
           arg_min(cwd, ts) FILTER (WHERE cwd IS NOT NULL) AS cwd,
           min(ts) FILTER (WHERE cwd IS NOT NULL) AS cwd_ts,
           arg_max(git_branch, ts) FILTER (WHERE git_branch IS NOT NULL) AS git_branch,
           max(ts) FILTER (WHERE git_branch IS NOT NULL) AS branch_ts,
           max(version) AS version,
           arg_min(entrypoint, ts) FILTER (WHERE entrypoint IS NOT NULL) AS entrypoint,
           min(ts) FILTER (WHERE entrypoint IS NOT NULL) AS entrypoint_ts,
           min(path) FILTER (WHERE agent_id IS NULL AND NOT coalesce(is_sidechain, false)) AS transcript_path,
           count(*) AS lines
    FROM ({lines}) WHERE session_id IS NOT NULL GROUP BY session_id"""


def _quarantine(wh, rows: list[tuple[str, int, str, str]], host: str, run_id: str) -> int:
    """Store the lines that are not valid (:class:`ScannedBatch`), each once per file, offset and reason."""
    if not rows:
        return 0
    origin, offset, reason, text = (list(col) for col in zip(*rows))
    wh.execute("""
    INSERT INTO quarantine (source, origin, byte_offset, reason, raw, host, run_id)
    SELECT 'transcripts', q.origin, q.byte_offset, q.reason, q.raw, ?, ?
    FROM (SELECT unnest(?::VARCHAR[]) AS origin, unnest(?::BIGINT[]) AS byte_offset,
                 unnest(?::VARCHAR[]) AS reason, unnest(?::VARCHAR[]) AS raw) q
    WHERE NOT EXISTS (SELECT 1 FROM quarantine x WHERE x.source = 'transcripts' AND x.host = ?
                      AND x.origin = q.origin AND x.byte_offset = q.byte_offset AND x.reason = q.reason)
    """, [host, run_id, origin, offset, reason, text, host])
    return len(rows)


def _land(wh, new_lines: str, host: str, run_id: str, now: datetime) -> int:
    """Land a batch's new lines (``new_lines``: their SELECT, :func:`_new_lines`); returns how many."""
    return int(wh.scalar(f"""
    INSERT INTO landing_transcript_line_stored ({LANDING_STORED})
    SELECT line_key, ?, path, generation, byte_offset, byte_length, type, session_id, ts, raw, ?, ?
    FROM ({new_lines})
    """, [host, run_id, now]) or 0)


def _model_requests(wh, host: str, now: datetime) -> tuple[int, int]:
    """Merge the requests' parts (:func:`_reduce`) into ``api_request``: one reply is several lines,
    and copies of it may be in other files; per request the line with the largest usage wins."""
    wh.execute("""
    CREATE OR REPLACE TEMP TABLE _tl_req AS
    WITH best AS (
        SELECT request_key,
               arg_min(part, (-total, sidechain, coalesce(line_ts, 'infinity'::TIMESTAMPTZ), line_path, line_offset)) AS part,
               min(first_ts) AS ts, min(first_origin) AS origin
        FROM _tl_req_part GROUP BY request_key
    )
    SELECT b.request_key, l.request_id, l.message_id, l.session_id, l.agent_id, l.is_sidechain, b.ts,
           regexp_replace(trim(l.model), '\\[[^\\]]*\\]$', '') AS model, l.model AS model_raw,
           greatest(coalesce(l.input_tokens, 0), 0) AS input_tokens,
           greatest(coalesce(l.output_tokens, 0), 0) AS output_tokens,
           greatest(coalesce(l.cache_creation_tokens, 0), 0) AS cache_creation_tokens,
           l.cache_creation_5m_tokens, l.cache_creation_1h_tokens,
           greatest(coalesce(l.cache_read_tokens, 0), 0) AS cache_read_tokens,
           l.speed, l.service_tier, l.cwd, l.git_branch, l.version, l.prompt_id,
           b.origin.p AS path, b.origin.o AS byte_offset, l.total
    FROM best b JOIN _tl_req_part l ON l.part = b.part
    """)
    # A sidechain replay: the same message under another request id (first one wins). Only a message
    # with two request keys among these requests and those stored can be one: the rest is not looked at.
    wh.execute("""
    DELETE FROM _tl_req r WHERE message_id IS NOT NULL AND message_id IN (
        SELECT message_id FROM (
            SELECT message_id, request_key FROM _tl_req WHERE message_id IS NOT NULL
            UNION SELECT a.message_id, a.request_key FROM api_request a
            WHERE a.message_id IN (SELECT message_id FROM _tl_req)
        ) GROUP BY message_id HAVING count(*) > 1) AND (
        EXISTS (SELECT 1 FROM api_request a WHERE a.message_id = r.message_id AND a.request_key <> r.request_key)
        OR EXISTS (SELECT 1 FROM _tl_req o WHERE o.message_id = r.message_id AND o.request_key <> r.request_key
                   AND (o.ts, o.path, o.byte_offset) < (r.ts, r.path, r.byte_offset)))
    """)
    mark_dirty(wh, "api_request", "SELECT ts FROM _tl_req UNION SELECT a.ts FROM api_request a JOIN _tl_req r "
               "USING (request_key)")  # metric rollups: the days these rows were and will be on
    updated = wh.scalar("""
    SELECT count(*) FROM _tl_req r JOIN api_request a USING (request_key)
    WHERE NOT a.from_transcripts OR r.total > a.input_tokens + a.output_tokens + a.cache_creation_tokens + a.cache_read_tokens
    """) or 0  # requests whose tokens (or first source) changed; earlier-origin-only updates are not counted
    wh.execute("""
    UPDATE api_request a SET
        input_tokens = CASE WHEN r.total > a.input_tokens + a.output_tokens + a.cache_creation_tokens + a.cache_read_tokens
                            THEN r.input_tokens ELSE a.input_tokens END,
        output_tokens = CASE WHEN r.total > a.input_tokens + a.output_tokens + a.cache_creation_tokens + a.cache_read_tokens
                            THEN r.output_tokens ELSE a.output_tokens END,
        cache_creation_tokens = CASE WHEN r.total > a.input_tokens + a.output_tokens + a.cache_creation_tokens + a.cache_read_tokens
                            THEN r.cache_creation_tokens ELSE a.cache_creation_tokens END,
        cache_read_tokens = CASE WHEN r.total > a.input_tokens + a.output_tokens + a.cache_creation_tokens + a.cache_read_tokens
                            THEN r.cache_read_tokens ELSE a.cache_read_tokens END,
        cache_creation_5m_tokens = coalesce(r.cache_creation_5m_tokens, a.cache_creation_5m_tokens),
        cache_creation_1h_tokens = coalesce(r.cache_creation_1h_tokens, a.cache_creation_1h_tokens),
        message_id = coalesce(a.message_id, r.message_id), session_id = coalesce(a.session_id, r.session_id),
        agent_id = coalesce(a.agent_id, r.agent_id), is_sidechain = coalesce(a.is_sidechain, r.is_sidechain),
        ts = CASE WHEN a.ts IS NULL OR r.ts < a.ts THEN r.ts ELSE a.ts END,
        model = coalesce(a.model, r.model), model_raw = coalesce(a.model_raw, r.model_raw),
        speed = coalesce(r.speed, a.speed), service_tier = coalesce(r.service_tier, a.service_tier),
        host = coalesce(a.host, ?), cwd = coalesce(a.cwd, r.cwd), project = coalesce(a.project, r.cwd),
        git_branch = coalesce(a.git_branch, r.git_branch), version = coalesce(a.version, r.version),
        prompt_id = coalesce(a.prompt_id, r.prompt_id), from_transcripts = true,
        origin_path = CASE WHEN a.origin_path IS NULL OR (r.path, r.byte_offset) < (a.origin_path, a.origin_offset)
                           THEN r.path ELSE a.origin_path END,
        origin_offset = CASE WHEN a.origin_path IS NULL OR (r.path, r.byte_offset) < (a.origin_path, a.origin_offset)
                             THEN r.byte_offset ELSE a.origin_offset END,
        updated_at = ?
    FROM _tl_req r
    WHERE a.request_key = r.request_key
      AND (NOT a.from_transcripts OR r.total > a.input_tokens + a.output_tokens + a.cache_creation_tokens + a.cache_read_tokens
           OR a.ts IS NULL OR r.ts < a.ts OR a.origin_path IS NULL
           OR (r.path, r.byte_offset) < (a.origin_path, a.origin_offset))
    """, [host, now])
    new = wh.scalar("SELECT count(*) FROM _tl_req r WHERE NOT EXISTS (SELECT 1 FROM api_request a WHERE a.request_key = r.request_key)") or 0
    wh.execute("""
    INSERT INTO api_request (request_key, request_id, message_id, session_id, agent_id, is_sidechain, ts, model,
        model_raw, input_tokens, output_tokens, cache_creation_tokens, cache_creation_5m_tokens,
        cache_creation_1h_tokens, cache_read_tokens, speed, service_tier, host, cwd, project, git_branch, version,
        prompt_id, from_transcripts, origin_path, origin_offset, updated_at)
    SELECT request_key, request_id, message_id, session_id, agent_id, is_sidechain, ts, model, model_raw,
        input_tokens, output_tokens, cache_creation_tokens, cache_creation_5m_tokens, cache_creation_1h_tokens,
        cache_read_tokens, speed, service_tier, ?, cwd, cwd, git_branch, version, prompt_id, true, path,
        byte_offset, ?
    FROM _tl_req r WHERE NOT EXISTS (SELECT 1 FROM api_request a WHERE a.request_key = r.request_key)
    """, [host, now])
    wh.execute("DROP TABLE IF EXISTS _tl_req")
    return int(new), int(updated)


def _price_new_models(wh) -> None:
    """Give models seen for the first time their ``model_price`` row, so the ``api_request_cost`` view
    (for SQL users) prices them; reports price in the query and do not depend on this."""
    from ...model.pricing import current_table, price_rows

    missing = [r["model"] for r in wh.query("""
        SELECT DISTINCT model FROM api_request a WHERE model IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM model_price p WHERE p.model = a.model)""")]
    for row in price_rows(current_table(), missing):
        wh.execute("INSERT INTO model_price VALUES (" + ", ".join("?" * len(row)) + ")", row)


def _model_prompts_and_tools(wh, host: str) -> None:
    """Merge the prompts' and tool uses' parts (:func:`_reduce`): the first line of each, in time then
    file order, and when each tool use was answered."""
    wh.execute("""
    INSERT INTO prompt (prompt_id, session_id, ts, host, length, source, text)
    SELECT prompt_id, session_id, ts, ?, length, 'transcripts', text FROM (
        SELECT *, row_number() OVER (PARTITION BY prompt_id ORDER BY ts, path, byte_offset) AS rn FROM _tl_prompt_part
    ) n
    WHERE rn = 1 AND NOT EXISTS (SELECT 1 FROM prompt p WHERE p.prompt_id = n.prompt_id AND p.source = 'transcripts')
    """, [host])
    wh.execute("""
    INSERT INTO tool_use (tool_use_id, session_id, request_key, agent_id, ts, tool_name, source)
    SELECT tool_use_id, session_id, request_key, agent_id, ts, tool_name, 'transcripts' FROM (
        SELECT *, row_number() OVER (PARTITION BY tool_use_id ORDER BY ts, path, byte_offset) AS rn FROM _tl_tool_part
    ) t
    WHERE rn = 1 AND NOT EXISTS (SELECT 1 FROM tool_use u WHERE u.tool_use_id = t.tool_use_id AND u.source = 'transcripts')
    """)
    wh.execute("""
    UPDATE tool_use t SET result_ts = r.ts, is_error = r.is_error
    FROM (SELECT tool_use_id, any_value(coalesce(is_error, false)) AS is_error, min(ts) AS ts
          FROM _tl_result_part GROUP BY 1) r
    WHERE t.tool_use_id = r.tool_use_id AND t.source = 'transcripts' AND t.result_ts IS NULL
    """)


def _rebuild_sessions(wh, host: str, now: datetime) -> None:
    """Rebuild the ``session`` rows of the sessions the segment touched: their parts (:func:`_reduce`)
    merged with what their rows already held (aggregates kept with the timestamps that rank them),
    their subagents and prompts counted from ``session_agent`` and ``session_prompt`` once the new
    ones are added. Nothing is read back from landing: appending to a long session costs what the
    new lines cost (reading its landed lines back cost ~0.8 s for a 500 MB corpus in two segments)."""
    wh.execute("""
    INSERT INTO session_agent SELECT DISTINCT a.session_id, a.agent_id FROM _tl_session_agent a
    WHERE NOT EXISTS (SELECT 1 FROM session_agent x WHERE x.session_id = a.session_id AND x.agent_id = a.agent_id)""")
    wh.execute("""
    INSERT INTO session_prompt SELECT DISTINCT p.session_id, p.prompt_id FROM _tl_session_prompt p
    WHERE NOT EXISTS (SELECT 1 FROM session_prompt x WHERE x.session_id = p.session_id AND x.prompt_id = p.prompt_id)""")
    wh.execute("""
    CREATE OR REPLACE TEMP TABLE _tl_sessions AS
    WITH touched AS (SELECT DISTINCT session_id FROM _tl_session_part),
    parts AS (
        SELECT ?::VARCHAR AS host, * FROM _tl_session_part
        UNION ALL BY NAME
        SELECT s.host, s.session_id, s.first_ts, s.last_ts, s.cwd, s.cwd_ts, s.git_branch, s.branch_ts, s.version,
               s.entrypoint, s.entrypoint_ts, s.transcript_path, s.line_count AS lines
        FROM session s WHERE s.session_id IN (SELECT session_id FROM touched)
    ), merged AS (
        SELECT session_id, any_value(host) AS host, min(first_ts) AS first_ts, max(last_ts) AS last_ts,
               arg_min(cwd, cwd_ts) AS cwd, min(cwd_ts) AS cwd_ts,
               arg_max(git_branch, branch_ts) AS git_branch, max(branch_ts) AS branch_ts, max(version) AS version,
               arg_min(entrypoint, entrypoint_ts) AS entrypoint, min(entrypoint_ts) AS entrypoint_ts,
               min(transcript_path) AS transcript_path, sum(lines) AS line_count
        FROM parts GROUP BY session_id
    ), agents AS (
        SELECT session_id, count(*) AS n FROM session_agent
        WHERE session_id IN (SELECT session_id FROM touched) GROUP BY 1
    ), turns AS (
        SELECT session_id, count(*) AS n FROM session_prompt
        WHERE session_id IN (SELECT session_id FROM touched) GROUP BY 1
    )
    SELECT m.session_id, m.host, m.first_ts, m.last_ts, m.cwd, m.cwd AS project, m.git_branch, m.version,
           m.entrypoint, m.transcript_path, coalesce(a.n, 0) AS subagent_count, coalesce(t.n, 0) AS prompt_count,
           m.line_count, ?::TIMESTAMPTZ AS updated_at, m.cwd_ts, m.branch_ts, m.entrypoint_ts
    FROM merged m LEFT JOIN agents a USING (session_id) LEFT JOIN turns t USING (session_id)
    """, [host, now])
    wh.execute("DELETE FROM session WHERE session_id IN (SELECT session_id FROM _tl_sessions)")
    wh.execute("INSERT INTO session BY NAME SELECT * FROM _tl_sessions")
    wh.execute("DROP TABLE IF EXISTS _tl_sessions")


def _store_cursors(wh, host: str, cursors: list[FileCursor], now: datetime) -> None:
    latest: dict[str, FileCursor] = {}
    for c in cursors:
        latest[c.path] = c
    if not latest:
        return
    rows = list(latest.values())
    wh.execute("""
    INSERT INTO transcript_file (host, path, file_id, head_hash, generation, size, byte_offset, mtime, lines, updated_at)
    SELECT ?, unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::INTEGER[]),
           unnest(?::BIGINT[]), unnest(?::BIGINT[]), unnest(?::DOUBLE[]), unnest(?::BIGINT[]), ?
    ON CONFLICT (host, path) DO UPDATE SET file_id = excluded.file_id, head_hash = excluded.head_hash,
        generation = excluded.generation, size = excluded.size, byte_offset = excluded.byte_offset,
        mtime = excluded.mtime, lines = excluded.lines, updated_at = excluded.updated_at
    """, [host, [c.path for c in rows], [c.file_id for c in rows], [c.head_hash for c in rows],
          [c.generation for c in rows], [c.size for c in rows], [c.offset for c in rows],
          [c.mtime for c in rows], [c.lines for c in rows], now])
