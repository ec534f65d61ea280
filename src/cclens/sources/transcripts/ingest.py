"""Ingesting a set of transcript files incrementally, in bounded batches."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import orjson

from .files import Chunk, FileCursor, discover, read_new
from .load import IngestStats, ingest_chunks, load_cursors

BATCH_BYTES = 96 * 1024 * 1024  # bytes per transaction; bounds peak memory whatever the corpus size

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


def ingest_paths(wh, paths: list[Path] | None = None, *, host: str, include_defaults: bool = True,
                 capture_content: bool = False, progress: Progress | None = None,
                 batch_bytes: int = BATCH_BYTES) -> IngestStats:
    """Ingest every new complete line of the transcripts found under ``paths`` (and the default roots
    when ``include_defaults``). Safe to interrupt at any point: each batch commits with its cursors.
    Files that cannot be read are reported in ``stats.errors`` and skipped."""
    from ...model.pricing import load_table, sync_model_prices  # noqa: F401  (imported lazily for start-up)

    files = discover(paths, include_defaults=include_defaults)
    cursors = load_cursors(wh, host)
    run_id = uuid.uuid4().hex
    started = datetime.now(timezone.utc)
    total = IngestStats()
    todo: list[Path] = []
    pending = 0
    for f in files:
        c = cursors.get(str(f))
        try:
            size = f.stat().st_size
        except OSError as exc:
            total.errors.append(f"{f}: {exc.strerror or exc}")
            continue
        if c is None or size != c.offset or c.size != size:
            todo.append(f)
            pending += max(size - (c.offset if c and size >= c.offset else 0), 0)
    done = 0
    batch: list[Chunk] = []
    batch_cursors: list[FileCursor] = []
    batch_size = 0

    def flush() -> None:
        nonlocal batch, batch_cursors, batch_size, done
        if not batch:
            return
        total.add(ingest_chunks(wh, batch, host=host, capture_content=capture_content, cursors=batch_cursors,
                                run_id=run_id))
        done += batch_size
        if progress:
            progress(done, pending)
        batch, batch_cursors, batch_size = [], [], 0

    for f in todo:
        cursor = cursors.get(str(f))
        while True:
            try:
                chunk, cursor = read_new(f, cursor)
            except OSError as exc:
                total.errors.append(f"{f}: {exc.strerror or exc}")
                break
            if chunk is None:
                # Nothing new (or only a partial line); still remember size/identity for next time.
                batch_cursors.append(cursor)
                break
            batch.append(chunk)
            batch_cursors.append(cursor)
            batch_size += len(chunk.data)
            if batch_size >= batch_bytes:
                flush()
            if cursor.offset >= cursor.size:
                break
    flush()
    if batch_cursors:  # cursors of files with nothing new
        ingest_chunks(wh, [], host=host, cursors=batch_cursors, run_id=run_id)
    total.files = len(todo)
    wh.execute("INSERT INTO ingest_run VALUES (?, 'transcripts', ?, ?, ?, ?)",
               [run_id, host, started, datetime.now(timezone.utc),
                orjson.dumps({k: v for k, v in total.__dict__.items()}).decode()])
    return total
