"""The FastAPI application of ``cclens serve``.

:func:`create_app` builds the app around one warehouse and one :class:`~cclens.server.writer.Writer`.
Routes come from the modules in :data:`ROUTER_MODULES` (modules under ``cclens.server``): each
exposes ``router: fastapi.APIRouter`` and may expose ``setup(app)``, called once at creation, to
register start/stop callbacks (``app.state.on_start`` / ``app.state.on_stop``, run in order at
startup and in reverse order at shutdown). A new endpoint is one new module plus one entry here;
dependencies for the writer, read cursors and auth are in :mod:`cclens.server.deps`.

Shutdown is graceful: stop accepting, run the stop callbacks (gRPC drains, the spool is applied),
the writer applies everything queued and checkpoints, then the warehouse is closed by the caller.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, Callable

from fastapi import FastAPI

from .. import __version__
from ..config import Settings
from .auth import Authenticator, db_lookup, is_loopback
from .rollup_refresh import RollupRefresher
from .writer import Writer

log = logging.getLogger("cclens.server")

# Modules under cclens.server that expose `router` (and optionally `setup(app)`). Add yours here.
ROUTER_MODULES = ["otlp_http", "sessions_api", "query_api", "hooks", "transcripts_api", "metrics_api", "dashboard", "mcp_http",
                  "scheduler"]


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, plus any ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "info") -> None:
    """Send cclens and uvicorn logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    for name in ("cclens", "uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.propagate = False
        lg.setLevel(level.upper())


def _load_router_modules(names: list[str]) -> list[Any]:
    mods = []
    for name in names:
        try:
            mods.append(importlib.import_module(f"{__package__}.{name}"))
        except ModuleNotFoundError as exc:  # a router not written yet must not break the server
            if exc.name != f"{__package__}.{name}":
                raise
    return mods


def create_app(settings: Settings, warehouse: Any, *, writer: Writer | None = None,
               require_auth: bool | None = None, local_token: str | None = None,
               router_modules: list[str] | None = None, grpc_port: int | None = None,
               otlp_options: dict[str, Any] | None = None) -> FastAPI:
    """Build the app serving ``warehouse`` (opened and migrated by the caller, closed by the caller).

    ``require_auth`` defaults to "the bind host is not loopback" (or ``server_require_auth``).
    ``local_token`` is the per-run token of the local CLI (see :mod:`cclens.server.auth`).
    ``grpc_port`` (non-zero) also starts OTLP/gRPC on that port; ``otlp_options`` are passed to
    :class:`~cclens.server.otlp_ingest.OtlpIngest` (limits, spool directory).
    """
    writer = writer or Writer(warehouse)
    writer.add_source(RollupRefresher(writer))  # metric rollups: dirty days recomputed after commits
    if require_auth is None:
        require_auth = settings.server_require_auth or not is_loopback(settings.server_host)
    on_start: list[Callable[[], None]] = []
    on_stop: list[Callable[[], None]] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        writer.start()
        for fn in on_start:
            fn()
        app.state.started_at = time.time()
        log.info("server started", extra={"fields": {"db": str(settings.db), "require_auth": require_auth}})
        try:
            yield
        finally:
            log.info("shutting down: flushing")
            for fn in reversed(on_stop):
                try:
                    fn()
                except Exception:  # pragma: no cover - keep flushing the rest
                    log.exception("stop callback failed")
            writer.stop()
            log.info("shutdown complete", extra={"fields": {"commits": writer.commits}})

    app = FastAPI(title="cclens", version=__version__, lifespan=lifespan, docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redoc_url=None)
    app.state.settings = settings
    app.state.warehouse = warehouse
    app.state.writer = writer
    app.state.on_start = on_start
    app.state.on_stop = on_stop
    app.state.started_at = None
    app.state.authenticator = Authenticator(db_lookup(writer.reader), require=require_auth,
                                            local_token=local_token)
    app.state.health: dict[str, Callable[[], Any]] = {}
    app.state.otlp_options = dict(otlp_options or {})

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness and a little state: 200 while the writer runs."""
        body: dict[str, Any] = {
            "status": "ok" if writer.running else "stopping",
            "version": __version__,
            "db": str(settings.db),
            "process_cpu_seconds": round(time.process_time(), 3),
            "writer": {"commits": writer.commits, "last_error": writer.last_error,
                       "busy_seconds": round(writer.busy_seconds, 3), "cpu_seconds": round(writer.cpu_seconds, 3)},
        }
        for name, fn in app.state.health.items():
            body[name] = fn()
        return body

    for mod in _load_router_modules(router_modules if router_modules is not None else ROUTER_MODULES):
        setup = getattr(mod, "setup", None)
        if setup:
            setup(app)
        app.include_router(mod.router)
    if grpc_port:
        from .otlp_grpc import setup_grpc

        setup_grpc(app, settings.server_host, grpc_port)
    return app
