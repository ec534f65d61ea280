"""``cclens hook``: the Claude Code command-hook shim (see :mod:`cclens.hook_shim`).

Claude Code's settings call the same program as ``cclens-hook`` (or ``python -m cclens.hook_shim``),
which starts faster because it skips the rest of the CLI; this command is the same code for people.
"""

from __future__ import annotations

import typer

from . import app

_HELP = """Forward a Claude Code hook payload (stdin) to `cclens serve`; spool it when the server is away.

Always exits 0, prints nothing, and returns within --budget seconds (default 1), so it can never block
or slow Claude Code. Options: --server URL (or $CCLENS_SERVER_URL), --token T (or $CCLENS_SERVER_TOKEN),
--budget SECONDS, --spool DIR. `cclens hook --flush --server URL` sends everything spooled and prints
a summary.
"""


@app.command(
    "hook",
    help=_HELP,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
)
def hook(ctx: typer.Context) -> None:
    # No declared options on purpose: an argument error would exit 2, and exit 2 blocks Claude Code.
    from ..hook_shim import main

    raise typer.Exit(main(list(ctx.args)))
