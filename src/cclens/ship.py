"""``cclens ship``: push this machine's Claude Code transcripts to a ``cclens serve``.

The shipper tails the same files, with the same cursors, as a local ingest
(:func:`cclens.sources.transcripts.discover` / :func:`~cclens.sources.transcripts.read_new`, subagents
included) and POSTs batches of complete lines to ``/api/v1/transcripts``, where the server runs the
same :func:`~cclens.sources.transcripts.ingest_chunks` a local ingest runs. So shipping a machine's
transcripts gives the same warehouse contents as ingesting them locally.

Crash safety: a file's cursor advances in the local state file (``$XDG_DATA_HOME/cclens/ship/<server>.json``,
written atomically) only after the server answered that the batch is committed. A crash or a
``kill -9`` of either side before that answer makes the next run send the batch again, and the
server's ingest is idempotent (line keys ``sessionId:uuid``; requests deduplicated by request id).
A file that is truncated or replaced gets a new generation and is read again from the top.

Wire format of a batch (``Content-Type: application/x-cclens-transcripts``, gzip-encoded): one JSON
header line ``{"format": "cclens-transcripts/1", "host": H, "chunks": N}``, then per chunk one JSON
line (path, file_id, head_hash, generation, start_offset, size, mtime, length, cursor) followed by
``length`` bytes of complete JSONL lines. The server answers ``{"chunks": N, ...}`` after COMMIT.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import ConfigError, ServerError
from .sources.transcripts.files import Chunk, FileCursor, discover, read_new, storable_path

FORMAT = "cclens-transcripts/1"
CONTENT_TYPE = "application/x-cclens-transcripts"
BATCH_BYTES = 8 * 1024 * 1024
STATE_VERSION = 1
GONE_KEEP_DAYS = 7  # how long the cursor of a file that went missing is kept, should it come back


# -- the wire format ----------------------------------------------------------------------------------
def encode_batch(host: str, chunks: list[Chunk], cursors: list[FileCursor]) -> bytes:
    """The (uncompressed) request body for ``chunks``; ``cursors[i]`` is the file's cursor after chunk i."""
    out = [json.dumps({"format": FORMAT, "host": host, "chunks": len(chunks)}).encode(), b"\n"]
    for chunk, cursor in zip(chunks, cursors, strict=True):
        head = {"path": chunk.path, "file_id": chunk.file_id, "head_hash": chunk.head_hash,
                "generation": chunk.generation, "start_offset": chunk.start_offset, "size": chunk.size,
                "mtime": chunk.mtime, "length": len(chunk.data), "cursor": asdict(cursor)}
        out += [json.dumps(head).encode(), b"\n", chunk.data]
    return b"".join(out)


def decode_batch(body: bytes) -> tuple[str, list[Chunk], list[FileCursor]]:
    """Parse a batch; raises ValueError with what is wrong (the server answers 400 with it)."""
    pos = body.find(b"\n")
    if pos < 0:
        raise ValueError("the batch has no header line")
    header = json.loads(body[:pos])
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"unknown batch format {header.get('format') if isinstance(header, dict) else header!r}; "
                         f"expected {FORMAT}")
    host = header.get("host")
    if not isinstance(host, str) or not host:
        raise ValueError("the batch header has no host")
    pos += 1
    chunks: list[Chunk] = []
    cursors: list[FileCursor] = []
    for i in range(int(header.get("chunks", 0))):
        end = body.find(b"\n", pos)
        if end < 0:
            raise ValueError(f"chunk {i}: missing header line")
        h = json.loads(body[pos:end])
        length = int(h["length"])
        data = body[end + 1:end + 1 + length]
        if len(data) != length or (data and not data.endswith(b"\n")):
            raise ValueError(f"chunk {i} ({h.get('path')}): expected {length} bytes of complete lines")
        start = int(h["start_offset"])
        if start < 0 or int(h["generation"]) < 1:
            raise ValueError(f"chunk {i} ({h.get('path')}): bad offset or generation")
        chunks.append(Chunk(path=str(h["path"]), file_id=h.get("file_id"), head_hash=h.get("head_hash"),
                            generation=int(h["generation"]), start_offset=start, data=data,
                            size=int(h["size"]), mtime=h.get("mtime")))
        c = h["cursor"]
        cursors.append(FileCursor(path=str(c["path"]), file_id=c.get("file_id"), head_hash=c.get("head_hash"),
                                  generation=int(c["generation"]), size=int(c["size"]), offset=int(c["offset"]),
                                  mtime=c.get("mtime"), lines=int(c.get("lines") or 0)))
        pos = end + 1 + length
    if pos != len(body):
        raise ValueError(f"{len(body) - pos} unexpected bytes after the last chunk")
    return host, chunks, cursors


# -- collecting what is new -----------------------------------------------------------------------------
def _unchanged(path: Path, cursor: FileCursor | None) -> bool:
    if cursor is None:
        return False
    try:
        st = path.stat()
    except OSError:
        return True  # gone or unreadable: nothing to send now
    return (st.st_size == cursor.size == cursor.offset and f"{st.st_dev}:{st.st_ino}" == cursor.file_id
            and st.st_mtime == cursor.mtime)


def collect_batch(files: Iterable[Path], cursors: dict[str, FileCursor], *, max_bytes: int = BATCH_BYTES,
                  errors: list[str] | None = None) -> tuple[list[Chunk], list[FileCursor], dict[str, FileCursor]]:
    """Read new complete lines from ``files`` until ``max_bytes``.

    Returns ``(chunks, cursors after each chunk, idle)`` where ``idle`` holds refreshed cursors of files
    with nothing to send (size or identity noted; storing them needs no acknowledgement).
    """
    chunks: list[Chunk] = []
    after: list[FileCursor] = []
    idle: dict[str, FileCursor] = {}
    size = 0
    for path in files:
        key = storable_path(str(path))  # how read_new names the file in its cursors
        cursor = cursors.get(key)
        if _unchanged(path, cursor):
            continue
        while size < max_bytes:
            try:
                chunk, cursor = read_new(path, cursor, limit=max(max_bytes - size, 64 * 1024))
            except OSError as exc:
                if errors is not None:
                    errors.append(f"{key}: {exc.strerror or exc}")
                break
            if chunk is None:
                idle[key] = cursor  # type: ignore[index]
                break
            chunks.append(chunk)
            after.append(cursor)  # type: ignore[arg-type]
            size += len(chunk.data)
            if cursor.offset >= cursor.size:  # type: ignore[union-attr]
                break
        if size >= max_bytes:
            break
    return chunks, after, idle


# -- local state ------------------------------------------------------------------------------------------
def state_path(server: str) -> Path:
    """The state file for shipping to ``server`` (one per server URL)."""
    from .config import data_dir

    slug = re.sub(r"[^A-Za-z0-9]+", "-", server.split("://", 1)[-1]).strip("-") or "server"
    return data_dir() / "ship" / f"{slug}.json"


@dataclass
class ShipState:
    """Acknowledged cursors per file, and how the last attempts went."""

    path: Path
    server: str
    host: str
    cursors: dict[str, FileCursor] = field(default_factory=dict)
    last_success: str | None = None
    last_attempt: str | None = None
    last_error: str | None = None
    shipped_bytes: int = 0
    # path -> when its file was first found missing (ISO). Its cursor is kept GONE_KEEP_DAYS, as a local
    # ingest keeps it, so a file moved aside and recreated between two walks is read as replaced (a new
    # generation) and not as new: shipped origins stay those of a local ingest.
    gone: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, *, server: str, host: str) -> "ShipState":
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path, server, host)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"the ship state file {path} is unreadable ({exc}); delete it to ship everything "
                              "again (the server ignores what it already has)") from None
        if doc.get("version") != STATE_VERSION or doc.get("host") != host:
            return cls(path, server, host)  # another host name: start over (idempotent on the server)
        cursors = {p: FileCursor(**c) for p, c in (doc.get("cursors") or {}).items()}
        gone = {p: t for p, t in (doc.get("gone") or {}).items() if p in cursors}
        return cls(path, server, host, cursors, doc.get("last_success"), doc.get("last_attempt"),
                   doc.get("last_error"), int(doc.get("shipped_bytes") or 0), gone)

    def save(self) -> None:
        """Write atomically (temp file, fsync, rename): a crash leaves the old or the new state."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"version": STATE_VERSION, "server": self.server, "host": self.host,
               "last_success": self.last_success, "last_attempt": self.last_attempt, "last_error": self.last_error,
               "shipped_bytes": self.shipped_bytes, "gone": dict(sorted(self.gone.items())),
               "cursors": {p: asdict(c) for p, c in sorted(self.cursors.items())}}
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


@dataclass
class ShipStats:
    batches: int = 0
    chunks: int = 0
    bytes: int = 0
    lines: int = 0
    new_lines: int = 0
    hook_events: int = 0
    errors: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- talking to the server --------------------------------------------------------------------------------
Send = Callable[[bytes], dict[str, Any]]


def http_sender(server: str, token: str | None, *, timeout: float = 120.0) -> Send:
    """POST a batch to ``server``; returns the server's JSON answer or raises ServerError."""
    import httpx2 as httpx

    url = server.rstrip("/") + "/api/v1/transcripts"
    headers = {"Content-Type": CONTENT_TYPE, "Content-Encoding": "gzip", "User-Agent": "cclens-ship"}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    def send(body: bytes) -> dict[str, Any]:
        try:
            r = httpx.post(url, content=gzip.compress(body, 5), headers=headers,
                           timeout=httpx.Timeout(timeout, connect=10.0))
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot ship to {url}: {type(exc).__name__}: {exc}; is `cclens serve` running "
                              "there? the batch is sent again next time") from None
        if r.status_code in (401, 403):
            raise ServerError(f"{url} refused the token ({r.status_code}); create an ingest token with "
                              "`cclens token create --role ingest` and pass it with --token or CCLENS_SERVER_TOKEN")
        if r.status_code != 200:
            raise ServerError(f"{url} answered {r.status_code}: {r.text[:200]}; the batch is sent again next time")
        try:
            return r.json()
        except ValueError:
            raise ServerError(f"{url} answered 200 with something that is not JSON; is that a cclens server?") from None

    return send


def ship_once(state: ShipState, send: Send, *, extra_paths: list[Path] | None = None, include_defaults: bool = True,
              batch_bytes: int = BATCH_BYTES) -> ShipStats:
    """Send everything new, batch by batch, advancing ``state`` after each acknowledged batch.

    Raises :class:`ServerError` when a batch is not acknowledged (what was acknowledged stays so).
    """
    stats = ShipStats()
    files = discover(extra_paths, include_defaults=include_defaults)
    state.last_attempt = _now()
    try:
        while True:
            chunks, after, idle = collect_batch(files, state.cursors, max_bytes=batch_bytes, errors=stats.errors)
            state.cursors.update(idle)
            if not chunks:
                break
            body = encode_batch(state.host, chunks, after)
            reply = send(body)
            if reply.get("chunks") != len(chunks):
                raise ServerError(f"the server acknowledged {reply.get('chunks')!r} chunks of {len(chunks)}; "
                                  "the batch is sent again next time")
            for cursor in after:
                state.cursors[cursor.path] = cursor
            stats.batches += 1
            stats.chunks += len(chunks)
            stats.bytes += sum(len(c.data) for c in chunks)
            stats.lines += int(reply.get("lines") or 0)
            stats.new_lines += int(reply.get("new_lines") or 0)
            state.shipped_bytes += sum(len(c.data) for c in chunks)
            state.save()
    except ServerError as exc:
        state.last_error = str(exc)
        state.save()
        raise
    forget_gone(state, {storable_path(str(p)) for p in files})
    state.last_success = _now()
    state.last_error = None
    state.save()
    return stats


def forget_gone(state: ShipState, present: set[str], *, now: datetime | None = None) -> None:
    """Note the files of ``state.cursors`` not in ``present`` as gone, and drop the cursors of those gone
    for more than :data:`GONE_KEEP_DAYS`. A file back under its name is no longer gone; its kept cursor
    tells read_new whether it is the same file grown or another one (then a new generation)."""
    now = now or datetime.now(timezone.utc)
    for p in [p for p in state.gone if p in present or p not in state.cursors]:
        del state.gone[p]
    for p in [p for p in state.cursors if p not in present]:
        since = state.gone.setdefault(p, now.isoformat(timespec="seconds"))
        try:
            age = (now - datetime.fromisoformat(since)).total_seconds()
        except (TypeError, ValueError):  # a hand-edited state: start the clock again
            state.gone[p] = now.isoformat(timespec="seconds")
            continue
        if age > GONE_KEEP_DAYS * 86400:
            del state.cursors[p], state.gone[p]


class ShipLock:
    """One ``cclens ship`` per state file at a time (an advisory lock next to it)."""

    def __init__(self, state_file: Path):
        self.path = state_file.with_name(state_file.name + ".lock")
        self.fh: Any = None

    def __enter__(self) -> "ShipLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            raise ConfigError(f"another `cclens ship` is already shipping with {self.path.with_suffix('')}; "
                              "stop it first (or wait for it to finish)") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def ship(server: str, token: str | None, *, host: str, once: bool = False, interval: float = 2.0,
         extra_paths: list[Path] | None = None, include_defaults: bool = True, batch_bytes: int = BATCH_BYTES,
         state_file: Path | None = None, on_pass: Callable[[ShipStats], None] | None = None,
         should_stop: Callable[[], bool] = lambda: False) -> ShipStats:
    """Ship until stopped (or one pass with ``once``), also forwarding the hook shim's spool.

    With ``once`` a failure raises :class:`ServerError`; otherwise it is reported to ``on_pass`` and
    retried with backoff (up to a minute).
    """
    from .hook_shim import drain_spool

    path = state_file or state_path(server)
    total = ShipStats()
    with ShipLock(path):
        state = ShipState.load(path, server=server, host=host)
        send = http_sender(server, token)
        backoff = interval
        while True:
            try:
                stats = ship_once(state, send, extra_paths=extra_paths, include_defaults=include_defaults,
                                  batch_bytes=batch_bytes)
                stats.hook_events = drain_spool(server, token, deadline=time.monotonic() + 30).sent
                backoff = interval
            except ServerError as exc:
                if once:
                    raise
                stats = ShipStats(errors=[str(exc)])
                backoff = min(max(backoff * 2, 1.0), 60.0)
            for name in ("batches", "chunks", "bytes", "lines", "new_lines", "hook_events"):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
            total.errors.extend(stats.errors)
            if on_pass:
                on_pass(stats)
            if once or should_stop():
                return total
            deadline = time.monotonic() + backoff
            while time.monotonic() < deadline and not should_stop():
                time.sleep(min(0.2, interval))
            if should_stop():
                return total
