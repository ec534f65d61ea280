"""The usage reports behind ``cclens report daily|weekly|monthly|sessions|projects|models``.

Free of Typer: the commands in :mod:`cclens.cli.report` parse their options with Typer and call
these; :mod:`cclens.cli.fast` parses the common ``report daily|weekly|monthly`` lines itself and calls
them too, so a warm report starts without importing Typer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from .render import OutputFormat, render

if TYPE_CHECKING:
    from ..sources.transcripts.ingest import BackgroundWalk
    from .context import AppState

PERIOD_KEYS = {"daily": "date", "weekly": "week", "monthly": "month"}
TOTAL_COLUMNS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens", "total_tokens",
                 "cost_usd")


def start_walk(st: AppState, refresh: bool) -> BackgroundWalk | None:
    """Start walking this machine's transcript folders (the places the refresh looks at) on a thread,
    when the report will refresh from the file; the result is handed to :func:`run`. Called as early as
    possible: the walk is system calls, so it overlaps the imports and the opening of the warehouse; for
    a warehouse file that does not exist yet, reading and scanning start as soon as the walk is done."""
    if not refresh or st.server_maybe_running():
        return None
    from pathlib import Path

    from ..sources.transcripts.ingest import BackgroundWalk

    settings = st.settings
    new_file = not Path(settings.db).expanduser().exists()
    # (what loading needs is imported ahead only for a new file: a warm report rarely loads anything)
    return BackgroundWalk(list(settings.transcript_paths), new_file=new_file,
                          capture_content=settings.capture_content, import_load=new_file)


def run(st: AppState, kind: str, since: Optional[str], until: Optional[str], tz: Optional[str], source: str,
        project: Optional[str], refresh: bool = True, walk: BackgroundWalk | None = None
        ) -> tuple[list[dict[str, Any]], str, dict[str, int]]:
    """The rows of report ``kind``, the time zone they are in, and the requests in no period
    (:func:`cclens.metrics.usage.undated`). On the warehouse file, first ingests
    what is new in this machine's transcripts (unless ``refresh`` is False); through a running
    ``cclens serve``, its own watcher does that. ``walk``: from :func:`start_walk`, if already started."""
    settings = st.settings
    walk = walk if walk is not None else start_walk(st, refresh)
    try:
        return _run(st, kind, since, until, tz, source, project, refresh, walk)
    finally:
        if walk is not None:
            walk.close()  # stops a read ahead the refresh did not take (an error before it)


def _run(st: AppState, kind: str, since: Optional[str], until: Optional[str], tz: Optional[str], source: str,
         project: Optional[str], refresh: bool, walk: BackgroundWalk | None
         ) -> tuple[list[dict[str, Any]], str, dict[str, int]]:
    settings = st.settings
    from ..metrics import usage
    from ..model.pricing import effective_table
    from ..timeutil import check_tz, parse_days
    from ..warehouse import DuckDBWarehouse

    first, last = parse_days(since, until)
    flt = usage.ReportFilter(prices=effective_table(settings), tz=check_tz(tz, settings.tz),
                             since=first, until=last,
                             source=source, project=project)
    with st.reader(rollups=False) as wh:  # usage reports read api_request, never the metric rollups
        if refresh and isinstance(wh, DuckDBWarehouse):
            from ..sources.transcripts import refresh as refresh_transcripts

            refresh_transcripts(wh, settings, found=walk.found() if walk else None,
                                ahead=walk.ahead() if walk else None)
        if kind in usage.PERIODS:
            rows = usage.period_report(wh, kind, flt)
        elif kind == "sessions":
            rows = usage.session_report(wh, flt)
        elif kind == "projects":
            rows = usage.project_report(wh, flt)
        else:
            rows = usage.model_report(wh, flt)
        missing = usage.undated(wh, flt)
    return rows, flt.tz, missing


def period(st: AppState, kind: str, since: Optional[str], until: Optional[str], tz: Optional[str],
           fmt: OutputFormat, breakdown: bool, source: str, project: Optional[str], refresh: bool,
           walk: BackgroundWalk | None = None) -> None:
    """``cclens report daily|weekly|monthly``: compute and print."""
    key = PERIOD_KEYS[kind]
    rows, zone, missing = run(st, kind, since, until, tz, source, project, refresh, walk)
    if fmt is OutputFormat.json:
        render(rows, fmt)
    elif fmt is OutputFormat.csv and not breakdown:
        render([{k: v for k, v in r.items() if k != "models"} for r in rows], fmt)
    elif fmt is OutputFormat.csv:
        render([{key: r[key], **m} for r in rows for m in r["models"]], fmt)
    else:
        render(table_rows(rows, key, breakdown), fmt, title=f"{kind} usage ({zone})",
               footer=totals_line(rows) if rows else None)
    note_undated(missing)


def note_undated(missing: dict[str, int]) -> None:
    """On stderr (stdout stays the report, in any format): how many requests have no timestamp and so
    are in none of the report's rows, and how to see them."""
    n = missing["requests"]
    if not n:
        return
    import sys

    sys.stderr.write(f"note: {n:,} request{'s' if n != 1 else ''} ({missing['total_tokens']:,} tokens) "
                     f"{'have' if n != 1 else 'has'} no readable timestamp and {'are' if n != 1 else 'is'} in no row "
                     "of this report: cclens query \"SELECT * FROM api_request WHERE ts IS NULL\"\n")


def table_rows(rows: list[dict[str, Any]], key: str, breakdown: bool) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        out.append({key: r[key], "models": ", ".join(m["model"] for m in r["models"]),
                    **{c: r[c] for c in TOTAL_COLUMNS}})
        if breakdown:
            for m in r["models"]:
                out.append({key: "  └ " + m["model"], "models": "", **{c: m[c] for c in TOTAL_COLUMNS}})
    return out


def totals_line(rows: list[dict[str, Any]]) -> str:
    tokens = sum(r["total_tokens"] for r in rows)
    cost = sum(r["cost_usd"] or 0 for r in rows)
    unpriced = sorted({m for r in rows for m in r.get("unpriced_models", [])})
    line = f"total: {tokens:,} tokens · ${cost:,.4f} estimated"
    if unpriced:
        line += f" · unpriced (tokens shown, cost unknown): {', '.join(unpriced)}"
    return line
