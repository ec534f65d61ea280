"""Transcripts on ``cclens serve``: what ``cclens ship`` pushes, and the server's own local tailer.

* ``POST /api/v1/transcripts`` – a batch from ``cclens ship`` (format in :mod:`cclens.ship`). The
  server runs the same :func:`~cclens.sources.transcripts.ingest_chunks` a local ingest runs, on the
  single writer, and answers ``{"chunks", "lines", "new_lines", ...}`` only after COMMIT. ``ingest``
  role. 400 for a malformed batch (nothing is stored), 413 over :data:`MAX_BODY`.
* ``GET /api/v1/transcripts/cursors?host=H`` – what the server has of each file of a host (for
  ``cclens doctor``). ``ingest`` role.
* The **local tailer** ingests this machine's own transcripts (``~/.claude/projects`` …) every
  :data:`WATCH_INTERVAL` seconds, so a local dashboard is live without any set-up. On by default when
  the server listens on loopback; ``server_watch_transcripts`` (env ``CCLENS_SERVER_WATCH_TRANSCRIPTS``)
  forces it on or off.
"""

from __future__ import annotations

import gzip
import logging
import threading
import zlib
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from ..ship import CONTENT_TYPE, collect_batch, decode_batch
from ..sources.transcripts import discover, ingest_chunks, load_cursors
from .auth import is_loopback
from .deps import read_cursor, require_ingest

log = logging.getLogger("cclens.server.transcripts")
router = APIRouter()

MAX_BODY = 256 * 1024 * 1024  # after decompression
WATCH_INTERVAL = 2.0
WATCH_BATCH_BYTES = 32 * 1024 * 1024


def setup(app: FastAPI) -> None:
    settings = app.state.settings
    wanted = getattr(settings, "server_watch_transcripts", None)
    if wanted is None:
        wanted = is_loopback(settings.server_host)
    if not wanted:
        return
    watcher = LocalTailer(app.state.writer, host=settings.host, extra_paths=list(settings.transcript_paths),
                          capture_content=settings.capture_content)
    app.state.transcript_tailer = watcher
    app.state.on_start.append(watcher.start)
    app.state.on_stop.append(watcher.stop)
    app.state.health["transcripts_tailer"] = watcher.health


async def _read_body(request: Request) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise HTTPException(413, f"the batch is over {MAX_BODY} bytes; ship smaller batches")
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding in ("", "identity"):
        return bytes(data)
    if encoding not in ("gzip", "deflate"):
        raise HTTPException(415, f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    try:
        d = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        out = d.decompress(bytes(data), MAX_BODY + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise HTTPException(400, f"the body is not valid {encoding}: {exc}") from None
    if len(out) > MAX_BODY or d.unconsumed_tail:
        raise HTTPException(413, f"the batch is over {MAX_BODY} bytes once decompressed; ship smaller batches")
    return out


@router.post("/api/v1/transcripts")
async def receive_transcripts(request: Request, _principal=Depends(require_ingest)) -> dict[str, Any]:
    """Ingest one ``cclens ship`` batch; the answer means it is committed."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype and ctype != CONTENT_TYPE:
        raise HTTPException(415, f"expected Content-Type {CONTENT_TYPE}")
    body = await _read_body(request)
    try:
        host, chunks, cursors = await run_in_threadpool(decode_batch, body)
    except (ValueError, KeyError, TypeError) as exc:
        raise HTTPException(400, f"malformed transcript batch: {exc}") from None
    capture = bool(getattr(request.app.state.settings, "capture_content", False))
    stats = await request.app.state.writer.run(
        lambda wh: ingest_chunks(wh, chunks, host=host, capture_content=capture, cursors=cursors))
    return {"chunks": len(chunks), "lines": stats.lines, "new_lines": stats.new_lines,
            "new_requests": stats.new_requests, "updated_requests": stats.updated_requests,
            "quarantined": stats.quarantined}


@router.get("/api/v1/transcripts/cursors")
def transcript_cursors(host: str, reader=Depends(read_cursor), _principal=Depends(require_ingest)) -> dict[str, Any]:
    """What the server holds of each transcript file of ``host``."""
    rows = reader.query("SELECT path, generation, byte_offset AS offset, size, lines, updated_at FROM transcript_file "
                        "WHERE host = ? ORDER BY path", [host])
    return {"host": host, "files": rows}


class LocalTailer:
    """Ingests this machine's transcripts through the writer, in a background thread.

    File reading happens on this thread; only :func:`ingest_chunks` runs on the writer, so a large
    backlog does not hold the writer longer than one batch at a time.
    """

    def __init__(self, writer: Any, *, host: str, extra_paths: list[Any] | None = None,
                 capture_content: bool = False, interval: float = WATCH_INTERVAL):
        self.writer = writer
        self.host = host
        self.extra_paths = extra_paths or []
        self.capture_content = capture_content
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0
        self.batches = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="cclens-transcript-tailer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)

    def health(self) -> dict[str, Any]:
        return {"passes": self.passes, "batches": self.batches, "last_error": self.last_error}

    def run_once(self) -> int:
        """One pass over the files; returns the number of batches ingested."""
        reader = self.writer.reader()
        try:
            cursors = load_cursors(reader, self.host)
        finally:
            reader.close()
        files = discover(self.extra_paths)
        done = 0
        while not self._stop.is_set():
            errors: list[str] = []
            chunks, after, _idle = collect_batch(files, cursors, max_bytes=WATCH_BATCH_BYTES, errors=errors)
            if errors:
                self.last_error = errors[-1]
            if not chunks:
                break
            self.writer.submit(lambda wh, c=chunks, a=after: ingest_chunks(
                wh, c, host=self.host, capture_content=self.capture_content, cursors=a)).result()
            for cursor in after:
                cursors[cursor.path] = cursor
            done += 1
        return done

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.batches += self.run_once()
                self.passes += 1
            except Exception as exc:  # keep tailing; the error is visible in /healthz
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("local transcript tailer: %s", self.last_error)
            self._stop.wait(self.interval)
