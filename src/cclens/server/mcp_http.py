"""The MCP endpoint of ``cclens serve``: streamable HTTP at ``/mcp`` (official ``mcp`` SDK, stateless,
JSON responses), the same tools as ``cclens mcp`` (:mod:`cclens.mcp.server`).

* Auth: the REST API's tokens and roles. ``viewer`` and up (and the local token) may connect; an ``ingest``
  token gets 403; no token gets 401 when auth is required (any non-loopback bind, or ``--require-auth``),
  else the anonymous reader of an open loopback bind. A viewer limited to teams sees those teams only;
  ``run_sql`` needs ``analyst``/``admin``.
* On a loopback bind the SDK's DNS-rebinding protection is on (``Host`` and ``Origin`` must be loopback).
* ``POST /api/v1/audit`` lets ``cclens mcp`` (stdio, local token or admin) write its audit rows while this
  server holds the warehouse.
* ``GET``/``DELETE`` answer 405: the endpoint is stateless with JSON answers (no server stream, no session).
* ``/healthz`` gains ``mcp``: calls answered and errors since start.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..audit import AuditEntry, record
from .auth import Principal, is_loopback
from .deps import get_writer, require_local
from .writer import Writer

router = APIRouter(prefix="/api/v1", tags=["mcp"])
READ_ROLES = ("viewer", "analyst", "admin", "local")
PATH = "/mcp"


class AuditBody(BaseModel):
    principal: str = Field(max_length=500)
    role: str = Field(max_length=50)
    surface: str = Field(max_length=50)
    action: str = Field(max_length=500)
    arguments: dict[str, Any] = Field(default_factory=dict)
    rows: int | None = None
    ok: bool = True
    error: str | None = None
    duration_ms: float | None = None
    ts: str | None = None


@router.post("/audit")
async def audit_endpoint(body: AuditBody, writer: Writer = Depends(get_writer),
                         _: Principal = Depends(require_local)) -> dict[str, str]:
    """Append one audit row (for ``cclens mcp`` running next to this server)."""
    entry = AuditEntry.from_json(body.model_dump())
    return {"audit_id": await writer.run(lambda wh: record(wh, entry))}


class McpEndpoint:
    """ASGI app at ``/mcp``: authenticate the bearer token, then hand the request to the SDK."""

    def __init__(self, app: Any, manager: Any):
        self.app = app
        self.manager = manager

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from ..mcp.backends import PRINCIPAL_SCOPE_KEY

        if scope.get("method") != "POST":
            # stateless, JSON answers: no server-initiated stream (GET) and no session to end (DELETE)
            resp = JSONResponse({"error": "method not allowed", "detail": "the MCP endpoint takes POST only"},
                                status_code=405, headers={"Allow": "POST"})
            await resp(scope, receive, send)
            return
        auth = self.app.state.authenticator
        p, reason = auth.check(Headers(scope=scope).get("authorization"), READ_ROLES)
        if p is None:
            status = 403 if reason and "may not use" in reason else 401
            if status == 403:
                reason = f"{reason}: the MCP endpoint needs a viewer, analyst or admin token"
            else:
                reason = f"{reason} (cclens token create --role viewer)" if "required" in (reason or "") else reason
            resp = JSONResponse({"error": "forbidden" if status == 403 else "unauthorized", "detail": reason},
                                status_code=status, headers={"WWW-Authenticate": 'Bearer realm="cclens"'})
            await resp(scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = p
        await self.manager.handle_request(scope, receive, send)


def setup(app: Any) -> None:
    """Build the MCP server for this app, route ``/mcp`` to it, and run its session manager with the app."""
    from mcp.server.transport_security import TransportSecuritySettings

    from ..mcp.backends import ServeBackend
    from ..mcp.middleware import AuditMiddleware
    from ..mcp.server import build_server

    backend = ServeBackend(app)
    server = build_server(backend)
    sdk_log, ours = logging.getLogger("mcp"), logging.getLogger("cclens")
    if ours.handlers:  # the SDK's warnings in the server's JSON log lines
        sdk_log.handlers[:] = ours.handlers
        sdk_log.propagate = False
        sdk_log.setLevel(logging.WARNING)
    host = app.state.settings.server_host
    if is_loopback(host) or host in ("127.0.0.1", "::1"):
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])
    else:  # bound to a network address: tokens are required there, and Host is whatever name users reach it by
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    server.streamable_http_app(streamable_http_path=PATH, stateless_http=True, json_response=True,
                               transport_security=security, host=host)
    manager = server.session_manager
    # first, so that no catch-all page route of another module shadows it
    app.router.routes.insert(0, Route(PATH, endpoint=McpEndpoint(app, manager), methods=["GET", "POST", "DELETE"]))

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any):
        async with inner(a) as state:
            async with manager.run():
                yield state

    app.router.lifespan_context = lifespan
    audit = next((m for m in server.middleware if isinstance(m, AuditMiddleware)), None)
    app.state.mcp = server
    app.state.health["mcp"] = lambda: {"endpoint": PATH, "calls": getattr(audit, "calls", None),
                                       "errors": getattr(audit, "errors", None)}
