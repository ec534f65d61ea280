"""Engineering data on the command line:

- ``cclens sync-eng [git|github|jira]...`` pulls local clones, GitHub and Jira, then rebuilds lineage
  (the same as ``cclens sync git github jira``; through a running ``cclens serve`` when there is one;
  the engine is :mod:`cclens.sources.eng_sync`);
- ``cclens lineage rebuild|show`` recomputes or shows how sessions, commits, PRs, tickets, CI runs
  and deployments are linked;
- ``cclens report delivery`` (on the shared ``report`` group): delivery figures split by Claude
  Code assistance, per PR, per ticket, per repository.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from . import app
from .context import state
from .output import FORMAT_OPTION, SINCE_OPTION, TZ_OPTION, UNTIL_OPTION, OutputFormat, render
from .report import report_app

lineage_app = typer.Typer(help="How sessions, commits, pull requests, tickets, CI runs and deployments link.",
                          no_args_is_help=True)
app.add_typer(lineage_app, name="lineage")


@app.command("sync-eng")
def sync_eng(
    ctx: typer.Context,
    sources: Optional[List[str]] = typer.Argument(None, metavar="[SOURCE]...",
                                                  help="git, github or jira (default: every configured one)."),
    since: Optional[str] = typer.Option(None, "--since", help="GitHub/Jira: re-read everything updated since "
                                        "this day (YYYY-MM-DD)."),
    lineage: bool = typer.Option(True, "--lineage/--no-lineage", help="Rebuild lineage afterwards."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Pull engineering data (local git clones, GitHub, Jira) into the warehouse, incrementally, then
    link it to Claude Code sessions.

    Settings: git_repos; github_token, github_orgs / github_repos (github_api_url for GitHub
    Enterprise); jira_url, jira_email, jira_api_token (jira_jql to narrow). Examples:

        cclens sync-eng

        cclens sync-eng github --since 2026-01-01
    """
    from ..timeutil import parse_day
    from .sync import engineering_rows

    rows = engineering_rows(state(ctx), sources or None, parse_day(since, "--since"), lineage=lineage)
    render(rows, fmt, title="Engineering sync" if fmt is OutputFormat.table else None)
    errors = [r["detail"] for r in rows if r["status"] == "error"]
    for e in errors:
        typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
    if errors:
        raise typer.Exit(1)


@lineage_app.command("rebuild")
def lineage_rebuild(ctx: typer.Context, fmt: OutputFormat = FORMAT_OPTION) -> None:
    """Recompute every lineage link from what the warehouse holds (sync-eng does it after each run)."""
    from ..model.lineage import rebuild_lineage

    wh = state(ctx).open_warehouse()
    try:
        links = rebuild_lineage(wh)
    finally:
        wh.close()
    rows = [{"kind": k.split(":")[0], "method": k.split(":")[1], "links": v} for k, v in links.items()]
    render(rows, fmt, title="Lineage links")


@lineage_app.command("show")
def lineage_show(
    ctx: typer.Context,
    session: Optional[str] = typer.Option(None, "--session", help="A Claude Code session id."),
    commit: Optional[str] = typer.Option(None, "--commit", help="A commit SHA (full)."),
    pr: Optional[str] = typer.Option(None, "--pr", help="A pull request id (host/owner/name#number)."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """What one session led to (commits, PRs, tickets, CI runs, deployments), or every link of a
    commit or pull request, each with how it was made. Example:

        cclens lineage show --session 3649b710-3145-482c-8c8e-916950e37083
    """
    from ..errors import QueryError
    from ..model.lineage import links_of, trace_session

    if sum(x is not None for x in (session, commit, pr)) != 1:
        raise QueryError("give exactly one of --session, --commit or --pr")
    with state(ctx).reader() as wh:
        if session:
            rows = trace_session(wh, session)
        else:
            kind, node = ("commit", commit) if commit else ("pull_request", pr)
            rows = [{**r, "direction": "in"} for r in links_of(wh, kind, node, direction="to")]
            rows += [{**r, "direction": "out"} for r in links_of(wh, kind, node)]
            rows = [{k: r[k] for k in ("direction", "from_type", "from_id", "to_type", "to_id", "kind", "method",
                                       "confidence", "evidence")} for r in rows]
    render(rows, fmt, title="Lineage")


@report_app.command("delivery")
def report_delivery(
    ctx: typer.Context,
    by: str = typer.Option("summary", "--by", help="summary, prs, tickets or repos."),
    since: Optional[str] = SINCE_OPTION, until: Optional[str] = UNTIL_OPTION, tz: Optional[str] = TZ_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Delivery split by Claude Code assistance: PR throughput, cycle time, review lag, lead time,
    deploy frequency, change failure rate, Claude Code cost per merged PR and per ticket, and the share
    of commits and lines attributed to Claude Code sessions (default: the last 90 days). Run
    `cclens sync-eng` first. Examples:

        cclens report delivery

        cclens report delivery --by prs --since 2026-06-01 --format csv
    """
    from ..errors import QueryError
    from ..metrics import delivery
    from ..model.pricing import effective_table
    from ..timeutil import check_tz, parse_days

    st = state(ctx)
    zone = check_tz(tz, st.settings.tz)
    first, last = parse_days(since, until)
    kw = dict(since=first, until=last, tz=zone)
    funcs = {"summary": delivery.summary, "prs": delivery.pull_requests, "tickets": delivery.tickets,
             "repos": delivery.commit_attribution}
    if by not in funcs:
        raise QueryError(f"unknown --by {by!r}; use summary, prs, tickets or repos")
    prices = effective_table(st.settings)
    with st.reader() as wh:
        rows = funcs[by](wh, prices, **kw)
        cost = delivery.unattributed_cost(wh, prices, **kw) if by == "summary" else None
    footer = None
    if cost is not None and cost["session_cost_usd"] is not None:
        footer = (f"Claude Code cost in range: ${cost['session_cost_usd']:,.4f} over {cost['sessions']} sessions; "
                  f"${(cost['linked_cost_usd'] or 0):,.4f} from {cost['linked_sessions']} sessions linked to commits")
    if fmt is OutputFormat.table and by == "summary" and rows:
        rows = [{"metric": k, **{r["segment"]: r[k] for r in rows}} for k in rows[0] if k != "segment"]
    render(rows, fmt, title=f"Delivery ({by}, {zone})", footer=footer)
