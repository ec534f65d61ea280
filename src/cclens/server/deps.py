"""FastAPI dependencies shared by every router of ``cclens serve``.

A router module (listed in :data:`cclens.server.app.ROUTER_MODULES`) uses them like this::

    from fastapi import APIRouter, Depends
    from cclens.server.deps import get_writer, require_ingest

    router = APIRouter()

    @router.post("/hooks")
    async def hooks(payload: dict, writer=Depends(get_writer), _=Depends(require_ingest)):
        await writer.run(lambda wh: store_hook(wh, payload))   # committed before we answer
        return {}

* :func:`get_writer` – the :class:`~cclens.server.writer.Writer`; ``await writer.run(fn)`` runs
  ``fn(warehouse)`` on the single writer thread inside one transaction and returns its result once
  committed (so answering after it means the data is durable).
* :func:`read_cursor` – a read-only view of the warehouse for this request (a DuckDB cursor: MVCC,
  sees committed data, never blocks the writer). Closed after the request.
* :func:`require_ingest` – the ``ingest`` role (or ``admin``/local CLI); 401 otherwise. On a loopback
  bind without ``--require-auth`` an anonymous request is allowed; a wrong token is always refused.
* :func:`require_local` – only the local CLI token (from the discovery file) or an ``admin`` token.
* :func:`require_reader` – reading data (``viewer`` and up); anonymous like ingest on an open loopback bind.
  A viewer token limited to teams is refused (403) here: an endpoint that limits its answer to the
  principal's ``teams`` uses :func:`require_team_reader` instead.
"""

from __future__ import annotations

from typing import Iterator

from fastapi import HTTPException, Request

from ..config import Settings
from .auth import Principal, authenticate_http
from .writer import Writer


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_writer(request: Request) -> Writer:
    return request.app.state.writer


def read_cursor(request: Request) -> Iterator:
    cur = request.app.state.writer.reader()
    try:
        yield cur
    finally:
        cur.close()


def require_ingest(request: Request) -> Principal:
    return authenticate_http(request, roles=("ingest", "admin", "local"))


def require_local(request: Request) -> Principal:
    return authenticate_http(request, roles=("admin", "local"), allow_anonymous=False)


def require_reader(request: Request) -> Principal:
    """Reading modelled data: ``viewer``/``analyst``/``admin``/local (anonymous on an open loopback bind).
    Team-limited tokens are refused: this endpoint does not limit its answer to teams."""
    p = require_team_reader(request)
    if p.teams:
        raise HTTPException(403, detail=f"this token is limited to teams {', '.join(p.teams)} and this endpoint "
                                        "cannot be limited to teams; use /api/v1/metrics/{name} or the MCP server")
    return p


def require_team_reader(request: Request) -> Principal:
    """Like :func:`require_reader`, but a team-limited viewer passes: the endpoint must restrict its answer
    to ``principal.teams`` (:func:`cclens.metrics.scope.restrict_to_teams`)."""
    return authenticate_http(request, roles=("viewer", "analyst", "admin", "local"))
