"""OTLP/gRPC receiver on a second port (default 4317), same pipeline as OTLP/HTTP.

Services ``opentelemetry.proto.collector.{logs,metrics,trace}.v1.*Service/Export``. Requests are
taken as raw bytes (no double decoding) and go through :class:`~cclens.server.otlp_ingest.OtlpIngest`.
Status codes per the OTLP spec: INVALID_ARGUMENT for undecodable data, UNAUTHENTICATED, and
RESOURCE_EXHAUSTED / UNAVAILABLE with a ``google.rpc.RetryInfo`` detail when overloaded (both
retryable by OTel SDKs). gzip is handled by gRPC itself.
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from ..sources.otlp import OtlpDecodeError, encode_response
from .otlp_ingest import OtlpIngest, Overloaded

log = logging.getLogger("cclens.server.otlp_grpc")

_SERVICES = {
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
}


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str, retry_after: int | None = None):
    st = status_pb2.Status(code=code.value[0], message=message)
    if retry_after is not None:
        st.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after)))
    context.set_trailing_metadata((("grpc-status-details-bin", st.SerializeToString()),))
    context.abort(code, message)


class GrpcReceiver:
    """A grpcio server bound to ``host:port`` feeding ``ingest``; ``authenticator`` checks metadata."""

    def __init__(self, ingest: OtlpIngest, authenticator: Any, host: str, port: int, *, workers: int = 16):
        self.ingest = ingest
        self.auth = authenticator
        self.address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cclens-grpc"),
            options=[("grpc.max_receive_message_length", ingest.max_body_bytes),
                     ("grpc.max_send_message_length", 4 << 20)],
        )
        handlers = []
        for signal, service in _SERVICES.items():
            method = grpc.unary_unary_rpc_method_handler(self._export(signal))  # raw bytes in and out
            handlers.append(grpc.method_handlers_generic_handler(service, {"Export": method}))
        self.server.add_generic_rpc_handlers(tuple(handlers))
        self.port = self.server.add_insecure_port(self.address)

    def start(self) -> None:
        self.server.start()
        log.info("OTLP/gRPC listening", extra={"fields": {"address": self.address}})

    def stop(self, grace: float = 10.0) -> None:
        self.server.stop(grace).wait(grace + 1)

    def _export(self, signal: str):
        def export(request: bytes, context: grpc.ServicerContext) -> bytes:
            md = dict(context.invocation_metadata() or ())
            principal, reason = self.auth.check(md.get("authorization"), ("ingest", "admin", "local"))
            if principal is None:
                _abort(context, grpc.StatusCode.UNAUTHENTICATED, reason or "unauthorized")
            try:
                self.ingest.admit()
            except Overloaded as exc:
                code = grpc.StatusCode.RESOURCE_EXHAUSTED if exc.status == 429 else grpc.StatusCode.UNAVAILABLE
                _abort(context, code, str(exc), exc.retry_after)
            try:
                acc = self.ingest.accept(signal, request, "protobuf", receiver="grpc",
                                         content_type="application/grpc", user_agent=md.get("user-agent"),
                                         peer=context.peer(), token_id=principal.token_id)
                acc.durable.result(60)
            except OtlpDecodeError as exc:
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except Overloaded as exc:
                _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc), exc.retry_after)
            except OSError as exc:
                _abort(context, grpc.StatusCode.UNAVAILABLE, f"the write-ahead spool failed: {exc}", 10)
            except Exception as exc:  # noqa: BLE001 - e.g. SpoolFull while shutting down
                if type(exc).__name__ == "SpoolFull":
                    _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc), 5)
                log.exception("unexpected error in the OTLP/gRPC receiver")
                _abort(context, grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
            finally:
                self.ingest.release()
            d = acc.decoded
            return encode_response(signal, d.rejected, d.error)

        return export


def setup_grpc(app: Any, host: str, port: int) -> GrpcReceiver | None:
    """Start OTLP/gRPC with the app (after the spool opens) and stop it first at shutdown."""
    ingest = getattr(app.state, "otlp", None)
    if ingest is None or not port:
        return None
    receiver = GrpcReceiver(ingest, app.state.authenticator, host, port)
    app.state.grpc = receiver
    app.state.on_start.append(receiver.start)
    app.state.on_stop.append(receiver.stop)
    return receiver
