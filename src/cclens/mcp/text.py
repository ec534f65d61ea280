"""The short text rendering of each tool result (what a model reads next to the structured content), the
Markdown resources, and the prompt texts."""

from __future__ import annotations

from typing import Any

from .render import cell, columns_with_sources_last, table

NO_DATA = "— = no data from any source of this metric (not 0)"


def _period(d: dict[str, Any]) -> str:
    return f"{d['since']}..{d['until']}"


def _filters(f: dict[str, Any]) -> str:
    return "; ".join(f"{k}={','.join(v)}" for k, v in (f or {}).items())


def _tail(d: dict[str, Any]) -> list[str]:
    out = []
    if d.get("truncated"):
        out.append(f"{d['row_count']} of {d.get('total_rows', d['row_count'])} rows shown (raise limit for more)")
    out += [f"note: {n}" for n in d.get("notes") or []]
    return out


def catalog(d: dict[str, Any]) -> str:
    lines = [f"{d['count']} metrics (name · unit · group: description [group_by])"]
    for m in d["metrics"]:
        lines.append(f"- {m['name']} · {m['unit']} · {m['group']}: {m['description']} "
                     f"[{', '.join(m['group_by'])}]")
    lines.append(f"filters: {', '.join(d['filters'])}")
    return "\n".join(lines)


def metric(d: dict[str, Any]) -> str:
    head = f"{d['metric']} ({d['unit']}) · {_period(d)} · {d['tz']}"
    if d["group_by"]:
        head += f" · by {', '.join(d['group_by'])}"
    if d.get("filters"):
        head += f" · {_filters(d['filters'])}"
    labels = [k for k in ("person_name", "team_name") if any(k in r for r in d["rows"])]
    cols = columns_with_sources_last(d["rows"], first=[*d["group_by"], *labels, "value"])
    lines = [head, table(d["rows"], cols), NO_DATA]
    missing = [s for s, c in (d.get("coverage") or {}).items() if c is None]
    lines += _tail(d)
    if missing and not any("no data in this range" in n for n in d.get("notes") or []):
        lines.append(f"no data in the range from: {', '.join(missing)}")
    return "\n".join(lines)


def compare(d: dict[str, Any]) -> str:
    cur, prev = d["current_period"], d["previous_period"]
    head = (f"{d['metric']} ({d['unit']}) · current {_period(cur)} vs previous {_period(prev)} · {d['tz']}"
            + (f" · by {', '.join(d['group_by'])}" if d["group_by"] else ""))
    labels = [k for k in ("person_name", "team_name") if any(k in r for r in d["rows"])]
    cols = [*d["group_by"], *labels, "current", "previous", "change", "change_pct", "sources_current",
            "sources_previous"]
    return "\n".join([head, table(d["rows"], cols), NO_DATA, *_tail(d)])


def top(d: dict[str, Any]) -> str:
    by = d["by"]
    name = f"{by}_name"
    head = (f"top {d['row_count']} {'people' if by == 'person' else 'teams'} by {d['metric']} ({d['unit']}, {d['order']}) · {_period(d)} · {d['tz']}"
            + (f" · {_filters(d['filters'])}" if d.get("filters") else ""))
    cols = ["rank", by, *([name] if any(name in r for r in d["rows"]) else []), "value", "sources"]
    lines = [head, table(d["rows"], cols)]
    if d["no_data"]:
        lines.append(f"no data (not ranked): {', '.join(map(str, d['no_data']))}")
    lines += [f"note: {n}" for n in d.get("notes") or []]
    return "\n".join(lines)


def session(d: dict[str, Any]) -> str:
    rows = []
    for src, s in d["sources"].items():
        tokens = s.get("tokens") or {}
        rows.append({"source": src, "requests": s.get("requests"), **{f"{k}_tokens": v for k, v in tokens.items()},
                     "cost_usd": s.get("cost_usd"), "prompts": s.get("prompts"), "tool_uses": s.get("tool_uses"),
                     "first_ts": s.get("first_ts"), "last_ts": s.get("last_ts")})
    lines = [f"session {d['session_id']} as each source saw it (cost in USD)",
             table(rows, columns_with_sources_last(rows))]
    bases = {src: s["cost_basis"] for src, s in d["sources"].items() if s.get("cost_basis")}
    if bases:
        lines.append("cost basis: " + "; ".join(f"{k}: {v}" for k, v in bases.items()))
    shown = d["events"][:60]
    lines.append(f"events ({d['event_count']} of {d['total_events']}, time order):")
    lines.append(table(shown, ["ts", "source", "kind", "text"]))
    if len(shown) < d["event_count"]:
        lines.append(f"… {d['event_count'] - len(shown)} more events in the structured result")
    return "\n".join(lines)


def sources(d: dict[str, Any]) -> str:
    rows = [{"source": r["source"], "has_data": r["has_data"], "last_data": r["last_data"],
             "age_h": r["last_data_age_hours"], "last_arrival": r["last_arrival"],
             "rows_in_range": (r["in_range"] or {}).get("rows"), "last_error": r["last_error"]} for r in d["sources"]]
    return "\n".join([f"sources · range {_period(d)} · {d['tz']}", table(rows), *[f"note: {n}" for n in d["notes"]]])


def schema(d: dict[str, Any]) -> str:
    if "tables" in d:
        return "\n".join([f"{d['count']} tables and views", table(d["tables"], ["name", "kind", "estimated_rows",
                                                                               "column_count", "about"]), d["hint"]])
    head = f"{d['kind']} {d['name']}" + (f": {d['about']}" if d.get("about") else "")
    return "\n".join([head, table(d["columns"], ["name", "type", "nullable"])])


def sql(d: dict[str, Any]) -> str:
    cols = d["columns"]
    rows = [dict(zip(cols, r)) for r in d["rows"]]
    tail = (f"{d['row_count']} rows (cut at max_rows={d['max_rows']}: more exist)" if d["truncated"]
            else f"{d['row_count']} rows")
    return "\n".join([table(rows, cols) if rows else "(no rows)", f"{tail} · {d['elapsed_ms']} ms"])


def schema_markdown(reader: Any) -> str:
    """Every readable table and view with its columns, as Markdown."""
    from .tools import describe_schema

    out = ["# cclens warehouse schema", "", "Read with the run_sql tool (one SELECT; DuckDB SQL).", ""]
    for t in describe_schema(reader)["tables"]:
        d = describe_schema(reader, t["name"])
        out.append(f"## {t['name']} ({t['kind']})" + (f"\n\n{t['about']}" if t.get("about") else ""))
        out.append("")
        out.append("| column | type |")
        out.append("|---|---|")
        out += [f"| {c['name']} | {c['type']} |" for c in d["columns"]]
        out.append("")
    return "\n".join(out)


METRICS_DOC = """# cclens metrics

Every number cclens shows is a catalog metric, computed one way for the dashboard, the REST API, the CLI
and this MCP server.

* No data is null, never 0: a row exists only where a source reported; grouped by person or team, every
  person or team active in the range gets a row, with value null where no source of the metric covers them.
* Provenance per row: `sources` lists the sources whose rows made the value.
* Overlapping sources are not added up: per person and day the most complete source wins (Claude Code
  Analytics, then Enterprise Analytics, then events: transcripts and OpenTelemetry, one row per API request).
* Days: event sources use the requested zone; the daily APIs report UTC days.
* Teams honour membership dates: a person counts in a team only on the days they were in it.
* Cost (USD) is priced with the cclens price table; unpriced models are listed, not counted as $0; Claude
  Code Analytics' own estimate is used where it is the source. billed_cost is the Cost API's bill.
"""


def adoption_prompt(weeks: str, team: str | None) -> str:
    try:
        n = max(1, min(int(weeks), 52))
    except ValueError:
        n = 4
    scope = f' for team "{team}" (filters {{"team": ["{team}"]}})' if team else " for the whole organisation and per team"
    return (f"Write a short weekly Claude Code adoption summary for the last {n} weeks{scope}, using the cclens "
            "tools:\n"
            f"1. get_metric active_people with group_by [\"week\"] over the last {n * 7} days (then also "
            "[\"team\", \"week\"] unless one team was asked for).\n"
            "2. get_metric active_share and sessions_per_active_person grouped the same way.\n"
            "3. compare_periods active_people (last 7 days vs the 7 before) grouped by team.\n"
            "4. source_status, to say which sources are missing or stale.\n"
            "Report figures exactly as returned, with the sources behind them; say \"no data\" where a value is "
            "null (never 0); mention that API sources count UTC days. End with two or three observations.")


def cost_prompt(since: str | None, until: str | None, team: str | None) -> str:
    rng = f"from {since or '30 days ago'} to {until or 'today'}"
    scope = f' for team "{team}"' if team else ""
    return (f"Review Claude Code spend {rng}{scope} with the cclens tools:\n"
            "1. get_metric estimated_cost grouped by team, then by model (note unpriced_models).\n"
            "2. get_metric billed_cost grouped by model (organisation-wide; from the Cost API) and explain any gap "
            "with estimated_cost (estimates vs the bill, priority tier, non-Claude-Code usage).\n"
            "3. get_metric cost_per_active_person by team; top_people by estimated_cost (limit 10).\n"
            "4. compare_periods estimated_cost by team against the previous period of the same length.\n"
            "Give every amount in USD with its sources; say \"no data\" where a value is null.")


__all__ = ["catalog", "metric", "compare", "top", "session", "sources", "schema", "sql", "cell"]
