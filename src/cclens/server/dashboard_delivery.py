"""The dashboard's Delivery page (``/delivery``): pull requests, deployments and commits split by Claude
Code assistance, with what the sessions behind them cost. Numbers come from
:mod:`cclens.metrics.delivery` (the same functions as ``cclens report delivery``); definitions are in
docs/lineage.md. Registered on the dashboard's router and navigation by :func:`register`.
"""

from __future__ import annotations

from typing import Any

from ..metrics import delivery
from .dashboard_model import Column, Empty, Kpi, Kpis, Page, Prov, Table, fmt

SOURCES = ("git", "github", "jira", "lineage", "transcripts", "otel")
DOC = "docs/lineage.md"


def _prov(metric: str, text: str) -> Prov:
    return Prov(metric, SOURCES, text)


def delivery_page(ctx: Any) -> Page:
    fig, f = ctx.fig, ctx.f
    page = Page("delivery", "Delivery", "Pull requests, deployments and commits, split by Claude Code assistance "
                "(organisation-wide; definitions in docs/lineage.md).", "delivery")
    kw = dict(since=f.since, until=f.until, tz=f.tz)
    reader, prices = fig.reader, fig.prices
    summary = {r["segment"]: r for r in delivery.summary(reader, prices, **kw)}
    prs = delivery.pull_requests(reader, prices, **kw)
    repos = delivery.commit_attribution(reader, prices, **kw)
    if not prs and not repos:
        page.empty.append(Empty("git", "No engineering data in this period",
                                "This page needs commits (git clones) and pull requests (GitHub), linked to Claude Code "
                                "sessions.", "cclens sync-eng", DOC))
    a, n, t = summary["assisted"], summary["not_assisted"], summary["all"]
    page.add(Kpis([
        Kpi("merged", "Merged PRs (assisted)", a["merged_prs"], "int",
            _prov("merged_pull_requests", f"{t['merged_prs']} merged in all; assisted = a commit attributed to a "
                  "Claude Code session, or Claude Code's trailer")),
        Kpi("cycle_a", "PR cycle time, assisted (h)", a["cycle_time_median_h"], "num",
            _prov("pr_cycle_time", f"median first commit → merge; not assisted: {fmt(n['cycle_time_median_h'], 'num')} h"),
            good_when_up=False),
        Kpi("review_a", "Review lag, assisted (h)", a["review_lag_median_h"], "num",
            _prov("pr_review_lag", f"median opened → first review; not assisted: {fmt(n['review_lag_median_h'], 'num')} h"),
            good_when_up=False),
        Kpi("lead", "Lead time for changes (h)", t["lead_time_median_h"], "num",
            _prov("lead_time_for_changes", "median first commit → production deployment"), good_when_up=False),
        Kpi("deploys", "Production deployments", t["deployments"], "int",
            _prov("deployments", f"successful; change failure rate {fmt(t['change_failure_rate'], 'pct')}")),
        Kpi("cost_pr", "Claude Code cost per assisted PR", a["cost_per_merged_pr_usd"], "usd",
            _prov("cost_per_merged_pr", "sessions' cost shared by their attributed commits, summed per PR")),
        Kpi("share", "Commits attributed to Claude Code", t["attributed_commit_share"], "pct",
            _prov("attributed_commit_share", f"of {t['commits'] or 0} reachable non-merge commits; lines: "
                  f"{fmt(t['attributed_line_share'], 'pct')}")),
    ]))
    metrics = [k for k in summary["all"] if k != "segment"]
    page.add(Table("summary", "Assisted and not", [Column("metric", "Metric"), Column("assisted", "Assisted", "num"),
                                                   Column("not_assisted", "Not assisted", "num"),
                                                   Column("all", "All", "num")],
                   [{"metric": m, **{s: summary[s][m] for s in delivery.SEGMENTS}} for m in metrics],
                   _prov("delivery", "cclens report delivery"), "No delivery data in this period."))
    page.add(Table("prs", "Merged pull requests", [
        Column("pr_id", "Pull request"), Column("title", "Title"), Column("author_login", "Author"),
        Column("assisted_by", "Assisted by"), Column("sessions", "Sessions", "int"), Column("cost_usd", "Cost", "usd"),
        Column("cycle_time_h", "Cycle (h)", "num"), Column("review_lag_h", "Review lag (h)", "num"),
        Column("lead_time_h", "Lead time (h)", "num"), Column("issues", "Tickets"), Column("merged_at", "Merged", "ts")],
        prs, _prov("merged_pull_requests", "one row per PR merged in the range"), "No pull request merged in this period."))
    tickets = delivery.tickets(reader, prices, **kw)
    page.add(Table("tickets", "Tickets", [
        Column("issue_key", "Ticket"), Column("summary", "Summary"), Column("status", "Status"),
        Column("pull_requests", "Pull requests"), Column("sessions", "Sessions", "int"), Column("cost_usd", "Cost", "usd")],
        tickets, _prov("cost_per_ticket", "distinct commits of the ticket's PRs and of commits naming it"),
        "No ticket referenced by a merged pull request."))
    page.add(Table("repos", "Commits by repository", [
        Column("repo_id", "Repository"), Column("commits", "Commits", "int"),
        Column("attributed_commits", "Attributed", "int"), Column("exact_commits", "Exact", "int"),
        Column("attributed_commit_share", "Share", "pct"), Column("attributed_line_share", "Line share", "pct"),
        Column("claude_cost_usd", "Cost", "usd")],
        repos, _prov("attributed_commit_share", "reachable non-merge commits authored in the range"),
        "No commits in this period."))
    return page


def register() -> None:
    """Add ``/delivery`` to the dashboard (route and navigation), once."""
    from . import dashboard

    if any(k == "delivery" for k, _ in dashboard.NAV):
        return
    dashboard.NAV.append(("delivery", "Delivery"))
    dashboard.PATHS["delivery"] = "/delivery"
    dashboard._route("/delivery", delivery_page)


register()
