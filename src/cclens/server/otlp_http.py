"""OTLP/HTTP receiver: ``POST /v1/metrics``, ``/v1/logs``, ``/v1/traces`` on the main port.

So ``OTEL_EXPORTER_OTLP_ENDPOINT=http://host:8765`` just works. Bodies may be
``application/x-protobuf`` or ``application/json``, gzip- or deflate-compressed, with a
Content-Length or chunked (Claude Code 2.1.191–2.1.211 sends chunked bodies without a length).

Answers, per the OTLP/HTTP spec (errors carry a ``google.rpc.Status`` in the request's encoding):

* 200 + ``Export*ServiceResponse`` once the request is durable (fsynced to the spool); with
  ``partial_success`` when some JSON records could not be decoded (the rest are kept);
* 400 undecodable body; 401 missing/invalid token; 413 body over the size limit (before or after
  decompression); 415 unsupported content type or encoding;
* 429 too many requests in flight, 503 spool over its limit or shutting down, both with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from starlette.requests import ClientDisconnect
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from starlette.concurrency import run_in_threadpool

from ..sources.otlp import OtlpDecodeError, encode_response
from .otlp_ingest import OtlpIngest, Overloaded

log = logging.getLogger("cclens.server.otlp")
router = APIRouter()

_CT = {"application/x-protobuf": "protobuf", "application/protobuf": "protobuf", "application/json": "json"}
_GRPC_CODE = {400: code_pb2.INVALID_ARGUMENT, 401: code_pb2.UNAUTHENTICATED, 403: code_pb2.PERMISSION_DENIED,
              413: code_pb2.RESOURCE_EXHAUSTED, 415: code_pb2.INVALID_ARGUMENT, 429: code_pb2.RESOURCE_EXHAUSTED,
              503: code_pb2.UNAVAILABLE, 500: code_pb2.INTERNAL}


class _TooLarge(Exception):
    pass


class _Unsupported(Exception):
    pass


def setup(app: FastAPI) -> None:
    """Create the OTLP pipeline (spool + modeller) and hook it into the server's start/stop."""
    ingest = OtlpIngest(app.state.settings, app.state.writer, **getattr(app.state, "otlp_options", {}))
    app.state.otlp = ingest
    app.state.on_start.append(ingest.start)
    app.state.on_stop.append(ingest.stop)
    app.state.health["otlp"] = ingest.health


def _error(status: int, message: str, fmt: str, headers: dict[str, str] | None = None) -> Response:
    st = status_pb2.Status(code=_GRPC_CODE.get(status, code_pb2.UNKNOWN), message=message)
    if fmt == "json":
        return Response(json_format.MessageToJson(st, indent=None), status, headers, media_type="application/json")
    return Response(st.SerializeToString(), status, headers, media_type="application/x-protobuf")


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise _TooLarge(f"the body is {length} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate", "x-gzip"):
        raise _Unsupported(f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
    d = zlib.decompressobj(zlib.MAX_WBITS | 32 if encoding != "deflate" else zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise _TooLarge(f"the body decompresses to more than {limit} bytes")
        if not d.eof:
            raise OtlpDecodeError(f"the {encoding} stream is truncated")
    except zlib.error as exc:
        raise OtlpDecodeError(f"the body is not valid {encoding}: {exc}") from None
    return out


async def _export(request: Request, signal: str) -> Response:
    ingest: OtlpIngest = request.app.state.otlp
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = _CT.get(ctype)
    resp_fmt = fmt or "protobuf"
    principal, reason = request.app.state.authenticator.check(
        request.headers.get("authorization"), ("ingest", "admin", "local"))
    if principal is None:
        return _error(401, reason or "unauthorized", resp_fmt, {"WWW-Authenticate": "Bearer"})
    if fmt is None:
        return _error(415, f"unsupported Content-Type {ctype or '(none)'!r}; send application/x-protobuf "
                           "or application/json", resp_fmt)
    try:
        ingest.admit()
    except Overloaded as exc:
        return _error(exc.status, str(exc), fmt, {"Retry-After": str(exc.retry_after)})
    try:
        body = await _read_body(request, ingest.max_body_bytes)
        encoding = request.headers.get("content-encoding", "").strip().lower()
        body = _decompress(body, encoding, ingest.max_decompressed_bytes)
        kwargs: dict[str, Any] = dict(receiver="http", content_type=ctype, content_encoding=encoding or None,
                                      user_agent=request.headers.get("user-agent"),
                                      peer=request.client.host if request.client else None,
                                      token_id=principal.token_id)
        if fmt == "json" or len(body) > (1 << 20):
            acc = await run_in_threadpool(ingest.accept, signal, body, fmt, **kwargs)
        else:
            acc = ingest.accept(signal, body, fmt, **kwargs)
        await asyncio.wrap_future(acc.durable)
    except _TooLarge as exc:
        return _error(413, str(exc), fmt)
    except _Unsupported as exc:
        return _error(415, str(exc), fmt)
    except ClientDisconnect:  # the client went away mid-body: nothing was spooled, nobody to answer
        return _error(400, "the client disconnected before the body was complete", fmt)
    except OtlpDecodeError as exc:
        return _error(400, str(exc), fmt)
    except Overloaded as exc:
        return _error(exc.status, str(exc), fmt, {"Retry-After": str(exc.retry_after)})
    except OSError as exc:  # the spool could not be written: nothing was acknowledged
        return _error(503, f"the write-ahead spool failed ({exc.strerror or exc}); retry later", fmt,
                      {"Retry-After": "10"})
    except Exception as exc:
        if type(exc).__name__ == "SpoolFull":
            return _error(503, str(exc), fmt, {"Retry-After": "5"})
        log.exception("unexpected error in the OTLP receiver")
        return _error(500, f"internal error: {type(exc).__name__}", fmt)
    finally:
        ingest.release()
    d = acc.decoded
    media = "application/json" if fmt == "json" else "application/x-protobuf"
    return Response(encode_response(signal, d.rejected, d.error, fmt=fmt), 200, media_type=media)


@router.post("/v1/logs", include_in_schema=True)
async def export_logs(request: Request) -> Response:
    """OTLP/HTTP logs (Claude Code events)."""
    return await _export(request, "logs")


@router.post("/v1/metrics")
async def export_metrics(request: Request) -> Response:
    """OTLP/HTTP metrics."""
    return await _export(request, "metrics")


@router.post("/v1/traces")
async def export_traces(request: Request) -> Response:
    """OTLP/HTTP traces."""
    return await _export(request, "traces")
