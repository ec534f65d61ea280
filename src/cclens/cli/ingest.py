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
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from ..sources.transcripts import ingest_paths

    st = state(ctx)
    settings = st.settings
    explicit = list(paths or [])
    console = Console(stderr=True)
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
    wh = st.open_warehouse()
    try:
        with Progress(TextColumn("ingesting transcripts"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                      console=console, disable=quiet, transient=True) as bar:
            task = bar.add_task("ingest", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            stats = ingest_paths(wh, explicit or list(settings.transcript_paths), host=settings.host,
                                 include_defaults=not explicit, capture_content=settings.capture_content,
                                 progress=progress)
        if stats.new_requests:
            from ..model.pricing import effective_table, sync_model_prices

            sync_model_prices(wh, effective_table(settings))  # keeps the api_request_cost view priced
    finally:
        wh.close()
    console.print(
        f"files {stats.files:,} · bytes {stats.bytes:,} · lines {stats.lines:,} · new lines {stats.new_lines:,} · "
        f"new requests {stats.new_requests:,} · updated requests {stats.updated_requests:,} · "
        f"quarantined {stats.quarantined:,}" + (f" · unreadable files {len(stats.errors)}" if stats.errors else ""))
    for err in stats.errors[:20]:
        console.print(f"  unreadable: {err}")
    if stats.quarantined:
        console.print("  quarantined lines are kept with their reason: cclens report quarantine")
