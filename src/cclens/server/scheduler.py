"""Scheduled pulls inside ``cclens serve``, and ``POST /api/v1/sync`` to run one now.

Two daemon threads of the same shape wake up regularly and run what is due:

1. every :data:`TICK` seconds, the Anthropic API syncs (:func:`cclens.sources.sync.run_due_syncs`:
   usage every 5 min, Claude Code analytics hourly, cost and Enterprise daily);
2. every :data:`TICK` seconds (sooner if an interval is shorter), the engineering syncs
   (:func:`cclens.sources.eng_sync.run_due_eng_syncs`: git every ``git_sync_interval_s`` = 300 s,
   GitHub and Jira every 900 s), then a lineage rebuild if they stored anything. A separate thread,
   so a slow or unreachable GitHub never delays the Anthropic syncs.

Writes go through the server's single writer. A source that is not configured is skipped, so with
nothing configured the scheduler does nothing. Failures are recorded in ``source_state`` (and the
health endpoint), never raised; a failing engineering sync never stops the Anthropic ones.

``POST /api/v1/sync`` (local CLI or admin) runs the named sources now (Anthropic and engineering
names), so ``cclens sync`` and ``cclens sync-eng`` work while the server owns the warehouse.
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
    sources: list[str] | None = None  # Anthropic and/or engineering names; none = the Anthropic ones
    since: date | None = None
    explicit: bool | None = None  # engineering: an unconfigured named source is an error (default: named)
    lineage: bool = True  # engineering: rebuild lineage afterwards


def _submit(writer: Any):
    return lambda fn: writer.submit(fn).result()


class Scheduler:
    """Runs due syncs every ``tick`` seconds on two daemon threads (Anthropic, engineering) until stopped."""

    def __init__(self, settings: Any, writer: Any, tick: float = TICK):
        self.settings, self.writer, self.tick = settings, writer, tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._eng_thread: threading.Thread | None = None
        self.runs = 0
        self.last_run: float | None = None
        self.last_error: str | None = None
        self.eng_runs = 0  # passes in which at least one engineering source was due
        self.eng_last_error: str | None = None  # a crash of the pass itself
        self.eng_sources: dict[str, dict[str, Any]] = {}  # per source: last_run, last_error
        self.eng_lock = threading.Lock()  # one engineering sync at a time (scheduled or requested)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="cclens-scheduler", daemon=True)
        self._thread.start()
        self._eng_thread = threading.Thread(target=self._eng_loop, name="cclens-scheduler-eng", daemon=True)
        self._eng_thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._eng_thread):
            if thread:
                thread.join(30)

    def run_once(self) -> list[Any]:
        """One pass of the Anthropic syncs that are due."""
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

    def run_engineering(self) -> list[dict[str, Any]]:
        """One pass of the engineering syncs that are due and, if they stored anything, a lineage
        rebuild; never raises (errors are in the rows, ``source_state`` and :meth:`health`)."""
        from ..sources.eng_sync import run_due_eng_syncs

        try:
            reader = self.writer.reader()
            try:
                with self.eng_lock:
                    rows = run_due_eng_syncs(self.settings, reader, submit=_submit(self.writer))
            finally:
                reader.close()
        except Exception as exc:  # noqa: BLE001 - recorded, the next tick tries again
            self.eng_last_error = f"{type(exc).__name__}: {exc}"
            log.exception("scheduled engineering sync failed")
            return []
        self.eng_last_error = None
        if rows:
            now = time.time()
            for name in dict.fromkeys(r["source"] for r in rows if r["status"] != "skipped"):
                errors = [r["detail"] for r in rows if r["source"] == name and r["status"] == "error"]
                self.eng_sources[name] = {"last_run": now, "last_error": "; ".join(errors) or None}
                for e in errors:
                    log.warning("scheduled engineering sync: %s", e)
            self.eng_runs += 1
        return rows

    def _eng_tick(self) -> float:
        from ..sources.eng_sync import min_interval

        shortest = min_interval(self.settings)
        return self.tick if shortest is None else max(0.2, min(self.tick, shortest))

    def _loop(self) -> None:
        while not self._stop.wait(self.tick if self.runs else 5.0):
            try:
                self.run_once()
            except Exception as exc:  # never let the thread die; the next tick tries again
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("scheduled sync failed")

    def _eng_loop(self) -> None:
        first = True
        while not self._stop.wait(min(5.0, self._eng_tick()) if first else self._eng_tick()):
            first = False
            self.run_engineering()

    def health(self) -> dict[str, Any]:
        errors = [s["last_error"] for s in self.eng_sources.values() if s["last_error"]]
        return {"runs": self.runs, "last_run": self.last_run, "last_error": self.last_error,
                "engineering_runs": self.eng_runs,
                "engineering_last_error": "; ".join(filter(None, [self.eng_last_error, *errors])) or None,
                "engineering": dict(self.eng_sources)}


def setup(app: FastAPI) -> None:
    scheduler = Scheduler(app.state.settings, app.state.writer)
    app.state.scheduler = scheduler
    app.state.on_start.append(scheduler.start)
    app.state.on_stop.insert(0, scheduler.stop)
    app.state.health["scheduler"] = scheduler.health


@router.post("/api/v1/sync")
def sync_now(body: SyncRequest, request: Request, _principal=Depends(require_local)) -> dict[str, Any]:
    """Run the named syncs now (every Anthropic source when none are named): ``results`` has one
    row per Anthropic source, ``engineering`` one per git repository / GitHub scope / Jira query
    plus the lineage rebuild. A named engineering source that is not configured is a 400."""
    from ..errors import CclensError
    from ..sources.eng_sync import split_sources, sync_engineering
    from ..sources.sync import describe, sync

    writer = request.app.state.writer
    try:
        names, eng_names = split_sources(body.sources)
    except CclensError as exc:
        raise HTTPException(400, detail=str(exc)) from None
    rows: list[dict[str, Any]] = []
    eng_rows: list[dict[str, Any]] = []
    reader = writer.reader()
    try:
        if names:
            results = sync(request.app.state.settings, reader, names, since=body.since, submit=_submit(writer))
            rows = describe(results)
            for row, r in zip(rows, results):
                row["notes"] = list(r.notes)
                row["error"] = r.error
        if eng_names:
            scheduler = getattr(request.app.state, "scheduler", None)
            lock = scheduler.eng_lock if scheduler else threading.Lock()
            try:
                with lock:
                    eng_rows = sync_engineering(request.app.state.settings, reader, eng_names, since=body.since,
                                                explicit=body.explicit, lineage=body.lineage, submit=_submit(writer))
            except CclensError as exc:  # a named source that is not configured
                raise HTTPException(400, detail=str(exc)) from None
    finally:
        reader.close()
    return {"results": rows, "engineering": eng_rows}
