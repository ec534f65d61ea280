"""What the four Anthropic reporting sources share: units of work, the source interface, time helpers.

A source pulls *units*: half-open UTC ranges ``[start, end)`` (a week of days for Claude Code Analytics, a
run of buckets for usage and cost, a few days for Enterprise Analytics). The sync engine
(:mod:`cclens.sources.sync`) decides which units to pull; a source knows how to fetch one unit (all
pages) and how to replace that unit's model rows::

    class MySource(ApiSource):
        name = "my_source"; key_setting = "anthropic_admin_key"
        interval = timedelta(hours=1); revisable = timedelta(days=3)
        unit_span = grain = timedelta(days=1)

        def available_end(self, now): return floor_day(now)
        def fetch(self, client, unit): return client.fetch_all("/v1/…", {"starting_at": …})
        def replace(self, wh, unit, pages, fetched_at, run_id):
            wh.execute("DELETE FROM my_table WHERE day >= ? AND day < ?", [...])
            return each_page(wh, pages, f"INSERT INTO my_table SELECT … FROM {PAGE}")
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, ClassVar, Sequence

from ._http import ApiClient, Page

UTC = timezone.utc
#: One page as a relation inside a statement run by :func:`each_page`: columns payload (BLOB: read it
#: as ``decode(payload)``), day (the day a one-day query asked for, else NULL) and url.
PAGE = "(SELECT ?::BLOB AS payload, ?::DATE AS day, ?::VARCHAR AS url)"


@dataclass(frozen=True)
class Unit:
    """A half-open UTC range ``[start, end)`` of data, fetched and written as one."""

    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """A stable label: ``2026-06-01`` for one whole day, else ``<start>/<end>`` in RFC 3339."""
        if self.end - self.start == timedelta(days=1) and self.start.time() == time(0):
            return self.start.date().isoformat()
        return f"{iso(self.start)}/{iso(self.end)}"

    def days(self) -> list[date]:
        """The UTC days this unit covers (whole days only)."""
        out, d = [], self.start
        while d < self.end:
            out.append(d.date())
            d += timedelta(days=1)
        return out


class UnitNotAvailable(Exception):
    """Raised by :meth:`ApiSource.fetch` when the API says (part of) this unit is not available yet,
    for example an Enterprise day later than the latest available day. ``pages`` holds what was
    fetched before that point and ``end`` where it stops; the engine writes ``[unit.start, end)``
    from them (when ``end`` > start) and ends the source's run there, cleanly, with ``note``."""

    def __init__(self, note: str, *, pages: list | None = None, end: datetime | None = None):
        super().__init__(note)
        self.note = note
        self.pages = pages or []
        self.end = end


class ApiSource:
    """One Anthropic reporting source. Subclasses set the class attributes and implement
    :meth:`available_end`, :meth:`fetch` and :meth:`replace`; ``settings`` is the cclens Settings."""

    name: ClassVar[str]
    key_setting: ClassVar[str]            # the Settings field holding this source's key
    key_hint: ClassVar[str] = ""          # what kind of key it must be, for error messages
    auth_statuses: ClassVar[tuple[int, ...]] = (401, 403)
    rate_per_minute: ClassVar[float | None] = None   # client-side limit when the API publishes one
    interval: ClassVar[timedelta]         # how often `cclens serve` runs it
    revisable: ClassVar[timedelta]        # trailing window the API may still revise: re-fetched each run
    unit_span: timedelta                  # the largest unit
    grain: timedelta                      # unit boundaries are aligned to this
    tables: ClassVar[tuple[str, ...]]     # model tables it writes (for reports and status)

    def __init__(self, settings: Any):
        self.settings = settings
        self.notes: list[str] = []

    def earliest(self, now: datetime) -> datetime | None:
        """The first instant the API serves, or None when unbounded."""
        return None

    def cursor_tag(self) -> str:
        """What the cursor's coverage depends on besides time (e.g. bucket width and grouping); a
        change makes the engine start over rather than mix incomparable rows."""
        return ""

    def headers(self) -> dict[str, str]:
        """Extra request headers this source needs (e.g. an ``anthropic-beta`` flag)."""
        return {}

    def available_end(self, now: datetime) -> datetime:
        """Exclusive end of what may be asked at ``now`` (never a range the API would reject)."""
        raise NotImplementedError

    def fetch(self, client: ApiClient, unit: Unit) -> list[Page]:
        """All pages of ``unit`` (may raise :class:`UnitNotAvailable`)."""
        raise NotImplementedError

    def replace(self, wh: Any, unit: Unit, pages: Sequence[Page], fetched_at: datetime,
                run_id: str) -> int:
        """Replace the model rows of ``unit`` with those in ``pages`` (inside the caller's
        transaction; :func:`each_page` lets DuckDB parse them); returns the number of model rows
        written. Landing and the cursor are the engine's job."""
        raise NotImplementedError


# -- time ----------------------------------------------------------------------------------------
def iso(ts: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``: ``2026-06-01T00:00:00Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(text: str) -> datetime:
    """An RFC 3339 timestamp (``Z`` or offset) as an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def day_start(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


def floor_day(ts: datetime) -> datetime:
    return day_start(ts.astimezone(UTC).date())


def floor_to(ts: datetime, grain: timedelta) -> datetime:
    """``ts`` rounded down to a multiple of ``grain`` since the epoch (UTC)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((ts - epoch) // grain) * grain


def page_day(page: Any) -> date | None:
    """The day a one-day query asked for (its ``date`` or ``YYYY-MM-DD`` ``starting_at``), else None."""
    query = dict(page.params)
    asked = query.get("date") or query.get("starting_at")
    return date.fromisoformat(asked) if asked and len(asked) == 10 else None


def each_page(wh: Any, pages: Any, sql: str, before: list[Any] | tuple = (), after: list[Any] | tuple = ()) -> int:
    """Run ``sql`` once per page, its :data:`PAGE` bound to that page's body (DuckDB parses one page
    at a time: bounded memory, and the body is handed over once, as bytes). ``before``/``after`` are
    the statement's other parameters around PAGE's three. Returns the sum of what each run returned."""
    total = 0
    for page in pages:
        total += int(wh.scalar(sql, [*before, page.body, page_day(page), page.url, *after]) or 0)
    return total
