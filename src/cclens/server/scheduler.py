"""Scheduled pulls inside ``cclens serve``, and ``POST /api/v1/sync`` to run one now.

A daemon thread wakes every :data:`TICK` seconds and runs the Anthropic API syncs that are due
(:func:`cclens.sources.sync.run_due_syncs`: usage every 5 min, Claude Code analytics hourly, cost and
Enterprise daily); writes go through the server's single writer. A source without its key is
skipped, so with no key configured the scheduler does nothing. Failures are recorded in
``source_state`` (and the health endpoint), never raised.

``POST /api/v1/sync`` (local CLI or admin) runs the named sources now, so ``cclens sync`` works while
the server owns the warehouse.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

from .deps import require_local

log = logging.getLogger("cclens.server.scheduler")
router = APIRouter()
TICK = 60.0


class SyncRequest(BaseModel):
    sources: list[str] | None = None
    since: date | None = None


def _submit(writer: Any):
    return lambda fn: writer.submit(fn).result()


class Scheduler:
    """Runs due syncs every ``tick`` seconds on a daemon thread until stopped."""

    def __init__(self, settings: Any, writer: Any, tick: float = TICK):
        self.settings, self.writer, self.tick = settings, writer, tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.last_run: float | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="cclens-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)

    def run_once(self) -> list[Any]:
        from ..sources.sync import run_due_syncs

        reader = self.writer.reader()
        try:
            results = run_due_syncs(self.settings, reader, submit=_submit(self.writer))
        finally:
            reader.close()
        self.runs += 1
        self.last_run = time.time()
        errors = [r.error for r in results if r.status == "error"]
        self.last_error = "; ".join(e for e in errors if e) or None
        return results

    def _loop(self) -> None:
        while not self._stop.wait(self.tick if self.runs else 5.0):
            try:
                self.run_once()
            except Exception as exc:  # never let the thread die; the next tick tries again
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("scheduled sync failed")

    def health(self) -> dict[str, Any]:
        return {"runs": self.runs, "last_run": self.last_run, "last_error": self.last_error}


def setup(app: FastAPI) -> None:
    scheduler = Scheduler(app.state.settings, app.state.writer)
    app.state.scheduler = scheduler
    app.state.on_start.append(scheduler.start)
    app.state.on_stop.insert(0, scheduler.stop)
    app.state.health["scheduler"] = scheduler.health


@router.post("/api/v1/sync")
def sync_now(body: SyncRequest, request: Request, _principal=Depends(require_local)) -> dict[str, Any]:
    """Run the named Anthropic API syncs now (all when none are named); one result per source."""
    from ..errors import CclensError
    from ..sources.sync import describe, resolve_sources, sync

    writer = request.app.state.writer
    try:
        names = resolve_sources(body.sources)
    except CclensError as exc:
        raise HTTPException(400, detail=str(exc)) from None
    reader = writer.reader()
    try:
        results = sync(request.app.state.settings, reader, names, since=body.since, submit=_submit(writer))
    finally:
        reader.close()
    rows = describe(results)
    for row, r in zip(rows, results):
        row["notes"] = list(r.notes)
        row["error"] = r.error
    return {"results": rows}
