"""The root Typer app of ``cclens`` and its global options (built by :func:`cclens.cli.get_app`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .. import __version__
from .context import AppState


def make_app() -> typer.Typer:
    """A new root app with the global options and no commands yet."""
    root = typer.Typer(
        name="cclens",
        help="cclens: collect Claude Code usage, cost and delivery data into one warehouse.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def _version(value: bool) -> None:
        if value:
            typer.echo(f"cclens {__version__}")
            raise typer.Exit()

    @root.callback()
    def _global(
        ctx: typer.Context,
        db: Optional[Path] = typer.Option(None, "--db", help="Warehouse file (env CCLENS_DB).", metavar="PATH"),
        server: Optional[str] = typer.Option(None, "--server", help="Go through a running `cclens serve` at URL."),
        version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                     help="Print the version."),
    ) -> None:
        ctx.obj = AppState(db=db, server=server)

    return root
