"""``cclens demo``: build the demo organisation in its own warehouse and serve the dashboard over it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from . import app
from .context import state


@app.command("demo")
def demo(
    ctx: typer.Context,
    people: int = typer.Option(60, "--people", help="People in the organisation (at least 6)."),
    days: int = typer.Option(90, "--days", help="Days of history, ending now (at least 7)."),
    port: int = typer.Option(8765, "--port", help="Port of the dashboard (127.0.0.1)."),
    seed: int = typer.Option(42, "--seed", help="Another seed, another organisation."),
    db: Optional[Path] = typer.Option(None, "--demo-db", metavar="PATH",
                                      help="Demo warehouse file (default <data dir>/demo/demo.duckdb; never your own)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Build it again even if one with these options exists."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the dashboard after building."),
) -> None:
    """Generate a realistic organisation (teams, adoption curves, subagents, a Bedrock-only team, CI API
    keys), feed it through the real ingest paths (transcript files, the Anthropic APIs, OTLP, hooks) into
    a separate demo warehouse, and serve the dashboard over it.

    Example: cclens demo --people 60 --days 90 --port 8765
    """
    from ..config import load_settings
    from ..demo import build_demo, default_demo_db, demo_settings
    from ..errors import ConfigError

    st = state(ctx)
    target = (db or default_demo_db()).expanduser().resolve()
    user_db = Path(st.settings.db).expanduser().resolve()
    if target == user_db:
        raise ConfigError(f"{target} is your warehouse; the demo writes only to its own file (choose another --demo-db)")
    marker = target.with_name(target.name + ".demo.json")
    wanted = {"people": people, "days": days, "seed": seed}
    current = json.loads(marker.read_text()) if marker.is_file() and target.is_file() else None
    if rebuild or current is None or {k: current.get(k) for k in wanted} != wanted:
        typer.echo(f"building the demo organisation into {target} …")
        result = build_demo(target, people=people, days=days, seed=seed, settings=st.settings,
                            progress=lambda msg: typer.echo(f"  {msg}"))
        marker.write_text(json.dumps({**wanted, "built_seconds": round(result.seconds, 1)}))
    else:
        typer.echo(f"using the demo warehouse {target} (built earlier with these options; --rebuild to redo it)")
    if not serve:
        return
    from .serve import serve as serve_command

    st.db = target
    st._settings = demo_settings(load_settings(db=target), target, server_port=port, server_grpc_port=0)
    typer.echo(f"dashboard: http://127.0.0.1:{port}/  (Ctrl-C to stop)")
    serve_command(ctx, host="127.0.0.1", port=port, grpc_port=0, db=None, require_auth=False, log_level="warning",
                  access_log=False)
