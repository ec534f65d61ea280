"""``cclens sync [SOURCE...] [--since DATE]`` and ``cclens api report|status``: the Anthropic
reporting APIs (Claude Code Analytics, usage, cost, Enterprise Analytics); ``cclens sync git|github|jira``
runs the engineering sources the same way (see :func:`engineering_rows`, shared with ``sync-eng``)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, List, Optional

import typer

from . import app
from .context import state
from .output import FORMAT_OPTION, SINCE_OPTION, TZ_OPTION, UNTIL_OPTION, OutputFormat, render

SOURCE_HELP = "claude_code_analytics, usage, cost or enterprise_analytics"
ALL_SOURCES_HELP = SOURCE_HELP.replace(" or ", ", ") + " (default: all of these), or git, github, jira"

api_app = typer.Typer(help="Data pulled from the Anthropic reporting APIs (see `cclens sync`).",
                      no_args_is_help=True)
app.add_typer(api_app, name="api")


@app.command("sync")
def sync_command(
    ctx: typer.Context,
    sources: Optional[List[str]] = typer.Argument(None, metavar="[SOURCE]...", help=f"Any of {ALL_SOURCES_HELP}."),
    since: Optional[str] = typer.Option(None, "--since", help="Re-fetch everything from this UTC day (YYYY-MM-DD); "
                                        "the first sync backfills from it."),
    fmt: OutputFormat = FORMAT_OPTION,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
) -> None:
    """Pull the Anthropic reporting APIs (and, when named, git, GitHub, Jira) into the warehouse, incrementally.

    Each source resumes where it stopped, re-fetches the days the API can still revise, and keeps
    history the API no longer serves. Keys: CCLENS_ANTHROPIC_ADMIN_KEY (Claude Code Analytics, usage,
    cost) and CCLENS_ANTHROPIC_ANALYTICS_KEY (Enterprise Analytics); a source without its key is
    skipped. The engineering sources (git, github, jira) run only when named, then lineage is rebuilt
    (`cclens sync-eng` runs every configured one). Examples:

        cclens sync

        cclens sync usage cost --since 2026-01-01

        cclens sync git
    """
    from ..sources.eng_sync import split_sources
    from ..sources.sync import describe, sync
    from ..timeutil import parse_day

    st = state(ctx)
    names, eng_names = split_sources(sources)
    first = parse_day(since, "--since")
    remote = _sync_through_server(st, names + eng_names, first) if st.server_maybe_running() else None
    if remote is not None:
        rows, results, eng_rows = remote
    else:
        rows, results, eng_rows = [], [], []
        wh = st.open_warehouse()
        try:
            if names:
                # DuckDB otherwise keeps written blocks cached up to 80% of RAM; a backfill does not need them
                # (bench/sync.py: a year of 2,000 actors peaks at 272 MB with this cap, 344 MB without).
                wh.execute(f"SET memory_limit = '{SYNC_MEMORY_LIMIT}'")
                if progress:
                    results = _with_progress(lambda cb: sync(st.settings, wh, names, since=first, progress=cb), names)
                else:
                    results = sync(st.settings, wh, names, since=first)
                wh.execute("RESET memory_limit")
                rows = describe(results)
            if eng_names:
                from ..sources.eng_sync import sync_engineering

                eng_rows = sync_engineering(st.settings, wh, eng_names, since=first, explicit=True)
        finally:
            wh.close()
    if eng_names and not names:
        _render_engineering(eng_rows, fmt)
    elif fmt is OutputFormat.json:
        render(rows + eng_rows, fmt)
    else:
        table = [{"source": r["source"], "status": r["status"], "units": r["units"], "pages": r["pages"],
                  "rows": r["rows"], "retries": r["retries"],
                  "covered_utc": _span(r["covered_from"], r["covered_until"])} for r in rows]
        render(table, fmt, title="Anthropic API sync" if fmt is OutputFormat.table else None)
        if fmt is OutputFormat.table:
            for r in results:
                for note in r.notes:
                    typer.echo(f"note: {note}", err=True)
        if eng_rows:
            _render_engineering(eng_rows, fmt)
    errors = [r.error for r in results if r.status == "error"] + [r["detail"] for r in eng_rows if r["status"] == "error"]
    for e in errors:
        typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
    if errors:
        raise typer.Exit(1)


def _render_engineering(rows: list[dict[str, Any]], fmt: OutputFormat) -> None:
    render(rows, fmt, title="Engineering sync" if fmt is OutputFormat.table else None)


def engineering_rows(st: Any, names: list[str] | None, first: Any, *, lineage: bool = True) -> list[dict[str, Any]]:
    """Run the engineering syncs ``names`` (None: every configured one) inside a running
    ``cclens serve`` if there is one, else on the warehouse file; the rows of
    :func:`cclens.sources.eng_sync.sync_engineering`."""
    from ..sources.eng_sync import ENG_SOURCES, resolve_eng_sources, sync_engineering

    chosen = resolve_eng_sources(names)
    explicit = bool(names)
    if st.server_maybe_running():
        remote = _sync_through_server(st, chosen or list(ENG_SOURCES), first, explicit=explicit, lineage=lineage)
        if remote is not None:
            return remote[2]
    wh = st.open_warehouse()
    try:
        return sync_engineering(st.settings, wh, chosen, since=first, explicit=explicit, lineage=lineage)
    finally:
        wh.close()


SYNC_MEMORY_LIMIT = "128MB"


def _sync_through_server(st, names, first, *, explicit=None, lineage=True):
    """Run the sync inside a running ``cclens serve`` (it owns the file): ``(rows, results, eng_rows)``
    or None."""
    from types import SimpleNamespace

    import httpx2 as httpx

    from ..client import find_server
    from ..errors import ConfigError, ServerError

    info = find_server(st.settings)
    if info is None:
        return None
    headers = {"Authorization": f"Bearer {info.token}"} if info.token else {}
    try:
        r = httpx.post(f"{info.url}/api/v1/sync", json={"sources": names, "since": first.isoformat() if first else None,
                                                         "explicit": explicit, "lineage": lineage},
                       headers=headers, timeout=3600)
    except httpx.HTTPError as exc:
        raise ServerError(f"cannot reach cclens serve at {info.url}: {exc}") from None
    if r.status_code == 400 and isinstance(_detail(r), str):
        raise ConfigError(f"{_detail(r)} (said cclens serve at {info.url}, which uses its own settings)")
    if r.status_code != 200:
        raise ServerError(f"cclens serve at {info.url} refused the sync ({r.status_code}: {r.text[:300]})")
    body = r.json()
    rows = body["results"]
    results = [SimpleNamespace(status=row["status"], notes=row.get("notes") or [], error=row.get("error"))
               for row in rows]
    return rows, results, body.get("engineering") or []


def _detail(response: Any) -> Any:
    try:
        return response.json().get("detail")
    except ValueError:
        return None


def _span(start: Optional[str], end: Optional[str]) -> str:
    """``2026-06-01 → 2026-06-15 12:00`` (UTC, end exclusive); midnight times are left out."""
    if not start or not end:
        return ""

    def short(ts: str) -> str:
        return ts[:10] if ts[11:16] == "00:00" else ts[:16].replace("T", " ")
    return f"{short(start)} → {short(end)}"


def _with_progress(run, names: list[str]) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rows]:>10,} rows"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def callback(source: str, done: int, total: int, rows: int) -> None:
            if source not in tasks:
                tasks[source] = bar.add_task(source, total=max(total, 1), rows=0)
            bar.update(tasks[source], completed=done if total else 1, total=max(total, 1), rows=rows)

        return run(callback)


@api_app.command("report")
def report(
    ctx: typer.Context,
    source: str = typer.Option("claude_code_analytics", "--source", "-s", help=SOURCE_HELP + "."),
    by: str = typer.Option("day", "--by", help="claude_code_analytics: day|actor|model; usage: day|model|workspace|"
                           "api_key|account|service_tier; cost: day|workspace|description|model|cost_type; "
                           "enterprise_analytics: day|user."),
    since: Optional[str] = SINCE_OPTION, until: Optional[str] = UNTIL_OPTION, tz: Optional[str] = TZ_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """What the Anthropic APIs reported, from the warehouse (run `cclens sync` first).

    Claude Code Analytics, cost and Enterprise Analytics are daily in UTC (column utc_day; --tz does
    not shift them); usage buckets follow --tz. Examples:

        cclens api report --source claude_code_analytics --by actor --since 2026-06-01

        cclens api report --source cost --by description --format csv
    """
    from ..metrics.anthropic_api import api_report, coverage
    from ..timeutil import check_tz, parse_days

    st = state(ctx)
    zone = check_tz(tz, st.settings.tz)
    first, last = parse_days(since, until)
    wh = st.open_warehouse()
    try:
        rows = api_report(wh, source, by=by, since=first, until=last,
                          tz=zone)
        cov = coverage(wh, source)
    finally:
        wh.close()
    if not cov["synced"]:
        typer.echo(f"note: {source} has never been synced; run `cclens sync {source}` (nothing is shown as zero)",
                   err=True)
    basis = zone if source == "usage" else "UTC days"
    footer = (f"{source}: pulled {_span(cov['covered_from'], cov['covered_until'])}"
              + (f" · last error: {cov['last_error']}" if cov["last_error"] else "")) if cov["synced"] else None
    render(rows, fmt, title=f"{source} by {by} ({basis})", footer=footer)


@api_app.command("status")
def status(ctx: typer.Context, fmt: OutputFormat = FORMAT_OPTION) -> None:
    """Each Anthropic source: configured or not, what range has been pulled, last success and error,
    and when `cclens serve` runs it next."""
    from ..metrics.anthropic_api import coverage
    from ..sources.sync import SCHEDULE, SOURCE_CLASSES, secret_value

    st = state(ctx)
    wh = st.open_warehouse()
    try:
        rows = []
        for name, cls in SOURCE_CLASSES.items():
            cov = coverage(wh, name)
            configured = bool(secret_value(st.settings, cls.key_setting))
            last = cov["last_success"]
            rows.append({"source": name, "key": cls.key_setting.removeprefix("anthropic_").removesuffix("_key")
                         + ("" if configured else " (not set)"),
                         "every": _every(SCHEDULE[name]), "covered_utc": _span(cov["covered_from"], cov["covered_until"]),
                         "last_success": f"{last:%Y-%m-%d %H:%M}" if last else None, "last_error": cov["last_error"]})
    finally:
        wh.close()
    render(rows, fmt, title=f"Anthropic API sources (now {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)")


def _every(delta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 1440}d" if minutes % 1440 == 0 else f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
