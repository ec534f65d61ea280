"""``cclens prices show|import``: the price table used for estimated cost."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from . import app
from .context import state
from .output import FORMAT_OPTION, OutputFormat, render

prices_app = typer.Typer(help="The price table used for estimated cost.", no_args_is_help=True)
app.add_typer(prices_app, name="prices")


@prices_app.command("show")
def show(ctx: typer.Context, fmt: OutputFormat = FORMAT_OPTION) -> None:
    """Print the effective price table (USD per million tokens)."""
    from ..model.pricing import effective_table

    table = effective_table(state(ctx).settings)
    rows = [{"model": k, "input": p.input, "output": p.output, "cache_write_5m": p.cache_write_5m,
             "cache_write_1h": p.cache_write_1h, "cache_read": p.cache_read,
             "long_context": "yes" if p.long_context else "", "fast_x": p.fast_multiplier}
            for k, p in sorted(table.prices.items())]
    render(rows, fmt, title=f"prices, version {table.version} (USD per million tokens)")


@prices_app.command("import")
def import_litellm(ctx: typer.Context, path: Path = typer.Argument(..., help="A LiteLLM-format JSON file "
                   "(model_prices_and_context_window.json)."),
                   version: str = typer.Option(None, "--version", help="Label for the imported table.")) -> None:
    """Refresh the price table from a local LiteLLM-format file (no network)."""
    from datetime import date

    from ..errors import PricingError
    from ..model.pricing import from_litellm, imported_table_path, parse_table

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PricingError(f"cannot read {path}: {exc}") from None
    table_doc = from_litellm(doc, version=version or f"litellm-{date.today().isoformat()}")
    parse_table(table_doc, str(path))  # validate before writing
    target = imported_table_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(table_doc, indent=1))
    typer.echo(f"imported {len(table_doc['models'])} Claude models into {target}")
