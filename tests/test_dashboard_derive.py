"""Figures the dashboard derives from other figures of the same page (cclens.server.dashboard_derive) equal
what the metrics catalog computes directly: row by row for each derivation, and page by page (every KPI,
chart and table) with derivation on and off, over several filters (a team, one day, an empty range,
another zone). Also: derivation makes pages run fewer catalog queries, and inexact cases are refused."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date

import pytest
from dashboard_support import SINCE, UNTIL, build


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from cclens.config import Settings
    from cclens.demo import demo_settings
    from cclens.warehouse import open_warehouse

    db = build(tmp_path_factory.mktemp("derive"))
    wh = open_warehouse(db)
    yield wh, demo_settings(Settings(db=db), db, tz="UTC")
    wh.close()


def _same(a, b, path="") -> None:
    """Equal, with floats equal to 1e-9 relative (sums added in another order)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (path, a, b)
    elif isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), (path, sorted(set(a) ^ set(b)))
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b), (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


def _compute(wh, name, group_by, since=SINCE, until=UNTIL, tz="UTC", filters=None):
    from cclens.metrics.catalog import compute
    from cclens.model.pricing import bundled_table

    return compute(wh, name, since=date.fromisoformat(since), until=date.fromisoformat(until), tz=tz,
                   group_by=list(group_by), filters=filters, prices=bundled_table(), coverage=False).rows


RANGES = [(SINCE, UNTIL, "UTC", None), (SINCE, UNTIL, "America/Los_Angeles", {"team": ["platform"]}),
          (UNTIL, UNTIL, "UTC", None), ("2020-01-01", "2020-01-07", "UTC", None)]
REGROUPS = [(m, ("day",), c) for m in ("sessions", "lines_added", "lines_removed", "commits", "pull_requests",
                                       "tokens")
            for c in ((), ("week",), ("month",))] + [
    ("tokens", ("model",), ()), ("tokens", ("day", "model"), ("week",)), ("tokens", ("day", "model"), ("model",)),
    ("edit_accept_rate", ("tool",), ()), ("edit_accept_rate", ("day", "tool"), ("tool",)),
    *[(m, ("person", "day"), c) for m in ("active_people", "active_known_people", "known_people")
      for c in ((), ("day",), ("week",), ("month",), ("person",), ("person", "week"))]]


@pytest.mark.parametrize("since,until,tz,filters", RANGES)
def test_regrouped_rows_equal_the_catalogs(demo, since, until, tz, filters):
    from cclens.metrics.catalog import get
    from cclens.server.dashboard_derive import regroup

    wh, _ = demo
    for name, fine, coarse in REGROUPS:
        if filters and "team" in filters and "team" not in get(name).dims:
            continue
        direct = _compute(wh, name, coarse, since, until, tz, filters)
        derived = regroup(get(name), _compute(wh, name, fine, since, until, tz, filters), fine, coarse)
        _same(derived, direct, f"{name} {fine}->{coarse}")


@pytest.mark.parametrize("since,until,tz,filters", RANGES)
def test_ratios_and_shares_equal_the_catalogs(demo, since, until, tz, filters):
    from cclens.metrics.catalog import get
    from cclens.server.dashboard_derive import ratio, share

    wh, _ = demo
    for name in ("active_share", "sessions_per_active_person", "cost_per_active_person", "cost_per_session",
                 "cost_per_pull_request"):
        m = get(name)
        for g in ((), ("team",), ("day",), ("person",)):
            if g and g[0] not in m.dims:
                continue
            direct = _compute(wh, name, g, since, until, tz, filters)
            derived = ratio(m, _compute(wh, m.numerator, g, since, until, tz, filters),
                            _compute(wh, m.denominator, g, since, until, tz, filters), g)
            _same(derived, direct, f"{name} {g}")
    direct = _compute(wh, "model_mix", ("model",), since, until, tz, filters)
    _same(share(get("model_mix"), _compute(wh, "tokens", ("model",), since, until, tz, filters), ("model",)), direct)


def test_inexact_derivations_are_refused():
    from cclens.metrics.catalog import get
    from cclens.server.dashboard_derive import NotDerivable, regroup, share

    for name, fine, coarse in [("sessions", ("team",), ()), ("tokens", ("source",), ()), ("tokens", ("token_type",), ()),
                               ("tokens", ("project",), ()), ("sessions", ("person",), ()),
                               ("active_people", ("day",), ()), ("active_people", ("team",), ()),
                               ("active_time", ("day",), ()), ("sessions", ("week",), ("day",)),
                               ("active_share", ("day",), ()), ("tokens", ("day",), ("model",))]:
        with pytest.raises(NotDerivable):
            regroup(get(name), [], fine, coarse)
    with pytest.raises(NotDerivable):
        share(get("model_mix"), [], ("day", "model"))
    cost = [{"day": date(2026, 11, d), "value": v, "unpriced_models": [], "sources": ["otel"]}
            for d, v in ((1, 0.1), (2, 0.2))]
    with pytest.raises(NotDerivable):   # fractional sums: the catalog adds them (addition order, last bits)
        regroup(get("estimated_cost"), cost, ("day",), ())
    whole = [{**r, "value": float(i + 1)} for i, r in enumerate(cost)]
    assert regroup(get("estimated_cost"), whole, ("day",), ()) == [
        {"value": 3.0, "unpriced_models": [], "sources": ["otel"]}]


def _pages(wh, settings, f, derive: bool):
    """Every metric page built over ``wh`` with ``f``: {page: (page object, catalog queries run)}."""
    from cclens.server import dashboard, dashboard_figures
    from cclens.server import dashboard_pages as pages

    person = wh.scalar("SELECT person_id FROM person ORDER BY person_id LIMIT 1")
    out = {}
    old = dashboard_figures.DERIVE
    dashboard_figures.DERIVE = derive
    seen: list = []
    real = dashboard_figures.Figures.metric_job

    def counting(self, *a, **kw):
        key, make = real(self, *a, **kw)
        return key, (lambda reader: (seen.append(key), make(reader))[1])

    dashboard_figures.Figures.metric_job = counting
    try:
        for name, args in (("overview", ()), ("adoption", ()), ("cost", ()), ("output", ()), ("people", ()),
                           ("teams", ()), ("team", ("platform",)), ("person", (person,))):
            dashboard._PLANS.clear()
            seen.clear()
            cur = wh.cursor()
            try:
                out[name] = (dashboard.build(cur, settings, f, getattr(pages, name), *args), len(seen))
            finally:
                cur.close()
    finally:
        dashboard_figures.Figures.metric_job = real
        dashboard_figures.DERIVE = old
    return out


def _figures(page) -> dict:
    """Everything a page shows, as plain data: KPIs, chart specs, table rows, provenance notes."""
    from cclens.server.dashboard_model import Chart, Kpis, Table

    out: dict = {"notes": [(n.metric, n.text) for n in page.notes], "empty": [e.title for e in page.empty]}
    for b in page.blocks:
        for item in getattr(b, "items", [b]) if not isinstance(b, Kpis) else [b]:
            if isinstance(item, Kpis):
                for k in item.items:
                    out[f"kpi:{k.id}"] = {"raw": k.raw, "previous": k.previous, "prov": k.prov.text}
            elif isinstance(item, Chart):
                out[f"chart:{item.id}"] = {"spec": item.spec, "empty": item.empty, "prov": item.prov.text}
            elif isinstance(item, Table):
                out[f"table:{item.id}"] = {"rows": item.rows, "prov": item.prov.text}
    return out


@pytest.mark.parametrize("since,until,tz,team", [(SINCE, UNTIL, "UTC", None), (SINCE, UNTIL, "UTC", "platform"),
                                                 (UNTIL, UNTIL, "Asia/Tokyo", None),
                                                 ("2020-01-01", "2020-01-07", "UTC", None)])
def test_every_page_is_the_same_with_and_without_derivation(demo, since, until, tz, team):
    from cclens.server.dashboard_model import Filters

    wh, settings = demo
    f = Filters(date.fromisoformat(since), date.fromisoformat(until), tz, team)
    plain, derived = _pages(wh, settings, f, False), _pages(wh, settings, f, True)
    for name in plain:
        _same(_figures(derived[name][0]), _figures(plain[name][0]), name)
        assert derived[name][1] <= plain[name][1], (name, derived[name][1], plain[name][1])
    if since == SINCE and not team:
        fewer = {n: (plain[n][1], derived[n][1]) for n in plain if derived[n][1] < plain[n][1]}
        assert {"overview", "adoption", "cost", "output", "teams"} <= set(fewer), fewer


def test_a_page_reads_one_snapshot_and_asks_a_repeated_query_once(tmp_path):
    from cclens.server.dashboard_figures import PageReader
    from cclens.warehouse import open_warehouse

    wh = open_warehouse(tmp_path / "wh.duckdb")
    wh.execute("CREATE TABLE t (x INTEGER)")
    wh.execute("INSERT INTO t VALUES (1)")
    reader = PageReader(wh.cursor(), snapshot=True)
    try:
        assert reader.query("SELECT count(*) AS n FROM t") == [{"n": 1}]
        wh.execute("INSERT INTO t VALUES (2)")   # committed by the writer while the page is built
        rows = reader.query("SELECT count(*) AS n FROM t")
        assert rows == [{"n": 1}] and reader.hits == 1
        rows[0]["n"] = 99                           # a caller changing its rows changes no one else's
        assert reader.query("SELECT count(*) AS n FROM t") == [{"n": 1}]
        assert reader.scalar("SELECT sum(x) FROM t") == 1      # not asked before: still the page's snapshot
        assert reader.query("SELECT ? AS v", [[1, 2]]) == [{"v": [1, 2]}]   # list parameters are fine
        other = reader.cursor()
        assert other.query("SELECT count(*) AS n FROM t") == [{"n": 1}]   # shares what is known
        other.close()
    finally:
        reader.close()
        reader._cur.close()
    assert PageReader(wh.cursor()).query("SELECT count(*) AS n FROM t") == [{"n": 2}]
    wh.close()


def test_viewed_pages_are_rendered_again_once_new_data_settles(tmp_path):
    """After a commit, the warmer re-renders the pages viewed before it, so the next viewer gets a cache hit
    with the same page a cold render gives; ``/`` and the same view with its filters spelled out share one
    cache entry."""
    import re
    import time

    import httpx2 as httpx
    from dashboard_support import app_for
    from serve_support import ThreadServer

    from cclens.server.dashboard import cache_key
    from cclens.server.dashboard_model import Filters

    app, wh = app_for(build(tmp_path))
    warmer, writer, cache = app.state.dashboard_warmer, app.state.writer, app.state.dashboard_cache
    warmer.quiet, warmer.min_interval, warmer.poll = 0.3, 0.0, 0.05

    def settled(quiet: float = 2.5, deadline: float = 60) -> None:
        # quiet for longer than the rollup refresher's interval (2 s): it commits once after other commits
        end, last, since = time.monotonic() + deadline, writer.commits, time.monotonic()
        while time.monotonic() - since < quiet:
            assert time.monotonic() < end, "the writer never went quiet"
            time.sleep(0.05)
            if writer.commits != last:
                last, since = writer.commits, time.monotonic()

    def strip(html: str) -> str:
        return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "", html)   # the page's "generated at" minute

    with ThreadServer(app) as server:
        settled()
        f = Filters.parse({}, "UTC")
        first = httpx.get(f"{server.url}/", timeout=60)
        hits = cache.hits
        assert httpx.get(f"{server.url}/?{f.query()}", timeout=60).text == first.text and cache.hits == hits + 1
        rounds = warmer.rounds
        writer.submit(lambda _wh: None).result(30)        # a new data version: every page is cold again
        settled()
        end = time.monotonic() + 60
        while not (warmer.rounds > rounds and cache_key("/", f, {}, writer.commits) in cache._items):
            assert time.monotonic() < end, (warmer.rounds, warmer.last_error)
            time.sleep(0.05)
        hits = cache.hits
        again = httpx.get(f"{server.url}/", timeout=60)
        assert cache.hits == hits + 1, "the first viewer after new data got a pre-rendered page"
        assert strip(again.text) == strip(first.text)
        assert warmer.last_error is None
        health = httpx.get(f"{server.url}/healthz", timeout=10).json()["dashboard"]
        assert health["rounds"] >= 1 and health["rendered"] >= 1 and health["last_error"] is None
    wh.close()
