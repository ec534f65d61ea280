"""Dashboard pages about collection and single sessions: Sessions, a session, Sources, Reconciliation."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from .dashboard_figures import SOURCE_LABELS
from .dashboard_model import Chart, Column, Empty, Html, Kpi, Kpis, Page, Prov, Table
from .dashboard_pages import SETUP, Ctx, _by_day, _days, _round

TIMELINE_LIMIT = 400


# -- Sessions --------------------------------------------------------------------------------------
def sessions(ctx: Ctx) -> Page:
    page = Page("sessions", "Sessions", "Sessions with API requests in the period, newest first.", "sessions")
    ctx.empty_for(page, "transcripts", "otel", what="sessions")
    rows, prov = ctx.fig.sessions()
    zone = ZoneInfo(ctx.f.tz)
    out = []
    for r in rows:
        out.append({"session_id": r["session_id"], "project": r["project"], "host": r["host"],
                    "first_ts": _local(r["first_ts"], zone), "last_ts": _local(r["last_ts"], zone),
                    "models": [m["model"] for m in r["models"]], "requests": r["requests"], "prompts": r.get("prompts"),
                    "subagents": r.get("subagents"), "total_tokens": r["total_tokens"], "cost_usd": _round(r["cost_usd"])})
    page.add(Table("sessions", "Sessions", [
        Column("session_id", "Session", href=lambda r: ctx.href(f"/sessions/{quote(r['session_id'])}")),
        Column("first_ts", "Started"), Column("project", "Project"), Column("host", "Host"), Column("models", "Models"),
        Column("requests", "Requests", "int"), Column("prompts", "Prompts", "int"), Column("subagents", "Subagents", "int"),
        Column("total_tokens", "Tokens", "int"), Column("cost_usd", "Estimated cost", "usd")],
        out, prov, "No sessions in this period.", limit=300))
    return page


def _local(value: Any, zone: ZoneInfo) -> str | None:
    if not value:
        return None
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return t.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def session(ctx: Ctx, session_id: str) -> Page:
    page = Page("session", f"Session {session_id[:8]}", session_id, "sessions")
    view, prov = ctx.fig.session(session_id)
    if view is None:
        page.empty.append(Empty("transcripts", "No source has seen this session",
                                "Transcripts, OpenTelemetry and hooks all report sessions by id; none has this one."))
        return page
    sources = view["sources"]
    kpis = []
    for name in ("transcripts", "otel", "hooks"):
        s = sources.get(name)
        label = SOURCE_LABELS[name]
        if name == "hooks":
            kpis.append(Kpi(f"{name}_events", f"{label}: events", (s or {}).get("events") if s else None, "int", prov))
            continue
        kpis.append(Kpi(f"{name}_requests", f"{label}: requests", s["requests"] if s else None, "int", prov))
        kpis.append(Kpi(f"{name}_cost", f"{label}: cost", _round(s["cost_usd"]) if s else None, "usd",
                        Prov("session view", (name,), s["cost_basis"] if s else "not seen by this source")))
    page.add(Kpis(kpis))
    compare = []
    for name in ("transcripts", "otel", "hooks"):
        s = sources.get(name) or {}
        tokens = s.get("tokens") or {}
        compare.append({"source": SOURCE_LABELS[name], "seen": "yes" if s else "no",
                        "requests": s.get("requests"), "prompts": s.get("prompts"), "tool_uses": s.get("tool_uses"),
                        "subagents": s.get("subagents"),
                        "input_tokens": tokens.get("input"), "output_tokens": tokens.get("output"),
                        "cache_read_tokens": tokens.get("cache_read"), "cache_creation_tokens": tokens.get("cache_creation"),
                        "cost_usd": _round(s.get("cost_usd")), "first_ts": _local(s.get("first_ts"), ZoneInfo(ctx.f.tz)),
                        "last_ts": _local(s.get("last_ts"), ZoneInfo(ctx.f.tz))})
    page.add(Table("session_sources", "Each source's view", [
        Column("source", "Source"), Column("seen", "Seen"), Column("requests", "Requests", "int"),
        Column("prompts", "Prompts", "int"), Column("tool_uses", "Tool uses", "int"),
        Column("subagents", "Subagents", "int"), Column("input_tokens", "Input", "int"),
        Column("output_tokens", "Output", "int"), Column("cache_read_tokens", "Cache read", "int"),
        Column("cache_creation_tokens", "Cache write", "int"), Column("cost_usd", "Cost", "usd"),
        Column("first_ts", "First"), Column("last_ts", "Last")], compare, prov))
    events, p_events = ctx.fig.session_timeline(session_id)
    page.add(Html("timeline", "Timeline, side by side", _timeline_html(events, ZoneInfo(ctx.f.tz)), p_events))
    return page


def _timeline_html(events: dict[str, list[dict[str, Any]]], zone: ZoneInfo) -> str:
    cols = []
    for name in ("transcripts", "hooks", "otel"):
        items = events.get(name, [])
        lis = []
        for e in items[:TIMELINE_LIMIT]:
            t = e["ts"].astimezone(zone).strftime("%H:%M:%S") if e.get("ts") else "—"
            lis.append(f'<li class="k-{escape(e["kind"])}"><span class="t">{t}</span>{escape(e["text"])}</li>')
        more = f'<p class="muted">{len(items) - TIMELINE_LIMIT} more not shown</p>' if len(items) > TIMELINE_LIMIT else ""
        body = "<ol>" + "".join(lis) + "</ol>" if lis else '<p class="muted">This source did not see the session.</p>'
        cols.append(f'<div class="col" data-source="{name}"><h2>{escape(SOURCE_LABELS[name])} '
                    f'<span class="pill">{len(items)}</span></h2>{body}{more}</div>')
    return '<div class="timeline">' + "".join(cols) + "</div>"


# -- Sources ---------------------------------------------------------------------------------------
def sources(ctx: Ctx) -> Page:
    page = Page("sources", "Sources", "Every source cclens collects: what arrived, how fresh, what failed, and "
                "how to set up what is missing.", "sources")
    status = ctx.fig.source_status()
    now = datetime.now(ZoneInfo("UTC"))
    rows = []
    for s in status:
        last = s.get("last_arrival")
        fresh = None
        if s["seen"] and s.get("newest"):
            fresh = _ago(now - s["newest"])
        elif s["seen"] and last:
            fresh = _ago(now - last)
        gives, command, doc = SETUP[s["source"]]
        rows.append({"source": s["label"], "kind": "pushed" if s["kind"] == "push" else "pulled",
                     "state": "error" if s.get("last_error") else "collecting" if s["seen"] else "not configured",
                     "rows": s["rows"], "last_arrival": _local(last, ZoneInfo(ctx.f.tz)), "freshness": fresh,
                     "errors": s["errors"], "covered_from": _short(s.get("covered_from")),
                     "covered_until": _short(s.get("covered_until")),
                     "how": "" if s["seen"] else command.format(url=ctx.url), "last_error": s.get("last_error")})
    prov = Prov("source status", tuple(s["source"] for s in status),
                "rows stored, newest record, last arrival (push) or successful sync (pull), parse errors in quarantine, "
                "and the range covered")
    page.add(Table("sources", "Sources", [
        Column("source", "Source"), Column("kind", "How"), Column("state", "State"), Column("rows", "Rows", "int"),
        Column("last_arrival", "Last arrival / sync"), Column("freshness", "Newest data"),
        Column("errors", "Errors", "int"), Column("covered_from", "Covers from"), Column("covered_until", "Until"),
        Column("how", "How to set it up"), Column("last_error", "Last error")], rows, prov))
    missing = [s for s in status if not s["seen"]]
    if missing:
        items = "".join(f"<li><strong>{escape(s['label'])}</strong>: {escape(SETUP[s['source']][0])}. "
                        f"<code>{escape(SETUP[s['source']][1].format(url=ctx.url))}</code> "
                        f"({escape(SETUP[s['source']][2])})</li>" for s in missing)
        page.add(Html("not_configured", "Not configured yet", f"<ul>{items}</ul>",
                      Prov("source status", tuple(s["source"] for s in missing), "sources with no data yet")))
    return page


def _ago(delta: Any) -> str:
    s = delta.total_seconds()
    if s < 0:
        return "in the future"
    if s < 120:
        return f"{int(s)} s ago"
    if s < 7200:
        return f"{int(s // 60)} min ago"
    if s < 172800:
        return f"{int(s // 3600)} h ago"
    return f"{int(s // 86400)} days ago"


def _short(value: Any) -> Any:
    if value is None:
        return None
    return str(value)[:16].replace("T", " ")


# -- Reconciliation --------------------------------------------------------------------------------
def reconciliation(ctx: Ctx) -> Page:
    fig, f = ctx.fig, ctx.f
    page = Page("reconciliation", "Reconciliation", "The same usage as each source reports it, per day. Sources "
                "differ for documented reasons: the Analytics and Cost APIs use UTC days and see only first-party API "
                "use; OTel starts when telemetry is enabled; transcripts only from laptops that ship them.",
                "reconciliation")
    ctx.empty_for(page, "transcripts", "otel", "claude_code_analytics", "usage", what="data to reconcile")
    by_source, p_src = fig.by_source()
    cc_day, _ = fig.api("claude_code_analytics", "day")
    billed, _ = fig.api("cost", "day")
    usage_day, _ = fig.api("usage", "day")
    days = _days(f)
    tokens = lambda rows, key: [v for v in _by_day(rows, key, "total_tokens", days)]  # noqa: E731

    def cc_tokens(r: dict[str, Any]) -> int:
        return sum(r.get(k) or 0 for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"))

    cc_rows = [{**r, "total_tokens": cc_tokens(r)} for r in cc_day]
    us_rows = [{**r, "total_tokens": cc_tokens(r)} for r in usage_day]
    page.add(Chart("tokens_by_source", "Tokens per day as each source reports them", {
        "kind": "line", "unit": "tokens", "x": days, "series": [
            {"name": "transcripts", "data": tokens(by_source["transcripts"], "date")},
            {"name": "OpenTelemetry", "data": tokens(by_source["otel"], "date")},
            {"name": "Analytics API (UTC)", "data": tokens(cc_rows, "utc_day"), "dashed": True},
            {"name": "Usage API", "data": tokens(us_rows, "day"), "dashed": True}]},
        p_src, None if any(by_source.values()) or cc_day or usage_day else "No data in this period."))
    table = []
    idx = {d: i for i, d in enumerate(days)}
    cols = {
        "transcripts_tokens": tokens(by_source["transcripts"], "date"),
        "otel_tokens": tokens(by_source["otel"], "date"),
        "cc_api_tokens": tokens(cc_rows, "utc_day"),
        "usage_api_tokens": tokens(us_rows, "day"),
        "transcripts_cost": _by_day(by_source["transcripts"], "date", "cost_usd", days),
        "otel_cost": _by_day(by_source["otel"], "date", "cost_usd", days),
        "cc_api_cost": _by_day(cc_day, "utc_day", "estimated_cost_usd", days),
        "billed_cost": _by_day(billed, "utc_day", "cost_usd", days),
    }
    for d in days:
        row = {"day": d, **{k: _round(v[idx[d]]) for k, v in cols.items()}}
        row["otel_vs_cc_api"] = _round((row["otel_tokens"] - row["cc_api_tokens"]) / row["cc_api_tokens"]) \
            if row["cc_api_tokens"] and row["otel_tokens"] else None
        table.append(row)
    prov = Prov("reconciliation (interim: per-source metrics side by side)",
                ("transcripts", "otel", "claude_code_analytics", "usage", "cost"),
                f"tokens and cost per day from each source; transcripts and OTel in {f.tz}, the APIs in UTC days")
    page.add(Table("reconciliation", "Per day and source", [
        Column("day", "Day"), Column("transcripts_tokens", "Transcripts tokens", "int"),
        Column("otel_tokens", "OTel tokens", "int"), Column("cc_api_tokens", "Analytics API tokens", "int"),
        Column("usage_api_tokens", "Usage API tokens", "int"), Column("otel_vs_cc_api", "OTel vs Analytics API", "pct"),
        Column("transcripts_cost", "Transcripts est. cost", "usd"), Column("otel_cost", "OTel est. cost", "usd"),
        Column("cc_api_cost", "Analytics API est. cost", "usd"), Column("billed_cost", "Billed (Cost API)", "usd")],
        table, prov))
    return page
