"""The sync engine of the Anthropic reporting sources, and the schedule ``cclens serve`` runs.

::

    results = sync(settings, wh)                          # every configured source
    results = sync(settings, wh, ["usage"], since=date(2026, 1, 1))
    results = run_due_syncs(settings, wh, now)            # only sources whose interval has passed

What it promises, per source:

- **Incremental, resumable.** The cursor (``source_state.cursor``: ``{"start", "done_until", "tag"}``)
  says which range has been pulled completely. Each unit (a day, a run of buckets) is fetched whole
  (all pages), then written in one transaction together with its landing pages and the moved cursor.
  A crash loses at most the unit in flight; the next run starts from the cursor.
- **First run backfills** from ``--since``, else ``anthropic_sync_start``, else 90 days ago (never
  before what the API serves).
- **Revisions.** Every run re-fetches the trailing window the API can still revise
  (``source.revisable``: Claude Code 3 days, usage 1 day, cost 3 days, Enterprise 7 days) and replaces
  those units' rows, so a revised day ends with the revised numbers and a re-run never double counts.
- **Unconfigured sources are skipped** with a note naming the setting; a rejected key is one error
  naming the source and the setting, and other sources on the same key are skipped (not re-tried).
- ``--since DATE`` re-fetches everything from DATE (a repair), keeping the cursor's coverage.

Writes go through ``submit(fn)`` which runs ``fn(wh)`` in one transaction; the default runs it on
``wh`` directly. ``cclens serve`` passes its single writer: ``submit=lambda fn: writer.submit(fn).result()``.
Network I/O never happens inside a transaction.
"""

from __future__ import annotations

import time
import hashlib
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterable, Sequence

import orjson

from ..errors import ConfigError, SourceAuthError, SourceError
from ._anthropic import (UTC, ApiSource, Unit, UnitNotAvailable, day_start, floor_day, floor_to, iso,
                         page_day, parse_ts)
from ._http import ApiClient, Page, RateLimiter
from .claude_code_api import ClaudeCodeAnalyticsSource
from .enterprise_api import EnterpriseAnalyticsSource
from .usage_cost_api import CostSource, UsageSource

SOURCE_CLASSES: dict[str, type[ApiSource]] = {
    cls.name: cls for cls in (ClaudeCodeAnalyticsSource, UsageSource, CostSource, EnterpriseAnalyticsSource)}
SOURCE_NAMES = tuple(SOURCE_CLASSES)
#: How often `cclens serve` runs each source (see :func:`run_due_syncs`).
SCHEDULE: dict[str, timedelta] = {name: cls.interval for name, cls in SOURCE_CLASSES.items()}
#: After a failed run, the next attempt waits at most this long (even for daily sources).
ERROR_RETRY = timedelta(minutes=15)
DEFAULT_BACKFILL = timedelta(days=90)

Submit = Callable[[Callable[[Any], Any]], Any]
Progress = Callable[[str, int, int, int], None]  # (source, units done, units total, rows so far)


@dataclass
class SyncResult:
    """What one source's sync did. ``status``: ok | skipped | error."""

    source: str
    status: str = "ok"
    units: int = 0
    pages: int = 0
    pages_landed: int = 0
    rows: int = 0
    requests: int = 0
    retries: int = 0
    covered_from: datetime | None = None
    covered_until: datetime | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "status": self.status, "units": self.units, "pages": self.pages,
                "pages_landed": self.pages_landed, "rows": self.rows, "requests": self.requests,
                "retries": self.retries,
                "covered_from": iso(self.covered_from) if self.covered_from else None,
                "covered_until": iso(self.covered_until) if self.covered_until else None,
                "notes": self.notes, "error": self.error}


def resolve_sources(names: Iterable[str] | None) -> list[str]:
    """Validate source names (all four when empty); raises ConfigError for an unknown one."""
    chosen = list(names or SOURCE_NAMES)
    unknown = [n for n in chosen if n not in SOURCE_CLASSES]
    if unknown:
        raise ConfigError(f"unknown source {', '.join(unknown)}; choose from {', '.join(SOURCE_NAMES)}")
    return list(dict.fromkeys(chosen))


def sync(settings: Any, wh: Any, sources: Iterable[str] | None = None, *, since: date | None = None,
         now: datetime | None = None, submit: Submit | None = None,
         transport_factory: Callable[[], Any] | None = None, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic, throttle: bool = True,
         progress: Progress | None = None) -> list[SyncResult]:
    """Sync ``sources`` (default: all) from the Anthropic APIs into ``wh``; one result per source.

    Source errors (bad key, API down) are reported in the results and recorded in ``source_state``;
    they do not stop the other sources. Anything else (a bug, a crash) propagates after rolling back
    the unit in flight. ``transport_factory``, ``sleep`` and ``clock`` are seams for tests.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    submit = submit or _direct(wh)
    rejected: dict[str, str] = {}
    results = []
    for name in resolve_sources(sources):
        source = SOURCE_CLASSES[name](settings)
        result = SyncResult(name)
        results.append(result)
        key = secret_value(settings, source.key_setting)
        if not key:
            result.status = "skipped"
            result.notes.append(f"{name}: skipped, no key configured (set CCLENS_{source.key_setting.upper()} "
                                f"or {source.key_setting} in cclens.toml)")
            continue
        if source.key_setting in rejected:
            result.status = "skipped"
            note = (f"{name}: skipped, the key in {source.key_setting} was rejected "
                    f"(see the {rejected[source.key_setting]} error)")
            result.notes.append(note)
            submit(lambda w, n=name, e=note: _save_error(w, n, e, now))
            continue
        limiter = (RateLimiter(source.rate_per_minute, clock=clock, sleep=sleep)
                   if throttle and source.rate_per_minute else None)
        client = ApiClient(settings.anthropic_base_url, key, source=name, key_setting=source.key_setting,
                           key_hint=source.key_hint, auth_statuses=source.auth_statuses,
                           transport=transport_factory() if transport_factory else None, sleep=sleep,
                           rate_limiter=limiter, extra_headers=source.headers())
        try:
            _sync_source(source, client, wh, submit, result, since=since, now=now, progress=progress)
        except (SourceError, ConfigError) as exc:
            result.status = "error"
            result.error = str(exc)
            if isinstance(exc, SourceAuthError):
                rejected[source.key_setting] = name
            submit(lambda w, n=name, e=str(exc): _save_error(w, n, e, now))
        finally:
            result.requests, result.retries = client.requests_sent, client.retries
            result.notes.extend(source.notes)
            client.close()
    return results


def secret_value(settings: Any, name: str) -> str:
    """The plain value of secret setting ``name`` ("" when unset)."""
    secret = getattr(settings, name, None)
    if secret is None:
        return ""
    return secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret)


def plan_units(source: ApiSource, cursor: dict[str, Any], *, settings: Any, now: datetime,
               since: date | None) -> tuple[list[Unit], list[str]]:
    """The units this run fetches, in order, and notes about clamping. See the module docstring."""
    notes: list[str] = []
    end = source.available_end(now)
    earliest = source.earliest(now)
    default = getattr(settings, "anthropic_sync_start", None)
    start = day_start(default) if default else floor_day(now - DEFAULT_BACKFILL)
    if earliest is not None:
        start = max(start, earliest)
    if since is not None:
        fetch_from = day_start(since)
    elif cursor.get("done_until") and parse_ts(cursor["start"]) <= start:
        fetch_from = max(start, floor_day(min(parse_ts(cursor["done_until"]), end - source.revisable)))
    else:
        fetch_from = start
    if earliest is not None and fetch_from < earliest:
        if since is not None or not cursor:
            notes.append(f"{source.name}: the API serves nothing before {earliest.date()}; starting there")
        fetch_from = earliest
    fetch_from = floor_to(fetch_from, source.grain)
    # The revisable tail is always a unit of its own, so a re-run asks exactly what the last run
    # asked (identical pages are then recognised and not landed twice).
    tail = floor_to(floor_day(end - source.revisable), source.grain)
    units, t = [], fetch_from
    while t < end:
        boundary = floor_to(t, source.unit_span) + source.unit_span
        if t < tail < boundary:
            boundary = tail
        units.append(Unit(t, min(boundary, end)))
        t = units[-1].end
    return units, notes


def advance(cursor: dict[str, Any], run_start: datetime, unit: Unit) -> dict[str, Any]:
    """The cursor after ``unit`` (of a run that started at ``run_start``, units ascending and
    contiguous) committed. The cursor only ever claims a contiguous range that was fully fetched."""
    if not cursor.get("done_until"):
        return {**cursor, "start": iso(run_start), "done_until": iso(unit.end)}
    start, done = parse_ts(cursor["start"]), parse_ts(cursor["done_until"])
    if run_start <= start:
        if unit.end >= start:
            return {**cursor, "start": iso(run_start), "done_until": iso(max(done, unit.end))}
        return {**cursor, "start": iso(run_start), "done_until": iso(unit.end)}
    if run_start <= done:
        return {**cursor, "done_until": iso(max(done, unit.end))}
    return cursor  # a gap before this run's range: coverage stays as it was


def _sync_source(source: ApiSource, client: ApiClient, wh: Any, submit: Submit, result: SyncResult, *,
                 since: date | None, now: datetime, progress: Progress | None) -> None:
    run_id = uuid.uuid4().hex
    started = datetime.now(UTC)
    state = load_state(wh, source.name)
    cursor = state.get("cursor") or {}
    tag = source.cursor_tag()
    if cursor.get("tag", "") != tag:
        cursor = {}  # bucket width or grouping changed: what we hold is not comparable; start over
    units, notes = plan_units(source, cursor, settings=source.settings, now=now, since=since)
    result.notes.extend(notes)
    if progress:
        progress(source.name, 0, len(units), 0)
    run_start = units[0].start if units else now

    def fetch(unit: Unit) -> tuple[Unit, list[Page], str | None]:
        try:
            return unit, compressed(source.fetch(client, unit)), None
        except UnitNotAvailable as exc:
            return Unit(unit.start, exc.end or unit.start), compressed(exc.pages), exc.note

    # The next unit is fetched while this one is written (DuckDB releases the GIL); units are still
    # committed strictly in order, and an error in a fetch surfaces only after the units before it.
    with ThreadPoolExecutor(1, thread_name_prefix=f"cclens-{source.name}") as pool:
        pending = pool.submit(fetch, units[0]) if units else None
        for i in range(len(units)):
            unit, pages, stop_note = pending.result()
            pending = pool.submit(fetch, units[i + 1]) if i + 1 < len(units) and not stop_note else None
            try:
                if unit.end > unit.start:
                    cursor = advance(cursor, run_start, unit)
                    if tag:
                        cursor["tag"] = tag
                    rows, landed = submit(lambda w, u=unit, p=pages, c=dict(cursor):
                                          _write_unit(w, source, u, p, c, run_id, now))
                    result.units += 1
                    result.pages += len(pages)
                    result.pages_landed += landed
                    result.rows += rows
            except BaseException:
                if pending is not None:
                    pending.cancel()
                raise
            if progress:
                progress(source.name, i + 1, len(units), result.rows)
            if stop_note:
                result.notes.append(stop_note)
                break
    if cursor.get("done_until"):
        result.covered_from, result.covered_until = parse_ts(cursor["start"]), parse_ts(cursor["done_until"])
    stats = result.as_dict()
    submit(lambda w: _save_success(w, source.name, result.rows, now, run_id, started, stats))


def _write_unit(wh: Any, source: ApiSource, unit: Unit, packed: Sequence[tuple[Page, bytes, str]],
                cursor: dict[str, Any], run_id: str, now: datetime) -> tuple[int, int]:
    pages = [p for p, _, _ in packed]
    fetched_at = pages[-1].fetched_at if pages else datetime.now(UTC)
    rows = source.replace(wh, unit, pages, fetched_at, run_id)
    landed = land_pages(wh, source.name, unit, packed, run_id)
    wh.execute(
        "INSERT INTO source_state (source, cursor, last_attempt) VALUES (?, ?, ?) "
        "ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, last_attempt = excluded.last_attempt",
        [source.name, orjson.dumps(cursor).decode(), now])
    return rows, landed


def compressed(pages: list[Page]) -> list[tuple[Page, bytes, str]]:
    """Each page with its body zlib-compressed and hashed for landing (on the fetching thread;
    zlib and hashlib release the GIL)."""
    return [(p, zlib.compress(p.body, 1), hashlib.sha256(p.body).hexdigest()) for p in pages]


BODY_CHUNK = 16 * 1024


def land_pages(wh: Any, source: str, unit: Unit, packed: Sequence[tuple[Page, bytes, str]], run_id: str) -> int:
    """Land the pages not already landed byte for byte (same URL, query and body); returns how many
    were new. Identical re-fetches are not stored twice; revised pages are. The body goes to
    ``landing_anthropic_body`` once per distinct body, zlib-compressed, in 16 KB pieces
    (:func:`landing_body` reassembles it)."""
    landed = 0
    for page, blob, digest in packed:
        params = orjson.dumps(page.params).decode()
        if wh.scalar("SELECT count(*) FROM landing_anthropic_page WHERE source = ? AND payload_hash = ? "
                     "AND url = ? AND params::VARCHAR = ?", [source, digest, page.url, params]):
            continue
        day = page_day(page)
        wh.execute("""
            INSERT INTO landing_anthropic_page (source, unit, url, params, page_cursor, page_index, next_page,
                request_id, payload_hash, payload_bytes, fetched_at, run_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [source, day.isoformat() if day else unit.key, page.url, params, page.page_cursor, page.page_index,
             page.next_page, page.request_id, digest, len(page.body), page.fetched_at, run_id])
        landed += 1
        if not wh.scalar("SELECT count(*) FROM landing_anthropic_body WHERE payload_hash = ?", [digest]):
            pieces = [{"seq": i, "chunk": blob[at:at + BODY_CHUNK]}
                      for i, at in enumerate(range(0, len(blob), BODY_CHUNK))]
            wh.execute("INSERT INTO landing_anthropic_body SELECT ?, p.seq, p.chunk "
                       "FROM (SELECT unnest(?::STRUCT(seq INTEGER, chunk BLOB)[], recursive := true)) p",
                       [digest, pieces])
    return landed


def landing_body(wh: Any, payload_hash: str) -> bytes | None:
    """The exact body a landed page had (by its ``payload_hash``), or None if it is not there."""
    pieces = wh.scalar("SELECT list(chunk ORDER BY seq) FROM landing_anthropic_body WHERE payload_hash = ?",
                       [payload_hash])
    return zlib.decompress(b"".join(pieces)) if pieces else None


def load_state(wh: Any, source: str) -> dict[str, Any]:
    """The ``source_state`` row of ``source`` (cursor parsed), or {} when it never ran."""
    rows = wh.query("SELECT cursor::VARCHAR AS cursor, last_success, last_attempt, last_rows, last_error "
                    "FROM source_state WHERE source = ?", [source])
    if not rows:
        return {}
    row = rows[0]
    row["cursor"] = orjson.loads(row["cursor"]) if row["cursor"] else {}
    return row


def _save_success(wh: Any, source: str, rows: int, now: datetime, run_id: str, started: datetime,
                  stats: dict[str, Any]) -> None:
    wh.execute(
        "INSERT INTO source_state (source, last_success, last_attempt, last_rows, last_error) "
        "VALUES (?, ?, ?, ?, NULL) ON CONFLICT (source) DO UPDATE SET last_success = excluded.last_success, "
        "last_attempt = excluded.last_attempt, last_rows = excluded.last_rows, last_error = NULL",
        [source, now, now, rows])
    wh.execute("INSERT INTO ingest_run (run_id, source, started_at, finished_at, stats) VALUES (?, ?, ?, ?, ?)",
               [run_id, source, started, datetime.now(UTC), orjson.dumps(stats).decode()])


def _save_error(wh: Any, source: str, message: str, now: datetime) -> None:
    wh.execute(
        "INSERT INTO source_state (source, last_attempt, last_error) VALUES (?, ?, ?) "
        "ON CONFLICT (source) DO UPDATE SET last_attempt = excluded.last_attempt, last_error = excluded.last_error",
        [source, now, message])


def _direct(wh: Any) -> Submit:
    def run(fn: Callable[[Any], Any]) -> Any:
        with wh.transaction():
            return fn(wh)
    return run


# -- schedule ------------------------------------------------------------------------------------
def due_sources(settings: Any, wh: Any, now: datetime | None = None) -> list[str]:
    """Configured sources whose interval (:data:`SCHEDULE`) has passed since their last success;
    after a failure a source is retried once :data:`ERROR_RETRY` (or its interval, if shorter) passed."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    due = []
    for name, cls in SOURCE_CLASSES.items():
        if not secret_value(settings, cls.key_setting):
            continue
        state = load_state(wh, name)
        last_ok, last_try = state.get("last_success"), state.get("last_attempt")
        if last_ok is not None and now - last_ok < SCHEDULE[name]:
            continue
        if (state.get("last_error") and last_try is not None
                and now - last_try < min(SCHEDULE[name], ERROR_RETRY)):
            continue
        due.append(name)
    return due


def run_due_syncs(settings: Any, wh: Any, now: datetime | None = None, *, submit: Submit | None = None,
                  **kwargs: Any) -> list[SyncResult]:
    """Run the syncs that are due (see :func:`due_sources`); for ``cclens serve``'s scheduler.

    Call it every minute or so from a background thread. ``wh`` is used for reads (a reader cursor
    is fine); pass ``submit`` to route writes through the server's single writer. Never raises for a
    source failure (it is in the results and in ``source_state.last_error``). Extra keyword
    arguments go to :func:`sync`.
    """
    names = due_sources(settings, wh, now)
    if not names:
        return []
    return sync(settings, wh, names, now=now, submit=submit, **kwargs)


def next_due(settings: Any, wh: Any, now: datetime | None = None) -> datetime | None:
    """When the next configured source becomes due (``now`` if one is due already), or None."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    times = []
    for name, cls in SOURCE_CLASSES.items():
        if not secret_value(settings, cls.key_setting):
            continue
        last_ok = load_state(wh, name).get("last_success")
        times.append(now if last_ok is None else max(now, last_ok + SCHEDULE[name]))
    return min(times) if times else None


def describe(results: Sequence[SyncResult]) -> list[dict[str, Any]]:
    """Results as rows for display."""
    return [r.as_dict() for r in results]


__all__ = ["SOURCE_NAMES", "SCHEDULE", "SyncResult", "sync", "run_due_syncs", "due_sources", "next_due",
           "plan_units", "advance", "land_pages", "landing_body", "load_state", "resolve_sources"]
