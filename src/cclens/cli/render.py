"""Printing a list of rows as a table, JSON or CSV (``--format table|json|csv``).

Free of Typer on purpose: the light report path (:mod:`cclens.cli.fast`) prints through it without
importing Typer. The shared options themselves are in :mod:`cclens.cli.output`."""

from __future__ import annotations

import sys
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Iterable, Sequence

import orjson


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def render(rows: Sequence[dict[str, Any]], fmt: OutputFormat, *, columns: Sequence[str] | None = None,
           title: str | None = None, footer: str | None = None, json_value: Any = None) -> None:
    """Print ``rows``: a Rich table, a JSON array (or ``json_value`` if given), or CSV on stdout."""
    cols = list(columns or (rows[0].keys() if rows else []))
    if fmt is OutputFormat.json:
        payload = rows if json_value is None else json_value
        sys.stdout.write(orjson.dumps(payload, default=_default, option=orjson.OPT_INDENT_2 |
                                      orjson.OPT_NON_STR_KEYS).decode() + "\n")
        return
    if fmt is OutputFormat.csv:
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else _csv_cell(row.get(c)) for c in cols])
        sys.stdout.write(buf.getvalue())
        return
    from rich.console import Console  # imported here: only table output needs rich (CLI start-up)
    from rich.table import Table

    table = Table(title=title, show_footer=False)
    for c in cols:
        table.add_column(c, justify="right" if rows and isinstance(rows[0].get(c), (int, float)) else "left")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in cols))
    console = Console()
    if not rows:
        console.print(title or "", "no data for this period")
    else:
        console.print(table)
    if footer:
        console.print(footer)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return value


def iter_or_empty(value: Iterable[Any] | None) -> Iterable[Any]:
    return value or ()
