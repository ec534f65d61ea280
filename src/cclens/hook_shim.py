"""``cclens hook`` (also installed as ``cclens-hook``): the command-hook shim for Claude Code.

Claude Code runs it for the hook events HTTP hooks do not cover (``SessionStart``, ``Setup``) or, with
``cclens setup claude-code --hook-transport command``, for every event. It promises to never block or
slow a user's Claude Code:

- it **always exits 0** and **prints nothing** (a command hook exiting 2 blocks the user's action;
  stdout of some hooks becomes model context);
- it **returns within a fixed budget** (``--budget``, default 1 s, start-up included): a watchdog
  thread ends the process at the deadline whatever it is doing;
- it **never loses an event**: the payload is first written to a spool file (one file per event,
  atomically renamed, mode 0600, in ``$XDG_DATA_HOME/cclens/hook-spool``), then the spool is sent
  oldest first to ``POST <server>/hooks/batch``; a file is deleted only once the server acknowledged
  it. A server that is down, slow, failing or answering garbage leaves the files for the next hook
  call, ``cclens ship`` or ``cclens hook --flush``. Each event carries its own id, so a batch sent
  twice is stored once.

Imports only the standard library (start-up time is part of the budget): no pydantic, no DuckDB.

Options: ``--server URL`` (else ``$CCLENS_SERVER_URL``), ``--token T`` (else ``$CCLENS_SERVER_TOKEN``),
``--budget SECONDS``, ``--spool DIR``, ``--flush`` (send the whole spool, print a summary, exit 0/1).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BUDGET = 1.0
STARTUP_ALLOWANCE = 0.15  # assumed interpreter start-up when /proc cannot tell
EXIT_MARGIN = 0.1  # left for the process to exit and the parent to notice, under load
BATCH_FILES = 200
BATCH_BYTES = 4 * 1024 * 1024
MAX_SPOOL_FILES = 50_000  # beyond this new events are dropped (and counted) rather than fill the disk
MAX_EVENT_BYTES = 8 * 1024 * 1024


def spool_dir() -> Path:
    """Where unsent events wait (``$XDG_DATA_HOME/cclens/hook-spool``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "cclens" / "hook-spool"


@dataclass
class DrainResult:
    """What one :func:`drain_spool` call did."""

    sent: int = 0
    remaining: int = 0
    error: str | None = None


def _parse_args(argv: list[str]) -> dict[str, str | bool]:
    """A forgiving parser: unknown arguments are ignored (an argument error must not exit non-zero)."""
    out: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in ("--server", "--token", "--budget", "--spool", "--host"):
            if not eq:
                i += 1
                value = argv[i] if i < len(argv) else ""
            out[name[2:]] = value
        elif arg == "--flush":
            out["flush"] = True
        i += 1
    return out


def _read_stdin(deadline: float) -> bytes:
    """Everything on stdin until EOF or the deadline (nothing when stdin is a terminal)."""
    import select

    fd = sys.stdin.fileno()
    if os.isatty(fd):
        return b""
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_EVENT_BYTES:
            break
    return b"".join(chunks)


def spool_event(raw: bytes, *, host: str | None = None, spool: Path | None = None,
                hook_time: float | None = None) -> Path | None:
    """Write one event envelope to the spool (atomically); returns its path, or None if dropped."""
    spool = spool or spool_dir()
    spool.mkdir(parents=True, exist_ok=True, mode=0o700)
    names = [n for n in os.listdir(spool) if n.endswith(".json")]
    if len(names) >= MAX_SPOOL_FILES:
        with open(spool / "dropped.count", "a") as fh:
            fh.write("1\n")
        return None
    hook_time = time.time() if hook_time is None else hook_time
    event_id = uuid.uuid4().hex
    envelope = {"id": event_id, "hook_time": hook_time, "host": host,
                "body": raw.decode("utf-8", "replace")}
    final = spool / f"{time.time_ns():020d}-{event_id}.json"
    tmp = spool / f".tmp-{event_id}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(json.dumps(envelope, separators=(",", ":")).encode())
    os.rename(tmp, final)
    return final


def _post(server: str, token: str | None, body: bytes, timeout: float) -> tuple[int, bytes]:
    from urllib.parse import urlsplit
    import http.client

    url = urlsplit(server.rstrip("/") + "/hooks/batch")
    conn_cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(url.hostname or "127.0.0.1", url.port, timeout=max(timeout, 0.01))
    headers = {"Content-Type": "application/x-ndjson", "X-Cclens-Sent-Time": repr(time.time()),
               "User-Agent": "cclens-hook"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("POST", url.path + (f"?{url.query}" if url.query else ""), body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(65536)
    finally:
        conn.close()


def _acknowledged(status: int, data: bytes) -> bool:
    if not 200 <= status < 300:
        return False
    try:
        reply = json.loads(data)
    except ValueError:
        return False
    return isinstance(reply, dict) and isinstance(reply.get("stored"), int)


def drain_spool(server: str, token: str | None, *, deadline: float, spool: Path | None = None) -> DrainResult:
    """Send spooled events oldest first until the spool is empty, the server fails, or ``deadline``
    (a ``time.monotonic()`` value) passes. Deletes only what the server acknowledged."""
    spool = spool or spool_dir()
    result = DrainResult()
    try:
        names = sorted(n for n in os.listdir(spool) if n.endswith(".json"))
    except FileNotFoundError:
        return result
    _clean_stale_tmp(spool)
    while names:
        batch: list[str] = []
        lines: list[bytes] = []
        size = 0
        for name in names[:BATCH_FILES]:
            try:
                data = (spool / name).read_bytes()
            except FileNotFoundError:  # another shim sent it meanwhile
                batch.append(name)
                continue
            if lines and size + len(data) > BATCH_BYTES:
                break
            batch.append(name)
            lines.append(data.replace(b"\n", b" "))
            size += len(data)
        left = deadline - time.monotonic()
        if left <= 0.02:
            result.error = "out of time"
            break
        if lines:
            try:
                status, reply = _post(server, token, b"\n".join(lines) + b"\n", left)
            except (OSError, ValueError) as exc:  # refused, timed out, reset, bad URL
                result.error = f"{type(exc).__name__}: {exc}"
                break
            if not _acknowledged(status, reply):
                result.error = f"server answered {status} without an acknowledgement"
                break
        for name in batch:
            try:
                os.unlink(spool / name)
            except FileNotFoundError:
                pass
        result.sent += len(lines)
        names = names[len(batch):]
    result.remaining = len(names)
    return result


def _clean_stale_tmp(spool: Path) -> None:
    cutoff = time.time() - 300
    for name in os.listdir(spool):
        if name.startswith(".tmp-"):
            try:
                if os.stat(spool / name).st_mtime < cutoff:
                    os.unlink(spool / name)
            except OSError:
                pass


def _process_age() -> float:
    """Seconds since this process started (interpreter start-up included), from /proc; else a guess."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return STARTUP_ALLOWANCE


def _silence() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def main(argv: list[str] | None = None) -> int:
    """Run the shim (see module doc). Always returns 0 in hook mode."""
    start = time.monotonic()
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts = _parse_args(argv)
    except Exception:
        opts = {}
    if opts.get("flush"):
        return _flush(opts)
    try:
        budget = float(opts.get("budget") or os.environ.get("CCLENS_HOOK_BUDGET") or DEFAULT_BUDGET)
    except ValueError:
        budget = DEFAULT_BUDGET
    budget = max(0.2, budget)
    # The budget counts from the moment Claude Code started us, not from here.
    hard_stop = start + budget - _process_age() - EXIT_MARGIN
    watchdog = threading.Timer(max(0.05, hard_stop - time.monotonic()), os._exit, (0,))
    watchdog.daemon = True
    watchdog.start()
    try:
        _silence()
        hook_time = time.time()
        raw = _read_stdin(start + budget * 0.4)
        spool = Path(str(opts["spool"])) if opts.get("spool") else None
        if raw.strip():
            host = str(opts.get("host") or os.environ.get("CCLENS_HOST") or socket.gethostname())
            spool_event(raw, host=host, spool=spool, hook_time=hook_time)
        server = str(opts.get("server") or os.environ.get("CCLENS_SERVER_URL") or "")
        if server:
            token = str(opts.get("token") or os.environ.get("CCLENS_SERVER_TOKEN") or "") or None
            drain_spool(server, token, deadline=hard_stop - 0.05, spool=spool)
    except BaseException:  # noqa: BLE001 - the promise is exit 0, whatever happened
        pass
    return 0


def _flush(opts: dict[str, str | bool]) -> int:
    server = str(opts.get("server") or os.environ.get("CCLENS_SERVER_URL") or "")
    if not server:
        print("error: no server: pass --server URL or set CCLENS_SERVER_URL", file=sys.stderr)
        return 1
    token = str(opts.get("token") or os.environ.get("CCLENS_SERVER_TOKEN") or "") or None
    try:
        budget = float(opts.get("budget") or 60)
    except ValueError:
        budget = 60.0
    spool = Path(str(opts["spool"])) if opts.get("spool") else None
    result = drain_spool(server, token, deadline=time.monotonic() + budget, spool=spool)
    print(f"sent {result.sent} spooled hook event(s); {result.remaining} left"
          + (f" ({result.error})" if result.error else ""))
    return 0 if result.remaining == 0 else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
