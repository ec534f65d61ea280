"""The light path for the most frequent command lines: ``cclens [--db P] [--server U] report
daily|weekly|monthly [options]``, parsed here without importing Typer.

Importing Typer (with its vendored click) costs ~0.06 s of CPU, a quarter of a warm ``report daily``
on a 500 MB history. These lines are parsed here with the same options, the same defaults and the same
rules as the Typer commands in :mod:`cclens.cli.report` (``--opt value``, ``--opt=value``, ``-f json``,
``-fjson``, the last occurrence wins) and run the same code (:func:`cclens.cli.usage_report.period`).
Anything else — ``--help``, an unknown option, a missing or invalid value, another command — returns
False and the line goes to Typer, which prints its usual help or error. ``tests/test_cli_startup.py``
checks that both paths call the report with the same arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .usage_report import PERIOD_KEYS

# option -> (parameter, takes a value); flags give their constant instead
_GLOBAL = {"--db": "db", "--server": "server"}
_VALUE = {"--since": "since", "--until": "until", "--tz": "tz", "--format": "fmt", "-f": "fmt",
          "--source": "source", "--project": "project"}
_FLAGS = {"--breakdown": ("breakdown", True), "-b": ("breakdown", True),
          "--refresh": ("refresh", True), "--no-refresh": ("refresh", False)}
_DEFAULTS = {"since": None, "until": None, "tz": None, "fmt": "table", "breakdown": False, "source": "all",
             "project": None, "refresh": True}
_FORMATS = ("table", "json", "csv")


def parse(args: list[str]) -> dict[str, Any] | None:
    """The options of a light command line, or None when Typer must handle it."""
    glob: dict[str, Any] = {"db": None, "server": None}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        name, value, i = _option(args, i, _GLOBAL)
        if name is None:
            return None
        glob[name] = value
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
    if glob["db"] is not None:
        glob["db"] = Path(glob["db"])
    return {**glob, **opts}


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
    opts = parse(args)
    if opts is None:
        return False
    from .context import AppState
    from .render import OutputFormat
    from .usage_report import period, start_walk

    st = AppState(db=opts["db"], server=opts["server"])
    walk = start_walk(st, opts["refresh"])  # before DuckDB is even imported: it overlaps the rest
    period(st, opts["kind"], opts["since"], opts["until"], opts["tz"], OutputFormat(opts["fmt"]), opts["breakdown"],
           opts["source"], opts["project"], opts["refresh"], walk)
    return True
