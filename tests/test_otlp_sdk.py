"""The OpenTelemetry Python SDK's own OTLP exporters (HTTP protobuf, HTTP JSON, gRPC) as clients of a
real ``cclens serve`` subprocess; the CLI reads the results back through the server's API."""

from __future__ import annotations

import os
import uuid

import pytest

from cclens.client import RemoteWarehouse, find_server
from cclens.config import load_settings
from serve_support import ServeProcess, wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("sdk")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCLENS_", "OTEL_"))}
    env["HOME"] = str(base)
    srv = ServeProcess(base / "wh.duckdb", env=env)
    srv.start()
    yield srv
    code = srv.stop()
    assert code == 0, srv.log()


@pytest.fixture
def wh(server):
    info = find_server(load_settings(db=server.db))
    assert info is not None and info.url == server.url, "serve advertises itself next to the warehouse"
    with RemoteWarehouse(info) as remote:
        yield remote


def _exporters(kind: str, server: ServeProcess, signal: str):
    if kind == "http-protobuf":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.http import Compression
        cls = {"logs": OTLPLogExporter, "metrics": OTLPMetricExporter, "traces": OTLPSpanExporter}[signal]
        path = {"logs": "/v1/logs", "metrics": "/v1/metrics", "traces": "/v1/traces"}[signal]
        return cls(endpoint=server.url + path, compression=Compression.Gzip)
    if kind == "http-json":
        from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.json.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
        cls = {"logs": OTLPLogExporter, "metrics": OTLPMetricExporter, "traces": OTLPSpanExporter}[signal]
        path = {"logs": "/v1/logs", "metrics": "/v1/metrics", "traces": "/v1/traces"}[signal]
        return cls(endpoint=server.url + path)
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    cls = {"logs": OTLPLogExporter, "metrics": OTLPMetricExporter, "traces": OTLPSpanExporter}[signal]
    return cls(endpoint=f"127.0.0.1:{server.grpc_port}", insecure=True)


KINDS = ["http-protobuf", "http-json", "grpc"]


def _resource():
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": "claude-code", "service.version": "2.1.197", "os.type": "linux"})


@pytest.mark.parametrize("kind", KINDS)
def test_sdk_logs_become_events_and_api_requests(kind, server, wh):
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    session = str(uuid.uuid4())
    provider = LoggerProvider(resource=_resource())
    provider.add_log_record_processor(BatchLogRecordProcessor(_exporters(kind, server, "logs")))
    logger = provider.get_logger("com.anthropic.claude_code.events", "2.1.197")
    n = 40
    for i in range(n):
        common = {"session.id": session, "user.id": "u" * 64, "event.name": "api_request",
                  "event.timestamp": "2026-11-25T11:29:55.403Z", "event.sequence": i, "prompt.id": "p-1"}
        logger.emit(body="claude_code.api_request", attributes={
            **common, "model": "claude-opus-4-8", "input_tokens": 10 + i, "output_tokens": 5,
            "cache_read_tokens": 0, "cache_creation_tokens": 100, "cost_usd": 0.001, "duration_ms": 50,
            "request_id": f"req_{kind}_{session}_{i}", "query_source": "sdk", "speed": "normal"})
    logger.emit(body="claude_code.tool_result", attributes={
        "session.id": session, "event.name": "tool_result", "tool_name": "Bash", "tool_use_id": f"toolu_{session}",
        "success": "false", "duration_ms": "135", "tool_input": '{"command": "cat secret.txt"}'})
    assert provider.force_flush(30_000)
    provider.shutdown()

    wait_until(lambda: wh.scalar("SELECT count(*) FROM otel_event WHERE session_id = ?", [session]) == n + 1,
               what=f"{n + 1} events via {kind}")
    rows = wh.query("SELECT count(*) AS n, sum(input_tokens) AS inp, bool_and(from_otel) AS otel, "
                    "any_value(query_source) AS qs FROM api_request WHERE session_id = ?", [session])
    assert rows[0]["n"] == n and rows[0]["inp"] == sum(10 + i for i in range(n)) and rows[0]["otel"]
    assert rows[0]["qs"] == "sdk"
    tool = wh.query("SELECT tool_name, success, duration_ms FROM otel_tool_result WHERE session_id = ?", [session])
    assert tool == [{"tool_name": "Bash", "success": False, "duration_ms": 135}]
    stored = wh.scalar("SELECT attributes->>'tool_input' FROM otel_event WHERE event_name = 'tool_result' "
                       "AND session_id = ?", [session])
    assert stored == "<REDACTED>", "content is not kept unless capture_content is on"
    landing = wh.query("SELECT receiver, payload_format, redacted FROM landing_otlp_request l WHERE EXISTS "
                       "(SELECT 1 FROM otel_event e WHERE e.request_id = l.request_id AND e.session_id = ?)",
                       [session])
    assert landing and {r["receiver"] for r in landing} == {"grpc" if kind == "grpc" else "http"}
    assert any(r["redacted"] for r in landing)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("temporality", ["delta", "cumulative"])
def test_sdk_metrics_are_stored_as_deltas(kind, temporality, server, wh):
    from opentelemetry.sdk.metrics import Counter, MeterProvider
    from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader

    exporter = _exporters(kind, server, "metrics")
    temp = AggregationTemporality.DELTA if temporality == "delta" else AggregationTemporality.CUMULATIVE
    exporter._preferred_temporality = {Counter: temp}
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=_resource(), metric_readers=[reader])
    meter = provider.get_meter("com.anthropic.claude_code", "2.1.197")
    tokens = meter.create_counter("claude_code.token.usage", unit="tokens")
    session = str(uuid.uuid4())
    attrs = {"session.id": session, "model": "claude-opus-4-8[1m]", "type": "input", "query_source": "main"}
    for amount in (120, 60, 4000):
        tokens.add(amount, attrs)
        assert provider.force_flush(30_000)
    provider.shutdown()

    def points():
        return wh.query("SELECT value, value_raw, temporality, model, model_raw FROM otel_point "
                        "WHERE session_id = ? ORDER BY ts", [session])

    got = wait_until(lambda: len(points()) >= 3 and points(), what=f"3 points via {kind}")
    assert [p["value"] for p in got[:3]] == [120, 60, 4000]
    assert {p["model"] for p in got} == {"claude-opus-4-8"} and {p["model_raw"] for p in got} == {"claude-opus-4-8[1m]"}
    if temporality == "cumulative":
        assert [p["value_raw"] for p in got[:3]] == [120, 180, 4180]
    assert wh.scalar("SELECT sum(value) FROM otel_point WHERE session_id = ?", [session]) == 4180


@pytest.mark.parametrize("kind", KINDS)
def test_sdk_traces_are_kept(kind, server, wh):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=_resource())
    provider.add_span_processor(SimpleSpanProcessor(_exporters(kind, server, "traces")))
    tracer = provider.get_tracer("com.anthropic.claude_code.tracing")
    session = str(uuid.uuid4())
    with tracer.start_as_current_span("claude_code.interaction", attributes={"session.id": session}) as root:
        with tracer.start_as_current_span("claude_code.llm_request", attributes={"session.id": session,
                                                                                 "input_tokens": 12}) as child:
            child.add_event("gen_ai.request.attempt", {"attempt": 1})
    provider.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")
    spans = wait_until(lambda: (r := wh.query("SELECT name, trace_id, parent_span_id, events FROM otel_span "
                                              "WHERE session_id = ? ORDER BY start_ts", [session])) and len(r) == 2 and r,
                       what=f"2 spans via {kind}")
    assert [s["name"] for s in spans] == ["claude_code.interaction", "claude_code.llm_request"]
    assert {s["trace_id"] for s in spans} == {trace_id}, "hex ids survive both encodings"
    assert spans[1]["parent_span_id"] == format(root.get_span_context().span_id, "016x")
    assert "gen_ai.request.attempt" in spans[1]["events"]
