"""The ``cclens`` command line: a thin shell over the library.

Each command parses options, calls one library function and formats the result. Sub-command groups
live in sibling modules and register themselves on :data:`app` (the root Typer app, built on first
use) when :func:`register_commands` imports them. Every :class:`cclens.errors.CclensError` becomes
one line on stderr and a non-zero exit.

Start-up time matters (reports run often, ``cclens report daily`` is compared with ccusage): the most
frequent report lines run without Typer (:mod:`cclens.cli.fast`), and the others import only the
command modules they need (:data:`LIGHT_COMMANDS`).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

from ..errors import CclensError

if TYPE_CHECKING:
    import typer

    app: typer.Typer

# Modules under cclens.cli that add commands to `app`. A new command group adds its module here.
COMMAND_MODULES = ["ingest", "report", "run", "prices", "hooks", "ship", "setup", "serve", "sync", "demo", "report_html", "metrics", "people", "engineering", "mcp"]


def get_app() -> "typer.Typer":
    """The root Typer app (built on first use), with the commands of the modules imported so far."""
    built = globals().get("app")
    if built is None:
        from ._app import make_app

        globals()["app"] = built = make_app()
    return built


def __getattr__(name: str) -> Any:
    """``app``, the root Typer app, is built on first use (``from . import app`` in a command module)."""
    if name == "app":
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Commands whose whole definition is in one module: running one of them imports only that module
# (start-up time: every command module costs its imports, and Typer parses the signature of every
# registered command on each run). Keyed by (command, sub-command); anything not listed here, and
# --help, imports every module in COMMAND_MODULES.
LIGHT_COMMANDS = {
    **{("report", sub): ["report"] for sub in ("daily", "weekly", "monthly", "sessions", "session", "projects",
                                               "models", "quarantine")},
    ("ingest", "transcripts"): ["ingest"],
}
_GLOBAL_OPTIONS_WITH_VALUE = ("--db", "--server")


def register_commands(modules: list[str] | None = None) -> None:
    """Import the command modules (default: all of COMMAND_MODULES), which add their commands to
    :data:`app`. :func:`main` calls it; call it yourself before driving :data:`app` directly."""
    for name in COMMAND_MODULES if modules is None else modules:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:  # a command module not written yet must not break the CLI
            if exc.name != f"{__name__}.{name}":
                raise


def _modules_for(argv: list[str]) -> list[str] | None:
    """The command modules ``argv`` needs, or None for all of them."""
    words: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in _GLOBAL_OPTIONS_WITH_VALUE:
            next(args, None)
        elif arg.startswith("-"):
            if not words and not arg.startswith(tuple(o + "=" for o in _GLOBAL_OPTIONS_WITH_VALUE)):
                return None  # --help, --version, or an option we do not know: load everything
        else:
            words.append(arg)
            if len(words) == 2:
                break
    return LIGHT_COMMANDS.get(tuple(words))  # type: ignore[arg-type]


def _is_usage_error(exc: BaseException) -> bool:
    """A click-style usage error (unknown option, bad value, missing argument), whichever click it is."""
    classes = []
    try:
        import click

        classes.append(click.ClickException)
    except ImportError:  # pragma: no cover
        pass
    try:
        from typer._click.exceptions import ClickException as TyperClickException

        classes.append(TyperClickException)
    except ImportError:  # pragma: no cover - older Typer uses click itself
        pass
    return isinstance(exc, tuple(classes))


def _error_line(exc: CclensError) -> int:
    import typer

    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    return exc.exit_code


def script() -> None:
    """The ``cclens`` command: :func:`main`, then exit with its code. Once main has returned, the run is
    over (done, or failed and said so); a Ctrl-C that comes while the interpreter shuts down must not
    turn it into a process killed by SIGINT, so from then on SIGINT is ignored."""
    import signal

    code = None
    try:
        code = main()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:  # raised only as main returned: the run ends as main said
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if code is None:
            sys.stderr.write("interrupted\n")
            code = 130
    if code == 130:
        # An interrupted run ends here, said and with its warehouse closed. CPython (3.11) remembers a
        # KeyboardInterrupt that went through code run by exec() of a string (as dataclasses create their
        # methods, while modules import) even when it was caught, and at exit then kills the process by
        # SIGINT instead of exiting 130 (seen in ~5% of Ctrl-Cs 0.1 s into an ingest): leave without that.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(130)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cclens`` script. Returns the process exit code. Errors are one line on
    stderr, never a traceback: cclens's own (:class:`CclensError`) say what to do; anything else is a
    bug, reported as one line with exit code 70 (set ``CCLENS_DEBUG=1`` to get the traceback)."""
    try:
        return _main(argv)
    except Exception as exc:
        if type(exc) is RuntimeError and str(exc) == "Query interrupted":  # Ctrl-C seen by DuckDB itself
            sys.stderr.write("interrupted\n")
            return 130
        if os.environ.get("CCLENS_DEBUG"):
            raise
        text = " ".join(str(exc).split())[:500]
        sys.stderr.write(f"error: internal error ({type(exc).__name__}: {text}); this is a bug in cclens, "
                         "please report it; CCLENS_DEBUG=1 shows the traceback\n")
        return 70


def _main(argv: list[str] | None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        from . import fast

        if fast.run(args):
            return 0
    except CclensError as exc:
        return _error_line(exc)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    import typer

    register_commands(_modules_for(args))
    try:
        from typer.main import get_command

        from ._coercion import lighten

        rc = lighten(get_command(get_app()))(args=args, standalone_mode=False)
        if isinstance(rc, int) and not isinstance(rc, bool):  # click returns typer.Exit's code here
            return rc
    except CclensError as exc:
        return _error_line(exc)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # usage errors: ClickException from click or from Typer's vendored copy
        if _is_usage_error(exc):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
