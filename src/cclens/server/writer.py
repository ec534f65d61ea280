"""The single writer: one thread owns every write to the warehouse.

DuckDB allows one writing process per file, and concurrent write transactions inside a process
conflict, so ``cclens serve`` funnels every write through :class:`Writer` (datasette's
``execute_write_fn`` pattern). Two kinds of work reach it:

* **jobs** – ``writer.submit(fn)`` / ``await writer.run(fn)`` run ``fn(warehouse)`` inside one
  transaction and resolve with its result after COMMIT (DuckDB fsyncs its WAL on commit), so a
  route that answers after ``await writer.run(...)`` only acknowledges durable data;
* **batch sources** – objects (the OTLP spool) that hand over many small items at once; the writer
  applies a whole batch in one transaction, which is what makes 20k records/s possible. See
  :class:`BatchSource`.

Reads never go through the writer: :meth:`Writer.reader` returns a cursor (MVCC snapshot of
committed data) for the calling thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Protocol, Sequence, TypeVar

from ..errors import ServerError

log = logging.getLogger("cclens.server.writer")
T = TypeVar("T")


class BatchSource(Protocol):
    """Something that queues many items for the writer (e.g. :class:`cclens.server.spool.Spool`)."""

    name: str

    def take(self, limit: int) -> Sequence[Any]:
        """Up to ``limit`` items not yet applied, oldest first (does not remove them)."""

    def apply(self, wh: Any, items: Sequence[Any]) -> None:
        """Write ``items`` with ``wh`` (the writer has opened a transaction around this call)."""

    def committed(self, items: Sequence[Any]) -> None:
        """Called after the transaction holding ``items`` committed: they may now be forgotten."""

    def quarantine(self, wh: Any, item: Any, reason: str) -> None:
        """``item`` failed on its own: keep it somewhere visible (in the open transaction)."""


class Writer:
    """Owns ``warehouse`` for writing. Start with :meth:`start`, stop (flushing) with :meth:`stop`."""

    def __init__(self, warehouse: Any, *, batch_limit: int = 64, idle_wait: float = 0.05,
                 checkpoint_threshold: str | None = "128MB"):
        self.wh = warehouse
        try:
            # DuckDB draws a progress bar on stdout for long statements: not from a server.
            warehouse.execute("SET enable_progress_bar = false")
            # Checkpoint every 128 MB of WAL instead of 16 MB: under sustained ingestion that halves the
            # commit + checkpoint work per record; replaying such a WAL after a crash takes ~1 s.
            if checkpoint_threshold:
                warehouse.execute(f"SET checkpoint_threshold = '{checkpoint_threshold}'")
        except Exception:  # noqa: BLE001 - another backend
            pass
        self.batch_limit = batch_limit
        self.idle_wait = idle_wait
        self._jobs: deque[tuple[Callable[[Any], Any], Future]] = deque()
        self._sources: list[BatchSource] = []
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.last_error: str | None = None
        self.commits = 0
        self.last_commit_at: float | None = None
        self.busy_seconds = 0.0  # wall time spent writing (vs. waiting for work)
        self.cpu_seconds = 0.0   # CPU time of the writer thread (Python + DuckDB work it ran)

    # -- lifecycle -----------------------------------------------------------------------------
    def add_source(self, source: BatchSource) -> None:
        self._sources.append(source)

    def start(self) -> None:
        if self._thread:
            return
        self._thread = threading.Thread(target=self._loop, name="cclens-writer", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return bool(self._thread and self._thread.is_alive() and not self._stopping)

    def stop(self, timeout: float = 60.0) -> None:
        """Apply everything queued, checkpoint, and stop the thread. Idempotent."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():  # pragma: no cover - a stuck write
                log.error("writer did not stop within %.0fs; pending work stays in the spool", timeout)
            self._thread = None
        try:
            self.wh.checkpoint()
        except Exception as exc:  # pragma: no cover - checkpoint failure at exit is not fatal
            log.warning("checkpoint at shutdown failed: %s", exc)

    def wake(self) -> None:
        """Tell the writer that a batch source has new items."""
        with self._cv:
            self._cv.notify()

    # -- jobs ----------------------------------------------------------------------------------
    def submit(self, fn: Callable[[Any], T]) -> "Future[T]":
        """Run ``fn(warehouse)`` on the writer thread in its own transaction; the future resolves after
        COMMIT with ``fn``'s result, or with its exception (the transaction is then rolled back)."""
        fut: Future = Future()
        with self._cv:
            if self._stopping:
                fut.set_exception(ServerError("the server is shutting down; retry against the restarted server"))
                return fut
            self._jobs.append((fn, fut))
            self._cv.notify()
        return fut

    async def run(self, fn: Callable[[Any], T]) -> T:
        """``await`` version of :meth:`submit`."""
        return await asyncio.wrap_future(self.submit(fn))

    def reader(self) -> Any:
        """A new read cursor on the warehouse for the calling thread; close it when done."""
        return self.wh.cursor()

    # -- the thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cv:
                if not self._jobs and not self._stopping and not self._any_pending():
                    self._cv.wait(self.idle_wait)
                jobs = list(self._jobs)
                self._jobs.clear()
                stopping = self._stopping
            t0 = time.perf_counter()
            for fn, fut in jobs:
                self._run_job(fn, fut)
            worked = False
            for src in self._sources:
                worked |= self._drain_once(src)
            if jobs or worked:
                self.busy_seconds += time.perf_counter() - t0
            self.cpu_seconds = time.thread_time()
            if stopping and not worked and not self._jobs and not self._any_pending():
                return

    def _any_pending(self) -> bool:
        return any(getattr(src, "pending_count", lambda: 0)() for src in self._sources)

    def _run_job(self, fn: Callable[[Any], Any], fut: Future) -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            with self.wh.transaction():
                result = fn(self.wh)
        except BaseException as exc:  # the caller gets it; the writer goes on
            fut.set_exception(exc)
            return
        self._committed()
        fut.set_result(result)

    def _drain_once(self, src: BatchSource) -> bool:
        items = src.take(self.batch_limit)
        if not items:
            return False
        try:
            with self.wh.transaction():
                src.apply(self.wh, items)
        except Exception as exc:
            log.warning("batch of %d from %s failed (%s); retrying one by one", len(items), src.name, exc)
            self._apply_one_by_one(src, items)
            return True
        self._committed()
        src.committed(items)
        return True

    def _apply_one_by_one(self, src: BatchSource, items: Sequence[Any]) -> None:
        for item in items:
            try:
                with self.wh.transaction():
                    src.apply(self.wh, [item])
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                self.last_error = reason
                log.error("item from %s quarantined: %s", src.name, reason)
                try:
                    with self.wh.transaction():
                        src.quarantine(self.wh, item, reason)
                except Exception as exc2:  # the warehouse itself is failing: keep the item, stop trying
                    log.error("cannot write to the warehouse (%s); %s items stay in the spool", exc2, src.name)
                    time.sleep(1.0)
                    return
            self._committed()
            src.committed([item])

    def _committed(self) -> None:
        self.commits += 1
        self.last_commit_at = time.time()
