"""Finding transcript files and reading only what is new in them.

A transcript is append-only JSONL written by Claude Code. We remember per file its identity
(device:inode), a hash of its first line, and the byte offset up to which every complete line has been
ingested. :func:`read_new` returns only complete lines after that offset; a trailing partial line is
left for the next run. A file that shrank, or whose identity or first line changed, was truncated or
replaced: it is read again from offset 0 under a new *generation* (line keys make that idempotent).
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

READ_LIMIT = 32 * 1024 * 1024  # bytes read from one file per call; bounds memory on huge files


@dataclass(frozen=True)
class FileCursor:
    """What has been ingested of one file."""

    path: str
    file_id: str | None
    head_hash: str | None
    generation: int
    size: int
    offset: int
    mtime: float | None = None
    lines: int = 0


@dataclass(frozen=True)
class Chunk:
    """Complete lines of one file, starting at ``start_offset`` (``data`` ends with a newline)."""

    path: str
    file_id: str | None
    head_hash: str | None
    generation: int
    start_offset: int
    data: bytes
    size: int
    mtime: float | None = None

    @property
    def end_offset(self) -> int:
        return self.start_offset + len(self.data)


def default_roots() -> list[Path]:
    """The places Claude Code writes transcripts: ``~/.claude/projects``, ``$XDG_CONFIG_HOME/claude/projects``
    (``~/.config/claude/projects``), and ``<dir>/projects`` for each dir in ``CLAUDE_CONFIG_DIR``
    (comma separated)."""
    home = Path.home()
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    roots = [home / ".claude" / "projects", xdg / "claude" / "projects", home / ".config" / "claude" / "projects"]
    for entry in (os.environ.get("CLAUDE_CONFIG_DIR") or "").split(","):
        entry = entry.strip()
        if entry:
            base = Path(entry).expanduser()
            roots.append(base if base.name == "projects" else base / "projects")
    return roots


def discover(extra_paths: list[Path] | None = None, *, include_defaults: bool = True) -> list[Path]:
    """Every transcript file: ``*.jsonl`` under the default roots (when ``include_defaults``) and under
    each extra path (a folder is searched recursively; a file is taken as is). Subagent transcripts
    (``<session>/subagents/agent-*.jsonl``) are included. Sorted, without duplicates."""
    return [Path(p) for p in discover_paths(extra_paths, include_defaults=include_defaults)]


def discover_paths(extra_paths: list[Path] | None = None, *, include_defaults: bool = True) -> list[str]:
    """:func:`discover` as plain path strings."""
    found = scan(extra_paths, include_defaults=include_defaults)
    named = {str(Path(p).expanduser()) for p in extra_paths or []}  # an error under one of these: not a file
    return sorted(p for p, size in found.items() if not (p in named and isinstance(size, OSError)))


def scan(extra_paths: list[Path] | None = None, *, include_defaults: bool = True) -> dict[str, int | OSError]:
    """Every transcript file (as :func:`discover` finds them, unsorted) with its size in bytes, or the
    OSError that stat-ing it raised. One ``scandir`` per folder and one ``stat`` per file: this is what
    a report pays on every run to notice new lines, so it builds no Path objects."""
    found: dict[str, int | OSError] = {}
    explicit = [Path(p).expanduser() for p in extra_paths or []]
    for root in (default_roots() if include_defaults else []) + explicit:
        try:
            if root.is_file():
                path = str(root.resolve())
                found[path] = _size(path)
            elif root.is_dir():
                # Resolve the root once (symlinks such as ~/.claude -> elsewhere); walking below it yields
                # real paths already, and resolving thousands of files one by one costs more than the walk.
                _walk(str(root.resolve()), found)
            elif root in explicit and not root.exists():  # asked for by name: a typo is said, not ignored
                found[str(root)] = FileNotFoundError(errno.ENOENT, "no such file or folder")
        except OSError as exc:  # a place we may not look into (permissions)
            if root in explicit:  # asked for by name: say so (plan() reports it); a default root: as if absent
                found[str(root)] = exc
    return found


def scan_in_background(extra_paths: list[Path] | None = None, *, include_defaults: bool = True
                       ) -> Callable[[], dict[str, int | OSError]]:
    """Start :func:`scan` on a thread now; the returned function waits for it and returns its result
    (or raises what it raised). A report opens the warehouse meanwhile: the walk is system calls and
    DuckDB releases the GIL while it opens the file and runs queries, so on two cores they overlap."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["found"] = scan(extra_paths, include_defaults=include_defaults)
        except BaseException as exc:  # handed to the caller by result()
            box["error"] = exc

    thread = threading.Thread(target=work, name="cclens-transcript-scan", daemon=True)
    thread.start()

    def result() -> dict[str, int | OSError]:
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["found"]

    return result


def _size(path: str) -> int | OSError:
    try:
        return _regular_size(os.stat(path))
    except OSError as exc:
        return exc


def _regular_size(st: os.stat_result) -> int | OSError:
    """The size of a regular file, else an error: a FIFO named ``*.jsonl`` would block the reader
    until something writes to it, and a device has no size to go by."""
    return st.st_size if stat.S_ISREG(st.st_mode) else NotRegularFile()


class NotRegularFile(OSError):
    """A path that names something other than a regular file (a FIFO, a device, a socket)."""

    def __init__(self) -> None:
        super().__init__(errno.EINVAL, "not a regular file")


def _walk(top: str, found: dict[str, int | OSError]) -> None:
    """Add ``*.jsonl`` files below ``top`` to ``found``, as ``os.walk(top)`` sees them: symlinked files
    are taken, symlinked folders are not entered, unreadable folders are skipped."""
    stack = [top]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    try:
                        if not entry.is_symlink():
                            stack.append(entry.path)
                    except OSError:
                        pass
                elif entry.name.endswith(".jsonl"):
                    try:
                        found[entry.path] = _regular_size(entry.stat())
                    except OSError as exc:
                        found[entry.path] = exc


def _read(fd: int, offset: int, n: int) -> bytes:
    """``n`` bytes of ``fd`` from ``offset`` (fewer at the end of the file)."""
    data = os.pread(fd, n, offset)
    if len(data) < n and data:  # a short read before the end: keep reading
        parts = [data]
        got = len(data)
        while got < n:
            more = os.pread(fd, n - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        data = b"".join(parts)
    return data


_blake2b = None


def _first_line_hash(head: bytes) -> str:
    """The hash of the first line in ``head`` (the file's first 4 KB, or all of them if no newline)."""
    global _blake2b
    if _blake2b is None:
        from hashlib import blake2b  # only when a file is read (not on a report's walk)

        _blake2b = blake2b
    end = head.find(b"\n", 0, 4096)
    return _blake2b(head[:4096] if end < 0 else head[:end], digest_size=8).hexdigest()


def _line_counter():
    """memchr in the scanner's module when built (bytes.count steps byte by byte, which was a fifth of
    a cold ingest's reading)."""
    try:
        from ._native import count_lines
    except ImportError:
        return lambda data: data.count(b"\n")
    return count_lines


_count_lines = None


def storable_path(path: str) -> str:
    """``path`` as cclens stores and shows it (cursors, landing origins, messages): the path itself
    when it is valid Unicode, else with each byte that is not UTF-8 written as ``\\xNN``. A file name
    on Linux may be any bytes, which Python keeps as lone surrogates that neither the warehouse nor
    JSON nor a terminal accept; the file is still opened by its real name."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def read_new(path: Path | str, cursor: FileCursor | None, *, limit: int = READ_LIMIT) -> tuple[Chunk | None, FileCursor]:
    """The complete lines of ``path`` not covered by ``cursor`` (at most ``limit`` bytes, cut at a line
    end), and the cursor to store once they are ingested. Returns ``(None, cursor)`` when nothing is new.
    The chunk's and the cursor's path is :func:`storable_path` of ``path``.
    Raises OSError when the file cannot be read (callers report it and move on)."""
    global _count_lines
    if _count_lines is None:
        _count_lines = _line_counter()
    real = str(path)
    p = storable_path(real)
    # O_NONBLOCK: a FIFO would otherwise block here until a writer came (it is refused just below)
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile()
        file_id = f"{st.st_dev}:{st.st_ino}"
        size = st.st_size
        data = None
        if cursor is None or cursor.offset == 0:  # from the top: the first line comes with the data
            data = _read(fd, 0, min(size, limit))
            head = _first_line_hash(data) if size else None
        else:
            head = _first_line_hash(_read(fd, 0, min(size, 4096))) if size else None
        if cursor is None:
            cursor = FileCursor(path=p, file_id=file_id, head_hash=head, generation=1, size=0, offset=0)
        elif (cursor.file_id not in (None, file_id) or size < cursor.offset
              or (cursor.head_hash is not None and head != cursor.head_hash)):
            # Replaced or truncated: start again from the top under a new generation, unless nothing
            # of this one was read (a first line still being written when the file was first seen
            # hashes differently once complete: the file was not replaced, only finished).
            cursor = FileCursor(path=p, file_id=file_id, head_hash=head,
                                generation=cursor.generation + (1 if cursor.offset else 0), size=0, offset=0)
        if size <= cursor.offset:
            return None, replace(cursor, size=size, mtime=st.st_mtime, file_id=file_id)
        if data is None or cursor.offset:
            data = _read(fd, cursor.offset, min(size - cursor.offset, limit))
    finally:
        os.close(fd)
    end = data.rfind(b"\n")
    if end < 0:
        if len(data) >= limit:  # one line longer than the limit: read it whole rather than stall
            return read_new(real, cursor, limit=limit * 4)
        return None, replace(cursor, size=size, mtime=st.st_mtime, file_id=file_id, head_hash=head)
    if end + 1 < len(data):
        data = data[: end + 1]
    chunk = Chunk(path=p, file_id=file_id, head_hash=head, generation=cursor.generation,
                  start_offset=cursor.offset, data=data, size=size, mtime=st.st_mtime)
    new_cursor = FileCursor(path=p, file_id=file_id, head_hash=head, generation=cursor.generation, size=size,
                            offset=chunk.end_offset, mtime=st.st_mtime, lines=cursor.lines + _count_lines(data))
    return chunk, new_cursor
