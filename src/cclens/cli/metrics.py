"""``cclens metrics``, ``cclens metric NAME``, ``cclens report reconcile``, ``cclens query``, ``cclens export``.

Thin shells over :mod:`cclens.metrics` (catalog, reconcile, sql_guard, export); reads go through
``state(ctx).reader()``, so they work with and without a running ``cclens serve``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from .context import state
from .output import FORMAT_OPTION, SINCE_OPTION, TZ_OPTION, UNTIL_OPTION, OutputFormat, render
from .report import report_app

GROUP_BY_OPTION = typer.Option(None, "--group-by", "-g", help="Comma-separated: day, week, month, person, team, "
                               "model, source, project, token_type, tool.")
FILTER_OPTION = typer.Option(None, "--filter", help="DIM=VALUE[,VALUE] (person, team, model, project, source, "
                             "token_type, tool); repeatable.")
TEAM_OPTION = typer.Option(None, "--team", help="Only these teams (comma-separated); same as --filter team=…")


def _split(values: Optional[list[str]]) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _filters(items: Optional[list[str]], team: Optional[str]) -> dict[str, list[str]]:
    from ..errors import QueryError

    out: dict[str, list[str]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise QueryError(f"--filter {item!r} is not DIM=VALUE (for example --filter team=platform)")
        out.setdefault(key.strip(), []).extend(_split([value]))
    if team:
        out.setdefault("team", []).extend(_split([team]))
    return out


def _range(ctx: typer.Context, since, until, tz):
    from ..timeutil import check_tz, parse_days

    settings = state(ctx).settings
    return (*parse_days(since, until), check_tz(tz, settings.tz))


@app.command("metrics")
def metrics_list(fmt: OutputFormat = FORMAT_OPTION) -> None:
    """The metric catalog: every metric cclens computes, its unit, sources and groupings (docs/metrics.md)."""
    from ..metrics.catalog import catalog

    entries = catalog()
    if fmt is not OutputFormat.table:
        render(entries, fmt)
        return
    render([{"metric": m["name"], "group": m["group"], "unit": m["unit"], "sources": ", ".join(m["sources"]),
             "group_by": ", ".join(m["group_by"]), "description": m["description"]} for m in entries], fmt,
           title="metrics", footer="`cclens metric NAME --group-by team,week` computes one")


@app.command("metric")
def metric(ctx: typer.Context, name: str = typer.Argument(..., help="A metric from `cclens metrics`."),
           group_by: Optional[list[str]] = GROUP_BY_OPTION, filters: Optional[list[str]] = FILTER_OPTION,
           team: Optional[str] = TEAM_OPTION, since: Optional[str] = SINCE_OPTION,
           until: Optional[str] = UNTIL_OPTION, tz: Optional[str] = TZ_OPTION,
           fmt: OutputFormat = FORMAT_OPTION) -> None:
    """Compute one catalog metric (default: the last 30 days), with the sources behind every row.

    Examples: `cclens metric active_people -g week`, `cclens metric tokens -g team,model --since 2026-06-01`,
    `cclens metric estimated_cost -g person --filter team=platform -f csv`."""
    from ..metrics.catalog import compute
    from ..model.pricing import effective_table

    st = state(ctx)
    day_from, day_to, zone = _range(ctx, since, until, tz)
    with st.reader() as wh:
        res = compute(wh, name, since=day_from, until=day_to, tz=zone, group_by=_split(group_by),
                      filters=_filters(filters, team), prices=effective_table(st.settings))
    if fmt is OutputFormat.json:
        render(res.rows, fmt, json_value=res.to_dict())
        return
    if fmt is OutputFormat.csv:
        render(res.rows, fmt)
        return
    cov = ", ".join(f"{s}: {'no data' if c is None else str(c['rows']) + ' rows'}" for s, c in res.coverage.items())
    footer = "\n".join([f"unit: {res.unit} · {res.since} … {res.until} ({res.tz})", f"sources: {cov}", *res.notes])
    render(res.rows, fmt, title=f"{name}", footer=footer)


@report_app.command("reconcile")
def reconcile_cmd(ctx: typer.Context, since: Optional[str] = SINCE_OPTION, until: Optional[str] = UNTIL_OPTION,
                  tz: Optional[str] = TZ_OPTION, fmt: OutputFormat = FORMAT_OPTION,
                  by_person: bool = typer.Option(False, "--by-person", help="Also split by person where the "
                                                 "sources know people."),
                  long: bool = typer.Option(False, "--long", help="One row per source (tokens by type, drift) "
                                            "instead of sources side by side.")) -> None:
    """Tokens and cost per day and model from transcripts, OTel (events and metrics), the Claude Code
    Analytics API and the Usage & Cost API side by side, with drift and why sources differ."""
    from ..metrics.reconcile import reconcile, wide
    from ..model.pricing import effective_table

    st = state(ctx)
    day_from, day_to, zone = _range(ctx, since, until, tz)
    with st.reader() as wh:
        rep = reconcile(wh, since=day_from, until=day_to, tz=zone, prices=effective_table(st.settings),
                        by_person=by_person)
    if fmt is OutputFormat.json:
        render(rep["rows"], fmt, json_value=rep)
        return
    rows = rep["rows"] if long else wide(rep["rows"], by_person)
    if fmt is OutputFormat.csv:
        render(rows, fmt)
        return
    if not long:  # keep the table readable: only the columns some source filled
        keep = [c for c in (rows[0] if rows else {}) if any(r.get(c) is not None for r in rows)]
        rows = [{c: r[c] for c in keep} for r in rows]
    req = rep["requests"]
    lines = [f"{rep['since']} … {rep['until']} ({rep['tz']}); sources with data: "
             f"{', '.join(rep['sources_present']) or 'none'}; without: {', '.join(rep['sources_missing']) or 'none'}",
             f"requests seen by transcripts and OTel: {req['matched']} ({req['equal']} agree exactly); only in "
             f"transcripts: {req['only_transcripts']}; only in OTel: {req['only_otel_events']}", *rep["notes"],
             "why sources differ:"]
    for s in rep["sources_present"]:
        lines += [f"  {s}: {r}" for r in rep["reasons"][s]]
    render(rows, fmt, title="reconciliation", footer="\n".join(lines))


@app.command("query")
def query(ctx: typer.Context, sql: str = typer.Argument(..., help="One SELECT over the warehouse tables."),
          fmt: OutputFormat = FORMAT_OPTION,
          max_rows: int = typer.Option(10_000, "--max-rows", help="Stop after this many rows."),
          timeout: float = typer.Option(30.0, "--timeout", help="Stop the query after this many seconds.")) -> None:
    """Run one read-only SELECT (the same sandbox as the REST API: no files, no network, no writes).

    Example: `cclens query "SELECT model, sum(output_tokens) FROM api_request GROUP BY 1"`."""
    from ..metrics.sql_guard import run_sandboxed

    with state(ctx).reader() as wh:
        res = run_sandboxed(wh, sql, max_rows=max_rows, timeout_s=timeout)
    rows = res.table.to_pylist()
    footer = f"{len(rows):,} rows in {res.elapsed_ms:,.0f} ms" + (f" (stopped at --max-rows {max_rows})"
                                                                  if res.truncated else "")
    render(rows, fmt, columns=res.table.column_names, footer=footer)
    if res.truncated and fmt is not OutputFormat.table:
        typer.echo(f"truncated at {max_rows} rows (--max-rows)", err=True)


@app.command("export")
def export(ctx: typer.Context,
           output: Path = typer.Option(..., "--output", "-o", help="A file (.parquet/.csv) or a directory."),
           table: Optional[list[str]] = typer.Option(None, "--table", help="Warehouse table(s) to export (repeatable)."),
           metric_name: Optional[str] = typer.Option(None, "--metric", help="A catalog metric to export."),
           group_by: Optional[list[str]] = GROUP_BY_OPTION, filters: Optional[list[str]] = FILTER_OPTION,
           since: Optional[str] = SINCE_OPTION, until: Optional[str] = UNTIL_OPTION, tz: Optional[str] = TZ_OPTION,
           file_format: Optional[str] = typer.Option(None, "--as", help="parquet or csv (default: from the file "
                                                     "suffix, else parquet).")) -> None:
    """Write tables or a metric to Parquet or CSV files (for finance, notebooks, BI tools)."""
    from ..errors import QueryError
    from ..metrics.export import export_tables, rows_table, write_table

    fmt = file_format or (output.suffix.lower().lstrip(".") if output.suffix.lower() in (".parquet", ".csv")
                          else "parquet")
    if bool(table) == bool(metric_name):
        raise QueryError("give either --table NAME (repeatable) or --metric NAME")
    st = state(ctx)
    with st.reader() as wh:
        if metric_name:
            from ..metrics.catalog import compute
            from ..model.pricing import effective_table

            day_from, day_to, zone = _range(ctx, since, until, tz)
            res = compute(wh, metric_name, since=day_from, until=day_to, tz=zone, group_by=_split(group_by),
                          filters=_filters(filters, None), prices=effective_table(st.settings), coverage=False)
            path = output if output.suffix else output / f"{metric_name}.{fmt}"
            counts = {str(path): write_table(rows_table(res.rows), path, fmt)}
        else:
            counts = export_tables(wh, _split(table), output, fmt)
    for path, n in counts.items():
        typer.echo(f"{path}: {n:,} rows")



def _report_alias(metric_name: str):
    def command(ctx: typer.Context, group_by: Optional[list[str]] = GROUP_BY_OPTION,
                filters: Optional[list[str]] = FILTER_OPTION, team: Optional[str] = TEAM_OPTION,
                since: Optional[str] = SINCE_OPTION, until: Optional[str] = UNTIL_OPTION,
                tz: Optional[str] = TZ_OPTION, fmt: OutputFormat = FORMAT_OPTION) -> None:
        metric(ctx, metric_name, group_by, filters, team, since, until, tz, fmt)

    command.__doc__ = f"The catalog metric {metric_name} (same as `cclens metric {metric_name}`)."
    return command


def _register_report_aliases() -> None:
    """`cclens report METRIC` for every core catalog metric whose name is not already a report command
    (hidden from `report --help`; `cclens metrics` lists them)."""
    from ..metrics.catalog import METRICS

    taken = {c.name or (c.callback.__name__ if c.callback else "") for c in report_app.registered_commands}
    for name in METRICS:
        if name not in taken:
            report_app.command(name, hidden=True)(_report_alias(name))


_register_report_aliases()
