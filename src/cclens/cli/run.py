"""``cclens run``: what ``make run`` calls — ingest this machine's transcripts, then start what there is."""

from __future__ import annotations

import typer

from . import app
from .context import state


@app.command("run")
def run(ctx: typer.Context, serve: bool = typer.Option(True, "--serve/--no-serve",
        help="Start `cclens serve` after ingesting, when available.")) -> None:
    """Ingest local transcripts and print this month's usage; then serve the dashboard if available."""
    from ..metrics import usage
    from ..model.pricing import effective_table, sync_model_prices
    from ..sources.transcripts import default_roots, ingest_paths
    from ..timeutil import check_tz
    from .output import OutputFormat, render

    st = state(ctx)
    settings = st.settings
    typer.echo(f"warehouse: {settings.db}")
    roots = [r for r in default_roots() if r.is_dir()]
    typer.echo("transcript folders: " + (", ".join(map(str, roots)) if roots else "none found (nothing to ingest yet)"))
    wh = st.open_warehouse()
    try:
        stats = ingest_paths(wh, list(settings.transcript_paths), host=settings.host,
                             capture_content=settings.capture_content)
        typer.echo(f"ingested {stats.files} files, {stats.new_lines} new lines, {stats.new_requests} new requests, "
                   f"{stats.quarantined} quarantined")
        prices = effective_table(settings)
        sync_model_prices(wh, prices)
        rows = usage.period_report(wh, "monthly", usage.ReportFilter(prices=prices, tz=check_tz(None, settings.tz)))
    finally:
        wh.close()
    render([{k: r[k] for k in ("month", "total_tokens", "cost_usd", "unpriced_models")} for r in rows],
           OutputFormat.table, title="usage by month")
    if not serve:
        typer.echo("next: `.venv/bin/cclens report daily` (add --breakdown for models)")
        return
    from .serve import serve as serve_command

    url = f"http://{settings.server_host}:{settings.server_port}"
    typer.echo(f"starting cclens serve on {url} (Ctrl-C to stop); this machine's transcripts are watched")
    browse = "127.0.0.1" if settings.server_host in ("0.0.0.0", "", "::") else settings.server_host
    typer.echo(f"dashboard: http://{browse}:{settings.server_port}/")
    typer.echo(f"connect this machine's Claude Code telemetry and hooks: "
               f".venv/bin/cclens setup claude-code --server {url} --write")
    typer.echo("reports while it runs: .venv/bin/cclens report daily (they go through the server)")
    serve_command(ctx, host=None, port=None, grpc_port=None, db=None, require_auth=False, log_level="info",
                  access_log=False, watch=None)
