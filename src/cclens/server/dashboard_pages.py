"""The dashboard's pages: each builds a :class:`~cclens.server.dashboard_model.Page` from :class:`Figures`.

Pages only arrange figures (KPIs, charts, tables) and say where each comes from; the numbers come from
the metrics layer through :class:`~cclens.server.dashboard_figures.Figures`. Sessions, sources and
reconciliation are in :mod:`cclens.server.dashboard_detail`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable
from urllib.parse import quote

from .dashboard_figures import Figures
from .dashboard_model import Chart, Column, Empty, Filters, Kpi, Kpis, Page, Prov, Table

SETUP: dict[str, tuple[str, str, str]] = {
    # source -> (what it gives, the command, the doc)
    "transcripts": ("session transcripts (tokens, cost, sessions, tools) from each laptop",
                    "cclens ingest transcripts   (other laptops: cclens ship --server {url})", "docs/sources/transcripts.md"),
    "otel": ("OpenTelemetry from Claude Code (requests, cost, lines, commits, PRs, edit decisions)",
             "cclens setup claude-code --server {url} --write", "docs/server.md"),
    "hooks": ("hook events (tool lifecycles, subagents, prompts)", "cclens setup claude-code --server {url} --write",
              "docs/sources/hooks.md"),
    "claude_code_analytics": ("the Claude Code Analytics API (per person and day: sessions, lines, commits, PRs, cost)",
                              "export CCLENS_ANTHROPIC_ADMIN_KEY=sk-ant-admin…  then  cclens sync",
                              "docs/configuration.md"),
    "usage": ("the Usage API (organisation tokens per hour)",
              "export CCLENS_ANTHROPIC_ADMIN_KEY=sk-ant-admin…  then  cclens sync", "docs/configuration.md"),
    "cost": ("the Cost API (what Anthropic bills per day)",
             "export CCLENS_ANTHROPIC_ADMIN_KEY=sk-ant-admin…  then  cclens sync", "docs/configuration.md"),
    "enterprise_analytics": ("the Enterprise Analytics API (engagement per user and day)",
                             "export CCLENS_ANTHROPIC_ANALYTICS_KEY=…  then  cclens sync", "docs/configuration.md"),
}


@dataclass
class Ctx:
    """What a page builder gets: the figures, the filters, the server URL, and link helpers."""

    fig: Figures
    f: Filters
    url: str
    href: Callable[..., str]      # href(path, **extra params) keeping the filters

    def seen(self) -> dict[str, bool]:
        return {r["source"]: r["seen"] for r in self.fig.source_status()}

    def empty_for(self, page: Page, *sources: str, what: str) -> bool:
        """Add an empty state naming the sources to set up when none of ``sources`` has any data."""
        seen = self.seen()
        if any(seen.get(s) for s in sources):
            return False
        for s in sources:
            gives, command, doc = SETUP[s]
            page.empty.append(Empty(s, f"No {what} yet: set up {gives.split(' (')[0]}",
                                    f"This page shows {what}; it needs {gives}.", command.format(url=self.url), doc))
        return True


# -- helpers ---------------------------------------------------------------------------------------
def _days(f: Filters) -> list[str]:
    return [(f.since + timedelta(days=i)).isoformat() for i in range(f.days)]


def _total(rows: list[dict[str, Any]], key: str) -> float | int | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return sum(vals) if vals else None


def _by_day(rows: list[dict[str, Any]], day_key: str, value: str, days: list[str]) -> list[Any]:
    m = {str(r[day_key])[:10]: r.get(value) for r in rows}
    return [m.get(d, 0) or 0 for d in days]


def _round(v: Any, n: int = 4) -> Any:
    return round(v, n) if isinstance(v, float) else v


def person_href(ctx: Ctx, actor: str | None) -> str | None:
    return ctx.href(f"/people/{quote(actor, safe='@')}") if actor else None


# -- Overview --------------------------------------------------------------------------------------
def overview(ctx: Ctx) -> Page:
    fig, f = ctx.fig, ctx.f
    page = Page("overview", "Overview", f"Claude Code across the organisation, {f.since} to {f.until} ({f.tz}), "
                "against the {0} days before.".format(f.days), "overview")
    ctx.empty_for(page, "transcripts", "otel", "claude_code_analytics", what="usage")
    prev = f.previous()
    daily, p_daily = fig.daily()
    daily_prev, _ = fig.daily(prev)
    sessions, p_sessions = fig.sessions()
    sessions_prev, _ = fig.sessions(prev)
    actors, p_actors = fig.api("claude_code_analytics", "actor")
    actors_prev, _ = fig.api("claude_code_analytics", "actor", prev)
    billed, p_billed = fig.api("cost", "day")
    billed_prev, _ = fig.api("cost", "day", prev)
    people = [a for a in actors if a.get("actor_type") == "user"]
    people_prev = [a for a in actors_prev if a.get("actor_type") == "user"]
    p_people = Prov("anthropic_api.claude_code_analytics by actor", ("claude_code_analytics",),
                    "people (user actors) with Claude Code activity in the period, per the Claude Code Analytics API")
    kpis = [
        Kpi("active_people", "Active people", len(people) if actors else None, "int", p_people,
            len(people_prev) if actors_prev else None),
        Kpi("sessions", "Sessions", len(sessions) if sessions else None, "int", p_sessions,
            len(sessions_prev) if sessions_prev else None),
        Kpi("lines_added", "Lines added", _total(actors, "lines_added"), "int", p_actors, _total(actors_prev, "lines_added")),
        Kpi("commits", "Commits", _total(actors, "commits"), "int", p_actors, _total(actors_prev, "commits")),
        Kpi("pull_requests", "Pull requests", _total(actors, "pull_requests"), "int", p_actors,
            _total(actors_prev, "pull_requests")),
        Kpi("tokens", "Tokens", _total(daily, "total_tokens"), "tokens", p_daily, _total(daily_prev, "total_tokens")),
        Kpi("estimated_cost", "Estimated cost", _round(_total(daily, "cost_usd"), 2), "usd", p_daily,
            _round(_total(daily_prev, "cost_usd"), 2), good_when_up=False),
        Kpi("billed_cost", "Billed cost", _round(_total(billed, "cost_usd"), 2), "usd", p_billed,
            _round(_total(billed_prev, "cost_usd"), 2), good_when_up=False),
    ]
    page.add(Kpis(kpis))
    days = _days(f)
    models = sorted({m["model"] for r in daily for m in r["models"]})
    per_model = {m: [0.0] * len(days) for m in models}
    index = {d: i for i, d in enumerate(days)}
    for r in daily:
        for m in r["models"]:
            if r["date"] in index:
                per_model[m["model"]][index[r["date"]]] = round(m["cost_usd"] or 0, 4)
    billed_line = {"name": "Billed (Cost API, UTC days)", "type": "line", "data": _by_day(billed, "utc_day", "cost_usd", days)}
    page.row(
        Chart("cost_by_day", "Estimated cost per day by model, and billed cost",
              {"kind": "bar", "stack": True, "unit": "usd", "x": days,
               "series": [{"name": m, "data": v} for m, v in per_model.items()] + ([billed_line] if billed else [])},
              p_daily, None if daily or billed else "No requests in this period."),
        Chart("tokens_by_day", "Tokens per day by type",
              {"kind": "bar", "stack": True, "unit": "tokens", "x": days,
               "series": [{"name": label, "data": _by_day(daily, "date", key, days)} for key, label in (
                   ("input_tokens", "input"), ("output_tokens", "output"), ("cache_creation_tokens", "cache write"),
                   ("cache_read_tokens", "cache read"))]},
              p_daily, None if daily else "No requests in this period."),
    )
    rows, p_models = fig.models()
    page.add(_model_table(rows, p_models))
    return page


def _model_table(rows: list[dict[str, Any]], prov: Prov, table_id: str = "models") -> Table:
    return Table(table_id, "By model", [
        Column("model", "Model"), Column("requests", "Requests", "int"), Column("input_tokens", "Input", "int"),
        Column("output_tokens", "Output", "int"), Column("cache_creation_tokens", "Cache write", "int"),
        Column("cache_read_tokens", "Cache read", "int"), Column("total_tokens", "Total tokens", "int"),
        Column("cost_usd", "Estimated cost", "usd")],
        [{**r, "cost_usd": _round(r["cost_usd"])} for r in rows], prov, "No requests in this period.")


# -- Adoption --------------------------------------------------------------------------------------
def adoption(ctx: Ctx) -> Page:
    fig, f = ctx.fig, ctx.f
    page = Page("adoption", "Adoption", "Who uses Claude Code, when, and how that changes.", "adoption")
    ctx.empty_for(page, "claude_code_analytics", "otel", "transcripts", what="adoption data")
    days = _days(f)
    per_day, p_day = fig.api("claude_code_analytics", "day")
    page.row(
        Chart("active_per_day", "Active actors per day (UTC days)",
              {"kind": "line", "area": True, "unit": "int", "x": days,
               "series": [{"name": "active actors", "data": _by_day(per_day, "utc_day", "actors", days)},
                          {"name": "sessions", "data": _by_day(per_day, "utc_day", "sessions", days), "dashed": True}]},
              p_day, None if per_day else "No Claude Code Analytics data in this period."),
        _heatmap(ctx),
    )
    weekly, p_weekly = fig.weekly()
    page.add(Table("weekly", "Per week", [
        Column("week", "Week of"), Column("requests", "Requests", "int"), Column("total_tokens", "Tokens", "int"),
        Column("cost_usd", "Estimated cost", "usd")],
        [{k: _round(r.get(k)) for k in ("week", "requests", "total_tokens", "cost_usd")} for r in weekly], p_weekly))
    actors, p_actors = fig.api("claude_code_analytics", "actor")
    page.add(Table("actors", "People and API keys in the period", [
        Column("actor", "Actor", href=lambda r: person_href(ctx, r["actor"])), Column("actor_type", "Type"),
        Column("sessions", "Sessions", "int"), Column("lines_added", "Lines added", "int"),
        Column("accept_rate", "Edit accept rate", "pct")],
        actors, p_actors, "No Claude Code Analytics data in this period."))
    return page


def _heatmap(ctx: Ctx) -> Chart:
    """Requests by weekday and hour in the page's time zone (from the sessions' requests per day)."""
    sessions, prov = ctx.fig.sessions()
    weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    grid: dict[tuple[int, int], int] = {}
    from datetime import datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(ctx.f.tz)
    for s in sessions:
        if not s.get("first_ts"):
            continue
        t = datetime.fromisoformat(str(s["first_ts"])).astimezone(zone)
        grid[(t.hour, t.weekday())] = grid.get((t.hour, t.weekday()), 0) + 1
    data = [[h, d, grid.get((h, d), 0)] for d in range(7) for h in range(24)]
    return Chart("heatmap", f"Sessions started by weekday and hour ({ctx.f.tz})",
                 {"kind": "heatmap", "unit": "int", "x": [f"{h:02d}" for h in range(24)], "y": weekdays, "data": data},
                 Prov("usage.sessions", prov.sources, f"sessions by the local weekday and hour of their first activity in {ctx.f.tz}"),
                 None if sessions else "No sessions in this period.")


# -- Cost ------------------------------------------------------------------------------------------
def cost(ctx: Ctx) -> Page:
    fig, f = ctx.fig, ctx.f
    page = Page("cost", "Cost", "Estimated cost (tokens × price table) next to what Anthropic bills.", "cost")
    ctx.empty_for(page, "transcripts", "otel", "cost", "claude_code_analytics", what="cost data")
    daily, p_daily = fig.daily()
    billed, p_billed = fig.api("cost", "day")
    cc_day, p_cc = fig.api("claude_code_analytics", "day")
    actors, p_actors = fig.api("claude_code_analytics", "actor")
    est = _total(daily, "cost_usd")
    people = [a for a in actors if a.get("actor_type") == "user"]
    prs = _total(actors, "pull_requests")
    cc_cost = _total(cc_day, "estimated_cost_usd")
    page.add(Kpis([
        Kpi("estimated_cost", "Estimated (transcripts + OTel)", _round(est, 2), "usd", p_daily),
        Kpi("cc_estimated_cost", "Estimated (Analytics API)", _round(cc_cost, 2), "usd", p_cc),
        Kpi("billed_cost", "Billed (Cost API)", _round(_total(billed, "cost_usd"), 2), "usd", p_billed),
        Kpi("cost_per_person", "Per active person (Analytics API)", _round(cc_cost / len(people), 2)
            if cc_cost is not None and people else None, "usd", p_actors),
        Kpi("cost_per_pr", "Per pull request (Analytics API)", _round(cc_cost / prs, 2) if cc_cost is not None and prs
            else None, "usd", p_actors),
    ]))
    days = _days(f)
    models, p_models = fig.models()
    page.row(
        Chart("estimated_vs_billed", "Estimated vs billed per day",
              {"kind": "line", "unit": "usd", "x": days, "series": [
                  {"name": "estimated, transcripts + OTel (" + f.tz + ")", "data": [round(v, 4) for v in _by_day(daily, "date", "cost_usd", days)]},
                  {"name": "estimated, Analytics API (UTC)", "data": _by_day(cc_day, "utc_day", "estimated_cost_usd", days)},
                  {"name": "billed, Cost API (UTC)", "data": _by_day(billed, "utc_day", "cost_usd", days), "dashed": True}]},
              p_billed, None if daily or billed or cc_day else "No cost data in this period."),
        Chart("cost_by_model", "Estimated cost by model",
              {"kind": "pie", "unit": "usd", "series": [{"name": "cost", "data": [[m["model"], round(m["cost_usd"] or 0, 2)]
                                                                                   for m in models]}]},
              p_models, None if models else "No requests in this period."),
    )
    page.add(_model_table(models, p_models, "cost_models"))
    page.add(Table("cost_people", "By person and API key (Analytics API)", [
        Column("actor", "Actor", href=lambda r: person_href(ctx, r["actor"])), Column("actor_type", "Type"),
        Column("estimated_cost_usd", "Estimated cost", "usd"), Column("sessions", "Sessions", "int"),
        Column("pull_requests", "PRs", "int")], actors, p_actors, "No Claude Code Analytics data in this period."))
    by_model, p_bm = fig.api("cost", "model")
    page.add(Table("billed_models", "Billed by model (Cost API)", [
        Column("model", "Model"), Column("cost_usd", "Billed", "usd")],
        [{"model": r["model"] or "(not per model: code execution, web search …)", "cost_usd": r["cost_usd"]} for r in by_model],
        p_bm, "No Cost API data in this period."))
    return page


# -- Output ----------------------------------------------------------------------------------------
TOOL_LABELS = {"edit_tool": "Edit", "multi_edit_tool": "MultiEdit", "write_tool": "Write",
               "notebook_edit_tool": "NotebookEdit"}


def output(ctx: Ctx) -> Page:
    fig, f = ctx.fig, ctx.f
    page = Page("output", "Output", "Lines, commits and pull requests made with Claude Code; edit decisions.", "output")
    ctx.empty_for(page, "claude_code_analytics", "otel", what="output data")
    per_day, p_day = fig.api("claude_code_analytics", "day")
    page.add(Kpis([
        Kpi("lines_added", "Lines added", _total(per_day, "lines_added"), "int", p_day),
        Kpi("lines_removed", "Lines removed", _total(per_day, "lines_removed"), "int", p_day),
        Kpi("commits", "Commits", _total(per_day, "commits"), "int", p_day),
        Kpi("pull_requests", "Pull requests", _total(per_day, "pull_requests"), "int", p_day),
        Kpi("accept_rate", "Edit accept rate",
            _round(_total(per_day, "tool_accepted") / ((_total(per_day, "tool_accepted") or 0) + (_total(per_day, "tool_rejected") or 0)))
            if _total(per_day, "tool_accepted") else None, "pct", p_day),
    ]))
    days = _days(f)
    page.row(
        Chart("lines_per_day", "Lines per day (UTC days)", {"kind": "bar", "unit": "int", "x": days, "series": [
            {"name": "added", "data": _by_day(per_day, "utc_day", "lines_added", days)},
            {"name": "removed", "data": _by_day(per_day, "utc_day", "lines_removed", days)}]},
            p_day, None if per_day else "No Claude Code Analytics data in this period."),
        Chart("commits_per_day", "Commits and PRs per day (UTC days)", {"kind": "bar", "unit": "int", "x": days, "series": [
            {"name": "commits", "data": _by_day(per_day, "utc_day", "commits", days)},
            {"name": "pull requests", "data": _by_day(per_day, "utc_day", "pull_requests", days)}]},
            p_day, None if per_day else "No Claude Code Analytics data in this period."),
    )
    page.add(Table("output_days", "Per day", [
        Column("utc_day", "UTC day"), Column("actors", "Actors", "int"), Column("sessions", "Sessions", "int"),
        Column("lines_added", "Lines added", "int"), Column("lines_removed", "Lines removed", "int"),
        Column("commits", "Commits", "int"), Column("pull_requests", "PRs", "int"),
        Column("tool_accepted", "Edits accepted", "int"), Column("tool_rejected", "Edits rejected", "int"),
        Column("accept_rate", "Accept rate", "pct")], per_day, p_day, "No Claude Code Analytics data in this period."))
    return page


# -- People and teams ------------------------------------------------------------------------------
def people(ctx: Ctx) -> Page:
    fig = ctx.fig
    page = Page("people", "People", "Everyone with Claude Code activity in the period; click a row for the person.",
                "people")
    ctx.empty_for(page, "claude_code_analytics", "otel", "transcripts", what="people")
    actors, p_actors = fig.api("claude_code_analytics", "actor")
    page.add(Table("people", "People and API keys", [
        Column("actor", "Person / API key", href=lambda r: person_href(ctx, r["actor"])), Column("actor_type", "Type"),
        Column("sessions", "Sessions", "int"), Column("lines_added", "Lines added", "int"),
        Column("commits", "Commits", "int"), Column("pull_requests", "PRs", "int"),
        Column("accept_rate", "Edit accept rate", "pct"), Column("estimated_cost_usd", "Estimated cost", "usd")],
        actors, p_actors, "No Claude Code Analytics data in this period."))
    return page


def person(ctx: Ctx, key: str) -> Page:
    fig = ctx.fig
    page = Page("person", key, "One person (or API key) in the period.", "people")
    actors, p_actors = fig.api("claude_code_analytics", "actor")
    mine = [a for a in actors if a["actor"] == key]
    if not mine:
        page.empty.append(Empty("claude_code_analytics", f"No activity for {key} in this period",
                                "Try a longer date range, or check the identity on the People page."))
    a = mine[0] if mine else {}
    page.add(Kpis([Kpi(k, label, a.get(k), unit, p_actors) for k, label, unit in (
        ("sessions", "Sessions", "int"), ("lines_added", "Lines added", "int"), ("commits", "Commits", "int"),
        ("pull_requests", "Pull requests", "int"), ("accept_rate", "Edit accept rate", "pct"),
        ("estimated_cost_usd", "Estimated cost", "usd"))]))
    return page


def teams(ctx: Ctx) -> Page:
    page = Page("teams", "Teams", "Teams come from the people file (cclens people import).", "teams")
    page.empty.append(Empty("people", "No teams yet", "Teams and memberships come from a people file.",
                            "cclens people import people.csv", "docs/metrics.md"))
    return page


def team(ctx: Ctx, key: str) -> Page:
    page = teams(ctx)
    page.title = key
    return page
