"""``cclens ingest transcripts [PATH...]``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import app
from .context import state

ingest_app = typer.Typer(help="Load data from local sources into the warehouse.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")


@ingest_app.command("transcripts")
def ingest_transcripts(
    ctx: typer.Context,
    paths: Optional[List[Path]] = typer.Argument(None, help="Folders (searched recursively) or .jsonl files. "
                                                 "Default: ~/.claude/projects, ~/.config/claude/projects, "
                                                 "$CLAUDE_CONFIG_DIR/projects and configured transcript_paths."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Ingest new lines of Claude Code session transcripts (incremental; safe to re-run)."""
    from . import fast  # the same code as the light command line (no Typer there)

    fast.ingest_transcripts(state(ctx), paths, quiet)
