"""The web dashboard of ``cclens serve``: server-rendered pages (Jinja2) with ECharts shipped as a static file.

Pages: ``/`` (overview), ``/adoption``, ``/cost``, ``/output``, ``/people`` (+ ``/people/{id}``), ``/teams``
(+ ``/teams/{key}``), ``/sessions`` (+ ``/sessions/{id}``), ``/sources``, ``/reconciliation``. Every page takes
``since``, ``until`` (inclusive days), ``tz`` and ``team`` from its URL, so a link is the view; any table is
a CSV with ``?format=csv&table=<id>`` (the rows the table shows, from the same call). Static files are
served under ``/dashboard/static/`` and nothing is loaded from elsewhere: the dashboard works offline.
:func:`render_page` also renders a page as one self-contained file (``cclens report html``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from datetime import date, timedelta
from importlib import resources
from typing import Any, Callable

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from ..model.pricing import effective_table
from . import dashboard_detail as detail
from . import dashboard_pages as pages
from .dashboard_figures import Figures, PageReader
from .dashboard_model import Filters, Page
from .deps import require_reader

router = APIRouter(include_in_schema=False)
STATIC_PREFIX = "/dashboard/static"
NAV = [("overview", "Overview"), ("adoption", "Adoption"), ("cost", "Cost"), ("output", "Output"),
       ("people", "People"), ("teams", "Teams"), ("sessions", "Sessions"), ("sources", "Sources"),
       ("reconciliation", "Reconciliation")]
PATHS = {"overview": "/", **{k: f"/{k}" for k, _ in NAV if k != "overview"}}
ZONES = ["UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Chicago", "America/Los_Angeles",
         "Asia/Tokyo", "Asia/Kolkata", "Australia/Sydney"]
_env: Environment | None = None


def _package_dir(name: str) -> str:
    return str(resources.files("cclens.server").joinpath(name))


def environment() -> Environment:
    global _env
    if _env is None:
        _env = Environment(loader=FileSystemLoader(_package_dir("templates")),
                           autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    return _env


def setup(app: FastAPI) -> None:
    """Serve the static files (CSS, JS, ECharts) under :data:`STATIC_PREFIX`."""
    from .dashboard_warm import Warmer

    app.mount(STATIC_PREFIX, StaticFiles(directory=_package_dir("static")), name="dashboard-static")
    app.state.dashboard_cache = PageCache()
    app.state.dashboard_warmer = warmer = Warmer(app, enabled=PREWARM)
    app.state.on_start.append(warmer.start)
    app.state.on_stop.append(warmer.stop)
    app.state.health["dashboard"] = warmer.health


def static_text(name: str) -> str:
    return resources.files("cclens.server").joinpath("static", name).read_text(encoding="utf-8")


def render_page(page: Page, f: Filters, *, path: str = "/", inline: bool = False, teams: list[dict] | None = None,
                base_url: str = "") -> str:
    """The HTML of ``page``. ``inline`` embeds CSS, JS and ECharts (a single file that works anywhere)."""

    def href(p: str, **extra: Any) -> str:
        return f"{base_url}{p}?{f.query(**extra)}"

    presets = []
    for label, n in (("7 days", 7), ("30 days", 30), ("90 days", 90)):
        until = f.until
        presets.append((label, f"?{Filters(until - timedelta(days=n - 1), until, f.tz, f.team).query(**page.extra_params)}"))
    ctx = {
        "page": page, "f": f, "nav": NAV, "zones": ZONES if f.tz in ZONES else [f.tz, *ZONES], "teams": teams or [],
        "presets": presets,
        "nav_href": lambda key: href(PATHS[key]),
        "csv_href": lambda table_id: f"?{f.query(**page.extra_params, format='csv', table=table_id)}",
        "static": lambda name: f"{base_url}{STATIC_PREFIX}/{name}",
        "inline": {"css": static_text("dashboard.css"), "js": static_text("dashboard.js"),
                   "echarts": static_text("echarts.min.js")} if inline else None,
    }
    if f.problems:
        from .dashboard_model import Empty

        page.empty.insert(0, Empty("filters", "Some filters were not understood", "; ".join(f.problems)))
    return environment().get_template("base.html").render(**ctx)


def build(reader: Any, settings: Any, f: Filters, builder: Callable[..., Page], *args: Any,
          base_url: str = "", url: str = "http://127.0.0.1:8765", snapshot: bool = False) -> Page:
    """Run a page builder over ``reader`` with the filters ``f``. ``snapshot``: read the whole page in one
    transaction on ``reader`` (a cursor of this request's own), so its figures are of one data version."""
    page_reader = PageReader(reader, snapshot=snapshot)
    try:
        return _build(page_reader, settings, f, builder, *args, base_url=base_url, url=url)
    finally:
        page_reader.close()


def _build(reader: Any, settings: Any, f: Filters, builder: Callable[..., Page], *args: Any,
           base_url: str, url: str) -> Page:
    fig = Figures(reader, f, effective_table(settings))
    plan_key = (getattr(builder, "__qualname__", repr(builder)), args)
    plan = _PLANS.get(plan_key)
    if plan and PREFETCH:
        # the catalog calls this page made last time, relative to its filters: run them in parallel
        fig.prefetch([(name, g, replace(f, since=f.since + ds, until=f.until + du,
                                        team=f.team if team is _SAME else team, problems=problems), flt)
                      for name, g, ds, du, team, problems, flt in plan])

    def href(p: str, **extra: Any) -> str:
        return f"{base_url}{p}?{f.query(**extra)}"

    page = builder(pages.Ctx(fig, f, url, href), *args).finish()
    if f.tz and all(c[2].tz == f.tz for c in fig.calls):
        _PLANS[plan_key] = [(name, g, c.since - f.since, c.until - f.until, _SAME if c.team == f.team else c.team,
                             c.problems, flt) for name, g, c, flt in fig.calls]
        while len(_PLANS) > 256:
            _PLANS.pop(next(iter(_PLANS)))
    return page


_SAME = object()
PREFETCH = True   # run a page's learned catalog calls in parallel before building it
PREWARM = True    # re-render recently viewed pages once new data has settled (dashboard_warm.Warmer)
# page builder (+ args) -> the metric calls it made, with days relative to the page's range
_PLANS: dict[tuple, list[tuple]] = {}


def _server_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


class PageCache:
    """Rendered pages keyed by URL and the warehouse's data version (the writer's commit count): a page is
    computed once per change of data, however many people look at it. Small LRU."""

    def __init__(self, size: int = 128):
        self.size = size
        self._items: OrderedDict[tuple, Response] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> Response | None:
        with self._lock:
            resp = self._items.get(key)
            if resp is not None:
                self._items.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return resp

    def put(self, key: tuple, resp: Response) -> None:
        with self._lock:
            self._items[key] = resp
            while len(self._items) > self.size:
                self._items.popitem(last=False)


FILTER_PARAMS = ("since", "until", "tz", "team")


def cache_key(path: str, f: Filters, params: dict[str, str], commits: int) -> tuple:
    """A page's cache key: the path, the filters as understood (so ``/`` and the same view with its
    default filters spelled out in the URL share one entry), the other parameters, the data version."""
    return (path, f, tuple(sorted((k, v) for k, v in params.items() if k not in FILTER_PARAMS)), commits)


def render(app: Any, path: str, params: dict[str, str], builder: Callable[..., Page], args: tuple,
           server_url: str) -> tuple[tuple, Response]:
    """Build and render one page (HTML, or a table's CSV with ``format=csv``) at the writer's current
    data version; returns its cache key and the response. Runs in a worker thread."""
    settings, writer = app.state.settings, app.state.writer
    f = Filters.parse(params, settings.tz)
    key = cache_key(path, f, params, writer.commits)   # read before the snapshot: the page is at least this new
    cur = writer.reader()
    try:
        page = build(cur, settings, f, builder, *args, url=server_url, snapshot=True)
        teams = cur.query("SELECT team_id AS key, coalesce(name, team_id) AS name FROM team ORDER BY 2")
    finally:
        cur.close()
    if params.get("format") == "csv":
        table = page.tables().get(params.get("table", ""))
        if table is None:
            raise HTTPException(404, f"page {page.key} has no table {params.get('table')!r}; tables: "
                                f"{', '.join(page.tables()) or 'none'}")
        name = f"cclens-{page.key}-{table.id}-{f.since}-{f.until}.csv"
        return key, Response(table.csv(), media_type="text/csv; charset=utf-8",
                             headers={"content-disposition": f'attachment; filename="{name}"'})
    return key, HTMLResponse(render_page(page, f, path=path, teams=teams))


async def _serve(request: Request, builder: Callable[..., Page], *args: Any) -> Response:
    app = request.app
    params = dict(request.query_params)
    f = Filters.parse(params, app.state.settings.tz)
    cache: PageCache = app.state.dashboard_cache
    recipe = (request.url.path, params, builder, args, _server_url(request))
    if params.get("format") != "csv":
        app.state.dashboard_warmer.viewed(recipe)
    hit = cache.get(cache_key(request.url.path, f, params, app.state.writer.commits))
    if hit is not None:
        return Response(hit.body, hit.status_code, media_type=hit.media_type, headers=dict(hit.headers))
    key, resp = await run_in_threadpool(render, app, *recipe)
    cache.put(key, resp)
    return resp


def _route(path: str, builder: Callable[..., Page]) -> None:
    async def handler(request: Request, _=Depends(require_reader)) -> Response:
        return await _serve(request, builder)

    handler.__name__ = f"dashboard_{builder.__name__}"
    router.add_api_route(path, handler, methods=["GET"], response_class=HTMLResponse)


for _path, _builder in (("/", pages.overview), ("/adoption", pages.adoption), ("/cost", pages.cost),
                        ("/output", pages.output), ("/people", pages.people), ("/teams", pages.teams),
                        ("/sessions", detail.sessions), ("/sources", detail.sources),
                        ("/reconciliation", detail.reconciliation)):
    _route(_path, _builder)


@router.get("/people/{key:path}", response_class=HTMLResponse)
async def person_page(key: str, request: Request, _=Depends(require_reader)) -> Response:
    return await _serve(request, pages.person, key)


@router.get("/teams/{key}", response_class=HTMLResponse)
async def team_page(key: str, request: Request, _=Depends(require_reader)) -> Response:
    return await _serve(request, pages.team, key)


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
async def session_page(session_id: str, request: Request, _=Depends(require_reader)) -> Response:
    return await _serve(request, detail.session, session_id)


def default_filters(settings: Any, since: date | None = None, until: date | None = None) -> Filters:
    params = {"since": since.isoformat() if since else "", "until": until.isoformat() if until else ""}
    return Filters.parse(params, settings.tz)


from . import dashboard_delivery  # noqa: E402,F401  (registers /delivery: engineering data, issue 9)
