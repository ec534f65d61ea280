"""``cclens ship --server URL [--once]``: push this machine's transcripts to a ``cclens serve``."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import List, Optional

import typer

from . import app
from .context import state


def Console(*args, **kwargs):  # noqa: N802 - rich imported on use, not at CLI start-up
    from rich.console import Console as _Console

    return _Console(*args, **kwargs)


@app.command("ship")
def ship_command(
    ctx: typer.Context,
    paths: Optional[List[Path]] = typer.Argument(None, help="Extra folders or .jsonl files (besides the default "
                                                 "transcript folders and the transcript_paths setting)."),
    server: Optional[str] = typer.Option(None, "--server", help="The cclens server, e.g. https://cclens.example.com "
                                         "(env CCLENS_SERVER_URL)."),
    token: Optional[str] = typer.Option(None, "--token", help="An ingest token (env CCLENS_SERVER_TOKEN)."),
    once: bool = typer.Option(False, "--once", help="Send what is new and exit (for cron); exit 1 if it failed."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between passes when tailing."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
    batch_bytes: int = typer.Option(8 * 1024 * 1024, "--batch-bytes", hidden=True, help="Bytes of lines per request."),
) -> None:
    """Tail the local Claude Code transcripts (subagents included) and push new lines to a cclens server.

    Resumes from the last acknowledged offset after a crash or restart; the server ignores lines it
    already has, so the warehouse ends the same as with a local `cclens ingest transcripts`. Also
    forwards hook events the `cclens hook` shim spooled while the server was away.

    Example: cclens ship --server https://cclens.example.com --token $TOKEN --once
    """
    from ..errors import ConfigError
    from ..ship import ship

    settings = state(ctx).settings
    url = server or settings.server_url
    if not url:
        raise ConfigError("no server to ship to: pass --server URL (or set CCLENS_SERVER_URL)")
    secret = token or (settings.server_token.get_secret_value() if settings.server_token else None)
    console = Console(stderr=True, quiet=quiet)
    stopping = {"flag": False}

    def stop(*_: object) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def report(stats) -> None:
        if stats.errors:
            for err in stats.errors[-3:]:
                console.print(f"[yellow]{err}[/yellow]")
        if stats.chunks or stats.hook_events:
            console.print(f"shipped {stats.bytes:,} bytes in {stats.chunks:,} chunk(s), {stats.new_lines:,} new "
                          f"line(s); {stats.hook_events:,} spooled hook event(s)")

    total = ship(url, secret, host=settings.host, once=once, interval=interval,
                 extra_paths=list(paths or []) + list(settings.transcript_paths), on_pass=report, batch_bytes=batch_bytes,
                 should_stop=lambda: stopping["flag"])
    if once and not quiet:
        console.print(f"up to date: {total.bytes:,} bytes shipped this run")
