"""How the MCP server reaches the warehouse on each transport (:class:`cclens.mcp.server.Backend`).

* :class:`LocalBackend` (``cclens mcp``, stdio): each call opens a reader with
  :func:`cclens.client.open_reader` — the running ``cclens serve`` if there is one, else the file, closed
  again after the call so a server can start meanwhile. The caller is the local OS user (role ``local``,
  like every CLI command). Audit rows go to the file directly, or to ``POST /api/v1/audit`` of the server
  that holds it (with the local token from its discovery file).
* :class:`ServeBackend` (``/mcp`` on ``cclens serve``): reads run on the writer's read cursors in a worker
  thread; the caller is the principal the HTTP layer authenticated; audit rows go through the writer.
"""

from __future__ import annotations

import getpass
import threading
from typing import Any, Callable, TypeVar

import anyio.to_thread

from ..audit import AuditEntry, record
from ..config import Settings
from ..errors import ServerError, WarehouseLockedError
from .tools import Caller

T = TypeVar("T")
PRINCIPAL_SCOPE_KEY = "cclens.principal"


class LocalBackend:
    """stdio: the local user's own warehouse, directly or through the server that holds it."""

    surface = "mcp-stdio"

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()  # one DuckDB open at a time in this process
        try:
            user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name (containers): still audited
            user = "unknown"
        self._caller = Caller(f"local:{user}", "local")

    def caller(self, request: Any) -> Caller:
        return self._caller

    async def read(self, fn: Callable[[Any], T]) -> T:
        return await anyio.to_thread.run_sync(self._read, fn)

    def _read(self, fn: Callable[[Any], T]) -> T:
        from ..client import open_reader

        with self._lock, open_reader(self.settings) as wh:
            return fn(wh)

    async def audit(self, entry: AuditEntry) -> None:
        await anyio.to_thread.run_sync(self._audit, entry)

    def _audit(self, entry: AuditEntry) -> None:
        from ..client import find_server

        with self._lock:
            info = find_server(self.settings)
            if info is None:
                try:
                    return self._audit_file(entry)
                except WarehouseLockedError:  # a server started meanwhile
                    info = find_server(self.settings)
                    if info is None:
                        raise
            self._audit_server(info, entry)

    def _audit_file(self, entry: AuditEntry) -> None:
        from ..warehouse import open_warehouse

        wh = open_warehouse(self.settings.db)
        try:
            record(wh, entry)
        finally:
            wh.close()

    @staticmethod
    def _audit_server(info: Any, entry: AuditEntry) -> None:
        import httpx2 as httpx

        headers = {"Authorization": f"Bearer {info.token}"} if info.token else {}
        try:
            r = httpx.post(f"{info.url}/api/v1/audit", json=entry.to_json(), headers=headers, timeout=30)
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach cclens serve at {info.url} to write the audit log: {exc}") from None
        if r.status_code != 200:
            raise ServerError(f"cclens serve at {info.url} refused the audit entry ({r.status_code}); "
                              "cclens mcp needs the local token or an admin token (server_token)")


class ServeBackend:
    """streamable HTTP inside ``cclens serve``: the server's writer, read cursors and authenticated caller."""

    surface = "mcp-http"

    def __init__(self, app: Any):
        self.app = app
        self.settings = app.state.settings

    def caller(self, request: Any) -> Caller:
        p = request.scope.get(PRINCIPAL_SCOPE_KEY) if request is not None else None
        if p is None:  # never reached through /mcp (the endpoint authenticates first)
            raise ServerError("the MCP request was not authenticated")
        principal = p.token_id or ("anonymous" if p.role == "anonymous" else p.role)
        return Caller(principal, p.role, tuple(p.teams))

    async def read(self, fn: Callable[[Any], T]) -> T:
        writer = self.app.state.writer

        def run() -> T:
            cur = writer.reader()
            try:
                return fn(cur)
            finally:
                cur.close()

        return await anyio.to_thread.run_sync(run)

    async def audit(self, entry: AuditEntry) -> None:
        await self.app.state.writer.run(lambda wh: record(wh, entry))
