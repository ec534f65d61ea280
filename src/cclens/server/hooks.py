"""Hook receivers of ``cclens serve``.

* ``POST /hooks`` – a Claude Code HTTP hook (``{"type": "http", "url": "<server>/hooks"}``) for any
  event; unknown event names are kept. Answers ``200`` with an **empty body** (Claude Code's "success,
  no decision"), at most :data:`ANSWER_WITHIN` seconds after the request arrived: the event is handed
  to the single writer and normally committed before the answer; if the writer is busy the answer
  does not wait (HTTP hooks are never retried, and a slow answer would slow the user's Claude Code).
  A body that is not a hook payload is quarantined with its reason, and still answered 200.
  ``?host=NAME`` labels the events with a machine name.
* ``POST /hooks/batch`` – envelopes from the ``cclens hook`` shim (NDJSON, see
  :mod:`cclens.hook_shim`). Answers ``{"stored", "duplicates", "rejected"}`` only after COMMIT: the
  shim deletes its spool files on that answer.

Both need the ``ingest`` role (anonymous allowed on a loopback bind without ``--require-auth``).
The session view's ``hooks`` section is :func:`hooks_section`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from ..sources.hooks import HookPayloadError, parse_envelopes, parse_http_hook, quarantine, session_hooks, store_events
from .deps import require_ingest

log = logging.getLogger("cclens.server.hooks")
router = APIRouter()

ANSWER_WITHIN = 0.5  # seconds an HTTP hook waits at most for the commit
MAX_BODY = 16 * 1024 * 1024


class _Counters:
    def __init__(self) -> None:
        self.events = 0
        self.duplicates = 0
        self.quarantined = 0
        self.late_commits = 0
        self.last_event_at: float | None = None

    def health(self) -> dict[str, Any]:
        return {"events": self.events, "duplicates": self.duplicates, "quarantined": self.quarantined,
                "answered_before_commit": self.late_commits, "last_event_at": self.last_event_at}


def setup(app: FastAPI) -> None:
    app.state.hook_counters = _Counters()
    app.state.health["hooks"] = app.state.hook_counters.health


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
    capture = _capture(request)
    fut = writer.submit(lambda wh: store_events(wh, [event], capture_content=capture))
    try:
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), ANSWER_WITHIN)
    except asyncio.TimeoutError:
        counters.late_commits += 1
    except Exception as exc:  # the writer refused (shutting down) or the write failed: still answer 200
        log.warning("hook event not stored: %s", exc)
        return Response(status_code=200, headers={"X-Cclens-Stored": "0"})
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
