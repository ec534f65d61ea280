"""``cclens serve`` and ``cclens token create``."""

from __future__ import annotations

import secrets
import signal
import socket
from pathlib import Path
from typing import Optional

import typer

from . import app
from .context import state

token_app = typer.Typer(help="API tokens (ingest for pushing data; viewer/analyst/admin for reading).",
                        no_args_is_help=True)
app.add_typer(token_app, name="token")


@app.command()
def serve(
    ctx: typer.Context,
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1; env CCLENS_SERVER_HOST). "
                                       "Anything but loopback requires ingest tokens."),
    port: Optional[int] = typer.Option(None, "--port", help="HTTP port: API, dashboard, OTLP/HTTP (default 8765)."),
    grpc_port: Optional[int] = typer.Option(None, "--grpc-port", help="OTLP/gRPC port (default 4317; 0 = off)."),
    db: Optional[Path] = typer.Option(None, "--db", help="Warehouse file (same as the global --db).", metavar="PATH"),
    require_auth: bool = typer.Option(False, "--require-auth", help="Require a token even on loopback."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every HTTP request."),
    watch: Optional[bool] = typer.Option(None, "--watch/--no-watch",
                                         help="Ingest this machine's transcripts as they are written "
                                              "(default: on when serving on loopback)."),
) -> None:
    """Run the server: receives OpenTelemetry (OTLP/HTTP on --port, OTLP/gRPC on --grpc-port), owns the
    warehouse, and serves the API the other commands use while it runs.

    Point Claude Code at it with OTEL_EXPORTER_OTLP_ENDPOINT=http://HOST:8765 and
    OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf (see docs/server.md). Stop with Ctrl-C or SIGTERM: it
    flushes everything received before exiting.
    """
    import uvicorn

    from ..client import remove_discovery, write_discovery
    from ..errors import ConfigError
    from ..server.app import configure_logging, create_app

    st = state(ctx)
    if db is not None:
        st.db = db
        st._settings = None
    settings = st.settings
    if host is not None:
        settings.server_host = host
    if port is not None:
        settings.server_port = port
    if grpc_port is not None:
        settings.server_grpc_port = grpc_port
    if watch is not None:
        settings.server_watch_transcripts = watch
    configure_logging(log_level)
    wh = st.open_warehouse()
    local_token = secrets.token_urlsafe(32)
    try:
        try:
            application = create_app(settings, wh, local_token=local_token, grpc_port=settings.server_grpc_port,
                                     require_auth=True if require_auth else None)
        except RuntimeError as exc:  # grpc cannot bind
            raise ConfigError(f"cannot listen for OTLP/gRPC on {settings.server_host}:{settings.server_grpc_port} "
                              f"({exc}); choose another --grpc-port or 0 to turn it off") from None
        # Bind before starting: a busy port is a clear error, and clients that read the discovery file
        # as soon as it appears find a listening socket (connections wait in its backlog).
        host_ = settings.server_host
        sock = socket.socket(socket.AF_INET6 if ":" in host_ else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host_, settings.server_port))
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot listen on {host_}:{settings.server_port} ({exc.strerror or exc}); "
                              "choose another --port") from None
        port_ = sock.getsockname()[1]
        shown_host = host_ if ":" not in host_ else f"[{host_}]"
        connect_host = "127.0.0.1" if host_ in ("0.0.0.0", "") else ("[::1]" if host_ == "::" else shown_host)
        url = f"http://{connect_host}:{port_}"

        def advertise() -> None:
            write_discovery(settings.db, url, local_token, grpc_port=settings.server_grpc_port)

        application.state.on_start.append(advertise)
        application.state.on_stop.insert(0, lambda: remove_discovery(settings.db))
        config = uvicorn.Config(application, host=settings.server_host, port=settings.server_port,
                                log_config=None, access_log=access_log, lifespan="on",
                                timeout_graceful_shutdown=30, server_header=False)
        server = uvicorn.Server(config)
        # uvicorn re-raises the signal that stopped it once it has shut down; a no-op SIGTERM handler
        # lets us close the warehouse and exit 0 after the graceful shutdown instead of dying by it.
        signal.signal(signal.SIGTERM, lambda *_: None)
        server.run(sockets=[sock])
    finally:
        remove_discovery(settings.db)
        wh.close()


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    role: str = typer.Option("ingest", "--role", help="ingest, viewer, analyst or admin."),
    name: Optional[str] = typer.Option(None, "--name", help="A label, e.g. the team or machine group."),
    team: Optional[list[str]] = typer.Option(None, "--team", help="Limit a viewer token to this team (repeat for "
                                             "several): metrics and MCP answer for these teams only."),
) -> None:
    """Create a token and print it once (only its hash is stored). Works while `cclens serve` runs.

    Use it as OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer <token>".
    """
    from ..client import create_token

    token_id, token = create_token(state(ctx).settings, role, name, team)
    typer.echo(token)
    scope = f", teams {', '.join(sorted(team))}" if team else ""
    typer.echo(f"token {token_id} (role {role}{scope}) created; it is not shown again", err=True)
