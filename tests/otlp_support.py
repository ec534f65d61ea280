"""Build OTLP requests for tests: from the real Claude Code captures, and Claude-Code-shaped batches."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

FIXTURES = Path(__file__).parent / "fixtures"


def _kv(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in attrs.items()]


def capture_logs_json(names: list[str] | None = None) -> dict[str, Any]:
    """The captured Claude Code 2.1.197 events (one per event kind) as one OTLP/JSON logs request."""
    doc = json.loads((FIXTURES / "otlp_logs_one_per_event.json").read_text())
    records = []
    for name, rec in doc["records_by_event"].items():
        if names and name not in names:
            continue
        rec = copy.deepcopy(rec)
        rec.pop("_from_run", None)
        rec["attributes"] = _kv(rec["attributes"])
        records.append(rec)
    return {"resourceLogs": [{"resource": doc["resource"],
                              "scopeLogs": [{"scope": doc["scope"], "logRecords": records}]}]}


def capture_metrics_raw() -> bytes:
    """The exact body Claude Code sent to /v1/metrics (http/json)."""
    return (FIXTURES / "otlp_metrics_export_http_json.raw.json").read_bytes()


def to_protobuf(doc: dict[str, Any], cls=ExportLogsServiceRequest) -> bytes:
    return json_format.ParseDict(doc, cls()).SerializeToString()


def metrics_json_to_protobuf(raw: bytes) -> bytes:
    return json_format.Parse(raw, ExportMetricsServiceRequest()).SerializeToString()


def chunked(data: bytes, size: int = 1000):
    """A body iterator: httpx sends it with Transfer-Encoding: chunked and no Content-Length."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


def logs_request(request_ids: list[str], session: str = "s-1", *, extra_events: int = 0) -> bytes:
    """A protobuf logs export with one Claude Code ``api_request`` event per request id."""
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    a = rl.resource.attributes.add()
    a.key, a.value.string_value = "service.name", "claude-code"
    sl = rl.scope_logs.add()
    sl.scope.name = "com.anthropic.claude_code.events"
    for i, rid in enumerate(request_ids):
        rec = sl.log_records.add()
        rec.time_unix_nano = 1795606195403000000 + i
        rec.body.string_value = "claude_code.api_request"
        for k, v in (("session.id", session), ("event.name", "api_request"), ("request_id", rid),
                     ("model", "claude-opus-4-8"), ("input_tokens", 10), ("output_tokens", 5)):
            kv = rec.attributes.add()
            kv.key = k
            if isinstance(v, int):
                kv.value.int_value = v
            else:
                kv.value.string_value = v
    return req.SerializeToString()
