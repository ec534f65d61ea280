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
    """``v`` rounded to ``n`` decimals after dropping float noise (9 decimals), so a sum added in another
    order (the layer, the rollups, a derived figure) never rounds to another cent at a half-cent tie."""
    return round(round(v, 9), n) if isinstance(v, float) else v






# -- catalog helpers -------------------------------------------------------------------------------
def _series(rows: list[dict[str, Any]], days: list[str], key: str = "day", value: str = "value") -> list[Any]:
    m = {str(r[key])[:10]: r.get(value) for r in rows}
    return [_round(m.get(d)) for d in days]


def _split(rows: list[dict[str, Any]], by: str, days: list[str]) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(str(r[by]), []).append(r)
    return [{"name": g, "data": _series(rs, days)} for g, rs in sorted(groups.items())]


def _join(key: str, *metrics: tuple[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of several metrics grouped by the same key, side by side (one column per metric)."""
    out: dict[Any, dict[str, Any]] = {}
    for name, rows in metrics:
        for r in rows:
            row = out.setdefault(r[key], {key: r[key]})
            row[name] = _round(r.get("value"))
            for extra in ("person_name", "team_name"):
                if r.get(extra):
                    row[extra] = r[extra]
    return list(out.values())


def _kpi(ctx: Ctx, metric: str, label: str, unit: str, good_when_up: bool = True) -> Kpi:
    value, prov = ctx.fig.value(metric)
    prev, _ = ctx.fig.value(metric, ctx.f.previous())
    return Kpi(metric, label, _round(value, 2) if unit == "usd" else _round(value), unit, prov, _round(prev),
               good_when_up)


def _person_label(r: dict[str, Any]) -> str:
    name = r.get("person_name")
    key = str(r.get("person"))
    return f"{name} ({key.split(':', 1)[-1]})" if name and name != key else key


# -- Overview --------------------------------------------------------------------------------------
def overview(ctx: Ctx) -> Page:
    fig, f = ctx.fig, ctx.f
    page = Page("overview", "Overview", f"Claude Code across the organisation, {f.since} to {f.until} ({f.tz}), "
                f"against the {f.days} days before.", "overview")
    ctx.empty_for(page, "transcripts", "otel", "claude_code_analytics", what="usage")
    # the token total from the per-model rows the table shows (cost is summed by the catalog: see dashboard_derive)
    fig.via({("tokens", ()): ("model",)})
    page.add(Kpis([
        _kpi(ctx, "active_people", "Active people", "int"), _kpi(ctx, "sessions", "Sessions", "int"),
        _kpi(ctx, "lines_added", "Lines added", "int"), _kpi(ctx, "commits", "Commits", "int"),
        _kpi(ctx, "pull_requests", "Pull requests", "int"), _kpi(ctx, "tokens", "Tokens", "tokens"),
        _kpi(ctx, "estimated_cost", "Estimated cost", "usd", False), _kpi(ctx, "billed_cost", "Billed cost", "usd", False),
    ]))
    days = _days(f)
    cost_rows, p_cost = fig.metric("estimated_cost", ("day", "model"))
    billed, p_billed = fig.metric("billed_cost", ("day",))
    tok, p_tok = fig.metric("tokens", ("day", "token_type"))
    series = _split(cost_rows, "model", days)
    if billed:
        series.append({"name": "billed (Cost API, UTC days)", "type": "line", "data": _series(billed, days)})
    page.row(
        Chart("cost_by_day", "Estimated cost per day by model, and billed cost",
              {"kind": "bar", "stack": True, "unit": "usd", "x": days, "series": series},
              p_cost, None if cost_rows or billed else "No cost data in this period."),
        Chart("tokens_by_day", "Tokens per day by type", {"kind": "bar", "stack": True, "unit": "tokens", "x": days,
                                                           "series": _split(tok, "token_type", days)},
              p_tok, None if tok else "No token data in this period."),
    )
    page.add(_model_table(ctx))
    return page


def _model_table(ctx: Ctx, table_id: str = "models") -> Table:
    tok, p_tok = ctx.fig.metric("tokens", ("model",))
    cost, _ = ctx.fig.metric("estimated_cost", ("model",))
    mix, _ = ctx.fig.metric("model_mix", ("model",))
    rows = sorted(_join("model", ("tokens", tok), ("estimated_cost", cost), ("model_mix", mix)),
                  key=lambda r: -(r.get("estimated_cost") or 0))
    return Table(table_id, "By model", [Column("model", "Model"), Column("tokens", "Tokens", "int"),
                                        Column("model_mix", "Share of tokens", "pct"),
                                        Column("estimated_cost", "Estimated cost", "usd")],
                 rows, p_tok, "No requests in this period.")


# -- Adoption --------------------------------------------------------------------------------------
def adoption(ctx: Ctx) -> Page:
    fig, f = ctx.fig, ctx.f
    page = Page("adoption", "Adoption", "Who uses Claude Code, when, and how that changes.", "adoption")
    ctx.empty_for(page, "claude_code_analytics", "otel", "transcripts", what="adoption data")
    # active people in total, per day, per week and per person-week: all from the person-day rows
    fig.via({("active_people", g): ("person", "day") for g in ((), ("day",), ("week",), ("person", "week"))})
    page.add(Kpis([_kpi(ctx, "active_people", "Active people", "int"),
                   _kpi(ctx, "active_share", "Share of known people active", "pct"),
                   _kpi(ctx, "sessions_per_active_person", "Sessions per active person", "num"),
                   _kpi(ctx, "active_time", "Active time (hours)", "num")]))
    days = _days(f)
    per_day, p_day = fig.metric("active_people", ("day",))
    page.row(
        Chart("active_per_day", "Active people per day", {"kind": "line", "area": True, "unit": "int", "x": days,
                                                          "series": [{"name": "active people", "data": _series(per_day, days)}]},
              p_day, None if per_day else "No activity in this period."),
        _heatmap(ctx),
    )
    weekly, p_week = fig.metric("active_people", ("week",))
    by_pw, p_pw = fig.metric("active_people", ("person", "week"))
    first: dict[str, str] = {}
    for r in sorted((r for r in by_pw if r.get("value")), key=lambda r: str(r["week"])):
        first.setdefault(r["person"], str(r["week"]))
    rows = []
    for w in weekly:
        wk = str(w["week"])
        active = [r["person"] for r in by_pw if str(r["week"]) == wk and r.get("value")]
        new = sum(1 for p in active if first.get(p) == wk)
        rows.append({"week": wk, "active_people": w["value"], "new": new, "returning": len(active) - new})
    page.row(
        Chart("new_vs_returning", "New vs returning people per week", {"kind": "bar", "stack": True, "unit": "int",
              "x": [r["week"] for r in rows], "series": [{"name": "new (first active week in range)",
                                                          "data": [r["new"] for r in rows]},
                                                         {"name": "returning", "data": [r["returning"] for r in rows]}]},
              p_pw, None if rows else "No activity in this period."),
        Table("weekly", "Per week", [Column("week", "Week of"), Column("active_people", "Active people", "int"),
                                     Column("new", "New", "int"), Column("returning", "Returning", "int")],
              rows, p_week, "No activity in this period."),
    )
    by_team = _join("team", ("active_people", fig.metric("active_people", ("team",))[0]),
                    ("known_people", fig.metric("known_people", ("team",))[0]),
                    ("active_share", fig.metric("active_share", ("team",))[0]),
                    ("sessions", fig.metric("sessions", ("team",))[0]))
    page.add(Table("adoption_teams", "By team", [
        Column("team_name", "Team", href=lambda r: ctx.href(f"/teams/{quote(str(r['team']))}")),
        Column("active_people", "Active people", "int"), Column("known_people", "Known people", "int"),
        Column("active_share", "Share active", "pct"), Column("sessions", "Sessions", "int")],
        [{**r, "team_name": r.get("team_name") or r["team"]} for r in by_team],
        fig.metric("active_share", ("team",))[1], "No teams: import a people file (cclens people import)."))
    return page


def _heatmap(ctx: Ctx) -> Chart:
    """Sessions started by weekday and hour in the page's time zone (from the sessions report)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    sessions, prov = ctx.fig.sessions()
    zone = ZoneInfo(ctx.f.tz)
    grid: dict[tuple[int, int], int] = {}
    for s in sessions:
        if s.get("first_ts"):
            t = datetime.fromisoformat(str(s["first_ts"])).astimezone(zone)
            grid[(t.hour, t.weekday())] = grid.get((t.hour, t.weekday()), 0) + 1
    data = [[h, d, grid.get((h, d), 0)] for d in range(7) for h in range(24)]
    return Chart("heatmap", f"Sessions started by weekday and hour ({ctx.f.tz})",
                 {"kind": "heatmap", "unit": "int", "x": [f"{h:02d}" for h in range(24)],
                  "y": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], "data": data},
                 Prov("usage.sessions", prov.sources, f"sessions by the weekday and hour of their first activity in {ctx.f.tz}"),
                 None if sessions else "No sessions in this period.")


# -- Cost ------------------------------------------------------------------------------------------
def cost(ctx: Ctx) -> Page:
    fig, f = ctx.fig, ctx.f
    page = Page("cost", "Cost", "Estimated cost (tokens × price table, or Anthropic's estimate) next to what "
                "Anthropic bills.", "cost")
    ctx.empty_for(page, "transcripts", "otel", "cost", "claude_code_analytics", what="cost data")
    page.add(Kpis([_kpi(ctx, "estimated_cost", "Estimated cost", "usd", False),
                   _kpi(ctx, "billed_cost", "Billed cost", "usd", False),
                   _kpi(ctx, "cost_per_active_person", "Per active person", "usd", False),
                   _kpi(ctx, "cost_per_session", "Per session", "usd", False),
                   _kpi(ctx, "cost_per_pull_request", "Per pull request", "usd", False)]))
    days = _days(f)
    est, p_est = fig.metric("estimated_cost", ("day",))
    billed, _ = fig.metric("billed_cost", ("day",))
    by_model, p_model = fig.metric("estimated_cost", ("model",))
    page.row(
        Chart("estimated_vs_billed", "Estimated vs billed per day", {"kind": "line", "unit": "usd", "x": days, "series": [
            {"name": "estimated", "data": _series(est, days)},
            {"name": "billed (Cost API, UTC days)", "data": _series(billed, days), "dashed": True}]},
            p_est, None if est or billed else "No cost data in this period."),
        Chart("cost_by_model", "Estimated cost by model", {"kind": "pie", "unit": "usd", "series": [
            {"name": "cost", "data": [[r["model"], _round(r["value"], 2)] for r in by_model]}]},
            p_model, None if by_model else "No cost data in this period."),
    )
    src, p_src = fig.metric("estimated_cost", ("source",))
    page.row(
        Table("cost_sources", "Estimated cost by source (each source's own figure)", [
            Column("source", "Source"), Column("value", "Estimated cost", "usd")],
            [{"source": r["source"], "value": _round(r["value"])} for r in src], p_src),
        Table("cost_teams", "By team", [
            Column("team_name", "Team", href=lambda r: ctx.href(f"/teams/{quote(str(r['team']))}")),
            Column("estimated_cost", "Estimated cost", "usd"), Column("cost_per_active_person", "Per active person", "usd"),
            Column("cost_per_pull_request", "Per PR", "usd")],
            [{**r, "team_name": r.get("team_name") or r["team"]} for r in _join(
                "team", ("estimated_cost", fig.metric("estimated_cost", ("team",))[0]),
                ("cost_per_active_person", fig.metric("cost_per_active_person", ("team",))[0]),
                ("cost_per_pull_request", fig.metric("cost_per_pull_request", ("team",))[0]))],
            fig.metric("estimated_cost", ("team",))[1]),
    )
    page.add(_model_table(ctx, "cost_models"))
    people_rows, p_people = fig.metric("estimated_cost", ("person",))
    page.add(Table("cost_people", "By person and API key", [
        Column("label", "Person / API key", href=lambda r: ctx.href(f"/people/{quote(str(r['person']), safe='@:')}")),
        Column("value", "Estimated cost", "usd")],
        sorted([{"person": r["person"], "label": _person_label(r), "value": _round(r["value"])} for r in people_rows],
               key=lambda r: -(r["value"] or 0)), p_people))
    return page


# -- Output ----------------------------------------------------------------------------------------
def output(ctx: Ctx) -> Page:
    fig, f = ctx.fig, ctx.f
    page = Page("output", "Output", "Lines, commits and pull requests made with Claude Code; edit decisions.", "output")
    ctx.empty_for(page, "claude_code_analytics", "otel", what="output data")
    fig.via({**{(m, ()): ("day",) for m in ("lines_added", "lines_removed", "commits", "pull_requests")},
             ("edit_accept_rate", ()): ("tool",)})
    page.add(Kpis([_kpi(ctx, "lines_added", "Lines added", "int"), _kpi(ctx, "lines_removed", "Lines removed", "int"),
                   _kpi(ctx, "commits", "Commits", "int"), _kpi(ctx, "pull_requests", "Pull requests", "int"),
                   _kpi(ctx, "edit_accept_rate", "Edit accept rate", "pct")]))
    days = _days(f)
    added, p_added = fig.metric("lines_added", ("day",))
    removed, _ = fig.metric("lines_removed", ("day",))
    commits, p_commits = fig.metric("commits", ("day",))
    prs, _ = fig.metric("pull_requests", ("day",))
    page.row(
        Chart("lines_per_day", "Lines per day", {"kind": "bar", "unit": "int", "x": days, "series": [
            {"name": "added", "data": _series(added, days)}, {"name": "removed", "data": _series(removed, days)}]},
            p_added, None if added else "No output data in this period."),
        Chart("commits_per_day", "Commits and pull requests per day", {"kind": "bar", "unit": "int", "x": days, "series": [
            {"name": "commits", "data": _series(commits, days)}, {"name": "pull requests", "data": _series(prs, days)}]},
            p_commits, None if commits else "No output data in this period."),
    )
    tools, p_tools = fig.metric("edit_accept_rate", ("tool",))
    page.add(Table("accept_rate", "Edit accept rate per tool", [
        Column("tool", "Tool"), Column("accepted", "Accepted", "int"), Column("rejected", "Rejected", "int"),
        Column("value", "Accept rate", "pct")],
        [{"tool": r["tool"], "accepted": r.get("accepted"), "rejected": r.get("rejected"), "value": _round(r["value"])}
         for r in tools], p_tools))
    return page


# -- People and teams ------------------------------------------------------------------------------
PEOPLE_METRICS = (("sessions", "Sessions", "int"), ("tokens", "Tokens", "int"), ("estimated_cost", "Estimated cost", "usd"),
                  ("lines_added", "Lines added", "int"), ("commits", "Commits", "int"),
                  ("pull_requests", "PRs", "int"), ("active_time", "Active hours", "num"))


def _people_table(ctx: Ctx, table_id: str, title: str) -> Table:
    fig = ctx.fig
    rows = _join("person", *((m, fig.metric(m, ("person",))[0]) for m, _, _ in PEOPLE_METRICS))
    rows = [{**r, "label": _person_label(r)} for r in rows]
    rows.sort(key=lambda r: -(r.get("estimated_cost") or 0))
    return Table(table_id, title, [
        Column("label", "Person / identity", href=lambda r: ctx.href(f"/people/{quote(str(r['person']), safe='@:')}")),
        *(Column(m, label, unit) for m, label, unit in PEOPLE_METRICS)],
        rows, fig.metric("sessions", ("person",))[1], "No activity in this period.")


def people(ctx: Ctx) -> Page:
    page = Page("people", "People", "Everyone with Claude Code activity in the period (people, unlinked identities "
                "and API keys); click a row for the person.", "people")
    ctx.empty_for(page, "claude_code_analytics", "otel", "transcripts", what="people")
    page.add(_people_table(ctx, "people", "People"))
    return page


def person(ctx: Ctx, key: str) -> Page:
    fig, f = ctx.fig, ctx.f
    page = Page("person", key, "One person (or identity) in the period.", "people")
    fig.via({("tokens", ()): ("day", "model")})
    only = {"person": [key]}
    kpis = []
    for m, label, unit in PEOPLE_METRICS:
        rows, prov = fig.metric(m, (), filters=only)
        kpis.append(Kpi(m, label, _round(rows[0]["value"]) if rows else None, unit, prov))
    page.add(Kpis(kpis))
    if all(k.raw is None for k in kpis):
        page.empty.append(Empty("people", f"No activity for {key} in this period",
                                "Try a longer date range, or check the identity on the People page."))
    days = _days(f)
    tok, p_tok = fig.metric("tokens", ("day", "model"), filters=only)
    page.add(Chart("person_tokens", "Tokens per day by model", {"kind": "bar", "stack": True, "unit": "tokens",
                                                                 "x": days, "series": _split(tok, "model", days)},
                   p_tok, None if tok else "No token data in this period."))
    return page


def teams(ctx: Ctx) -> Page:
    fig = ctx.fig
    page = Page("teams", "Teams", "Teams from the people file; a person counts in a team on the days they were in it.",
                "teams")
    names = {t["key"]: t["name"] for t in fig.teams()}
    if not names:
        page.empty.append(Empty("people", "No teams yet", "Teams and memberships come from a people file.",
                                "cclens people import people.toml", "docs/people.md"))
    metrics = (("active_people", "Active people", "int"), ("known_people", "Known people", "int"),
               ("active_share", "Share active", "pct"), ("sessions", "Sessions", "int"),
               ("estimated_cost", "Estimated cost", "usd"), ("lines_added", "Lines added", "int"),
               ("pull_requests", "PRs", "int"), ("cost_per_active_person", "Cost per active person", "usd"))
    rows = _join("team", *((m, fig.metric(m, ("team",))[0]) for m, _, _ in metrics))
    rows = [{**r, "team_name": r.get("team_name") or names.get(r["team"]) or r["team"]} for r in rows]
    page.add(Table("teams", "Teams", [
        Column("team_name", "Team", href=lambda r: ctx.href(f"/teams/{quote(str(r['team']))}")),
        *(Column(m, label, unit) for m, label, unit in metrics)], rows, fig.metric("active_people", ("team",))[1]))
    return page


def team(ctx: Ctx, key: str) -> Page:
    from dataclasses import replace

    scoped = Ctx(ctx.fig.scoped(replace(ctx.f, team=key)), replace(ctx.f, team=key), ctx.url, ctx.href)
    names = {t["key"]: t["name"] for t in ctx.fig.teams()}
    page = Page("team", names.get(key, key), f"Team {names.get(key, key)}: people while they were in it.", "teams")
    page.add(Kpis([_kpi(scoped, "active_people", "Active people", "int"), _kpi(scoped, "sessions", "Sessions", "int"),
                   _kpi(scoped, "estimated_cost", "Estimated cost", "usd", False),
                   _kpi(scoped, "lines_added", "Lines added", "int"), _kpi(scoped, "pull_requests", "Pull requests", "int")]))
    days = _days(ctx.f)
    per_day, p_day = scoped.fig.metric("active_people", ("day",))
    page.add(Chart("team_active", "Active people per day", {"kind": "line", "area": True, "unit": "int", "x": days,
                                                            "series": [{"name": "active people", "data": _series(per_day, days)}]},
                   p_day, None if per_day else "No activity in this period."))
    page.add(_people_table(scoped, "team_people", "People"))
    return page
