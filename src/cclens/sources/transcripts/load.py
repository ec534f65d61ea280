"""Loading transcript lines into landing and the model, in one transaction per batch.

Python only splits bytes into lines and records offsets (on a reader thread, one batch ahead);
DuckDB's JSON functions (yyjson, vectorised) parse every line once into the typed envelope below and
once more to remove content for the landing copy. Per batch:

1. lines that are not UTF-8, not JSON, or not a JSON object go to ``quarantine`` with file and offset;
2. every other line lands in ``landing_transcript_line`` once per line key (``sessionId:uuid``, or a
   hash of the line when it has no uuid), content fields removed unless content capture is on;
3. assistant lines with usage become ``api_request`` rows keyed by request id: the several lines of
   one reply (one per content block) and copies in other files count once, keeping the largest usage;
   a sidechain replay of a message under another request id is dropped (as ccusage does);
4. prompts, tool uses and tool results are modelled, and the sessions touched are rebuilt;
5. the file cursors advance, in the same transaction, so a crash leaves no half-ingested batch.
"""

from __future__ import annotations

import queue
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from ...metrics.rollup import mark_dirty
from .files import Chunk, FileCursor
from .stats import IngestStats

# The envelope DuckDB extracts from each line. Unknown keys are ignored here but kept in landing;
# wrong types become NULL instead of failing the line.
ENVELOPE = """{
 "type":"VARCHAR","subtype":"VARCHAR","operation":"VARCHAR","uuid":"VARCHAR",
 "sessionId":"VARCHAR","session_id":"VARCHAR","timestamp":"VARCHAR","isSidechain":"BOOLEAN",
 "agentId":"VARCHAR","cwd":"VARCHAR","gitBranch":"VARCHAR","version":"VARCHAR","entrypoint":"VARCHAR",
 "promptId":"VARCHAR","requestId":"VARCHAR","isApiErrorMessage":"BOOLEAN","isMeta":"BOOLEAN",
 "isCompactSummary":"BOOLEAN","attachment":{"type":"VARCHAR"},
 "message":{"id":"VARCHAR","model":"VARCHAR","role":"VARCHAR",
   "content":[{"type":"VARCHAR","id":"VARCHAR","name":"VARCHAR","tool_use_id":"VARCHAR","is_error":"BOOLEAN"}],
   "usage":{"input_tokens":"BIGINT","output_tokens":"BIGINT","cache_creation_input_tokens":"BIGINT",
            "cache_read_input_tokens":"BIGINT","speed":"VARCHAR","service_tier":"VARCHAR",
            "cache_creation":{"ephemeral_5m_input_tokens":"BIGINT","ephemeral_1h_input_tokens":"BIGINT"}}}
}"""

# Content fields removed from landing unless content capture is on (prompts, responses, tool
# inputs and outputs, file contents in attachments). RFC 7386 merge patch: null deletes the key.
# ``message`` and ``attachment`` are patched inside when they are objects and removed when they are
# anything else (an unknown shape may be content); a patch never adds a key the line did not have.
_TOP_PATCH = '"toolUseResult":null,"content":null,"lastPrompt":null,"summary":null,"snapshot":null'
_MESSAGE_PATCH = '"message":{"content":null}'
_ATTACHMENT_PATCH = ('"attachment":{"content":null,"stdout":null,"stderr":null,"addedLines":null,'
                     '"prompt":null,"file":null,"snippet":null}')
CONTENT_PATCH = "{" + ",".join([_MESSAGE_PATCH, _TOP_PATCH, _ATTACHMENT_PATCH]) + "}"


def _content_patch_sql() -> str:
    """The merge patch for a parsed line ``j``, as a SQL expression choosing one of four constants."""
    def patch(message: bool, attachment: bool) -> str:
        parts = [_MESSAGE_PATCH if message else '"message":null', _TOP_PATCH,
                 _ATTACHMENT_PATCH if attachment else '"attachment":null']
        return "'{" + ",".join(parts) + "}'"
    return (f"CASE WHEN j.message IS NOT NULL THEN (CASE WHEN j.attachment IS NOT NULL THEN {patch(True, True)}"
            f" ELSE {patch(True, False)} END) ELSE (CASE WHEN j.attachment IS NOT NULL THEN {patch(False, True)}"
            f" ELSE {patch(False, False)} END) END")


QUARANTINE_RAW_LIMIT = 4096

# While a run loads many batches: DuckDB's own memory cap (it spills past it; keeps peak RSS flat
# whatever the corpus size), and a write-ahead log that may grow to this size before it is folded
# into the file, so a cold ingest compresses and writes each row group once at the end of the run
# instead of at every few batches.
BULK_MEMORY_LIMIT = "160MB"
BULK_CHECKPOINT_THRESHOLD = "64MB"


@contextmanager
def bulk_load(wh, pending_bytes: int) -> Iterator[None]:
    """Settings for a run of :func:`ingest_chunks` batches on ``wh``'s connection, restored after.
    A run of more than 16 MB (DuckDB's own checkpoint threshold) ends with one checkpoint, so the
    next process opening the file does not replay a long log; smaller runs leave that to DuckDB.
    Each batch still commits on its own: a crash loses nothing that was committed."""
    wh.execute(f"SET memory_limit = '{BULK_MEMORY_LIMIT}'")
    # One thread: under this memory cap, DuckDB's from_json on two threads costs 2.5x the CPU and is
    # no faster (measured on 32 MB batches); the other core is left to reading the files.
    wh.execute("SET threads = 1")
    if pending_bytes > 16 * 1024 * 1024:
        wh.execute(f"SET checkpoint_threshold = '{BULK_CHECKPOINT_THRESHOLD}'")
    try:
        yield
    finally:
        wh.execute("RESET memory_limit")
        wh.execute("RESET threads")
        wh.execute("RESET checkpoint_threshold")
    if pending_bytes > 16 * 1024 * 1024:
        wh.checkpoint()


def prepared(batches: Iterator[tuple[list[Chunk], list[FileCursor], int]]
             ) -> Iterator[tuple[list[Chunk], list[FileCursor], int, "Batch"]]:
    """``batches`` with each batch's input (:func:`batch_input`), produced ahead on a background thread,
    so reading files and finding lines (which release the GIL) overlap with loading the previous batch
    in DuckDB. At most three batches are in memory (loading, queued, being read). An error while
    reading is raised here, in order; when the consumer stops, the reader stops too."""
    q: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for chunks, cursors, size in batches:
                item = (chunks, cursors, size, batch_input(chunks))
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(end)
        except BaseException as exc:  # handed to the consumer, which raises it
            q.put(exc)

    worker = threading.Thread(target=produce, name="cclens-transcript-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue, then let it end
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            worker.join(timeout=0.05)


# Batches up to this size go to DuckDB as plain lists: no numpy/pyarrow import (~0.17 s of a
# process's start-up), which is most of the cost of a small incremental update.
SMALL_BATCH_BYTES = 4 * 1024 * 1024

Batch = Any  # a pyarrow.Table, or for small batches a dict of column name -> list


def batch_input(chunks: list[Chunk]) -> Batch:
    """The lines of ``chunks`` as DuckDB's input (columns path, generation, byte_offset, byte_length,
    txt, bad_raw): an Arrow table over the read buffers, or plain lists for a small batch."""
    if sum(len(c.data) for c in chunks) <= SMALL_BATCH_BYTES:
        return _batch_lists(chunks)
    return _batch_table(chunks)


def _batch_lists(chunks: list[Chunk]) -> dict[str, list]:
    cols: dict[str, list] = {k: [] for k in ("path", "generation", "byte_offset", "byte_length", "txt", "bad_raw")}
    for c in chunks:
        data, start = c.data, 0
        while start < len(data):
            end = data.find(b"\n", start)
            if end < 0:
                end = len(data)
            line = data[start:end + 1]  # with its newline, exactly as the Arrow path (line keys hash it)
            try:
                txt, bad = line.decode("utf-8"), None
            except UnicodeDecodeError:
                txt, bad = None, line.rstrip(b"\n").decode("utf-8", "backslashreplace")
            cols["path"].append(c.path)
            cols["generation"].append(c.generation)
            cols["byte_offset"].append(c.start_offset + start)
            cols["byte_length"].append(end - start)
            cols["txt"].append(txt)
            cols["bad_raw"].append(bad)
            start = end + 1
    return cols


def _register_input(wh, batch: Batch) -> None:
    if isinstance(batch, dict):
        wh.execute("""CREATE OR REPLACE TEMP TABLE _tl_in AS SELECT unnest(?::VARCHAR[]) AS path,
            unnest(?::INTEGER[]) AS generation, unnest(?::BIGINT[]) AS byte_offset,
            unnest(?::INTEGER[]) AS byte_length, unnest(?::VARCHAR[]) AS txt, unnest(?::VARCHAR[]) AS bad_raw""",
                   [batch[k] for k in ("path", "generation", "byte_offset", "byte_length", "txt", "bad_raw")])
    else:
        wh.register("_tl_in", batch)


def _unregister_input(wh, batch: Batch) -> None:
    if isinstance(batch, dict):
        wh.execute("DROP TABLE IF EXISTS _tl_in")
    else:
        wh.unregister("_tl_in")


def _chunk_arrays(chunk: Chunk) -> dict:
    """Zero-copy Arrow view of a chunk: one binary value per line (newline included; JSON allows the
    trailing whitespace), with its byte offset in the file. Finding newlines is numpy's memchr-speed scan."""
    import numpy as np
    import pyarrow as pa

    data = chunk.data
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10).astype(np.int64) + 1          # one past each newline
    starts = np.concatenate(([0], ends[:-1]))
    n = len(ends)
    offsets = np.concatenate(([0], ends)).astype(np.int32)
    lines = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return {
        "path": pa.array([chunk.path] * n if n < 64 else np.full(n, chunk.path, dtype=object), pa.string()),
        "generation": pa.array(np.full(n, chunk.generation, dtype=np.int32)),
        "byte_offset": pa.array(starts + chunk.start_offset),
        "byte_length": pa.array((ends - starts - 1).astype(np.int32)),
        "line": lines,
    }


def _batch_table(chunks: Iterable[Chunk]) -> Any:
    """The lines of ``chunks`` as an Arrow table (path, generation, byte_offset, byte_length, txt, bad_raw).

    ``txt`` is the line as UTF-8 text; a line that is not valid UTF-8 has ``txt`` NULL and its bytes,
    escaped, in ``bad_raw`` (for the quarantine)."""
    import pyarrow as pa

    parts = [_chunk_arrays(c) for c in chunks if c.data]
    if not parts:
        return pa.table({"path": pa.array([], pa.string()), "generation": pa.array([], pa.int32()),
                         "byte_offset": pa.array([], pa.int64()), "byte_length": pa.array([], pa.int32()),
                         "txt": pa.array([], pa.string()), "bad_raw": pa.array([], pa.string())})
    cols: dict[str, pa.ChunkedArray] = {}
    for name in ("path", "generation", "byte_offset", "byte_length"):
        cols[name] = pa.chunked_array([p[name] for p in parts])
    txt_parts, bad_parts = [], []
    for p in parts:
        try:
            txt_parts.append(p["line"].cast(pa.string()))
            bad_parts.append(pa.nulls(len(p["line"]), pa.string()))
        except (pa.ArrowInvalid, UnicodeDecodeError):
            txt, bad = [], []
            for raw in p["line"].to_pylist():
                try:
                    txt.append(raw.decode("utf-8"))
                    bad.append(None)
                except UnicodeDecodeError:
                    txt.append(None)
                    bad.append(raw.rstrip(b"\n").decode("utf-8", "backslashreplace"))
            txt_parts.append(pa.array(txt, pa.string()))
            bad_parts.append(pa.array(bad, pa.string()))
    cols["txt"] = pa.chunked_array(txt_parts)
    cols["bad_raw"] = pa.chunked_array(bad_parts)
    return pa.table(cols)


def ingest_chunks(wh, chunks: list[Chunk], *, host: str, capture_content: bool = False,
                  cursors: list[FileCursor] | None = None, run_id: str | None = None,
                  batch: Batch | None = None) -> IngestStats:
    """Land and model ``chunks`` (complete lines from one host) in one transaction.

    Idempotent: the same lines ingested again (from the same or another file, by a local ingest or a
    shipper) change nothing. ``cursors``, when given, are stored in ``transcript_file`` in the same
    transaction; otherwise a cursor is derived from each chunk's end. ``batch`` is the chunks' input
    (:func:`batch_input`) when the caller already built it (:func:`prepared`).
    """
    stats = IngestStats(files=len({c.path for c in chunks}), bytes=sum(len(c.data) for c in chunks))
    run_id = run_id or uuid.uuid4().hex
    now = datetime.now(timezone.utc)
    if batch is None:
        batch = batch_input(chunks)
    stats.lines = len(batch["path"]) if isinstance(batch, dict) else batch.num_rows
    if cursors is None:
        cursors = [FileCursor(path=c.path, file_id=c.file_id, head_hash=c.head_hash, generation=c.generation,
                              size=c.size, offset=c.end_offset, mtime=c.mtime,
                              lines=0) for c in chunks]
    _register_input(wh, batch)
    try:
        with wh.transaction():
            _parse(wh, capture_content)
            stats.quarantined = _quarantine(wh, host, run_id)
            stats.new_lines = _land(wh, host, run_id, now)
            stats.new_requests, stats.updated_requests = _model_requests(wh, host, now)
            if stats.new_requests:
                _price_new_models(wh)
            _model_prompts_and_tools(wh, host, capture_content)
            _rebuild_sessions(wh, now)
            _store_cursors(wh, host, cursors, now)
            _drop_scratch(wh)  # before COMMIT, which then has only the warehouse's own changes to write
    finally:
        _unregister_input(wh, batch)
        _drop_scratch(wh)
    return stats


def _drop_scratch(wh) -> None:
    wh.execute("DROP VIEW IF EXISTS _tl_new")
    for name in ("_tl_parsed", "_tl_req", "_tl_sessions"):
        wh.execute(f"DROP TABLE IF EXISTS {name}")


def _parse(wh, capture_content: bool) -> None:
    # One pass over the bytes into ``_tl_parsed``: json_valid is a fast validating scan; from_json parses
    # valid lines once into the envelope; the landing form (content removed), the line key and whether
    # the line is new (first of its key in the batch and not landed before) are computed in the same
    # statement, so the batch is materialised once. ``_tl_new`` is a view of the new lines.
    # Without content capture, content fields are removed; the commit a Bash call made
    # (toolUseResult.gitOperation, e.g. {"commit": {"sha": "3c76dfa"}}) is an id, not content, and is
    # put back so that lineage can link sessions to commits exactly (docs/lineage.md).
    stripped = f"json_merge_patch(txt, {_content_patch_sql()})"
    raw = "txt" if capture_content else f"""CASE WHEN contains(txt, '"gitOperation"')
        THEN json_merge_patch({stripped}, json_object('toolUseResult',
             json_object('gitOperation', json_extract(txt, '$.toolUseResult.gitOperation'))))
        ELSE {stripped} END"""
    text = "json_extract_string(txt, '$.message.content')"
    wh.execute(f"""
    CREATE OR REPLACE TEMP TABLE _tl_parsed AS
    SELECT path, generation, byte_offset, byte_length, bad,
           CASE WHEN bad IS NOT NULL THEN left(coalesce(txt, bad_raw), {QUARANTINE_RAW_LIMIT}) END AS bad_text,
           j,
           CASE WHEN bad IS NULL THEN coalesce(j.sessionId, j.session_id, '') || ':' ||
                CASE WHEN j.uuid IS NULL THEN 'h:' || md5(txt) ELSE j.uuid END END AS line_key,
           bad IS NULL AS is_new,
           CASE WHEN bad IS NULL THEN {raw} END AS raw,
           CASE WHEN j.type = 'user' AND j.message.content IS NULL THEN {text} END AS prompt_text
    FROM (
        -- try(from_json(...)) is NULL exactly for text that is not JSON, so the line is parsed once;
        -- the rare failures are then told apart (blank, not JSON, valid JSON that is not an object).
        SELECT *, CASE WHEN txt IS NULL THEN 'invalid UTF-8'
                       WHEN j IS NULL THEN (CASE WHEN trim(txt, ' \t\r\n') = '' THEN 'blank'
                                            WHEN json_valid(txt) THEN 'not a JSON object' ELSE 'invalid JSON' END)
                       WHEN NOT starts_with(txt, '{{') AND left(ltrim(txt, ' \t\r\n'), 1) <> '{{' THEN 'not a JSON object'
                  END AS bad
        FROM (SELECT *, try(from_json(txt, '{ENVELOPE.replace(chr(10), '')}')) AS j FROM _tl_in)
    )
    WHERE bad IS DISTINCT FROM 'blank'
    """)
    # New: the first line of its key in the batch, and not landed before. Every valid line starts as
    # new; only the (rare) repeats are updated, on narrow columns.
    wh.execute("""
    UPDATE _tl_parsed p SET is_new = false FROM (
        SELECT path, generation, byte_offset FROM (
            SELECT path, generation, byte_offset, line_key,
                   row_number() OVER (PARTITION BY line_key ORDER BY path, generation, byte_offset) AS rn
            FROM _tl_parsed WHERE bad IS NULL
        ) k
        WHERE rn > 1 OR EXISTS (SELECT 1 FROM landing_transcript_line l WHERE l.line_key = k.line_key)
    ) d
    WHERE p.path = d.path AND p.generation = d.generation AND p.byte_offset = d.byte_offset
    """)
    wh.execute("CREATE OR REPLACE TEMP VIEW _tl_new AS SELECT * FROM _tl_parsed WHERE is_new")


def _quarantine(wh, host: str, run_id: str) -> int:
    n = wh.scalar("SELECT count(*) FROM _tl_parsed WHERE bad IS NOT NULL")
    if n:
        wh.execute(f"""
        INSERT INTO quarantine (source, origin, byte_offset, reason, raw, host, run_id)
        SELECT 'transcripts', path, byte_offset, bad,
               bad_text, ?, ?
        FROM _tl_parsed q
        WHERE bad IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM quarantine x WHERE x.source = 'transcripts' AND x.host = ?
                          AND x.origin = q.path AND x.byte_offset = q.byte_offset AND x.reason = q.bad)
        """, [host, run_id, host])
    return int(n or 0)


def _land(wh, host: str, run_id: str, now: datetime) -> int:
    wh.execute("""
    INSERT INTO landing_transcript_line
    SELECT line_key, ?, path, generation, byte_offset, byte_length,
           j.type, coalesce(j.attachment.type, j.subtype, j.operation),
           coalesce(j.sessionId, j.session_id), j.uuid, try_cast(j.timestamp AS TIMESTAMPTZ),
           j.agentId, j.isSidechain, j.cwd, j.gitBranch, j.version, j.entrypoint, j.promptId,
           raw, ?, ?
    FROM _tl_new
    """, [host, run_id, now])
    return int(wh.scalar("SELECT count(*) FROM _tl_new") or 0)


def _model_requests(wh, host: str, now: datetime) -> tuple[int, int]:
    # Candidates: assistant lines with usage from newly landed lines, excluding synthetic/API-error
    # messages. One reply is several lines; keep per request the largest usage, non-sidechain first.
    wh.execute("""
    CREATE OR REPLACE TEMP TABLE _tl_req AS
    SELECT * EXCLUDE (ts, path, byte_offset, rn, first_ts, first_origin),
           first_ts AS ts, first_origin.p AS path, first_origin.o AS byte_offset
    FROM (
        SELECT *, row_number() OVER (PARTITION BY request_key
                   ORDER BY total DESC, coalesce(is_sidechain, false), ts, path, byte_offset) AS rn,
               -- Whatever the batching, the request's earliest line gives its ts and its origin, so
               -- any split of the same lines (local ingest, shipping) ends with the same row.
               min(ts) OVER (PARTITION BY request_key) AS first_ts,
               min({'p': path, 'o': byte_offset}) OVER (PARTITION BY request_key) AS first_origin
        FROM (
            SELECT coalesce(j.requestId, 'msg:' || j.message.id, 'line:' || line_key) AS request_key,
                   j.requestId AS request_id, j.message.id AS message_id,
                   coalesce(j.sessionId, j.session_id) AS session_id, j.agentId AS agent_id,
                   j.isSidechain AS is_sidechain, try_cast(j.timestamp AS TIMESTAMPTZ) AS ts,
                   regexp_replace(trim(j.message.model), '\\[[^\\]]*\\]$', '') AS model, j.message.model AS model_raw,
                   greatest(coalesce(j.message.usage.input_tokens, 0), 0) AS input_tokens,
                   greatest(coalesce(j.message.usage.output_tokens, 0), 0) AS output_tokens,
                   greatest(coalesce(j.message.usage.cache_creation_input_tokens, 0), 0) AS cache_creation_tokens,
                   j.message.usage.cache_creation.ephemeral_5m_input_tokens AS cache_creation_5m_tokens,
                   j.message.usage.cache_creation.ephemeral_1h_input_tokens AS cache_creation_1h_tokens,
                   greatest(coalesce(j.message.usage.cache_read_input_tokens, 0), 0) AS cache_read_tokens,
                   j.message.usage.speed AS speed, j.message.usage.service_tier AS service_tier,
                   j.cwd AS cwd, j.gitBranch AS git_branch, j.version AS version, j.promptId AS prompt_id,
                   path, byte_offset,
                   coalesce(j.message.usage.input_tokens, 0) + coalesce(j.message.usage.output_tokens, 0)
                     + coalesce(j.message.usage.cache_creation_input_tokens, 0)
                     + coalesce(j.message.usage.cache_read_input_tokens, 0) AS total
            FROM _tl_new
            WHERE j.type = 'assistant' AND j.message.usage IS NOT NULL
              AND coalesce(j.isApiErrorMessage, false) = false
              AND coalesce(j.message.model, '') <> '<synthetic>'
        )
    ) WHERE rn = 1
    """)
    # A sidechain replay: the same message under another request id (first one wins).
    wh.execute("""
    DELETE FROM _tl_req r WHERE message_id IS NOT NULL AND (
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


def _model_prompts_and_tools(wh, host: str, capture_content: bool) -> None:
    text = "prompt_text" if capture_content else "NULL"
    # A prompt is a user line whose content is text (not tool results) and not injected by Claude Code.
    wh.execute(f"""
    INSERT INTO prompt (prompt_id, session_id, ts, host, length, source, text)
    SELECT prompt_id, session_id, ts, ?, length, 'transcripts', text FROM (
        SELECT coalesce(j.promptId, j.uuid) AS prompt_id, coalesce(j.sessionId, j.session_id) AS session_id,
               try_cast(j.timestamp AS TIMESTAMPTZ) AS ts,
               length(prompt_text) AS length, {text} AS text,
               row_number() OVER (PARTITION BY coalesce(j.promptId, j.uuid) ORDER BY j.timestamp) AS rn
        FROM _tl_new
        WHERE j.type = 'user' AND NOT coalesce(j.isMeta, false) AND NOT coalesce(j.isCompactSummary, false)
          AND coalesce(j.promptId, j.uuid) IS NOT NULL
          AND (j.message.content IS NULL OR len(list_filter(j.message.content, lambda x: x.type = 'tool_result')) = 0)
          AND (prompt_text IS NOT NULL OR j.message.content IS NOT NULL)
    ) n
    WHERE rn = 1 AND NOT EXISTS (SELECT 1 FROM prompt p WHERE p.prompt_id = n.prompt_id AND p.source = 'transcripts')
    """, [host])
    wh.execute("""
    INSERT INTO tool_use (tool_use_id, session_id, request_key, agent_id, ts, tool_name, source)
    SELECT tool_use_id, session_id, request_key, agent_id, ts, tool_name, 'transcripts' FROM (
        SELECT b.id AS tool_use_id, session_id, request_key, agent_id, ts, b.name AS tool_name,
               row_number() OVER (PARTITION BY b.id ORDER BY ts) AS rn
        FROM (
            SELECT unnest(j.message.content) AS b, coalesce(j.sessionId, j.session_id) AS session_id,
                   coalesce(j.requestId, 'msg:' || j.message.id) AS request_key, j.agentId AS agent_id,
                   try_cast(j.timestamp AS TIMESTAMPTZ) AS ts
            FROM _tl_new WHERE j.type = 'assistant' AND j.message.content IS NOT NULL
        ) WHERE b.type = 'tool_use' AND b.id IS NOT NULL
    ) n
    WHERE rn = 1 AND NOT EXISTS (SELECT 1 FROM tool_use t WHERE t.tool_use_id = n.tool_use_id AND t.source = 'transcripts')
    """)
    wh.execute("""
    UPDATE tool_use t SET result_ts = r.ts, is_error = r.is_error
    FROM (
        SELECT b.tool_use_id, any_value(coalesce(b.is_error, false)) AS is_error, min(ts) AS ts FROM (
            SELECT unnest(j.message.content) AS b, try_cast(j.timestamp AS TIMESTAMPTZ) AS ts
            FROM _tl_new WHERE j.type = 'user' AND j.message.content IS NOT NULL
        ) WHERE b.type = 'tool_result' AND b.tool_use_id IS NOT NULL GROUP BY 1
    ) r
    WHERE t.tool_use_id = r.tool_use_id AND t.source = 'transcripts' AND t.result_ts IS NULL
    """)


def _rebuild_sessions(wh, now: datetime) -> None:
    wh.execute("""
    CREATE OR REPLACE TEMP TABLE _tl_sessions AS
    SELECT DISTINCT coalesce(j.sessionId, j.session_id) AS session_id FROM _tl_new
    WHERE coalesce(j.sessionId, j.session_id) IS NOT NULL
    """)
    wh.execute("DELETE FROM session WHERE session_id IN (SELECT session_id FROM _tl_sessions)")
    wh.execute("""
    INSERT INTO session
    SELECT l.session_id, any_value(l.host), min(l.ts), max(l.ts),
           arg_min(l.cwd, l.ts) FILTER (WHERE l.cwd IS NOT NULL),
           arg_min(l.cwd, l.ts) FILTER (WHERE l.cwd IS NOT NULL),
           arg_max(l.git_branch, l.ts) FILTER (WHERE l.git_branch IS NOT NULL),
           max(l.version), arg_min(l.entrypoint, l.ts) FILTER (WHERE l.entrypoint IS NOT NULL),
           min(l.path) FILTER (WHERE l.agent_id IS NULL AND NOT coalesce(l.is_sidechain, false)),
           count(DISTINCT l.agent_id),
           count(DISTINCT l.prompt_id) FILTER (WHERE l.record_type = 'user'),
           count(*), ?
    FROM landing_transcript_line l
    WHERE l.session_id IN (SELECT session_id FROM _tl_sessions)
    GROUP BY l.session_id
    """, [now])
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
