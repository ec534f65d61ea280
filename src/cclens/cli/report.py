"""``cclens report daily|weekly|monthly|sessions|projects|models|quarantine``."""

from __future__ import annotations

from typing import Any, Optional

import typer

from . import app, usage_report
from .context import state
from .output import FORMAT_OPTION, SINCE_OPTION, TZ_OPTION, UNTIL_OPTION, OutputFormat, render

report_app = typer.Typer(help="Usage and cost reports (shared options: --since --until --tz --format).",
                         no_args_is_help=True)
app.add_typer(report_app, name="report")

SOURCE_OPTION = typer.Option("all", "--source", help="all, transcripts or otel: which sources' requests count.")
BREAKDOWN_OPTION = typer.Option(False, "--breakdown", "-b", help="One line per model under each row.")
PROJECT_OPTION = typer.Option(None, "--project", help="Only this project (working directory).")
REFRESH_OPTION = typer.Option(True, "--refresh/--no-refresh",
                              help="First ingest what is new in this machine's transcripts (fast when nothing is).")


def _run(ctx: typer.Context, kind: str, since, until, tz, source, project, refresh: bool = True
         ) -> tuple[list[dict[str, Any]], str]:
    """The report's rows and zone; the requests in no row are noted on stderr."""
    rows, zone, missing = usage_report.run(state(ctx), kind, since, until, tz, source, project, refresh)
    usage_report.note_undated(missing)
    return rows, zone


_totals_line = usage_report.totals_line


def _period_command(kind: str, key: str):
    def command(ctx: typer.Context, since: Optional[str] = SINCE_OPTION, until: Optional[str] = UNTIL_OPTION,
                tz: Optional[str] = TZ_OPTION, fmt: OutputFormat = FORMAT_OPTION,
                breakdown: bool = BREAKDOWN_OPTION, source: str = SOURCE_OPTION,
                project: Optional[str] = PROJECT_OPTION, refresh: bool = REFRESH_OPTION) -> None:
        usage_report.period(state(ctx), kind, since, until, tz, fmt, breakdown, source, project, refresh)

    command.__doc__ = f"Tokens and estimated cost per {key} (days follow --tz; default local zone)."
    return command


report_app.command("daily")(_period_command("daily", "date"))
report_app.command("weekly")(_period_command("weekly", "week"))
report_app.command("monthly")(_period_command("monthly", "month"))


@report_app.command("sessions")
def sessions(ctx: typer.Context, since: Optional[str] = SINCE_OPTION, until: Optional[str] = UNTIL_OPTION,
             tz: Optional[str] = TZ_OPTION, fmt: OutputFormat = FORMAT_OPTION, breakdown: bool = BREAKDOWN_OPTION,
             source: str = SOURCE_OPTION, project: Optional[str] = PROJECT_OPTION,
             refresh: bool = REFRESH_OPTION) -> None:
    """Tokens and estimated cost per session, newest first."""
    rows, zone = _run(ctx, "sessions", since, until, tz, source, project, refresh)
    if fmt is not OutputFormat.table:
        render(rows if fmt is OutputFormat.json else [{k: v for k, v in r.items() if k != "models"} for r in rows], fmt)
        return
    table = [{"session": r["session_id"][:8], "project": _short(r["project"]), "last": (r["last_ts"] or "")[:16],
              "models": ", ".join(m["model"] for m in r["models"]), "requests": r["requests"],
              "total_tokens": r["total_tokens"], "cost_usd": r["cost_usd"]} for r in rows]
    render(table, fmt, title=f"sessions ({zone})", footer=_totals_line(rows) if rows else None)


@report_app.command("session")
def session(ctx: typer.Context, session_id: str = typer.Argument(..., help="A session id (or its first 8+ characters)."),
            fmt: OutputFormat = FORMAT_OPTION) -> None:
    """One session as each source saw it (transcripts, OTel, hooks): requests, tokens, cost, prompts, tools."""
    from ..errors import QueryError
    from ..model.session_view import session_view

    with state(ctx).reader(rollups=False) as wh:
        if len(session_id) < 36:
            found = [r["session_id"] for r in wh.query(
                "SELECT DISTINCT session_id FROM api_request WHERE starts_with(session_id, ?) "
                "UNION SELECT DISTINCT session_id FROM session WHERE starts_with(session_id, ?) LIMIT 3",
                [session_id, session_id])]
            if len(found) > 1:
                raise QueryError(f"session prefix {session_id!r} is ambiguous ({', '.join(found)}); give more characters")
            session_id = found[0] if found else session_id
        view = session_view(wh, session_id)
    if view is None:
        raise QueryError(f"no source has a session {session_id!r}; list them with `cclens report sessions`")
    if fmt is OutputFormat.json:
        render([], fmt, json_value=view)
        return
    rows = []
    for name, sec in view["sources"].items():
        tokens = sec.get("tokens") or {}
        rows.append({"source": name, "requests": sec.get("requests"), "input": tokens.get("input"),
                     "output": tokens.get("output"), "cache_write": tokens.get("cache_creation"),
                     "cache_read": tokens.get("cache_read"), "cost_usd": sec.get("cost_usd"),
                     "prompts": sec.get("prompts"), "tool_uses": sec.get("tool_uses"),
                     "first": str(sec.get("first_ts") or "")[:19], "last": str(sec.get("last_ts") or "")[:19]})
    render(rows, fmt, title=f"session {session_id} by source (— = the source did not say)")


@report_app.command("projects")
def projects(ctx: typer.Context, since: Optional[str] = SINCE_OPTION, until: Optional[str] = UNTIL_OPTION,
             tz: Optional[str] = TZ_OPTION, fmt: OutputFormat = FORMAT_OPTION, source: str = SOURCE_OPTION,
             refresh: bool = REFRESH_OPTION) -> None:
    """Tokens and estimated cost per project (working directory)."""
    rows, zone = _run(ctx, "projects", since, until, tz, source, None, refresh)
    if fmt is not OutputFormat.table:
        render(rows if fmt is OutputFormat.json else [{k: v for k, v in r.items() if k != "models"} for r in rows], fmt)
        return
    table = [{"project": r["project"], "sessions": r["sessions"], "last": (r["last_ts"] or "")[:16],
              "requests": r["requests"], "total_tokens": r["total_tokens"], "cost_usd": r["cost_usd"]} for r in rows]
    render(table, fmt, title=f"projects ({zone})", footer=_totals_line(rows) if rows else None)


@report_app.command("models")
def models(ctx: typer.Context, since: Optional[str] = SINCE_OPTION, until: Optional[str] = UNTIL_OPTION,
           tz: Optional[str] = TZ_OPTION, fmt: OutputFormat = FORMAT_OPTION, source: str = SOURCE_OPTION,
           project: Optional[str] = PROJECT_OPTION, refresh: bool = REFRESH_OPTION) -> None:
    """Tokens and estimated cost per model; unpriced models are flagged, never shown as $0."""
    rows, zone = _run(ctx, "models", since, until, tz, source, project, refresh)
    render(rows, fmt, title=f"models ({zone})")


@report_app.command("quarantine")
def quarantine(ctx: typer.Context, fmt: OutputFormat = FORMAT_OPTION,
               limit: int = typer.Option(50, "--limit", help="Rows to show.")) -> None:
    """Lines and records that could not be parsed, with where they came from and why."""
    with state(ctx).reader(rollups=False) as wh:
        rows = wh.query("""SELECT source, origin, byte_offset, reason, left(raw, 80) AS raw, received_at
                           FROM quarantine ORDER BY received_at DESC LIMIT ?""", [limit])
    render(rows, fmt, title="quarantine")


def _short(path: Any) -> Any:
    if not path:
        return path
    parts = str(path).rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) > 2 else path
