"""Decoding OTLP export requests (protobuf and JSON) for the three signals.

:func:`decode` turns a request body into the ``Export*ServiceRequest`` protobuf message, or raises
:class:`OtlpDecodeError` (the receiver answers 400). JSON follows the OTLP/JSON rules, which differ
from protobuf's canonical JSON mapping: trace and span ids are hex (not base64), enums may be
integers, int64 may be a string or a number, unknown fields are ignored. When a JSON body as a whole
does not decode but its envelope does, each record is decoded on its own and the bad ones are
rejected, so the response is a partial success instead of losing the good records.

What the records mean (Claude Code events, metrics, spans) is modelled in :mod:`cclens.model.otel`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from ..errors import SourceError

SIGNALS = ("logs", "metrics", "traces")

REQUEST_TYPES: dict[str, type[Message]] = {
    "logs": logs_service_pb2.ExportLogsServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "traces": trace_service_pb2.ExportTraceServiceRequest,
}
RESPONSE_TYPES: dict[str, type[Message]] = {
    "logs": logs_service_pb2.ExportLogsServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "traces": trace_service_pb2.ExportTraceServiceResponse,
}
# (top-level list, scope list, record list) per signal, in JSON (camelCase) spelling
_JSON_PATH = {
    "logs": ("resourceLogs", "scopeLogs", "logRecords"),
    "metrics": ("resourceMetrics", "scopeMetrics", "metrics"),
    "traces": ("resourceSpans", "scopeSpans", "spans"),
}
_SNAKE = {"resourceLogs": "resource_logs", "scopeLogs": "scope_logs", "logRecords": "log_records",
          "resourceMetrics": "resource_metrics", "scopeMetrics": "scope_metrics",
          "resourceSpans": "resource_spans", "scopeSpans": "scope_spans"}
_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


class OtlpDecodeError(SourceError):
    """An OTLP body that cannot be decoded at all (the receiver answers 400)."""


@dataclass
class Decoded:
    """A decoded export request: the message, how many records it holds, how many were rejected."""

    message: Message
    records: int
    rejected: int = 0
    error: str | None = None


def count_records(signal: str, msg: Message) -> int:
    """Log records, metric data points, or spans in ``msg``."""
    if signal == "logs":
        return sum(len(s.log_records) for r in msg.resource_logs for s in r.scope_logs)
    if signal == "traces":
        return sum(len(s.spans) for r in msg.resource_spans for s in r.scope_spans)
    n = 0
    for r in msg.resource_metrics:
        for s in r.scope_metrics:
            for m in s.metrics:
                kind = m.WhichOneof("data")
                if kind:
                    n += len(getattr(m, kind).data_points)
    return n


def decode(signal: str, body: bytes, fmt: str) -> Decoded:
    """Decode ``body`` (``fmt`` = ``protobuf`` or ``json``) as an export request of ``signal``."""
    cls = REQUEST_TYPES[signal]
    if fmt == "protobuf":
        try:
            msg = cls.FromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise OtlpDecodeError(f"the body is not a valid OTLP/protobuf {cls.__name__}: {exc}") from None
        return Decoded(msg, count_records(signal, msg))
    return _decode_json(signal, body, cls)


def _decode_json(signal: str, body: bytes, cls: type[Message]) -> Decoded:
    try:
        doc = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise OtlpDecodeError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise OtlpDecodeError(f"an OTLP/JSON {cls.__name__} must be a JSON object, not {type(doc).__name__}")
    try:
        msg = json_format.ParseDict(_fix_ids(doc), cls(), ignore_unknown_fields=True)
        return Decoded(msg, count_records(signal, msg))
    except (json_format.ParseError, _BadId, ValueError, TypeError, AttributeError, RecursionError) as whole_exc:
        return _salvage(signal, doc, cls, whole_exc)


def _salvage(signal: str, doc: dict, cls: type[Message], whole_exc: Exception) -> Decoded:
    """Decode record by record; raise if not even the envelope is usable."""
    top, scope_key, rec_key = _JSON_PATH[signal]
    resources = doc.get(top, doc.get(_SNAKE[top]))
    if not isinstance(resources, list):
        raise OtlpDecodeError(f"the body is not a valid OTLP/JSON {cls.__name__}: {whole_exc}") from None
    out = cls()
    ok = rejected = 0
    first_error: str | None = None
    for res in resources:
        if not isinstance(res, dict):
            rejected += 1
            first_error = first_error or "a resource entry is not an object"
            continue
        res_msg = getattr(out, _SNAKE[top]).add()
        try:
            if "resource" in res:
                json_format.ParseDict(_fix_ids(res["resource"]), res_msg.resource, ignore_unknown_fields=True)
            res_msg.schema_url = str(res.get("schemaUrl", res.get("schema_url", "")) or "")
        except Exception as exc:  # noqa: BLE001 - any failure of a part rejects that part only
            first_error = first_error or f"resource: {exc}"
        scopes = res.get(scope_key, res.get(_SNAKE.get(scope_key, scope_key), []))
        for scope in scopes if isinstance(scopes, list) else []:
            if not isinstance(scope, dict):
                continue
            scope_msg = getattr(res_msg, _SNAKE[scope_key]).add()
            try:
                if "scope" in scope:
                    json_format.ParseDict(scope["scope"], scope_msg.scope, ignore_unknown_fields=True)
            except Exception as exc:  # noqa: BLE001
                first_error = first_error or f"scope: {exc}"
            records = scope.get(rec_key, scope.get(_SNAKE.get(rec_key, rec_key), []))
            container = getattr(scope_msg, _SNAKE.get(rec_key, rec_key))
            for rec in records if isinstance(records, list) else [records]:
                try:
                    if not isinstance(rec, dict):
                        raise TypeError("a record is not a JSON object")
                    item = container.add()
                    try:
                        json_format.ParseDict(_fix_ids(rec), item, ignore_unknown_fields=True)
                    except BaseException:
                        del container[-1]
                        raise
                    ok += _points(signal, item)
                except Exception as exc:  # noqa: BLE001
                    rejected += _points_json(signal, rec)
                    first_error = first_error or str(exc)[:300]
    if ok == 0 and rejected == 0:
        raise OtlpDecodeError(f"the body is not a valid OTLP/JSON {cls.__name__}: {whole_exc}") from None
    return Decoded(out, ok, rejected, f"{rejected} record(s) rejected: {first_error}" if rejected else None)


def _points(signal: str, item: Message) -> int:
    if signal != "metrics":
        return 1
    kind = item.WhichOneof("data")
    return len(getattr(item, kind).data_points) if kind else 0


def _points_json(signal: str, rec: Any) -> int:
    if signal != "metrics" or not isinstance(rec, dict):
        return 1
    for kind in ("sum", "gauge", "histogram", "exponentialHistogram", "summary"):
        data = rec.get(kind)
        if isinstance(data, dict) and isinstance(data.get("dataPoints"), list):
            return max(1, len(data["dataPoints"]))
    return 1


class _BadId(ValueError):
    pass


def _fix_ids(node: Any) -> Any:
    """OTLP/JSON ids are hex; protobuf JSON wants base64 for bytes. Convert them everywhere."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in _ID_KEYS and isinstance(v, str):
                try:
                    out[k] = base64.b64encode(bytes.fromhex(v)).decode() if v else ""
                except ValueError:
                    raise _BadId(f"{k} {v[:40]!r} is not hex") from None
            else:
                out[k] = _fix_ids(v)
        return out
    if isinstance(node, list):
        return [_fix_ids(v) for v in node]
    return node


def encode_response(signal: str, rejected: int = 0, error: str | None = None, *, fmt: str = "protobuf") -> bytes:
    """An ``Export*ServiceResponse`` (partial success when ``rejected``), in ``fmt``."""
    resp = RESPONSE_TYPES[signal]()
    if rejected or error:
        field = {"logs": "rejected_log_records", "metrics": "rejected_data_points",
                 "traces": "rejected_spans"}[signal]
        setattr(resp.partial_success, field, rejected)
        resp.partial_success.error_message = error or ""
    if fmt == "json":
        return json_format.MessageToJson(resp, indent=None).encode()
    return resp.SerializeToString()


def any_value(v: Any) -> Any:
    """A Python value for an OTLP ``AnyValue`` (int64 stays int; bytes become base64 text)."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return None


def attributes(kvs: Any) -> dict[str, Any]:
    """The attribute list ``kvs`` as a dict."""
    return {kv.key: any_value(kv.value) for kv in kvs}


def hex_id(b: bytes) -> str | None:
    return binascii.hexlify(b).decode() if b else None
