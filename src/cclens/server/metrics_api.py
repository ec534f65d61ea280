"""REST API over the metric catalog, reconciliation, coverage and people (OpenAPI at ``/api/docs``).

* ``GET /api/v1/metrics`` — the catalog.
* ``GET /api/v1/metrics/{name}?since=&until=&tz=&group_by=team,week&team=platform&model=…&format=`` —
  one metric (:func:`cclens.metrics.catalog.compute`). Filters: ``person``, ``team``, ``model``,
  ``project``, ``source``, ``token_type``, ``tool`` (repeat or comma-separate). JSON (the whole
  result: rows, unit, coverage, notes), CSV or Parquet (the rows) by ``format=`` or ``Accept``.
* ``GET /api/v1/reconcile`` — sources side by side per day and model (``by=person`` adds people).
* ``GET /api/v1/coverage`` — per person and day, the sources that reported; and each source's freshness.
* ``GET /api/v1/people``, ``GET /api/v1/people/unlinked``; ``POST /api/v1/people/link`` and
  ``POST /api/v1/people/import`` (admin or the local CLI: they write).
* The analyst SQL sandbox behind ``POST /api/v1/query`` (:func:`sandbox_query`): that path keeps
  serving the local CLI (local token, admin) as before (:mod:`cclens.server.query_api`); a token of
  role ``analyst`` gets the sandbox (:mod:`cclens.metrics.sql_guard`): one SELECT, no file or network
  table functions, ``max_rows`` (default 10,000, at most 100,000) and ``timeout`` (default 30 s).

Metric reads and sandboxed SQL (accepted or refused) are written to the audit log (:mod:`cclens.audit`).

Readers need ``viewer`` or above (anonymous on an open loopback bind, like every read endpoint). A viewer
token limited to teams gets the catalog and metrics for its teams only
(:func:`cclens.metrics.scope.restrict_to_teams`; 403 for a team outside it or an organisation-wide metric);
the other endpoints here refuse it.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable

import orjson
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..errors import CclensError, ConfigError
from .auth import Principal, authenticate_http
from .deps import get_writer, require_local, require_reader, require_team_reader
from .writer import Writer

router = APIRouter(prefix="/api/v1", tags=["metrics"])

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
_FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8", "parquet": PARQUET, "arrow": ARROW_STREAM}


def _default(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    raise TypeError


def _fmt(request: Request, fmt: str | None) -> str:
    if fmt:
        if fmt not in _FORMATS:
            raise HTTPException(400, f"unknown format {fmt!r}; use json, csv or parquet")
        return fmt
    accept = request.headers.get("accept", "")
    if ARROW_STREAM in accept:
        return "arrow"
    if "parquet" in accept:
        return "parquet"
    if "text/csv" in accept:
        return "csv"
    return "json"


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return ";".join(str(x) for x in v)
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    return v


def rows_response(rows: list[dict[str, Any]], fmt: str, json_body: Any = None, filename: str = "rows") -> Response:
    """``rows`` as JSON (``json_body`` if given), CSV, Parquet or Arrow."""
    if fmt == "json":
        return Response(orjson.dumps(rows if json_body is None else json_body, default=_default,
                                     option=orjson.OPT_NON_STR_KEYS), media_type="application/json")
    if fmt == "csv":
        buf = io.StringIO()
        cols = list(rows[0]) if rows else []
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([_csv_cell(r.get(c)) for c in cols])
        return Response(buf.getvalue(), media_type=_FORMATS["csv"],
                        headers={"content-disposition": f'attachment; filename="{filename}.csv"'})
    table = pa.Table.from_pylist([{k: (float(v) if isinstance(v, Decimal) else v) for k, v in r.items()} for r in rows])
    return table_response(table, fmt, filename)


def table_response(table: pa.Table, fmt: str, filename: str = "rows") -> Response:
    sink = io.BytesIO()
    if fmt == "parquet":
        pq.write_table(table, sink)
        return Response(sink.getvalue(), media_type=PARQUET,
                        headers={"content-disposition": f'attachment; filename="{filename}.parquet"'})
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return Response(sink.getvalue(), media_type=ARROW_STREAM)


async def _read(writer: Writer, fn: Callable[[Any], Any]) -> Any:
    def run() -> Any:
        cur = writer.reader()
        try:
            return fn(cur)
        finally:
            cur.close()

    try:
        return await run_in_threadpool(run)
    except CclensError as exc:
        raise HTTPException(400, str(exc)) from None


async def _audit(request: Request, writer: Writer, action: str, arguments: dict[str, Any], *, rows: int | None = None,
                 error: str | None = None, t0: float | None = None, principal: Principal | None = None) -> None:
    """Record one read in the audit log (``cclens.audit``), through the writer."""
    import time

    from ..audit import AuditEntry, record

    p = principal or request.app.state.authenticator.principal(request.headers.get("authorization"))
    entry = AuditEntry(principal=(p.token_id if p and p.token_id else "anonymous"), role=p.role if p else "anonymous",
                       surface="rest", action=action, arguments=arguments, rows=rows, ok=error is None, error=error,
                       duration_ms=round((time.perf_counter() - t0) * 1000, 1) if t0 else None)
    await writer.run(lambda wh: record(wh, entry))


def _list(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _range(request: Request, since: str | None, until: str | None, tz: str | None):
    from ..timeutil import check_tz, parse_days

    try:
        zone = check_tz(tz, request.app.state.settings.tz)
        return (*parse_days(since, until, prefix=""), zone)
    except CclensError as exc:
        raise HTTPException(400, str(exc)) from None


def _prices(request: Request):
    from ..model.pricing import effective_table

    try:
        return effective_table(request.app.state.settings)
    except CclensError as exc:
        raise HTTPException(500, str(exc)) from None


@router.get("/metrics")
def list_metrics(_: Principal = Depends(require_team_reader)) -> dict[str, Any]:
    """The metric catalog: name, group, description, unit, grain, sources, group_by, definition."""
    from ..metrics.catalog import GROUP_BY, FILTERS, catalog

    return {"metrics": catalog(), "group_by": list(GROUP_BY), "filters": list(FILTERS)}


@router.get("/metrics/{name}")
async def metric(name: str, request: Request,
                 since: str | None = Query(None, description="first day (YYYY-MM-DD), in tz; default: 30 days ago"),
                 until: str | None = Query(None, description="last day, inclusive; default: today"),
                 tz: str | None = Query(None, description="IANA zone for event days (API days stay UTC)"),
                 group_by: list[str] | None = Query(None, description="day, week, month, person, team, model, "
                                                    "source, project, token_type, tool (comma-separated or repeated)"),
                 person: list[str] | None = Query(None), team: list[str] | None = Query(None),
                 model: list[str] | None = Query(None), project: list[str] | None = Query(None),
                 source: list[str] | None = Query(None), token_type: list[str] | None = Query(None),
                 tool: list[str] | None = Query(None),
                 format: str | None = Query(None, description="json (default), csv or parquet"),
                 writer: Writer = Depends(get_writer), principal: Principal = Depends(require_team_reader)) -> Response:
    """One catalog metric: rows with value and sources; JSON adds unit, coverage and notes."""
    from ..errors import AccessDeniedError
    from ..metrics.catalog import compute, get
    from ..metrics.scope import restrict_to_teams

    fmt = _fmt(request, format)
    day_from, day_to, zone = _range(request, since, until, tz)
    try:
        get(name)
    except CclensError as exc:
        raise HTTPException(404, str(exc)) from None
    filters = {k: _list(v) for k, v in (("person", person), ("team", team), ("model", model), ("project", project),
                                         ("source", source), ("token_type", token_type), ("tool", tool)) if v}
    try:
        filters = restrict_to_teams(name, filters, principal.teams)
    except AccessDeniedError as exc:
        raise HTTPException(403, str(exc)) from None
    prices = _prices(request)
    import time

    t0 = time.perf_counter()
    args = {"metric": name, "since": day_from, "until": day_to, "tz": zone, "group_by": _list(group_by),
            "filters": filters, "format": fmt}
    try:
        res = await _read(writer, lambda wh: compute(wh, name, since=day_from, until=day_to, tz=zone,
                                                     group_by=_list(group_by), filters=filters, prices=prices))
    except HTTPException as exc:
        await _audit(request, writer, "GET /api/v1/metrics/{name}", args, error=str(exc.detail), t0=t0,
                     principal=principal)
        raise
    await _audit(request, writer, "GET /api/v1/metrics/{name}", args, rows=len(res.rows), t0=t0, principal=principal)
    return rows_response(res.rows, fmt, json_body=res.to_dict(), filename=name)


@router.get("/reconcile")
async def reconcile_endpoint(request: Request, since: str | None = None, until: str | None = None,
                             tz: str | None = None, by: list[str] | None = Query(None, description="person"),
                             format: str | None = None, writer: Writer = Depends(get_writer),
                             _: Principal = Depends(require_reader)) -> Response:
    """Tokens and cost from every source side by side per day and model, with drift and the reasons."""
    from ..metrics.reconcile import reconcile

    fmt = _fmt(request, format)
    day_from, day_to, zone = _range(request, since, until, tz)
    prices = _prices(request)
    rep = await _read(writer, lambda wh: reconcile(wh, since=day_from, until=day_to, tz=zone, prices=prices,
                                                   by_person="person" in _list(by)))
    return rows_response(rep["rows"], fmt, json_body=rep, filename="reconcile")


@router.get("/coverage")
async def coverage_endpoint(request: Request, since: str | None = None, until: str | None = None,
                            tz: str | None = None, person: list[str] | None = Query(None),
                            format: str | None = None, writer: Writer = Depends(get_writer),
                            _: Principal = Depends(require_reader)) -> Response:
    """Per person and day, which sources reported; and each source's freshness (JSON)."""
    from ..metrics.catalog import default_range
    from ..metrics.coverage import freshness, person_day_coverage

    fmt = _fmt(request, format)
    day_from, day_to, zone = _range(request, since, until, tz)
    day_from, day_to = default_range(zone, day_from, day_to)

    def run(wh):
        return {"since": day_from, "until": day_to, "tz": zone, "freshness": freshness(wh),
                "rows": person_day_coverage(wh, since=day_from, until=day_to, tz=zone, persons=_list(person) or None)}

    body = await _read(writer, run)
    return rows_response(body["rows"], fmt, json_body=body, filename="coverage")


@router.get("/people")
async def people_endpoint(writer: Writer = Depends(get_writer), _: Principal = Depends(require_reader)) -> Response:
    """Known people with aliases and current teams."""
    from ..model.identity import people

    return rows_response(await _read(writer, people), "json")


@router.get("/people/unlinked")
async def unlinked_endpoint(writer: Writer = Depends(get_writer), _: Principal = Depends(require_reader)) -> Response:
    """Identities seen in the sources that no alias links to a person."""
    from ..model.identity import unlinked

    return rows_response(await _read(writer, unlinked), "json")


class LinkBody(BaseModel):
    alias: str = Field(min_length=3, max_length=1000)
    person: str = Field(min_length=1, max_length=1000)
    name: str | None = None


class ImportBody(BaseModel):
    filename: str = Field(description="people.toml or people.csv: the suffix says the format")
    content: str = Field(max_length=50_000_000)


@router.post("/people/link")
async def link_endpoint(body: LinkBody, writer: Writer = Depends(get_writer),
                        _: Principal = Depends(require_local)) -> dict[str, Any]:
    """Link an alias (``kind:value``) to a person (created if new)."""
    from ..model.identity import link

    try:
        return await writer.run(lambda wh: link(wh, body.alias, body.person, name=body.name))
    except CclensError as exc:
        raise HTTPException(400, str(exc)) from None


@router.post("/people/import")
async def import_endpoint(body: ImportBody, writer: Writer = Depends(get_writer),
                          _: Principal = Depends(require_local)) -> dict[str, Any]:
    """Import a people file sent as text (the CLI's ``people import`` while the server runs)."""
    import tempfile
    from pathlib import Path

    from ..model.identity import import_people

    suffix = Path(body.filename).suffix.lower()
    if suffix not in (".toml", ".csv"):
        raise HTTPException(400, f"people file {body.filename} must end in .toml or .csv")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"people{suffix}"
        path.write_text(body.content)
        try:
            return await writer.run(lambda wh: import_people(wh, path))
        except (CclensError, ConfigError) as exc:
            raise HTTPException(400, str(exc).replace(str(path), body.filename)) from None


# -- the analyst SQL sandbox (dispatched from query_api's POST /api/v1/query) ---------------------

def require_sql(request: Request) -> Principal:
    """Who may POST /api/v1/query: the local CLI and admins (internal), analysts (sandbox). Never anonymous."""
    return authenticate_http(request, roles=("analyst", "admin", "local"), allow_anonymous=False)


async def sandbox_query(sql: str, params: list[Any], request: Request, writer: Writer) -> Response:
    """Run ``sql`` in the read-only sandbox; answers JSON (default), CSV, Parquet or Arrow."""
    from ..metrics.sql_guard import run_sandboxed

    q = request.query_params
    try:
        max_rows = min(int(q.get("max_rows", 10_000)), 100_000)
        timeout = min(float(q.get("timeout", 30)), 120.0)
    except ValueError:
        raise HTTPException(400, "max_rows and timeout must be numbers") from None
    fmt = _fmt(request, q.get("format"))
    if params:
        raise HTTPException(400, "the SQL sandbox takes no parameters; put literal values in the SQL")
    import time

    t0 = time.perf_counter()
    args = {"sql": sql, "max_rows": max_rows, "timeout": timeout, "format": fmt}
    try:
        res = await _read(writer, lambda wh: run_sandboxed(wh, sql, max_rows=max_rows, timeout_s=timeout))
    except HTTPException as exc:  # refused or failed SQL is audited too
        await _audit(request, writer, "POST /api/v1/query", args, error=str(exc.detail), t0=t0)
        raise
    await _audit(request, writer, "POST /api/v1/query", args, rows=res.table.num_rows, t0=t0)
    headers = {"x-cclens-truncated": "true" if res.truncated else "false", "x-cclens-rows": str(res.table.num_rows)}
    if fmt == "json":
        resp = Response(orjson.dumps(res.to_json(), default=_default), media_type="application/json")
    elif fmt == "csv":
        resp = rows_response(res.table.to_pylist(), "csv", filename="query")
    else:
        resp = table_response(res.table, fmt, "query")
    resp.headers.update(headers)
    return resp
