"""What a dashboard page is made of: filters, provenance, KPIs, charts, tables — plain data.

Page builders (:mod:`cclens.server.dashboard_pages`) return a :class:`Page`; the router renders it with
Jinja2 or, for ``?format=csv&table=ID``, writes that table's rows as CSV (the same rows the HTML shows).
Every figure carries a :class:`Prov` (the metric it comes from, the sources behind it, a definition):
shown on hover and as a numbered footnote.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_DAYS = 30


@dataclass(frozen=True)
class Filters:
    """The filters every page takes from its URL: inclusive day range in ``tz``, and a team."""

    since: date
    until: date
    tz: str = "UTC"
    team: str | None = None
    problems: tuple[str, ...] = ()

    @classmethod
    def parse(cls, params: dict[str, str], default_tz: str | None = None, today: date | None = None) -> "Filters":
        problems: list[str] = []
        tz = (params.get("tz") or default_tz or "UTC").strip()
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"unknown time zone {tz!r}; showing UTC")
            tz = "UTC"
        today = today or datetime.now(ZoneInfo(tz)).date()
        until = _day(params.get("until"), "until", problems) or today
        since = _day(params.get("since"), "since", problems) or until - timedelta(days=DEFAULT_DAYS - 1)
        if since > until:
            problems.append("'since' is after 'until'; swapped them")
            since, until = until, since
        team = (params.get("team") or "").strip() or None
        return cls(since, until, tz, team, tuple(problems))

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    def previous(self) -> "Filters":
        """The period of the same length just before this one."""
        return replace(self, since=self.since - timedelta(days=self.days), until=self.since - timedelta(days=1))

    def params(self, **extra: Any) -> dict[str, str]:
        out = {"since": self.since.isoformat(), "until": self.until.isoformat(), "tz": self.tz}
        if self.team:
            out["team"] = self.team
        out.update({k: str(v) for k, v in extra.items() if v is not None})
        return out

    def query(self, **extra: Any) -> str:
        return urlencode(self.params(**extra))


def _day(value: str | None, name: str, problems: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        problems.append(f"'{name}' is not a date (YYYY-MM-DD): {value!r}; ignored")
        return None


@dataclass
class Prov:
    """Provenance of a figure: the catalog metric, the sources that feed it, and what it means."""

    metric: str
    sources: tuple[str, ...]
    text: str
    n: int = 0

    @property
    def title(self) -> str:
        return f"{self.metric} · sources: {', '.join(self.sources) or 'none'} · {self.text}"


@dataclass
class Kpi:
    id: str
    label: str
    raw: float | int | None
    unit: str
    prov: Prov
    previous: float | int | None = None
    good_when_up: bool = True

    @property
    def text(self) -> str:
        return fmt(self.raw, self.unit)

    @property
    def trend(self) -> str:
        if self.raw is None or self.previous is None:
            return "no previous period data" if self.raw is not None else ""
        if not self.previous:
            return "new this period" if self.raw else "same as previous period"
        change = (self.raw - self.previous) / abs(self.previous)
        return f"{'▲' if change >= 0 else '▼'} {abs(change) * 100:.0f}% vs previous period ({fmt(self.previous, self.unit)})"

    @property
    def trend_class(self) -> str:
        if self.raw is None or not self.previous:
            return ""
        up = self.raw >= self.previous
        return "up" if up == self.good_when_up else "down"


@dataclass
class Column:
    key: str
    label: str
    unit: str = "text"          # text | int | usd | tokens | pct | num | ts
    href: Callable[[dict[str, Any]], str | None] | None = None

    @property
    def numeric(self) -> bool:
        return self.unit in ("int", "usd", "tokens", "pct", "num")


@dataclass
class Table:
    id: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    prov: Prov
    empty: str | None = None
    limit: int = 500
    kind: str = "table"

    @property
    def cells(self) -> list[list[dict[str, Any]]]:
        out = []
        for row in self.rows[:self.limit]:
            out.append([{"text": fmt(row.get(c.key), c.unit), "numeric": c.numeric,
                         "sort": "" if row.get(c.key) is None else row.get(c.key),
                         "href": c.href(row) if c.href else None} for c in self.columns])
        return out

    @property
    def more(self) -> str | None:
        if len(self.rows) > self.limit:
            return f"Showing {self.limit} of {len(self.rows)} rows; the CSV has them all."
        return None

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([c.key for c in self.columns])
        for row in self.rows:
            w.writerow([csv_cell(row.get(c.key)) for c in self.columns])
        return buf.getvalue()


@dataclass
class Chart:
    id: str
    title: str
    spec: dict[str, Any]
    prov: Prov
    empty: str | None = None
    tall: bool = False
    kind: str = "chart"

    @property
    def spec_json(self) -> str:
        return json.dumps(self.spec, default=str).replace("</", "<\\/")


@dataclass
class Html:
    id: str
    title: str
    html: str
    prov: Prov
    kind: str = "html"


@dataclass
class Empty:
    """An empty state: which source to set up, and how."""

    source: str
    title: str
    text: str
    command: str | None = None
    doc: str | None = None


@dataclass
class Page:
    key: str
    title: str
    subtitle: str = ""
    section: str = ""
    blocks: list[Any] = field(default_factory=list)
    empty: list[Empty] = field(default_factory=list)
    extra_params: dict[str, str] = field(default_factory=dict)
    notes: list[Prov] = field(default_factory=list)
    generated: str = ""

    def add(self, *blocks: Any) -> None:
        self.blocks.extend(blocks)

    def row(self, *blocks: Any) -> None:
        self.blocks.append(_Row(list(blocks)))

    def tables(self) -> dict[str, Table]:
        out: dict[str, Table] = {}
        for b in self.blocks:
            for item in (b.items if isinstance(b, _Row) else [b]):
                if isinstance(item, Table):
                    out[item.id] = item
        return out

    def finish(self) -> "Page":
        """Number the provenance notes (one per distinct metric and definition)."""
        seen: dict[tuple[str, str], int] = {}
        self.notes = []
        for b in self.blocks:
            for item in (b.items if isinstance(b, (_Row, Kpis)) else [b]):
                p = item.prov
                key = (p.metric, p.text)
                if key not in seen:
                    seen[key] = len(self.notes) + 1
                    self.notes.append(Prov(p.metric, p.sources, f"{p.text} (sources: {', '.join(p.sources) or 'none'})",
                                           seen[key]))
                p.n = seen[key]
        self.generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return self


@dataclass
class _Row:
    items: list[Any]
    kind: str = "row"


@dataclass
class Kpis:
    items: list[Kpi]
    kind: str = "kpis"


def fmt(value: Any, unit: str) -> str:
    """A value as the dashboard shows it (None is an em dash: no data, never zero)."""
    if value is None:
        return "—"
    if unit == "usd":
        return f"${value:,.2f}"
    if unit == "int":
        return f"{value:,.0f}"
    if unit == "tokens":
        v = float(value)
        for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(v) >= div:
                return f"{v / div:.1f}{suffix}"
        return f"{v:.0f}"
    if unit == "pct":
        return f"{value * 100:.1f}%"
    if unit == "num":
        return f"{value:,.2f}"
    if unit == "ts" and hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(round(value, 10))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
