"""The real Claude Code 2.1.197 OTLP captures through a real server (chunked, JSON and protobuf), and
the merge of OTel api_request events with the same requests from the transcript."""

from __future__ import annotations

import json
import time

import httpx2 as httpx
import orjson
import pytest

from cclens.config import load_settings
from cclens.model.otel import OtelModeller, OtlpRequest, payload_bytes
from cclens.server.app import create_app
from cclens.sources.otlp import decode
from otlp_support import (FIXTURES, capture_logs_json, capture_metrics_raw, chunked, metrics_json_to_protobuf,
                          to_protobuf)
from serve_support import ThreadServer, wait_until

SESSION = "3649b710-3145-482c-8c8e-916950e37083"
REQ = "req_fake_33cedb8e75ea4b0d"


@pytest.fixture
def served(db_path):
    from cclens.warehouse import open_warehouse

    wh = open_warehouse(db_path)
    app = create_app(load_settings(db=db_path), wh)
    with ThreadServer(app) as srv:
        srv.app = app
        srv.reader = app.state.writer.reader()
        yield srv
        srv.reader.close()
    wh.close()


def _post(srv, path, body, ctype, **kw):
    return httpx.post(srv.url + path, content=chunked(body), headers={"content-type": ctype}, timeout=30, **kw)


def _events(srv, n):
    return wait_until(lambda: srv.reader.scalar("SELECT count(*) FROM otel_event") == n, what=f"{n} events")


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_captured_events_chunked(served, encoding):
    doc = capture_logs_json()
    body = orjson.dumps(doc) if encoding == "json" else to_protobuf(doc)
    ctype = "application/json" if encoding == "json" else "application/x-protobuf"
    r = _post(served, "/v1/logs", body, ctype)
    assert r.status_code == 200, r.content
    n = len(doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"])
    _events(served, n)
    rd = served.reader
    names = {r["event_name"] for r in rd.query("SELECT DISTINCT event_name FROM otel_event")}
    assert names == {"hook_execution_start", "hook_registered", "hook_execution_complete", "user_prompt",
                     "api_request", "assistant_response", "tool_decision", "tool_result", "subagent_completed"}
    api = {r["request_key"]: r for r in rd.query("SELECT * FROM api_request")}
    assert set(api) == {REQ, "req_fake_262686e987024f2d", "req_fake_e2c8d5ee5014487b", "req_fake_358c9a545a634846"}
    main = api[REQ]
    assert (main["input_tokens"], main["output_tokens"], main["cache_creation_tokens"], main["cache_read_tokens"]) \
        == (120, 60, 4000, 0)
    assert main["otel_cost_usd"] == pytest.approx(0.0271) and main["duration_ms"] == 174
    assert main["from_otel"] and not main["from_transcripts"] and main["session_id"] == SESSION
    assert main["prompt_id"] == "342adb50-3590-4f55-a771-d32b549b7c17" and main["model"] == "claude-opus-4-8"
    classes = {r["request_key"]: r["c"] for r in rd.query(
        "SELECT request_key, cc_query_source_class(query_source) AS c FROM api_request")}
    assert classes == {REQ: "main", "req_fake_262686e987024f2d": "subagent",
                       "req_fake_e2c8d5ee5014487b": "auxiliary", "req_fake_358c9a545a634846": "main"}
    sub = rd.query("SELECT model, model_raw, total_tokens, is_built_in FROM otel_subagent")
    assert sub == [{"model": "claude-opus-4-8", "model_raw": "claude-opus-4-8[1m]", "total_tokens": 4295,
                    "is_built_in": True}]
    tools = {r["tool_name"]: r for r in rd.query("SELECT * FROM otel_tool_result")}
    assert tools["Write"]["success"] and tools["Write"]["duration_ms"] == 15
    assert not tools["Bash"]["success"] and tools["Bash"]["error_type"] == "ShellError"
    hooks = rd.query("SELECT phase, hook_name, num_success, total_duration_ms FROM otel_hook_execution ORDER BY phase DESC")
    assert hooks == [{"phase": "start", "hook_name": "SessionStart:startup", "num_success": None,
                      "total_duration_ms": None},
                     {"phase": "complete", "hook_name": "SessionStart:startup", "num_success": 1,
                      "total_duration_ms": 310}]
    assert rd.query("SELECT prompt_id, length, source, text FROM prompt") == [
        {"prompt_id": "342adb50-3590-4f55-a771-d32b549b7c17", "length": 16, "source": "otel", "text": None}]
    uses = {r["tool_use_id"]: r for r in rd.query("SELECT * FROM tool_use")}
    assert uses["toolu_fake_write_342f3927ba9d"]["is_error"] is False
    assert uses["toolu_fake_bash_eeb10a8781af"]["is_error"] is True
    assert {r["source"] for r in uses.values()} == {"otel"}
    # content is redacted in model and landing (the capture had OTEL_LOG_USER_PROMPTS=1)
    assert rd.scalar("SELECT attributes->>'prompt' FROM otel_event WHERE event_name = 'user_prompt'") == "<REDACTED>"
    landing = rd.query("SELECT payload, payload_format, redacted FROM landing_otlp_request")
    assert len(landing) == 1 and landing[0]["redacted"]
    assert b"create hello.txt" not in payload_bytes(landing[0]["payload"], "deflate")


def test_captured_metrics_exact_body_kept(served):
    raw = capture_metrics_raw()
    assert _post(served, "/v1/metrics", raw, "application/json").status_code == 200
    rd = served.reader
    wait_until(lambda: rd.scalar("SELECT count(*) FROM otel_point") == 6, what="6 points")
    tokens = {r["type"]: r["value"] for r in rd.query(
        "SELECT type, value FROM otel_point WHERE metric_name = 'claude_code.token.usage'")}
    assert tokens == {"input": 120, "output": 60, "cacheRead": 0, "cacheCreation": 4000}
    assert rd.scalar("SELECT value FROM otel_point WHERE metric_name = 'claude_code.cost.usage'") == pytest.approx(0.0271)
    assert rd.scalar("SELECT DISTINCT model FROM otel_point WHERE model IS NOT NULL") == "claude-opus-4-8"
    row = rd.query("SELECT payload, payload_encoding FROM landing_otlp_request")[0]
    assert payload_bytes(row["payload"], row["payload_encoding"]) == raw, "landing keeps the exact body"
    # the same export again (a client retry) is recognised and not stored twice, in either encoding
    assert _post(served, "/v1/metrics", raw, "application/json").status_code == 200
    assert _post(served, "/v1/metrics", metrics_json_to_protobuf(raw), "application/x-protobuf").status_code == 200
    wait_until(lambda: rd.scalar("SELECT count(*) FROM landing_otlp_request") == 2
               and rd.scalar("SELECT count(*) FROM otlp_duplicate") == 1, what="retry recognised")
    assert rd.scalar("SELECT count(*) FROM otel_point") == 12  # the protobuf copy has another body hash


def _ingest_transcript(wh, home):
    from cclens.sources.transcripts import ingest_paths

    proj = home / ".claude" / "projects" / "-home-dev-repo"
    proj.mkdir(parents=True)
    (proj / f"{SESSION}.jsonl").write_bytes((FIXTURES / "transcript_main_session.jsonl").read_bytes())
    ingest_paths(wh, [proj], host="laptop", include_defaults=False)


def _otel_request(doc) -> OtlpRequest:
    body = to_protobuf(doc)
    d = decode("logs", body, "protobuf")
    return OtlpRequest(request_id="r1", signal="logs", receiver="http", received_at=time.time(), message=d.message,
                       raw=body, raw_format="protobuf", body_sha256="x" * 64, records=d.records)


def _check_merged(wh):
    rows = wh.query("SELECT * FROM api_request WHERE request_id = ?", [REQ])
    assert len(rows) == 1, "one row per request whatever saw it"
    r = rows[0]
    assert r["from_transcripts"] and r["from_otel"]
    assert r["otel_cost_usd"] == pytest.approx(0.0271) and r["duration_ms"] == 174 and r["query_source"] == "sdk"
    assert (r["input_tokens"], r["output_tokens"], r["cache_creation_tokens"]) == (120, 60, 4000)
    assert wh.scalar("SELECT count(*) FROM api_request WHERE request_key = request_id") \
        == wh.scalar("SELECT count(DISTINCT request_key) FROM api_request")


def test_transcript_first_then_otel_through_the_server(isolated_env, db_path):
    from cclens.warehouse import open_warehouse

    wh = open_warehouse(db_path)
    _ingest_transcript(wh, isolated_env)
    before = wh.scalar("SELECT count(*) FROM api_request")
    app = create_app(load_settings(db=db_path), wh)
    with ThreadServer(app) as srv:
        assert _post(srv, "/v1/logs", orjson.dumps(capture_logs_json(["api_request", "user_prompt", "tool_result"])),
                     "application/json").status_code == 200
        rd = app.state.writer.reader()
        wait_until(lambda: rd.scalar("SELECT count(*) FROM api_request WHERE from_otel") == 1, what="merge")
        _check_merged(rd)
        assert rd.scalar("SELECT count(*) FROM api_request") == before
        view = httpx.get(f"{srv.url}/api/v1/sessions/{SESSION}").json()
        assert set(view["sources"]) >= {"otel", "transcripts"}
        otel, tr = view["sources"]["otel"], view["sources"]["transcripts"]
        assert otel["tokens"] == {"input": 120, "output": 60, "cache_read": 0, "cache_creation": 4000}
        assert otel["requests"] == 1 and otel["prompts"] == 1 and otel["tool_uses"] == 1
        assert tr["requests"] >= 1 and tr["first_ts"] and tr["last_ts"]
        assert httpx.get(f"{srv.url}/api/v1/sessions/nope").status_code == 404
        rd.close()
    wh.close()


def test_otel_first_then_transcript(isolated_env, warehouse):
    m = OtelModeller()
    with warehouse.transaction():
        m.model_requests(warehouse, [_otel_request(capture_logs_json(["api_request"]))])
    m.committed()
    assert warehouse.scalar("SELECT count(*) FROM api_request WHERE from_otel AND NOT from_transcripts") == 1
    _ingest_transcript(warehouse, isolated_env)
    _check_merged(warehouse)


def test_continue_transient_session_is_linked(warehouse):
    """A --continue run starts under a throwaway session id (session.count{start_type=continue} and
    start-up hooks); everything after uses the resumed id. The view links them."""
    user = "d" * 64
    transient, resumed = "053d1dd8-0000-4000-8000-000000000000", SESSION
    t0 = 1795606194_000_000_000

    def rec(session, name, ts, **extra):
        attrs = {"session.id": {"stringValue": session}, "user.id": {"stringValue": user},
                 "event.name": {"stringValue": name}, **{k: {"stringValue": v} for k, v in extra.items()}}
        return {"timeUnixNano": str(ts), "body": {"stringValue": f"claude_code.{name}"},
                "attributes": [{"key": k, "value": v} for k, v in attrs.items()]}

    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        rec(transient, "hook_registered", t0), rec(transient, "hook_execution_start", t0 + 1),
        rec(resumed, "user_prompt", t0 + 2_000_000_000, **{"prompt.id": "p2"}),
        rec(resumed, "api_request", t0 + 3_000_000_000, request_id="req_cont")]}]}]}
    metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "claude_code.session.count", "sum": {
        "aggregationTemporality": 1, "isMonotonic": True, "dataPoints": [{
            "asDouble": 1, "timeUnixNano": str(t0 + 5), "attributes": [
                {"key": "session.id", "value": {"stringValue": transient}},
                {"key": "user.id", "value": {"stringValue": user}},
                {"key": "start_type", "value": {"stringValue": "continue"}}]}]}}]}]}]}
    m = OtelModeller()
    req_l = _otel_request(logs)
    d = decode("metrics", orjson.dumps(metrics), "json")
    req_m = OtlpRequest(request_id="r2", signal="metrics", receiver="http", received_at=time.time(),
                        message=d.message, raw=b"{}", raw_format="json", body_sha256="y" * 64, records=d.records)
    with warehouse.transaction():
        m.model_requests(warehouse, [req_l, req_m])
    sessions = {r["session_id"]: r for r in warehouse.query("SELECT * FROM otel_session")}
    assert sessions[transient]["transient"] and not sessions[resumed]["transient"]
    assert warehouse.query("SELECT transient_session_id, resumed_session_id FROM otel_continue_link") == [
        {"transient_session_id": transient, "resumed_session_id": resumed}]
    from cclens.model.session_view import session_view

    assert session_view(warehouse, resumed)["continued_via"] == [transient]
