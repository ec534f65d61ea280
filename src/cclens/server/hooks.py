"""Hook receivers of ``cclens serve``.

* ``POST /hooks`` – a Claude Code HTTP hook (``{"type": "http", "url": "<server>/hooks"}``) for any
  event; unknown event names are kept. Answers ``200`` with an **empty body** (Claude Code's "success,
  no decision") as soon as the event is queued for the single writer, which stores queued hook
  events many per transaction (:class:`HookQueue`). Waiting for the commit would buy nothing:
  Claude Code never retries an HTTP hook, whatever the answer, and every millisecond here is a
  millisecond of the user's tool call. A graceful shutdown stores everything queued; ``503`` with
  ``Retry-After`` when :data:`MAX_QUEUED` events are already waiting. A body that is not a hook
  payload is quarantined with its reason, and still answered 200. ``?host=NAME`` labels the events.
* ``POST /hooks/batch`` – envelopes from the ``cclens hook`` shim (NDJSON, see
  :mod:`cclens.hook_shim`). Answers ``{"stored", "duplicates", "rejected"}`` only after COMMIT: the
  shim deletes its spool files on that answer.

Both need the ``ingest`` role (anonymous allowed on a loopback bind without ``--require-auth``).
The session view's ``hooks`` section is :func:`hooks_section`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from datetime import datetime, timezone
from itertools import islice
from typing import Any, Sequence

import orjson

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from ..sources.hooks import (HookEvent, HookPayloadError, parse_envelopes, parse_http_hook, quarantine, session_hooks,
                             store_events)
from .deps import require_ingest

log = logging.getLogger("cclens.server.hooks")
router = APIRouter()

MAX_QUEUED = 100_000  # HTTP hook events waiting for the writer before /hooks answers 503
MAX_BODY = 16 * 1024 * 1024


class _Counters:
    def __init__(self) -> None:
        self.events = 0
        self.duplicates = 0
        self.quarantined = 0
        self.refused = 0
        self.last_event_at: float | None = None

    def health(self) -> dict[str, Any]:
        return {"events": self.events, "duplicates": self.duplicates, "quarantined": self.quarantined,
                "refused_overloaded": self.refused, "last_event_at": self.last_event_at}


class HookQueue:
    """HTTP hook events waiting for the writer, applied many per transaction (a writer batch source).

    One DuckDB transaction per event would cap hooks at a few dozen per second; batching what
    arrives meanwhile keeps the answer fast under load. ``put`` returns a future resolved after the
    event's transaction committed.
    """

    name = "hooks"

    def __init__(self, writer: Any, capture_content: bool):
        self.writer = writer
        self.capture_content = capture_content
        self._items: deque[tuple[HookEvent, Future]] = deque()
        self._lock = threading.Lock()

    def put(self, event: HookEvent) -> Future:
        fut: Future = Future()
        with self._lock:
            self._items.append((event, fut))
        self.writer.wake()
        return fut

    def pending_count(self) -> int:
        return len(self._items)

    def take(self, limit: int) -> list[tuple[HookEvent, Future]]:
        with self._lock:
            return list(islice(self._items, limit))

    def apply(self, wh: Any, items: Sequence[tuple[HookEvent, Future]]) -> None:
        store_events(wh, [event for event, _ in items], capture_content=self.capture_content)

    def committed(self, items: Sequence[tuple[HookEvent, Future]]) -> None:
        with self._lock:
            for _ in items:
                self._items.popleft()
        for _, fut in items:
            if not fut.done():
                fut.set_result(True)

    def quarantine(self, wh: Any, item: tuple[HookEvent, Future], reason: str) -> None:
        event, _ = item
        quarantine(wh, orjson.dumps(event.body, default=str), f"could not be stored: {reason}",
                   origin=f"POST /hooks from {event.remote_addr}", host=event.host)


def setup(app: FastAPI) -> None:
    app.state.hook_counters = _Counters()
    app.state.health["hooks"] = app.state.hook_counters.health
    queue = HookQueue(app.state.writer, bool(getattr(app.state.settings, "capture_content", False)))
    app.state.hook_queue = queue
    app.state.writer.add_source(queue)


def _counters(request: Request) -> _Counters:
    counters = getattr(request.app.state, "hook_counters", None)
    if counters is None:  # app built without setup(): keep working
        counters = request.app.state.hook_counters = _Counters()
    return counters


async def _body(request: Request) -> bytes | None:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            return None
    return bytes(data)


def _capture(request: Request) -> bool:
    return bool(getattr(request.app.state.settings, "capture_content", False))


@router.post("/hooks", include_in_schema=True)
async def http_hook(request: Request, _principal=Depends(require_ingest)) -> Response:
    """Store one Claude Code HTTP hook call; answer 200 with an empty body."""
    received_at = datetime.now(timezone.utc)
    counters = _counters(request)
    raw = await _body(request)
    remote = request.client.host if request.client else None
    host = request.query_params.get("host") or None
    writer = request.app.state.writer
    if raw is None:
        return Response(status_code=413)
    try:
        event = parse_http_hook(raw, received_at=received_at, remote_addr=remote, host=host)
    except HookPayloadError as exc:
        counters.quarantined += 1
        reason = str(exc)
        writer.submit(lambda wh: quarantine(wh, raw, reason, origin=f"POST /hooks from {remote}", host=host))
        return Response(status_code=200, headers={"X-Cclens-Quarantined": "1"})
    queue = getattr(request.app.state, "hook_queue", None)
    if queue is None:  # app built without setup(): one transaction per event
        capture = _capture(request)
        writer.submit(lambda wh: store_events(wh, [event], capture_content=capture))
    elif queue.pending_count() >= MAX_QUEUED:
        counters.refused += 1
        return Response(status_code=503, headers={"Retry-After": "1"})
    else:
        queue.put(event)
    counters.events += 1
    counters.last_event_at = time.time()
    return Response(status_code=200)


@router.post("/hooks/batch")
async def shim_batch(request: Request, _principal=Depends(require_ingest)) -> dict[str, int]:
    """Store a batch of shim envelopes; the answer means they are committed."""
    received_at = datetime.now(timezone.utc)
    counters = _counters(request)
    raw = await _body(request)
    if raw is None:
        return Response(status_code=413)  # type: ignore[return-value]
    try:
        sent_time = float(request.headers.get("x-cclens-sent-time", ""))
    except ValueError:
        sent_time = None
    remote = request.client.host if request.client else None
    events, rejects = parse_envelopes(raw, received_at=received_at, sent_time=sent_time, remote_addr=remote)
    capture = _capture(request)

    def write(wh: Any):
        for text, reason in rejects:
            quarantine(wh, text, reason, origin=f"POST /hooks/batch from {remote}")
        return store_events(wh, events, capture_content=capture)

    stats = await request.app.state.writer.run(write)
    counters.events += stats.stored
    counters.duplicates += stats.duplicates
    counters.quarantined += len(rejects)
    counters.last_event_at = time.time()
    return {"stored": stats.stored, "duplicates": stats.duplicates, "rejected": len(rejects)}


def hooks_section(reader: Any, session_id: str) -> dict[str, Any] | None:
    """The ``hooks`` section of ``GET /api/v1/sessions/{id}`` (None when no hook named the session)."""
    return session_hooks(reader, session_id)
