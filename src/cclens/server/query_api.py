"""Internal endpoints the local CLI uses while ``serve`` holds the warehouse.

* ``POST /api/v1/query`` ``{"sql": "...", "params": [...]}`` → the rows as an Arrow IPC stream
  (``application/vnd.apache.arrow.stream``; JSON ``{"columns", "rows"}`` if the client does not accept
  Arrow). One ``SELECT`` statement only, run on a read cursor (a snapshot of committed data).
* ``POST /api/v1/tokens`` ``{"role": "ingest", "name": "...", "teams": [...]}`` → ``{"token_id", "token"}``
  (``teams`` limits a viewer token to those teams).

Both require the local token from the discovery file (same OS user as the server) or an ``admin``
token. This is not the analyst SQL surface (allow-listed functions, limits, audit): that is a
separate endpoint with its own rules.
"""

from __future__ import annotations

import io
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.ipc
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..errors import CclensError
from .auth import ROLES, Principal, authenticate_http, create_token
from .deps import get_writer, require_local
from .writer import Writer

router = APIRouter(prefix="/api/v1")
ARROW_STREAM = "application/vnd.apache.arrow.stream"


class QueryBody(BaseModel):
    sql: str = Field(min_length=1, max_length=200_000)
    params: list[Any] = Field(default_factory=list)


class TokenBody(BaseModel):
    role: str
    name: str | None = None
    teams: list[str] | None = None


def _check_select(sql: str) -> None:
    try:
        stmts = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise HTTPException(400, f"the SQL does not parse: {exc}") from None
    if len(stmts) != 1 or stmts[0].type != duckdb.StatementType.SELECT:
        raise HTTPException(400, "only one SELECT statement is allowed through the server")


def _run(writer: Writer, sql: str, params: list[Any]) -> pa.Table:
    cur = writer.reader()
    try:
        # con.sql(...).to_arrow_table() avoids DuckDB's extra copy (and its warning) of a DB-API result
        return cur.con.sql(sql, params=params or None).to_arrow_table()
    except duckdb.Error as exc:
        raise HTTPException(400, f"the query failed: {exc}") from None
    finally:
        cur.close()


def _require_sql(request: Request) -> Principal:
    # the local CLI and admins get this internal endpoint; analysts the SQL sandbox (metrics_api)
    return authenticate_http(request, roles=("analyst", "admin", "local"), allow_anonymous=False)


@router.post("/query")
async def query(body: QueryBody, request: Request, writer: Writer = Depends(get_writer),
                principal: Principal = Depends(_require_sql)) -> Response:
    """Run one read-only SELECT: as is for the local CLI (and admins); in the read-only SQL sandbox for
    analysts (one SELECT, no file/network functions, row and time limits: docs/metrics.md)."""
    if principal.role not in ("local", "admin"):
        from .metrics_api import sandbox_query

        return await sandbox_query(body.sql, body.params, request, writer)
    _check_select(body.sql)
    try:
        table = await run_in_threadpool(_run, writer, body.sql, body.params)
    except CclensError as exc:
        raise HTTPException(400, str(exc)) from None
    if ARROW_STREAM in request.headers.get("accept", ""):
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        return Response(sink.getvalue(), media_type=ARROW_STREAM)
    rows = table.to_pylist()
    cols = table.column_names
    return Response(orjson.dumps({"columns": cols, "rows": [[r[c] for c in cols] for r in rows]},
                                 default=str), media_type="application/json")


@router.post("/tokens")
async def tokens(body: TokenBody, request: Request, writer: Writer = Depends(get_writer),
                 _: Principal = Depends(require_local)) -> dict[str, str]:
    """Create an API token (shown once; stored hashed)."""
    if body.role not in ROLES:
        raise HTTPException(400, f"unknown role {body.role!r}; use one of {', '.join(ROLES)}")
    try:
        token_id, token = await writer.run(lambda wh: create_token(wh, body.role, body.name, body.teams))
    except CclensError as exc:
        raise HTTPException(400, str(exc)) from None
    request.app.state.authenticator.remember(token, token_id, body.role, body.teams or ())
    return {"token_id": token_id, "token": token}
