"""Catalog results derived exactly from other catalog results of the same page, so a page runs fewer queries.

On a small organisation a catalog query costs mostly fixed work (planning and running a few dozen small
operators), so the number of queries a page makes is most of its time. Many figures on one page are the
same metric at a coarser grouping (a KPI total next to a per-day chart of the same metric), or a ratio
of two metrics the page already has. This module computes those from the finer rows, giving the rows
:func:`cclens.metrics.catalog.compute` would give (same keys, values, extra columns, ``sources``, names
and order), and refuses every case where that is not exact:

* **sums** (``value`` is ``sum(f.x)``): a coarser grouping of a finer one, dropping ``day`` (or turning it
  into ``week``/``month``), ``model`` or ``tool`` — each fact row is in exactly one such group. Never
  ``team`` (a person in two teams on one day counts in both), ``person`` (per person, a fact row without
  a person key drops out of the population join), ``source`` (a row two sources saw is in both groups,
  and precedence is off), ``project`` or ``token_type`` (groups that drop rows).
* **distinct people** (``active_people``, ``active_known_people``, ``known_people``): whether a key
  counts depends only on the person, so any grouping of ``person × (day|week|month)`` rows gives them.
* **ratios** (``cost_per_session`` …): numerator / denominator on the same groups, as the catalog's
  FULL OUTER JOIN does.
* **shares** (``model_mix`` by model): each model's tokens over all tokens.
* **edit_accept_rate**: from its ``accepted``/``rejected`` sums.

Sums are derived only while every value is a whole number (tokens, lines, commits, sessions — also
when stored as DOUBLE): adding fractional values (cost) in another order changes the last bits, and a
KPI rounded to cents could then show one cent off the API's figure. Such a call raises
:class:`NotDerivable` and the dashboard queries it. ``tests/test_dashboard_derive.py`` checks every page
equal with and without derivation.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Callable, Iterable

SUM_DROPPABLE = {"day", "model", "tool"}
DISTINCT_PEOPLE = {"active_people", "active_known_people", "known_people"}
TIME_FROM_DAY: dict[str, Callable[[date], Any]] = {
    "week": lambda d: d - timedelta(days=d.weekday()),      # date_trunc('week', day)::DATE (ISO, Monday)
    "month": lambda d: d.strftime("%Y-%m"),                 # strftime(day, '%Y-%m')
}


class NotDerivable(ValueError):
    """The requested grouping cannot be computed exactly from the given one."""


def _sum(values: Iterable[Any]) -> Any:
    """SQL ``sum``: None when every value is None."""
    vals = [v for v in values if v is not None]
    return sum(vals) if vals else None


def _sort_key(keys: list[str]) -> Callable[[dict[str, Any]], tuple]:
    # ORDER BY keys (ASC NULLS LAST): DuckDB orders VARCHAR by bytes, the same order as Python str for UTF-8
    return lambda r: tuple((r.get(k) is None, r.get(k) if r.get(k) is not None else 0) for k in keys)


def _coarse_key(row: dict[str, Any], fine: tuple[str, ...], coarse: tuple[str, ...]) -> tuple:
    out = []
    for k in coarse:
        if k in fine:
            out.append(row[k])
        else:  # week or month from day
            out.append(None if row["day"] is None else TIME_FROM_DAY[k](row["day"]))
    return tuple(out)


def _check_keys(fine: tuple[str, ...], coarse: tuple[str, ...], droppable: set[str]) -> None:
    for k in coarse:
        if k not in fine and not (k in TIME_FROM_DAY and "day" in fine):
            raise NotDerivable(f"{k} is not in the finer grouping {fine}")
    for k in fine:
        if k not in coarse and k not in droppable and not (k == "day" and any(c in TIME_FROM_DAY for c in coarse)):
            raise NotDerivable(f"dropping {k} is not exact")


def _names(row: dict[str, Any], coarse: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    if "person" in coarse:
        out["person_name"] = row.get("person_name")
    if "team" in coarse:
        out["team_name"] = row.get("team_name")
    return out


def regroup(metric: Any, rows: list[dict[str, Any]], fine: tuple[str, ...], coarse: tuple[str, ...]) -> list[dict[str, Any]]:
    """The rows of ``metric`` grouped by ``coarse``, from its rows grouped by ``fine`` (same range and
    filters). Raises :class:`NotDerivable` when that would not equal the catalog's own result."""
    from cclens.metrics.facts import mask_of, sources_of

    fine, coarse = tuple(fine), tuple(coarse)
    if "source" in fine or "source" in coarse:
        raise NotDerivable("the source grouping turns precedence off")
    if metric.name in DISTINCT_PEOPLE:
        if "person" not in fine:
            raise NotDerivable("distinct people need the person grouping")
        _check_keys(fine, coarse, {"day", "person"})
        combine = "people"
    elif metric.name == "edit_accept_rate":
        _check_keys(fine, coarse, SUM_DROPPABLE)
        combine = "accept"
    elif (metric.value and metric.value.startswith("sum(f.") and metric.value.endswith(")")
          and metric.value.count("(") == 1 and all(sql.startswith("sum(f.") or name == "unpriced_models"
                                                   for name, sql in metric.extra)):
        if "person" in fine or "person" in coarse:
            raise NotDerivable("per person, the catalog joins every active actor (population)")
        _check_keys(fine, coarse, SUM_DROPPABLE)
        combine = "sum"
    else:
        raise NotDerivable(f"{metric.name} is not a sum, a distinct count of people or the accept rate")

    summed = {"people": (), "accept": ("accepted", "rejected")}.get(
        combine, ("value", *(n for n, _ in metric.extra if n != "unpriced_models")))
    for r in rows:
        for k in summed:
            v = r.get(k)
            if isinstance(v, float) and not v.is_integer():
                raise NotDerivable(f"{metric.name}: fractional values summed in another order change the last bits")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(_coarse_key(r, fine, coarse), []).append(r)
    if not coarse and not groups:
        groups[()] = []   # an aggregate without GROUP BY is one row, even over nothing
    out = []
    for key, rs in groups.items():
        row: dict[str, Any] = dict(zip(coarse, key))
        if combine == "people":
            row["value"] = len({r["person"] for r in rs if r.get("value")})
        elif combine == "accept":
            acc, rej = _sum(r.get("accepted") for r in rs), _sum(r.get("rejected") for r in rs)
            row["value"] = None if acc is None or rej is None or acc + rej == 0 else float(acc) / (acc + rej)
            row["accepted"], row["rejected"] = acc, rej
        else:
            row["value"] = _sum(r.get("value") for r in rs)
            for name, _sql in metric.extra:
                if name == "unpriced_models":
                    row[name] = sorted({m for r in rs for m in (r.get(name) or [])})
                else:
                    row[name] = _sum(r.get(name) for r in rs)
        row["sources"] = sources_of(mask_of({s for r in rs for s in r.get("sources") or []}))
        row.update(_names(rs[0] if rs else {}, coarse))
        out.append(row)
    out.sort(key=_sort_key(list(coarse)))
    return out


def ratio(metric: Any, num: list[dict[str, Any]], den: list[dict[str, Any]], group_by: tuple[str, ...]) -> list[dict[str, Any]]:
    """``metric`` (numerator / denominator) from the two metrics' rows on the same groups."""
    from cclens.metrics.facts import mask_of, sources_of

    keys = tuple(group_by)
    n_by = {tuple(r[k] for k in keys): r for r in num}
    d_by = {tuple(r[k] for k in keys): r for r in den}
    out = []
    for key in dict.fromkeys([*n_by, *d_by]):
        n, d = n_by.get(key, {}), d_by.get(key, {})
        nv, dv = n.get("value"), d.get("value")
        row: dict[str, Any] = dict(zip(keys, key))
        row["value"] = None if nv is None or dv is None or dv == 0 else float(nv) / dv
        row[metric.numerator], row[metric.denominator] = nv, dv
        row["sources"] = sources_of(mask_of({*(n.get("sources") or []), *(d.get("sources") or [])}))
        for name in ("person_name", "team_name"):
            if name in n or name in d:
                row[name] = n.get(name) if n.get(name) is not None else d.get(name)
        out.append(row)
    out.sort(key=_sort_key(list(keys)))
    return out


def share(metric: Any, base_rows: list[dict[str, Any]], group_by: tuple[str, ...]) -> list[dict[str, Any]]:
    """``model_mix`` by model from the base metric (tokens) by model."""
    if tuple(group_by) != ("model",):
        raise NotDerivable("only the share by model alone is derived")
    total = _sum(r.get("value") for r in base_rows)
    return [{"model": r["model"], "value": None if r.get("value") is None or not total else float(r["value"]) / total,
             metric.share_of: r.get("value"), "sources": list(r.get("sources") or [])} for r in base_rows]
