"""Ingesting a set of transcript files incrementally, in bounded batches."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import orjson

from .files import Chunk, FileCursor, read_new, scan, storable_path
from .stats import IngestStats

# Bytes read and scanned at a time; bounds peak memory whatever the corpus size. With the consumer
# reading one batch ahead (load._Feed), 48 MB was as fast as 64 MB and peaked ~45 MiB lower
# (docs/benchmarks.md).
BATCH_BYTES = 48 * 1024 * 1024
FIRST_BATCH_BYTES = 4 * 1024 * 1024  # the first batch of a run, read while nothing else can start
SEGMENT_BYTES = 512 * 1024 * 1024  # bytes of input per transaction (see _load_segments)

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


def _read_batches(todo: list[tuple[Path, FileCursor | None]], batch_bytes: int, errors: list[str]
                  ) -> Iterator[tuple[list[Chunk], list[FileCursor], int]]:
    """The new complete lines of ``todo`` as ``(chunks, cursors, bytes)`` batches of about ``batch_bytes``.
    Every file's cursor is in a batch, even when nothing is new (its size and identity are remembered).
    Files that cannot be read are appended to ``errors`` and skipped."""
    chunks: list[Chunk] = []
    cursors: list[FileCursor] = []
    size = 0
    limit = min(batch_bytes, FIRST_BATCH_BYTES)  # a small first batch: DuckDB starts sooner
    for f, cursor in todo:
        while True:
            try:
                chunk, cursor = read_new(f, cursor)
            except OSError as exc:
                errors.append(f"{storable_path(str(f))}: {exc.strerror or exc}")
                break
            cursors.append(cursor)
            if chunk is not None:
                chunks.append(chunk)
                size += len(chunk.data)
                if size >= limit:
                    yield chunks, cursors, size
                    chunks, cursors, size, limit = [], [], 0, batch_bytes
            if chunk is None or cursor.offset >= cursor.size:
                break
    if chunks or cursors:
        yield chunks, cursors, size


_CURSOR_COLUMNS = "path, file_id, head_hash, generation, size, byte_offset, mtime, lines"


def load_cursors(wh, host: str, paths: list[str] | None = None) -> dict[str, FileCursor]:
    """The stored cursors of ``host`` by path (only those of ``paths`` when given)."""
    sql = f"SELECT {_CURSOR_COLUMNS} FROM transcript_file WHERE host = ?"
    params: list = [host]
    if paths is not None:
        sql += " AND path IN (SELECT unnest(?::VARCHAR[]))"
        params.append(paths)
    return {r[0]: FileCursor(*r) for r in _rows(wh, sql, params)}


def _rows(wh, sql: str, params: list) -> list[tuple]:
    """Rows of ``sql`` as tuples: ``wh.rows`` where the warehouse has it (DuckDB's: no dicts built),
    else through ``wh.query``."""
    rows = getattr(wh, "rows", None)
    if rows is not None:
        return rows(sql, params)
    return [tuple(r.values()) for r in wh.query(sql, params)]


def plan(wh, paths: list[Path] | None = None, *, host: str, include_defaults: bool = True,
         found: dict[str, int | OSError] | None = None
         ) -> tuple[list[tuple[Path, FileCursor | None]], int, list[str]]:
    """Which files have changed since their cursor: ``(files with their cursors, bytes pending, errors)``,
    files in path order. Cheap (a directory walk and a stat per file, compared with the stored sizes
    without building a cursor per file), so reports can call it every time. ``found``: the result of
    :func:`~.files.scan` for the same paths, when the caller already has it."""
    stored = _stored_sizes(wh, host)
    if found is None:
        found = scan(paths, include_defaults=include_defaults)
    return _plan_from(found, stored, lambda keys: load_cursors(wh, host, keys))


def _plan_from(found: dict[str, int | OSError], stored: dict[str, tuple[int, int]],
               cursors_of: Callable[[list[str]], dict[str, FileCursor]]
               ) -> tuple[list[tuple[Path, FileCursor | None]], int, list[str]]:
    """:func:`plan` given the stored ``(byte offset, size)`` by path and a lookup of stored cursors."""
    errors: list[str] = []
    changed: list[tuple[str, int, str]] = []  # (path, size, the path as stored: storable_path)
    for f, size in found.items():
        key = storable_path(f)
        if isinstance(size, OSError):
            errors.append(f"{key}: {size.strerror or size}")
        elif stored.get(key) != (size, size):  # (byte offset, size) of what is ingested
            changed.append((f, size, key))
    if not changed:
        return [], 0, sorted(errors)
    cursors = cursors_of([key for _, _, key in changed])
    todo: list[tuple[Path, FileCursor | None]] = []
    pending = 0
    for f, size, key in sorted(changed):
        c = cursors.get(key)
        todo.append((Path(f), c))
        pending += size - c.offset if c and size >= c.offset else size
    return todo, pending, sorted(errors)


def _stored_sizes(wh, host: str) -> dict[str, tuple[int, int]]:
    """``{path: (byte offset, size)}`` of the stored cursors of ``host``."""
    sql = "SELECT path, byte_offset, size FROM transcript_file WHERE host = ?"
    return {p: (o, s) for p, o, s in _rows(wh, sql, [host])}


@dataclass
class ReadAhead:
    """Reading and scanning started before the warehouse is open, for a warehouse that has no cursors
    yet (a new file: every file is read from its start), so a first ingest reads while DuckDB creates
    the schema. :func:`ingest_paths` takes it over, or closes it when the warehouse turns out to have
    cursors after all (then it plans as usual: nothing read ahead is loaded)."""

    todo: list[tuple[Path, FileCursor | None]]
    pending: int
    errors: list[str]  # the walk's, then the reader's (appended while it reads)
    batches: Iterator  # :func:`~.load.prepared`, already reading

    def close(self) -> None:
        self.batches.close()


def read_ahead(found: dict[str, int | OSError], *, capture_content: bool = False,
               batch_bytes: int = BATCH_BYTES) -> ReadAhead | None:
    """Start reading every file of ``found`` (:func:`~.files.scan`) from its start, on the reader
    thread, before a warehouse is opened; None when there is nothing to read. See :class:`ReadAhead`."""
    todo, pending, errors = _plan_from(found, {}, lambda keys: {})  # nothing stored: every file from 0
    if not todo:
        return None
    from .load import prepared

    return ReadAhead(todo, pending, errors, prepared(_read_batches(todo, batch_bytes, errors), capture_content))


class BackgroundWalk:
    """The walk of the transcript folders (:func:`~.files.scan_in_background`) started before the
    warehouse is opened and, when the warehouse file does not exist yet, reading ahead
    (:func:`read_ahead`) as soon as the walk is done, on a thread that also imports what loading needs.
    The caller takes :meth:`found` and :meth:`ahead` once the warehouse is open (for :func:`ingest_paths`,
    which drops a read ahead if the warehouse has cursors after all), then :meth:`close`: it stops a
    read ahead that nobody took."""

    def __init__(self, paths: list[Path] | None, *, include_defaults: bool = True, new_file: bool = False,
                 capture_content: bool = False, import_load: bool = True):
        import threading

        from .files import scan_in_background

        self.found = scan_in_background(paths, include_defaults=include_defaults)
        self._ahead: ReadAhead | None = None
        self._taken = False
        self._thread = threading.Thread(target=self._prepare, args=(new_file, capture_content, import_load),
                                        name="cclens-import", daemon=True)
        self._thread.start()

    def _prepare(self, new_file: bool, capture_content: bool, import_load: bool) -> None:
        try:
            if import_load or new_file:
                from . import load  # noqa: F401  (imported here, while the warehouse opens)
            if new_file:
                self._ahead = read_ahead(self.found(), capture_content=capture_content)
        except Exception:  # done again, and reported, where it is used
            pass

    def ahead(self) -> "ReadAhead | None":
        """The read ahead, if one was started (once: the caller then owns it)."""
        self._thread.join()
        if self._taken:
            return None
        self._taken = True
        return self._ahead

    def close(self) -> None:
        self._thread.join()
        if self._ahead is not None:
            self._ahead.close()


def ingest_paths(wh, paths: list[Path] | None = None, *, host: str, include_defaults: bool = True,
                 capture_content: bool = False, progress: Progress | None = None,
                 batch_bytes: int = BATCH_BYTES, segment_bytes: int = SEGMENT_BYTES,
                 found: dict[str, int | OSError] | None = None, ahead: ReadAhead | None = None) -> IngestStats:
    """Ingest every new complete line of the transcripts found under ``paths`` (and the default roots
    when ``include_defaults``). Safe to interrupt at any point: lines commit with their cursors, in
    transactions of about ``segment_bytes`` of input (batches of ``batch_bytes`` each).
    Files that cannot be read are reported in ``stats.errors`` and skipped. ``found``: see :func:`plan`.
    ``ahead``: :func:`read_ahead` of the same files and content setting, started before ``wh`` was
    opened; used only if ``wh`` has no cursors of ``host`` (else closed, and the files planned)."""
    if ahead is not None and _rows(wh, "SELECT 1 FROM transcript_file WHERE host = ? LIMIT 1", [host]):
        ahead.close()
        ahead = None
    if ahead is not None:
        todo, pending, errors = ahead.todo, ahead.pending, ahead.errors
    else:
        todo, pending, errors = plan(wh, paths, host=host, include_defaults=include_defaults, found=found)
    if not todo:
        stats = IngestStats()
        stats.errors.extend(errors)
        return stats
    run_id = uuid.uuid4().hex
    started = datetime.now(timezone.utc)
    from .load import bulk_load, prepared  # imported only once there is something to load
    from .scan import scan

    from ...warehouse import arrow_streams

    total = IngestStats()
    batches = ahead.batches if ahead is not None else None
    try:
        arrow_streams.enable(scan([b"{}\n"]).lines)  # outside the transactions: a failed check aborts none
        with bulk_load(wh, pending):
            # The next batch is read and scanned on another thread while this one loads.
            if batches is None:
                batches = prepared(_read_batches(todo, batch_bytes, errors), capture_content)
            _load_segments(wh, batches, total, host=host, capture_content=capture_content, run_id=run_id,
                           segment_bytes=segment_bytes, pending=pending, progress=progress)
    finally:
        if batches is not None:
            batches.close()  # stops the reader thread if loading failed
    total.files = len(todo)
    total.errors.extend(errors)
    wh.execute("INSERT INTO ingest_run VALUES (?, 'transcripts', ?, ?, ?, ?)",
               [run_id, host, started, datetime.now(timezone.utc), orjson.dumps(total.__dict__).decode()])
    return total


def _load_segments(wh, batches, total: IngestStats, *, host: str, capture_content: bool, run_id: str,
                   segment_bytes: int, pending: int, progress: Progress | None) -> None:
    """Load ``batches`` (from :func:`~.load.prepared`) into ``total``, one transaction per segment of
    about ``segment_bytes`` of input (:class:`~.load.Segment`). DuckDB writes the full row groups of a
    transaction straight to the file, compressed, where many small commits would each go through the
    write-ahead log first and be compressed at the next checkpoint: about twice the work. A crash
    loses at most the segment that was loading; its cursors did not advance, so the next run reads it
    again."""
    from .load import BULK_BYTES, Segment

    done = 0
    more = True
    while more:
        more = False
        size_in_segment = 0
        with wh.transaction():
            segment = Segment(wh, host=host, capture_content=capture_content, run_id=run_id)
            for cursors, size, batch in batches:
                segment.add(batch, cursors)
                done += size
                size_in_segment += size
                if progress:
                    progress(done, pending)
                if size_in_segment >= segment_bytes:
                    more = True
                    break
            total.add(segment.finish())
            if not more and pending > BULK_BYTES:
                # The run's last COMMIT checkpoints (bulk_load's own CHECKPOINT then has nothing to do):
                # DuckDB then writes the model rows once, to the file, instead of to the log first.
                wh.execute("SET checkpoint_threshold = '1MB'")


def refresh(wh, settings, found: dict[str, int | OSError] | None = None, ahead: ReadAhead | None = None
            ) -> IngestStats:
    """Bring the warehouse up to date with this machine's transcripts (default roots and the configured
    ``transcript_paths``). Cheap when nothing changed; reports call it so they are always current.
    ``found``: :func:`~.files.scan` of those places (``scan(settings.transcript_paths)``), if already done;
    ``ahead``: :func:`read_ahead` of them (see :func:`ingest_paths`)."""
    return ingest_paths(wh, list(settings.transcript_paths), host=settings.host,
                        capture_content=settings.capture_content, found=found, ahead=ahead)
