"""The light path for the most frequent command lines, parsed here without importing Typer:

- ``cclens [--db P] [--server U] report daily|weekly|monthly [options]``
- ``cclens [--db P] [--server U] ingest transcripts [PATH...] [-q]``

Importing Typer (with its vendored click, and pydantic for a list argument) costs ~0.06-0.1 s of CPU, a
quarter of a warm ``report daily`` on a 500 MB history. These lines are parsed here with the same
options, the same defaults and the same rules as the Typer commands in :mod:`cclens.cli.report` and
:mod:`cclens.cli.ingest` (``--opt value``, ``--opt=value``, ``-f json``, ``-fjson``, the last occurrence
wins) and run the same code (:func:`cclens.cli.usage_report.period`, :func:`ingest_transcripts`).
Anything else — ``--help``, an unknown option, a missing or invalid value, another command — returns
False and the line goes to Typer, which prints its usual help or error. ``tests/test_cli_startup.py``
checks that both paths call the library with the same arguments.

``cclens ingest transcripts`` prints on stderr through Rich (its progress bar). When stderr is not a
terminal Rich adds no colour and no bar, only its line wrapping: :class:`PlainStderr` writes the same
bytes without importing Rich (~0.04 s), and ``tests/test_startup_output.py`` compares the two.
"""

from __future__ import annotations

import builtins
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    from .context import AppState

# option -> (parameter, takes a value); flags give their constant instead
_GLOBAL = {"--db": "db", "--server": "server"}
_VALUE = {"--since": "since", "--until": "until", "--tz": "tz", "--format": "fmt", "-f": "fmt",
          "--source": "source", "--project": "project"}
_FLAGS = {"--breakdown": ("breakdown", True), "-b": ("breakdown", True),
          "--refresh": ("refresh", True), "--no-refresh": ("refresh", False)}
_DEFAULTS = {"since": None, "until": None, "tz": None, "fmt": "table", "breakdown": False, "source": "all",
             "project": None, "refresh": True}
_FORMATS = ("table", "json", "csv")
_INGEST_FLAGS = ("-q", "--quiet")


def _global_options(args: list[str]) -> tuple[dict[str, Any], int] | None:
    """``({"db": …, "server": …}, index of the command)``, or None when Typer must handle the line."""
    glob: dict[str, Any] = {"db": None, "server": None}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        name, value, i = _option(args, i, _GLOBAL)
        if name is None:
            return None
        glob[name] = value
    if glob["db"] is not None:
        glob["db"] = Path(glob["db"])
    return glob, i


def parse(args: list[str]) -> dict[str, Any] | None:
    """The options of a light ``report`` line, or None when Typer must handle it."""
    from .usage_report import PERIOD_KEYS  # (and its renderers: not needed by an ingest)

    start = _global_options(args)
    if start is None:
        return None
    glob, i = start
    if len(args) < i + 2 or args[i] != "report" or args[i + 1] not in PERIOD_KEYS:
        return None
    opts = dict(_DEFAULTS, kind=args[i + 1])
    i += 2
    while i < len(args):
        arg = args[i]
        if arg in _FLAGS:
            name, value = _FLAGS[arg]
            opts[name] = value
            i += 1
            continue
        name, value, i = _option(args, i, _VALUE)
        if name is None:
            return None
        opts[name] = value
    if opts["fmt"] not in _FORMATS:
        return None  # Typer says which values are allowed
    return {**glob, **opts}


def parse_ingest(args: list[str]) -> dict[str, Any] | None:
    """The options of a light ``ingest transcripts`` line, or None when Typer must handle it."""
    start = _global_options(args)
    if start is None:
        return None
    glob, i = start
    if args[i:i + 2] != ["ingest", "transcripts"]:
        return None
    from ._coercion import _readable_or_missing

    paths: list[Path] = []
    quiet = False
    for arg in args[i + 2:]:
        if arg in _INGEST_FLAGS:
            quiet = True
        elif arg.startswith("-") or not arg or "\0" in arg or not _readable_or_missing(arg):
            return None  # an option, `--`, or a value Typer rejects (an unreadable path) or converts itself
        else:
            paths.append(Path(arg))
    return {**glob, "paths": paths, "quiet": quiet}


def _option(args: list[str], i: int, known: dict[str, str]) -> tuple[str | None, Any, int]:
    """``(parameter, value, next index)`` of the option at ``args[i]``, or ``(None, None, i)``."""
    arg = args[i]
    if arg in known:
        if i + 1 >= len(args):
            return None, None, i  # a missing value: Typer's error
        return known[arg], args[i + 1], i + 2
    head, eq, value = arg.partition("=")
    if eq and head.startswith("--") and head in known:
        return known[head], value, i + 1
    if len(arg) > 2 and not arg.startswith("--") and arg[:2] in known:  # -fjson
        return known[arg[:2]], arg[2:], i + 1
    return None, None, i


def run(args: list[str]) -> bool:
    """Run ``args`` if it is a light command line; False when it is not (nothing was done)."""
    from .context import AppState

    ingest = parse_ingest(args)
    if ingest is not None:
        ingest_transcripts(AppState(db=ingest["db"], server=ingest["server"]), ingest["paths"], ingest["quiet"])
        return True
    opts = parse(args)
    if opts is None:
        return False
    from .render import OutputFormat
    from .usage_report import period, start_walk

    st = AppState(db=opts["db"], server=opts["server"])
    walk = start_walk(st, opts["refresh"])  # before DuckDB is even imported: it overlaps the rest
    period(st, opts["kind"], opts["since"], opts["until"], opts["tz"], OutputFormat(opts["fmt"]), opts["breakdown"],
           opts["source"], opts["project"], opts["refresh"], walk)
    return True


# -- cclens ingest transcripts ----------------------------------------------------------------------

def ingest_transcripts(st: AppState, paths: list[Path] | None, quiet: bool) -> None:
    """``cclens ingest transcripts [PATH...] [-q]``, for both command lines: through a running
    ``cclens serve`` if there is one (it owns the file), else into the warehouse file; then one summary
    line (and the unreadable files) on stderr."""
    from ..sources.transcripts import ingest_paths

    settings = st.settings
    explicit = list(paths or [])
    missing = [str(p) for p in explicit if not Path(p).expanduser().exists()]
    if missing:  # named on the command line: a typo, most likely; say so before doing anything
        from ..errors import ConfigError

        raise ConfigError(f"no such file or folder: {', '.join(missing)}")
    console = stderr_console()
    if st.server_maybe_running():
        from ..client import find_server

        info = find_server(settings)
        if info is not None:  # the server owns the file: send the lines through it (same ingest code)
            from ..ship import ship

            shipped = ship(info.url, info.token, host=settings.host, once=True,
                           extra_paths=explicit or list(settings.transcript_paths), include_defaults=not explicit)
            console.print(f"through cclens serve at {info.url}: batches {shipped.batches:,} · "
                          f"bytes {shipped.bytes:,} · lines {shipped.lines:,} · new lines {shipped.new_lines:,}")
            return
    from ..sources.transcripts.ingest import BackgroundWalk

    # The walk of the transcript folders, and the imports a load needs, run while the warehouse opens.
    # A new warehouse has no cursors: then reading and scanning start as soon as the walk is done,
    # while DuckDB creates the schema (ingest.read_ahead; checked again once the file is open).
    roots = explicit or list(settings.transcript_paths)
    walk = BackgroundWalk(roots, include_defaults=not explicit, new_file=not Path(settings.db).expanduser().exists(),
                          capture_content=settings.capture_content)
    try:
        wh = st.open_warehouse()
    except BaseException:
        walk.close()
        raise
    try:
        with progress_bar(console, quiet) as progress:
            stats = ingest_paths(wh, roots, host=settings.host, include_defaults=not explicit,
                                 capture_content=settings.capture_content, progress=progress, found=walk.found(),
                                 ahead=walk.ahead())
        if stats.new_requests:
            from ..model.pricing import effective_table, sync_model_prices

            sync_model_prices(wh, effective_table(settings))  # keeps the api_request_cost view priced
    finally:
        walk.close()  # (a read ahead the ingest took is closed already; one it did not take stops here)
        wh.close()
    console.print(
        f"files {stats.files:,} · bytes {stats.bytes:,} · lines {stats.lines:,} · new lines {stats.new_lines:,} · "
        f"new requests {stats.new_requests:,} · updated requests {stats.updated_requests:,} · "
        f"quarantined {stats.quarantined:,}" + (f" · unreadable files {len(stats.errors)}" if stats.errors else ""))
    for err in stats.errors[:20]:
        console.print(f"  unreadable: {err}")
    if stats.quarantined:
        console.print("  quarantined lines are kept with their reason: cclens report quarantine")


@contextmanager
def progress_bar(console: Any, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """The ``progress`` callback for :func:`ingest_paths` while the block runs: a transient Rich bar
    on ``console``, or None when nothing would be drawn (``quiet``, or stderr is not a terminal)."""
    if quiet:
        yield None
        return
    if isinstance(console, PlainStderr):
        try:
            yield None
        finally:
            console.print("")  # what rich.progress.Progress.stop() prints on a console that is not interactive
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("ingesting transcripts"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("ingest", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield progress


# -- stderr as Rich prints it, without Rich -----------------------------------------------------------

def stderr_console() -> Any:
    """What the ingest summary is printed with: ``rich.console.Console(stderr=True)`` when Rich would
    style the output (stderr is a terminal, or the environment forces it), else a :class:`PlainStderr`
    writing the same text."""
    width = _rich_plain_width()
    if width is None:
        from rich.console import Console

        return Console(stderr=True)
    return PlainStderr(width)


def _rich_plain_width() -> int | None:
    """The width ``Console(stderr=True)`` would wrap at when it would print plain text (no colour, no
    live display), or None when it would not, or when this module does not replicate the case
    (Windows, Jupyter, a forced interactive mode, a zero width). Follows Rich 15's ``Console.is_terminal``,
    ``is_interactive`` and ``size``; tests/test_startup_output.py checks it against the installed Rich."""
    env = os.environ
    if sys.platform == "win32" or hasattr(builtins, "get_ipython") or "TTY_INTERACTIVE" in env:
        return None
    compatible = env.get("TTY_COMPATIBLE", "")
    force = env.get("FORCE_COLOR")
    if compatible == "1" or (compatible != "0" and force is not None and force != ""):
        return None
    if compatible != "0" and force is None:
        try:
            if sys.stderr.isatty():
                return None
        except (AttributeError, ValueError):
            pass  # no isatty, or closed: not a terminal for Rich either
    columns = env.get("COLUMNS")
    if columns is not None and columns.isdigit():
        return int(columns) if columns.isascii() and int(columns) > 0 else None
    for fd in (0, 1, 2):
        try:
            return os.get_terminal_size(fd).columns or 80
        except (AttributeError, ValueError, OSError):
            continue
    return 80


# Text Rich prints as it is but for the wrapping: printable ASCII and the middle dot, no markup tag
# ("[") and nothing its emoji codes could replace (":name:").
_PLAIN_TEXT = re.compile(r"[ -Z\\\]^-~·]*")
_EMOJI_CODE = re.compile(r":\S*?:")
_WORD = re.compile(r"\s*\S+\s*")


class PlainStderr:
    """Prints to stderr what ``Console(stderr=True).print(text)`` prints there when stderr is not a
    terminal: ``text`` word-wrapped at ``width`` the way Rich wraps (long words folded, trailing
    spaces kept where they fit). Text with markup, emoji codes or other characters is handed to Rich."""

    def __init__(self, width: int):
        self.width = width
        self._rich: Any = None

    def print(self, text: str) -> None:
        if _PLAIN_TEXT.fullmatch(text) is None or _EMOJI_CODE.search(text):
            if self._rich is None:
                from rich.console import Console

                self._rich = Console(stderr=True)
            self._rich.print(text)
            return
        sys.stderr.write("".join(line + "\n" for line in wrap(text, self.width)))
        sys.stderr.flush()


def wrap(text: str, width: int) -> list[str]:
    """``text`` (one line, one cell per character) as the lines Rich's ``Text.wrap`` makes of it with
    the default justify and overflow (``rich._wrap.divide_line`` with folding, then ``rstrip_end``)."""
    breaks: list[int] = []
    offset = 0
    for match in _WORD.finditer(text):
        start, word = match.start(), match.group()
        length = len(word.rstrip())
        if width - offset >= length:
            offset += len(word)
        elif length > width:  # folded over several lines
            pieces = [word[k:k + width] for k in range(0, len(word), width)]
            for piece in pieces[:-1]:
                if start:
                    breaks.append(start)
                start += len(piece)
            if start:
                breaks.append(start)
            offset = len(pieces[-1])
        elif offset and start:
            breaks.append(start)
            offset = len(word)
    # Text.rstrip_end then Text.truncate: a line longer than the width loses its trailing spaces beyond
    # the width, then is cropped to it; with one cell per character, that is keeping its first `width`.
    return [text[a:b][:width] for a, b in zip([0, *breaks], [*breaks, len(text)])]
