"""One entry point for the engineering sources (local git clones, GitHub, Jira), and their schedule.

::

    rows = sync_engineering(settings, wh)                     # every configured source, then lineage
    rows = sync_engineering(settings, wh, ["git"], explicit=True)
    rows = run_due_eng_syncs(settings, wh, submit=submit)     # what `cclens serve` runs every tick

``cclens sync-eng``, ``cclens sync git|github|jira``, ``POST /api/v1/sync`` and the scheduler of
``cclens serve`` all go through :func:`sync_engineering`, so they report the same rows
(``source``, ``scope``, ``status`` ok|skipped|error, ``detail``).

What it promises:

- **Unconfigured sources are skipped** (a row with status ``skipped``), unless named explicitly, in
  which case the source's own ConfigError/SourceError naming the setting is raised.
- **One source failing never stops the others**; its error is in the rows, in the source's own
  ``source_state`` rows (``git:<repo>``, ``github:<repo>``, ``jira``) and in the run record
  ``source_state['schedule:<source>']`` (last_success, last_attempt, last_error) the schedule reads.
- **Lineage is rebuilt** after the run (``lineage=True``), or only when some source stored or changed
  rows (``lineage=None``, the scheduler's choice), through the same ``submit``.
- **Schedule** (:func:`due_eng_sources`): a configured source is due when its interval
  (``git_sync_interval_s`` 300 s, ``github_sync_interval_s`` / ``jira_sync_interval_s`` 900 s; 0 = never)
  has passed since its last success; after a failure it waits ``min(interval, ERROR_RETRY)``.

Writes go through ``submit(fn)`` which runs ``fn(wh)`` in one transaction; the default runs it on ``wh``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from ..errors import CclensError, ConfigError

UTC = timezone.utc
ENG_SOURCES = ("git", "github", "jira")
#: After a failed run, the next attempt waits at most this long (as for the Anthropic sources).
ERROR_RETRY = timedelta(minutes=15)
Submit = Callable[[Callable[[Any], Any]], Any]
Row = dict[str, Any]


def resolve_eng_sources(names: Iterable[str] | None) -> list[str]:
    """Validate engineering source names (all three when empty); ConfigError for an unknown one."""
    chosen = list(dict.fromkeys(names or ENG_SOURCES))
    unknown = [n for n in chosen if n not in ENG_SOURCES]
    if unknown:
        raise ConfigError(f"unknown source {', '.join(unknown)}; choose from {', '.join(ENG_SOURCES)}")
    return chosen


def split_sources(names: list[str] | None) -> tuple[list[str], list[str]]:
    """``(anthropic, engineering)`` names; none named = every Anthropic source. ConfigError for an
    unknown name (listing both kinds)."""
    from .sync import SOURCE_NAMES

    if not names:
        return list(SOURCE_NAMES), []
    chosen = list(dict.fromkeys(names))
    unknown = [n for n in chosen if n not in SOURCE_NAMES and n not in ENG_SOURCES]
    if unknown:
        raise ConfigError(f"unknown source {', '.join(unknown)}; choose from "
                          f"{', '.join(SOURCE_NAMES + ENG_SOURCES)}")
    return [n for n in chosen if n in SOURCE_NAMES], [n for n in chosen if n in ENG_SOURCES]


def configured(settings: Any, name: str) -> bool:
    """Whether ``name`` has the settings it needs to run."""
    if name == "git":
        return bool(getattr(settings, "git_repos", None))
    if name == "github":
        return bool(settings.github_token) and bool(settings.github_repos or settings.github_orgs)
    return bool(settings.jira_url and settings.jira_email and settings.jira_api_token)


def interval(settings: Any, name: str) -> timedelta | None:
    """How often ``cclens serve`` runs ``name`` (None: not scheduled)."""
    seconds = float(getattr(settings, f"{name}_sync_interval_s", 0) or 0)
    return timedelta(seconds=seconds) if seconds > 0 else None


def state_key(name: str) -> str:
    return f"schedule:{name}"


def sync_engineering(settings: Any, wh: Any, sources: Iterable[str] | None = None, *, since: date | None = None,
                     explicit: bool | None = None, lineage: bool | None = True, contain: bool = False,
                     submit: Submit | None = None, now: datetime | None = None) -> list[Row]:
    """Sync ``sources`` (default: every configured one) and then lineage; one row per scope.

    ``explicit`` (default: sources were named) makes an unconfigured source raise instead of being
    skipped. ``contain`` turns any exception of a source (a bug, a broken file) into an error row
    instead of propagating it, for the scheduler. ``lineage``: True always rebuilds, None only when
    something changed, False never.
    """
    from ._eng import direct_submit

    names = resolve_eng_sources(sources)
    explicit = bool(sources) if explicit is None else explicit
    submit = submit or direct_submit(wh)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    rows: list[Row] = []
    changed = False
    for name in names:
        if not configured(settings, name) and not explicit:
            rows.append({"source": name, "scope": "", "status": "skipped", "detail": "not configured"})
            continue
        try:
            got, moved = _run_source(name, settings, wh, since, submit, now)
        except CclensError as exc:
            if not configured(settings, name) or isinstance(exc, ConfigError) and not contain:
                raise
            got, moved = [{"source": name, "scope": "run", "status": "error", "detail": str(exc)}], False
        except Exception as exc:  # noqa: BLE001 - only when contained (the scheduler)
            if not contain:
                raise
            got, moved = [{"source": name, "scope": "run", "status": "error",
                           "detail": f"{name}: unexpected {type(exc).__name__}: {exc}"}], False
        rows += got
        changed |= moved
        errors = [r["detail"] for r in got if r["status"] == "error"]
        _record(submit, name, now, sum(1 for r in got if r["status"] == "ok"), "; ".join(errors)[:2000] or None)
    if lineage or (lineage is None and changed):
        rows.append(_lineage(submit, contain))
    return rows


def _run_source(name: str, settings: Any, wh: Any, since: date | None, submit: Submit,
                now: datetime) -> tuple[list[Row], bool]:
    if name == "git":
        from .git import sync_git

        results = sync_git(settings, wh, submit=submit, now=now)
        rows = [{"source": "git", "scope": r.repo_id, "status": r.status,
                 "detail": r.error or (f"{r.new_commits} new commits, {r.files} file changes"
                                       + (f", {r.unreachable} now unreachable" if r.unreachable else "")
                                       + (f", {r.revived} reachable again" if r.revived else ""))}
                for r in results]
        return rows, any(r.new_commits or r.unreachable or r.revived for r in results)
    if name == "github":
        from .github import sync_github

        eng = sync_github(settings, wh, since=since, submit=submit, now=now)
    else:
        from .jira import sync_jira

        eng = sync_jira(settings, wh, since=since, submit=submit, now=now)
    rows = [{"source": r.source, "scope": r.scope, "status": r.status,
             "detail": r.error or (", ".join(f"{v} {k.replace('_', ' ')}" for k, v in r.counts.items())
                                   + f"; {r.requests} requests ({r.not_modified} not modified)"
                                   + (f", waited {r.waited_s:.0f} s for rate limits" if r.waited_s else ""))}
            for r in eng]
    return rows, any(sum(r.counts.values()) for r in eng)


def _lineage(submit: Submit, contain: bool) -> Row:
    from ..model.lineage import rebuild_lineage

    try:
        links = submit(lambda w: rebuild_lineage(w))
    except Exception as exc:  # noqa: BLE001 - contained for the scheduler only
        if not contain:
            raise
        return {"source": "lineage", "scope": "all", "status": "error",
                "detail": f"lineage: rebuild failed ({type(exc).__name__}: {exc})"}
    return {"source": "lineage", "scope": "all", "status": "ok",
            "detail": ", ".join(f"{k} {v}" for k, v in links.items()) or "no links"}


def _record(submit: Submit, name: str, now: datetime, scopes_ok: int, error: str | None) -> None:
    """The run record the schedule reads: ``source_state['schedule:<name>']``."""
    def write(w: Any) -> None:
        key = state_key(name)
        if error is None:
            w.execute("INSERT INTO source_state (source, last_success, last_attempt, last_rows, last_error) "
                      "VALUES (?, ?, ?, ?, NULL) ON CONFLICT (source) DO UPDATE SET "
                      "last_success = excluded.last_success, last_attempt = excluded.last_attempt, "
                      "last_rows = excluded.last_rows, last_error = NULL", [key, now, now, scopes_ok])
        else:
            w.execute("INSERT INTO source_state (source, last_attempt, last_rows, last_error) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT (source) DO UPDATE SET last_attempt = excluded.last_attempt, "
                      "last_rows = excluded.last_rows, last_error = excluded.last_error", [key, now, scopes_ok, error])
    submit(write)


def load_run_state(wh: Any, name: str) -> dict[str, Any]:
    rows = wh.query("SELECT last_success, last_attempt, last_error FROM source_state WHERE source = ?",
                    [state_key(name)])
    return dict(rows[0]) if rows else {}


def due_eng_sources(settings: Any, wh: Any, now: datetime | None = None) -> list[str]:
    """Configured, scheduled sources whose interval has passed since their last success; after a
    failure a source is retried once ``min(interval, ERROR_RETRY)`` passed."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    due = []
    for name in ENG_SOURCES:
        every = interval(settings, name)
        if every is None or not configured(settings, name):
            continue
        state = load_run_state(wh, name)
        last_ok, last_try = state.get("last_success"), state.get("last_attempt")
        if last_ok is not None and now - last_ok < every:
            continue
        if state.get("last_error") and last_try is not None and now - last_try < min(every, ERROR_RETRY):
            continue
        due.append(name)
    return due


def run_due_eng_syncs(settings: Any, wh: Any, now: datetime | None = None, *,
                      submit: Submit | None = None) -> list[Row]:
    """Run the engineering syncs that are due (see :func:`due_eng_sources`), then rebuild lineage if
    anything changed. ``wh`` is used for reads; pass ``submit`` to write through the server's writer.
    Never raises for a source failure: it is an error row and in ``source_state``."""
    names = due_eng_sources(settings, wh, now)
    if not names:
        return []
    return sync_engineering(settings, wh, names, explicit=False, lineage=None, contain=True, submit=submit, now=now)


def min_interval(settings: Any) -> float | None:
    """The shortest interval (seconds) of a configured, scheduled source, or None."""
    vals = [interval(settings, n).total_seconds() for n in ENG_SOURCES
            if interval(settings, n) is not None and configured(settings, n)]
    return min(vals) if vals else None


__all__ = ["ENG_SOURCES", "split_sources", "configured", "interval", "sync_engineering", "due_eng_sources", "run_due_eng_syncs",
           "resolve_eng_sources", "min_interval"]
