"""The metric catalog: every number cclens shows is one of these, computed one way for every surface.

::

    from cclens.metrics.catalog import compute, catalog
    res = compute(wh, "tokens", since=date(2026, 6, 1), until=date(2026, 6, 30), tz="Europe/Paris",
                  group_by=["team", "week"], filters={"model": ["claude-opus-4-8"]}, prices=table)
    res.rows     # [{"team": "platform", "week": date(2026, 6, 1), "value": 123456, "sources": [...]}, ...]
    res.unit     # "tokens"
    res.coverage # per source: rows in range, first/last day; None when the source has no data

A metric is defined once (:class:`Metric`): name, description, unit, grain, the sources that feed it,
the dimensions it can be grouped by, and its SQL: an aggregate over a *fact family*
(:mod:`cclens.metrics.facts`). :func:`compute` compiles it for a range, zone, grouping and filters into
**one read-only SELECT** (so it runs on the warehouse file or through ``cclens serve``).

Rules every metric follows:

* **No data is None, never 0.** A row exists only where a source reported; with ``group_by`` person or
  team, every person or team active in the range gets a row, with ``value`` None where no source of
  this metric covers them (a transcripts-only person has no lines-added figure, not 0).
* **Provenance per row**: ``sources`` lists the sources whose rows made the value.
* **Overlapping sources are not added up.** Per person and day the most complete source wins:
  Claude Code Analytics, then Enterprise Analytics, then events (transcripts and OTel, which are one
  row per API request, so they never double count each other). Group by ``source`` to see each
  source's own figure side by side.
* **Days**: event sources use ``tz``; the daily APIs report UTC days and are used as such.
* **Teams honour membership dates**: a person counts in a team only on the days they were in it.
* **Cost** is priced inside the query with the caller's price table (one formula:
  :data:`cclens.model.pricing.COST_SELECT`); unpriced models are listed, not counted as $0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from datetime import date, timedelta
from typing import Any, Iterable, Mapping, Sequence

from ..errors import QueryError
from ..model.identity import is_person_sql
from ..model.pricing import PriceTable
from . import facts as facts_mod, person_day, rollup
from .facts import SOURCE_BITS, Ctx, Facts, bind, mask_of, sources_of

TIME_DIMS = ("day", "week", "month")
PEOPLE_DIMS = ("person", "team")
BASE_DIMS = TIME_DIMS + PEOPLE_DIMS + ("source",)
GROUP_BY = ("day", "week", "month", "person", "team", "model", "source", "project", "token_type", "tool")
FILTERS = ("person", "team", "model", "project", "source", "token_type", "tool")


@dataclass(frozen=True)
class Metric:
    """One named measure.

    ``family`` names the fact CTE it aggregates (:mod:`cclens.metrics.facts`); ``value`` is the
    aggregate SQL over it (``f`` is the fact row); ``extra`` more aggregate columns shown with it.
    ``precedence``: overlapping sources are resolved per person-day (see module doc). A *ratio*
    metric is ``numerator`` / ``denominator`` (two catalog metrics) on the same groups; a *share*
    metric divides each row by its total over ``share_of``.
    """

    name: str
    description: str
    unit: str
    grain: str
    sources: tuple[str, ...]
    dims: tuple[str, ...]
    family: str | None = None
    value: str | None = None
    extra: tuple[tuple[str, str], ...] = ()
    precedence: bool = True
    numerator: str | None = None
    denominator: str | None = None
    share_of: str | None = None
    group: str = "other"
    notes: str = ""

    def describe(self) -> dict[str, Any]:
        """The catalog entry (what ``GET /api/v1/metrics`` and ``cclens metrics`` show)."""
        return {"name": self.name, "group": self.group, "description": self.description, "unit": self.unit,
                "grain": self.grain, "sources": list(self.sources), "group_by": list(self.dims),
                "definition": self.definition(), "notes": self.notes or None}

    def definition(self) -> str:
        if self.numerator:
            return f"{self.numerator} / {self.denominator} (on the same groups)"
        if self.share_of:
            return f"{self.share_of} of each {self.dims[-1]} / {self.share_of} of all, within each group"
        return f"{self.value} over {self.family} facts" + ("; one source per person-day" if self.precedence else "")


EV = ("transcripts", "otel")
CC, EA, OT = "claude_code_analytics", "enterprise_analytics", "otel"
OUT_SOURCES = (CC, EA, OT)
_PERSON = is_person_sql("f.person")

METRICS: dict[str, Metric] = {m.name: m for m in [
    # adoption
    Metric("active_people", "Distinct people with any Claude Code activity in any source (per day: DAU; "
           "group by week or month for WAU/MAU). Unlinked API keys are actors, not people.",
           "people", "person × day", (*EV, CC, EA), BASE_DIMS, family="activity",
           value=f"count(DISTINCT f.person) FILTER (WHERE {_PERSON})", precedence=False, group="adoption"),
    Metric("active_known_people", "Distinct people from the people file (or linked) with any activity.",
           "people", "person × day", (*EV, CC, EA), BASE_DIMS, family="activity",
           value="count(DISTINCT f.person) FILTER (WHERE f.person IN (SELECT person_id FROM person))",
           precedence=False, group="adoption"),
    Metric("known_people", "Distinct people in the people file (in the team on those days, when grouped by team).",
           "people", "person × day", ("people",), TIME_DIMS + PEOPLE_DIMS, family="roster",
           value="count(DISTINCT f.person)", precedence=False, group="adoption"),
    Metric("active_share", "Share of known people who were active: active_known_people / known_people.",
           "ratio", "person × day", (*EV, CC, EA, "people"), TIME_DIMS + PEOPLE_DIMS,
           numerator="active_known_people", denominator="known_people", group="adoption"),
    Metric("sessions", "Claude Code sessions started (events: distinct session ids, on their first day in "
           "the range; APIs: their session counts).", "sessions", "person × day", (*EV, CC, EA), BASE_DIMS,
           family="sessions", value="sum(f.sessions)", group="adoption"),
    Metric("sessions_per_active_person", "sessions / active_people.", "sessions per person", "person × day",
           (*EV, CC, EA), BASE_DIMS, numerator="sessions", denominator="active_people", group="adoption"),
    Metric("active_time", "Time Claude Code was active (OTel claude_code.active_time.total, user + cli).",
           "hours", "person × day", (OT,), BASE_DIMS, family="active_time", value="sum(f.seconds) / 3600.0",
           group="adoption"),
    # output
    Metric("lines_added", "Lines of code added by Claude Code.", "lines", "person × day", OUT_SOURCES,
           BASE_DIMS, family="output", value="sum(f.lines_added)", group="output"),
    Metric("lines_removed", "Lines of code removed by Claude Code.", "lines", "person × day", OUT_SOURCES,
           BASE_DIMS, family="output", value="sum(f.lines_removed)", group="output"),
    Metric("commits", "Commits created by Claude Code.", "commits", "person × day", OUT_SOURCES, BASE_DIMS,
           family="output", value="sum(f.commits)", group="output"),
    Metric("pull_requests", "Pull requests created by Claude Code.", "pull requests", "person × day",
           OUT_SOURCES, BASE_DIMS, family="output", value="sum(f.pull_requests)", group="output"),
    Metric("edit_accept_rate", "Edit tool suggestions accepted / (accepted + rejected), per tool (Edit, "
           "MultiEdit, Write, NotebookEdit).", "ratio", "person × day × tool", OUT_SOURCES,
           BASE_DIMS + ("tool",), family="tools",
           value="sum(f.accepted)::DOUBLE / nullif(sum(f.accepted) + sum(f.rejected), 0)",
           extra=(("accepted", "sum(f.accepted)"), ("rejected", "sum(f.rejected)")), group="output"),
    # tokens and cost
    Metric("tokens", "Tokens by type (input, output, cache_read, cache_creation) and model.", "tokens",
           "person × day × model × type", (*EV, CC), BASE_DIMS + ("model", "project", "token_type"),
           family="tokens", value="sum(f.tokens)", group="tokens",
           notes="project: only transcripts and OTel know it."),
    Metric("estimated_cost", "Estimated cost: transcripts/OTel requests priced with the cclens price table; "
           "Claude Code Analytics' own estimate where it is the source.", "USD", "person × day × model",
           (*EV, CC), BASE_DIMS + ("model", "project"), family="cost", value="sum(f.cost_usd)",
           notes="project: only transcripts and OTel know it.",
           extra=(("unpriced_models", "coalesce(list_sort(list(DISTINCT f.unpriced_model) FILTER (WHERE f.unpriced_model IS NOT NULL)), [])"),),
           group="cost"),
    Metric("billed_cost", "Billed cost from the Usage & Cost API (cost report). Organisation-wide, all API "
           "usage; no user dimension; UTC days; priority tier not included.", "USD", "day × model",
           ("cost_api",), TIME_DIMS + ("model", "source"), family="billed", value="sum(f.cost_usd)",
           precedence=False, group="cost"),
    Metric("model_mix", "Each model's share of tokens within the group.", "ratio", "person × day × model",
           (*EV, CC), BASE_DIMS + ("project", "model"), share_of="tokens", group="tokens"),
    # engagement (Enterprise Analytics)
    Metric("chat_messages", "Claude (chat) messages sent, from Enterprise Analytics.", "messages",
           "person × day", (EA,), BASE_DIMS, family="engagement", value="sum(f.chat_messages)",
           group="engagement"),
    Metric("chat_conversations", "Claude (chat) conversations, from Enterprise Analytics.", "conversations",
           "person × day", (EA,), BASE_DIMS, family="engagement", value="sum(f.chat_conversations)",
           group="engagement"),
    # efficiency
    Metric("cost_per_active_person", "estimated_cost / active_people.", "USD per person", "person × day",
           (*EV, CC, EA), BASE_DIMS, numerator="estimated_cost", denominator="active_people", group="efficiency"),
    Metric("cost_per_session", "estimated_cost / sessions.", "USD per session", "person × day", (*EV, CC, EA),
           BASE_DIMS, numerator="estimated_cost", denominator="sessions", group="efficiency"),
    Metric("cost_per_pull_request", "estimated_cost / pull_requests.", "USD per pull request", "person × day",
           (*EV, CC, EA), BASE_DIMS, numerator="estimated_cost", denominator="pull_requests", group="efficiency"),
]}

# which fact family columns carry each dimension
_DIM_COLUMN = {"model": "f.model", "project": "f.project", "token_type": "f.token_type", "tool": "f.tool"}
_FAMILY_DIMS = {"tokens": {"model", "project", "token_type"}, "cost": {"model", "project"}, "tools": {"tool"},
                "billed": {"model"}}
_SOURCE_DIM_SOURCES = {"project": {"transcripts", "otel"}}  # dims only some sources of a family carry


@dataclass
class Result:
    """What :func:`compute` returns: rows (each with ``value`` and ``sources``), unit, and coverage."""

    metric: str
    unit: str
    group_by: list[str]
    since: date
    until: date
    tz: str
    rows: list[dict[str, Any]]
    coverage: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "unit": self.unit, "group_by": self.group_by, "since": self.since,
                "until": self.until, "tz": self.tz, "rows": self.rows, "coverage": self.coverage,
                "notes": self.notes}

    @property
    def columns(self) -> list[str]:
        return list(self.rows[0].keys()) if self.rows else [*self.group_by, "value", "sources"]


# Modules under cclens.metrics that add metrics when imported (each calls :func:`register`), loaded the
# first time the catalog is used. A new metric family is one module plus one entry here.
METRIC_MODULES = ["delivery"]
_loaded = False


def load_modules() -> None:
    """Import :data:`METRIC_MODULES` once (a module not written yet is skipped)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for name in METRIC_MODULES:
        try:
            importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise


def register(metric: Metric, family: Any = None) -> None:
    """Add ``metric`` to the catalog (idempotent by name). ``family``, when given, is a function
    ``fn(facts) -> cte_name`` adding the fact family ``metric.family`` to a :class:`Facts` builder; its
    rows have the standard columns (day, person, srcs, tier, …). New sources get a bit with
    :func:`cclens.metrics.facts.register_source`."""
    if family is not None and not hasattr(Facts, f"f_{metric.family}"):
        setattr(Facts, f"f_{metric.family}", family)
    METRICS.setdefault(metric.name, metric)


def catalog() -> list[dict[str, Any]]:
    """Every metric's catalog entry, in catalog order."""
    load_modules()
    return [m.describe() for m in METRICS.values()]


def get(name: str) -> Metric:
    load_modules()
    try:
        return METRICS[name]
    except KeyError:
        raise QueryError(f"unknown metric {name!r}; `cclens metrics` lists them "
                         f"({', '.join(METRICS)})") from None


def _check(metric: Metric, group_by: Sequence[str], filters: Mapping[str, Sequence[str]]) -> None:
    for g in group_by:
        if g not in GROUP_BY:
            raise QueryError(f"unknown group_by {g!r}; use any of {', '.join(GROUP_BY)}")
        if g not in metric.dims:
            why = (" (the Cost API reports no users: use estimated_cost per person or team)"
                   if metric.name == "billed_cost" and g in PEOPLE_DIMS else "")
            raise QueryError(f"{metric.name} cannot be grouped by {g}{why}; it can by {', '.join(metric.dims)}")
    if len(set(group_by)) != len(group_by):
        raise QueryError("group_by lists a dimension twice")
    for k in filters:
        if k not in FILTERS:
            raise QueryError(f"unknown filter {k!r}; use any of {', '.join(FILTERS)}")


class _Compiler:
    """Compiles metrics for one (range, zone, grouping, filters) into one SELECT."""

    def __init__(self, ctx: Ctx, group_by: list[str], filters: Mapping[str, Sequence[str]], layer: bool = False):
        self.ctx = ctx
        self.group_by = group_by
        self.filters = {k: list(v) for k, v in filters.items() if v}
        self.layer = layer   # read the person-day layer (rows already won their person-day)
        self.facts = person_day.LayerFacts(ctx) if layer else Facts(ctx)
        self.n = 0
        self.values: dict[str, Any] = {}

    def param(self, value: Any) -> str:
        self.n += 1
        self.values[f"p{self.n}"] = value
        return f"$p{self.n}"

    def key_expr(self, dim: str) -> str:
        return {"day": "f.day", "week": "date_trunc('week', f.day)::DATE", "month": "strftime(f.day, '%Y-%m')",
                "person": "f.person", "team": "coalesce(m.team_id, '(no team)')", "source": "f.source",
                }.get(dim) or f"coalesce({_DIM_COLUMN[dim]}, 'unknown')"

    def simple(self, metric: Metric) -> str:
        """SELECT keys…, value, extra…, sources (a bitmask) over the metric's family."""
        family = metric.family
        if family == "tokens" and ("token_type" in self.group_by or "token_type" in self.filters):
            family = "tokens_by_type"
        fam = self.facts.family(family)
        dims = _FAMILY_DIMS.get(metric.family, set())
        keys = self.group_by
        where = ["TRUE"]
        for dim in ("model", "project", "token_type", "tool"):
            if dim in self.filters and dim in dims:
                where.append(f"{_DIM_COLUMN[dim]} IN (SELECT unnest({self.param(self.filters[dim])}))")
        for dim in keys:
            if dim in _SOURCE_DIM_SOURCES:  # sources without the dimension drop out
                where.append(f"(f.srcs & {mask_of(_SOURCE_DIM_SOURCES[dim])}) <> 0")
        if "person" in self.filters:
            where.append(f"f.person IN (SELECT unnest({self.param(self.filters['person'])}))")
        srcs = "f.srcs"
        if "source" in self.filters:
            unknown = set(self.filters["source"]) - set(SOURCE_BITS)
            if unknown:
                raise QueryError(f"unknown source {sorted(unknown)[0]!r}; sources are {', '.join(SOURCE_BITS)}")
            m = mask_of(self.filters["source"])
            where.append(f"(f.srcs & {m}) <> 0")
            srcs = f"(f.srcs & {m})"
        base = self.facts.add_cte(f"SELECT f.* REPLACE ({srcs} AS srcs) FROM {fam} f WHERE {' AND '.join(where)}")
        if "source" in keys:
            bits = ", ".join(f"({b}, '{n}')" for n, b in SOURCE_BITS.items())
            base = (f"SELECT b.* REPLACE (s.bit AS srcs), s.source FROM {base} b "
                    f"JOIN (VALUES {bits}) s(bit, source) ON (b.srcs & s.bit) <> 0")
        elif metric.precedence and not (self.layer and family in person_day.LAYER_FAMILIES):
            # per person and day keep the rows of the most complete source (lowest tier) that reported
            base = (f"SELECT b.* FROM {base} b JOIN (SELECT person, day, min(tier) AS tier FROM {base} "
                    f"GROUP BY person, day) w ON w.person = b.person AND w.day = b.day AND w.tier = b.tier")
        else:
            base = f"SELECT * FROM {base}"
        team_join = ""
        team_where = ""
        if "team" in keys or "team" in self.filters:
            team_join = ("LEFT JOIN membership m ON m.person_id = f.person AND f.day >= m.valid_from "
                         "AND (m.valid_to IS NULL OR f.day <= m.valid_to)")
            if "team" in self.filters:
                team_where = f"WHERE m.team_id IN (SELECT unnest({self.param(self.filters['team'])}))"
        key_sql = [f"{self.key_expr(k)} AS {k}" for k in keys]
        extra = [f"{sql} AS {name}" for name, sql in metric.extra]
        cols = ", ".join([*key_sql, f"{metric.value} AS value", *extra, "bit_or(f.srcs) AS sources"])
        group = f"GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}" if keys else ""
        return f"SELECT {cols}\nFROM ({base}) f {team_join} {team_where}\n{group}"

    def select(self, metric: Metric) -> str:
        if metric.numerator:
            return self.ratio(metric)
        if metric.share_of:
            return self.share(metric)
        sql = self.simple(metric)
        if self.population_applies(metric):
            sql = self.with_population(sql)
        return sql

    def population_applies(self, metric: Metric) -> bool:
        # per person only: the rows of people a source of this metric does not cover (no data, not 0).
        # (Per team it would double the work of every team query for the odd team with no data at all.)
        keys = set(self.group_by)
        return ("person" in keys and keys <= set(TIME_DIMS + PEOPLE_DIMS)
                and metric.family not in ("activity", "roster", "billed"))

    def with_population(self, sql: str) -> str:
        """Every person/team active in the range gets a row; None where this metric has no source."""
        pop = self.simple(_ALL_ACTORS)
        using = ", ".join(self.group_by)
        return (f"SELECT p.{', p.'.join(self.group_by)}, v.* EXCLUDE ({using}) REPLACE "
                f"(coalesce(v.sources, 0) AS sources)\n"
                f"FROM ({pop}) p LEFT JOIN ({sql}) v USING ({using})")

    def ratio(self, metric: Metric) -> str:
        num, den = METRICS[metric.numerator], METRICS[metric.denominator]
        keys = self.group_by or []
        on = " AND ".join(f"n.{k} IS NOT DISTINCT FROM d.{k}" for k in keys) or "TRUE"
        key_cols = ", ".join(f"coalesce(n.{k}, d.{k}) AS {k}" for k in keys)
        return f"""SELECT {key_cols + ',' if keys else ''}
       CASE WHEN n.value IS NULL OR d.value IS NULL THEN NULL ELSE n.value::DOUBLE / nullif(d.value, 0) END AS value,
       n.value AS {num.name}, d.value AS {den.name},
       coalesce(n.sources, 0) | coalesce(d.sources, 0) AS sources
FROM ({self.select(num)}) n FULL OUTER JOIN ({self.select(den)}) d ON {on}"""

    def share(self, metric: Metric) -> str:
        base = METRICS[metric.share_of]
        inner_keys = [k for k in self.group_by if k != "model"] + ["model"]
        saved, self.group_by = self.group_by, inner_keys
        try:
            inner = self.simple(base)
        finally:
            self.group_by = saved
        part = [k for k in inner_keys if k != "model"]
        over = f"PARTITION BY {', '.join(part)}" if part else ""
        return (f"SELECT {', '.join(inner_keys)}, value::DOUBLE / nullif(sum(value) OVER ({over}), 0) AS value, "
                f"value AS {base.name}, sources FROM ({inner}) s")


# the population for person grouping: every actor (API keys included), so their rows show too
_ALL_ACTORS = Metric("_all_actors", "", "", "", (), BASE_DIMS, family="activity", value="count(*)",
                     precedence=False)


def default_range(tz: str, since: date | None, until: date | None, days: int = 30) -> tuple[date, date]:
    """``since``/``until`` with defaults: until = today in ``tz``, since = until - (days - 1)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    until = until or datetime.now(ZoneInfo(tz)).date()
    since = since or (until - timedelta(days=days - 1))
    if since > until:
        raise QueryError(f"since ({since}) is after until ({until})")
    return since, until


def compile_metric(wh: Any, name: str, *, since: date | None = None, until: date | None = None,
                   tz: str = "UTC", group_by: Iterable[str] = (), filters: Mapping[str, Sequence[str]] | None = None,
                   prices: PriceTable | None = None) -> tuple[str, list[Any]]:
    """The one SELECT (and its positional parameters) that computes metric ``name``."""
    sql, params, _layer = _compile(wh, name, since=since, until=until, tz=tz, group_by=group_by, filters=filters,
                                   prices=prices)
    return sql, params


def _compile(wh: Any, name: str, *, since: date | None, until: date | None, tz: str, group_by: Iterable[str],
             filters: Mapping[str, Sequence[str]] | None, prices: PriceTable | None) -> tuple[str, list[Any], bool]:
    """:func:`compile_metric`, and whether the query reads the person-day layer."""
    metric = get(name)
    group_by = [g for g in group_by if g]
    if metric.share_of and "model" not in group_by:
        group_by = [*group_by, "model"]
    filters = dict(filters or {})
    _check(metric, group_by, filters)
    since, until = default_range(tz, since, until)
    models: list[str] = []
    use_rollups, dirty, pd_built, pd_fresh = (rollup.layer_state(wh) if facts_mod.USE_ROLLUPS
                                              else (False, {}, False, False))
    ctx = Ctx(tz=tz, since=since, until=until, prices=prices, models=models, rollups=use_rollups, dirty=dirty)
    prices_ok = "cost" not in _families(metric) or Facts(ctx).rollup_prices_ok()
    layer = (use_rollups and facts_mod.USE_LAYER
             and person_day.usable(ctx, group_by, filters, pd_built, pd_fresh, dirty, prices_ok))
    comp = _Compiler(ctx, group_by, filters, layer=layer)
    comp.facts.want_cost = "cost" in _families(metric)  # one api_request scan for cost and the rest
    body = comp.select(metric)
    if comp.facts.priced:
        if prices is None:
            raise QueryError(f"{name} needs a price table (prices=…)")
        if layer:
            models.extend(r["model"] for r in wh.query(*bind(person_day.models_sql(), ctx.params())))
        else:
            models.extend(r["model"] for r in wh.query(rollup.models_sql(dirty.get("api_request", [])) if use_rollups
                                                         else "SELECT DISTINCT model FROM api_request WHERE model IS NOT NULL"))
    names = ""
    if "person" in group_by:
        names += ", (SELECT coalesce(p.name, NULL) FROM person p WHERE p.person_id = r.person) AS person_name"
    if "team" in group_by:
        names += ", (SELECT t.name FROM team t WHERE t.team_id = r.team) AS team_name"
    order = f"ORDER BY {', '.join(group_by)}" if group_by else ""
    sql = f"{comp.facts.sql_with()}SELECT r.*{names} FROM (\n{body}\n) r {order}"
    return (*bind(sql, {**comp.ctx.params(), **comp.values}), layer)


def compute(wh: Any, name: str, *, since: date | None = None, until: date | None = None, tz: str = "UTC",
            group_by: Iterable[str] = (), filters: Mapping[str, Sequence[str]] | None = None,
            prices: PriceTable | None = None, coverage: bool = True) -> Result:
    """Compute metric ``name`` over days ``since``..``until`` (inclusive, in ``tz``; default the last 30
    days), grouped by ``group_by`` (any of day, week, month, person, team, model, source, project,
    token_type, tool that the metric allows) and restricted by ``filters`` ({dimension: [values]}).
    Cost metrics need ``prices`` (:func:`cclens.model.pricing.effective_table`)."""
    metric = get(name)
    group_by = [g for g in group_by if g]
    since, until = default_range(tz, since, until)
    sql, params, layer = _compile(wh, name, since=since, until=until, tz=tz, group_by=group_by, filters=filters,
                                  prices=prices)
    rows = [{k: (sources_of(v) if k == "sources" else _plain(v)) for k, v in r.items()} for r in wh.query(sql, params)]
    if metric.share_of and "model" not in group_by:
        group_by = [*group_by, "model"]
    res = Result(metric=name, unit=metric.unit, group_by=group_by, since=since, until=until, tz=tz, rows=rows)
    if coverage:
        from .coverage import source_coverage

        res.coverage = source_coverage(wh, _feeding(metric), since, until, tz, layer=layer)
        missing = [s for s, c in res.coverage.items() if c is None]
        if missing:
            res.notes.append(f"no data in this range from: {', '.join(missing)} (shown as no data, not 0)")
        if "source" in group_by and group_by == ["source"]:
            seen = {r["source"] for r in rows}
            for s in _feeding(metric):
                if s not in seen and s != "people":
                    rows.append({"source": s, "value": None, "sources": []})
    if metric.notes and "project" in group_by:
        res.notes.append(metric.notes)
    if any(s in _feeding(metric) for s in ("claude_code_analytics", "enterprise_analytics", "cost_api")) and tz != "UTC":
        res.notes.append("API sources report UTC days; transcripts and OTel use " + tz)
    return res


def _families(metric: Metric) -> set[str]:
    if metric.numerator:
        return _families(METRICS[metric.numerator]) | _families(METRICS[metric.denominator])
    if metric.share_of:
        return _families(METRICS[metric.share_of])
    return {metric.family} if metric.family else set()


def _plain(v: Any) -> Any:
    """Sums of BIGINT are HUGEINT, which reach Python as int directly but as Decimal through Arrow (a
    running server): make both the same plain number."""
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def _feeding(metric: Metric) -> tuple[str, ...]:
    if metric.numerator:
        return tuple(dict.fromkeys(_feeding(METRICS[metric.numerator]) + _feeding(METRICS[metric.denominator])))
    if metric.share_of:
        return _feeding(METRICS[metric.share_of])
    return metric.sources
