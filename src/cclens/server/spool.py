"""A write-ahead spool: a request is acknowledged once its bytes are fsynced here.

Pushed data (OTLP) is appended to segment files in ``<warehouse>.spool/`` by one flusher thread that
groups concurrent appends into one ``write`` + ``fdatasync`` (group commit), then resolves each
append's future: only then does the receiver answer 200. The single writer later takes entries in
order, models them into the warehouse, and records in the *same transaction* how far it got
(``spool_position``). On start, entries after that position are replayed; a torn entry at the tail
(written but never fsynced, so never acknowledged) is cut off. Together with the idempotency keys in
the warehouse (request id, body hash) this gives: kill -9 at any moment loses nothing acknowledged
and stores nothing twice.

Entry layout: ``b"CCSP"``, then big-endian u32 meta length, u32 body length, u32 CRC-32 of
meta+body, then meta (JSON) and body.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import orjson

log = logging.getLogger("cclens.server.spool")

MAGIC = b"CCSP"
_HEAD = struct.Struct(">4sIII")


@dataclass
class SpoolEntry:
    """One spooled item. ``obj`` may carry the already-decoded form (not persisted)."""

    meta: dict[str, Any]
    body: bytes
    segment: int = -1
    offset: int = -1
    end: int = -1
    obj: Any = field(default=None, repr=False)

    @property
    def records(self) -> int:
        return int(self.meta.get("records") or 1)


def encode_entry(meta: dict[str, Any], body: bytes) -> bytes:
    m = orjson.dumps(meta)
    return _HEAD.pack(MAGIC, len(m), len(body), zlib.crc32(body, zlib.crc32(m))) + m + body


def read_entries(path: Path, start: int = 0) -> tuple[list[SpoolEntry], int, str | None]:
    """Valid entries of a segment from ``start``; returns (entries, end of the last valid one, problem)."""
    data = path.read_bytes()
    seg = int(path.stem.split("-")[-1])
    out: list[SpoolEntry] = []
    pos = start
    while pos < len(data):
        if len(data) - pos < _HEAD.size:
            return out, pos, "truncated header"
        magic, mlen, blen, crc = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + mlen + blen
        if magic != MAGIC:
            return out, pos, "bad magic"
        if end > len(data):
            return out, pos, "truncated entry"
        m = data[pos + _HEAD.size: pos + _HEAD.size + mlen]
        body = data[pos + _HEAD.size + mlen: end]
        if zlib.crc32(body, zlib.crc32(m)) != crc:
            return out, pos, "checksum mismatch"
        try:
            meta = orjson.loads(m)
        except orjson.JSONDecodeError:
            return out, pos, "bad meta"
        out.append(SpoolEntry(meta, body, seg, pos, end))
        pos = end
    return out, pos, None


class SpoolFull(Exception):
    """The spool holds more unapplied data than allowed: the caller should answer 503."""


class Spool:
    """The write-ahead spool of one kind of pushed data, and a batch source for the writer.

    ``apply(wh, entries)`` models entries (in the writer's transaction); ``on_commit()`` and
    ``on_rollback()`` are told how that transaction ended; ``quarantine(wh, entry, reason)`` keeps an
    entry that fails on its own.
    """

    def __init__(self, directory: Path, name: str, *, apply: Callable[[Any, Sequence[SpoolEntry]], None],
                 quarantine: Callable[[Any, SpoolEntry, str], None] | None = None,
                 on_commit: Callable[[], None] | None = None, on_rollback: Callable[[], None] | None = None,
                 segment_bytes: int = 64 << 20, max_backlog_bytes: int = 512 << 20,
                 batch_records: int = 20000, fsync: bool = True):
        self.dir = Path(directory)
        self.name = name
        self._apply = apply
        self._quarantine = quarantine
        self._on_commit = on_commit
        self._on_rollback = on_rollback
        self.segment_bytes = segment_bytes
        self.max_backlog_bytes = max_backlog_bytes
        self.batch_records = batch_records
        self.fsync = fsync
        self.wake: Callable[[], None] = lambda: None  # set by the owner: tells the writer there is work
        self._ready: deque[SpoolEntry] = deque()
        self._lock = threading.Lock()
        self._cv = threading.Condition()
        self._pending: list[tuple[SpoolEntry, bytes, Future]] = []
        self._closing = False
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._segment = 0
        self._size = 0
        self._committed_segment = 0
        self.backlog_bytes = 0
        self.backlog_records = 0
        self.replayed = 0
        self.appended = 0
        self.fsyncs = 0

    # -- start / stop --------------------------------------------------------------------------
    def open(self, wh: Any) -> int:
        """Read the applied position from ``wh``, queue what comes after it, start the flusher.
        Returns how many entries are replayed."""
        self.dir.mkdir(parents=True, exist_ok=True)
        row = wh.query("SELECT segment, byte_offset FROM spool_position WHERE spool = ?", [self.name])
        seg0, off0 = (row[0]["segment"], row[0]["byte_offset"]) if row else (0, 0)
        self._committed_segment = seg0
        segments = sorted(self._segments())
        for seg in segments:
            path = self._path(seg)
            if seg < seg0:
                path.unlink(missing_ok=True)
                continue
            entries, end, problem = read_entries(path, off0 if seg == seg0 else 0)
            if problem:
                if seg == segments[-1]:
                    log.warning("spool %s: cutting a torn tail at byte %d (%s); it was never acknowledged",
                                path.name, end, problem)
                    with open(path, "r+b") as f:
                        f.truncate(end)
                else:  # pragma: no cover - needs disk corruption
                    bad = path.with_suffix(".corrupt")
                    log.error("spool %s is damaged at byte %d (%s); kept as %s", path.name, end, problem, bad.name)
                    path.rename(bad)
            for e in entries:
                self._ready.append(e)
                self.backlog_bytes += len(e.body)
                self.backlog_records += e.records
        self.replayed = len(self._ready)
        self._segment = (segments[-1] + 1) if segments else max(seg0, 0) + 1
        self._open_segment()
        self._thread = threading.Thread(target=self._flusher, name=f"cclens-spool-{self.name}", daemon=True)
        self._thread.start()
        if self.replayed:
            log.info("spool %s: replaying %d entries", self.name, self.replayed)
            self.wake()
        return self.replayed

    def close(self) -> None:
        """Flush pending appends and stop the flusher (entries not yet applied stay on disk)."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if self._thread:
            self._thread.join(30)
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- appending (any thread) ----------------------------------------------------------------
    def append(self, meta: dict[str, Any], body: bytes, obj: Any = None) -> "Future[SpoolEntry]":
        """Queue an entry; the future resolves once it is on disk (fsynced), or fails."""
        fut: Future = Future()
        entry = SpoolEntry(meta, body, obj=obj)
        with self._cv:
            if self._closing:
                fut.set_exception(SpoolFull("the server is shutting down"))
                return fut
            if self.backlog_bytes > self.max_backlog_bytes:
                fut.set_exception(SpoolFull(f"{self.backlog_bytes} bytes wait to be written to the warehouse"))
                return fut
            self._pending.append((entry, encode_entry(meta, body), fut))
            self._cv.notify()
        return fut

    @property
    def overloaded(self) -> bool:
        return self.backlog_bytes > self.max_backlog_bytes

    def _flusher(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closing:
                    self._cv.wait()
                batch, self._pending = self._pending, []
                closing = self._closing
            if batch:
                self._write(batch)
            elif closing:
                return

    def _write(self, batch: list[tuple[SpoolEntry, bytes, Future]]) -> None:
        data = b"".join(blob for _, blob, _ in batch)
        try:
            if self._size and self._size + len(data) > self.segment_bytes:
                self._rotate()
            start = self._size
            self._write_all(data)
            if self.fsync:
                os.fdatasync(self._fd)
            self.fsyncs += 1
        except OSError as exc:
            log.error("spool %s: write failed (%s); %d requests refused", self.name, exc, len(batch))
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:  # pragma: no cover
                pass
            for _, _, fut in batch:
                fut.set_exception(exc)
            return
        pos = start
        with self._lock:
            for entry, blob, _ in batch:
                entry.segment, entry.offset, entry.end = self._segment, pos, pos + len(blob)
                pos += len(blob)
                self._ready.append(entry)
                self.backlog_bytes += len(entry.body)
                self.backlog_records += entry.records
        self._size = pos
        self.appended += len(batch)
        for entry, _, fut in batch:
            fut.set_result(entry)
        self.wake()

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    # -- segments ------------------------------------------------------------------------------
    def _path(self, seg: int) -> Path:
        return self.dir / f"{self.name}-{seg:010d}.spool"

    def _segments(self) -> list[int]:
        out = []
        for p in self.dir.glob(f"{self.name}-*.spool"):
            try:
                out.append(int(p.stem.split("-")[-1]))
            except ValueError:
                continue
        return out

    def _open_segment(self) -> None:
        self._fd = os.open(self._path(self._segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size
        if self.fsync:
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _rotate(self) -> None:
        os.close(self._fd)
        self._segment += 1
        self._open_segment()

    # -- the writer's side (BatchSource) -------------------------------------------------------
    def pending_count(self) -> int:
        return len(self._ready)

    def take(self, limit: int) -> list[SpoolEntry]:
        out: list[SpoolEntry] = []
        records = 0
        with self._lock:
            for e in self._ready:
                if out and (len(out) >= limit or records + e.records > self.batch_records):
                    break
                out.append(e)
                records += e.records
        return out

    def apply(self, wh: Any, items: Sequence[SpoolEntry]) -> None:
        try:
            self._apply(wh, items)
            self._record_position(wh, items[-1])
        except BaseException:
            if self._on_rollback:
                self._on_rollback()
            raise

    def quarantine(self, wh: Any, item: SpoolEntry, reason: str) -> None:
        if self._quarantine:
            self._quarantine(wh, item, reason)
        self._record_position(wh, item)

    def committed(self, items: Sequence[SpoolEntry]) -> None:
        if self._on_commit:
            self._on_commit()
        with self._lock:
            for _ in items:
                e = self._ready.popleft()
                self.backlog_bytes -= len(e.body)
                self.backlog_records -= e.records
        last = items[-1].segment
        if last > self._committed_segment:
            for seg in self._segments():
                if seg < last:
                    self._path(seg).unlink(missing_ok=True)
            self._committed_segment = last

    def _record_position(self, wh: Any, last: SpoolEntry) -> None:
        wh.execute("INSERT OR REPLACE INTO spool_position VALUES (?, ?, ?, ?)",
                   [self.name, last.segment, last.end, datetime.now(timezone.utc)])

    def stats(self) -> dict[str, Any]:
        return {"backlog_entries": len(self._ready), "backlog_records": self.backlog_records,
                "backlog_bytes": self.backlog_bytes, "replayed_at_start": self.replayed,
                "appended": self.appended, "fsyncs": self.fsyncs, "segment": self._segment}

