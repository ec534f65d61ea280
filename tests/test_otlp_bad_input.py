"""Bad input: each gets the right status, the server stays up, and nothing else is lost.

A hypothesis test throws arbitrary bytes, mutated protobuf and arbitrary JSON at the receiver."""

from __future__ import annotations

import gzip
import json
import os
import zlib

import httpx2 as httpx
import orjson
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from hypothesis import HealthCheck, given, settings, strategies as st

from cclens.config import load_settings
from cclens.server.app import create_app
from otlp_support import capture_logs_json, chunked, logs_request
from serve_support import ThreadServer, wait_until

LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    from cclens.warehouse import open_warehouse

    db = tmp_path_factory.mktemp("bad") / "wh.duckdb"
    wh = open_warehouse(db)
    app = create_app(load_settings(db=db), wh,
                     otlp_options={"max_body_bytes": LIMIT, "max_decompressed_bytes": 2 * LIMIT})
    with ThreadServer(app) as s:
        s.reader = app.state.writer.reader()
        s.sent_ok: list[str] = []
        yield s
        s.reader.close()
    wh.close()


def post(srv, body, ctype="application/x-protobuf", path="/v1/logs", **headers):
    return httpx.post(srv.url + path, content=body, headers={"content-type": ctype, **headers}, timeout=30)


def good(srv, tag: str) -> None:
    """A valid request right after the bad one is acknowledged and stored."""
    rid = f"good-{tag}-{len(srv.sent_ok)}"
    assert post(srv, logs_request([rid])).status_code == 200
    srv.sent_ok.append(rid)


def stored_ok(srv) -> None:
    wait_until(lambda: srv.reader.scalar("SELECT count(*) FROM api_request WHERE request_key IN "
                                         "(SELECT unnest(?::VARCHAR[]))", [srv.sent_ok]) == len(srv.sent_ok),
               what="every good request stored")


def status_message(resp) -> str:
    st_ = status_pb2.Status()
    if resp.headers["content-type"].startswith("application/json"):
        json_format.Parse(resp.content, st_)
    else:
        st_.ParseFromString(resp.content)
    return st_.message


def test_random_bytes_are_400(srv):
    r = post(srv, os.urandom(64) + b"\xff\xff\xff\xff\x0f")
    assert r.status_code == 400 and "not a valid OTLP/protobuf" in status_message(r)
    good(srv, "random")


def test_truncated_protobuf_is_400(srv):
    body = logs_request(["t-1", "t-2"])
    cut = body[: body.index(b"t-2") - 1]  # inside a length-delimited field
    assert post(srv, cut).status_code == 400
    good(srv, "truncated")


@pytest.mark.parametrize("ctype", ["text/plain", "", "application/xml"])
def test_wrong_content_type_is_415(srv, ctype):
    assert post(srv, logs_request(["x"]), ctype).status_code == 415
    good(srv, "ctype")


def test_protobuf_sent_as_json_is_400(srv):
    assert post(srv, logs_request(["y"]), "application/json").status_code == 400


def test_huge_bodies_are_413(srv):
    big = b"\x00" * (LIMIT + 1)
    assert post(srv, big).status_code == 413  # with Content-Length
    r = httpx.post(srv.url + "/v1/logs", content=chunked(big, 64 * 1024),
                   headers={"content-type": "application/x-protobuf"}, timeout=30)
    assert r.status_code == 413  # chunked, no length
    bomb = gzip.compress(b"\x00" * (4 * LIMIT))
    assert len(bomb) < LIMIT
    assert post(srv, bomb, **{"content-encoding": "gzip"}).status_code == 413
    good(srv, "huge")


def test_compression(srv):
    assert post(srv, b"\x1f\x8b not gzip", **{"content-encoding": "gzip"}).status_code == 400
    assert post(srv, logs_request(["z"]), **{"content-encoding": "br"}).status_code == 415
    rid = "deflated-1"
    assert post(srv, zlib.compress(logs_request([rid])), **{"content-encoding": "deflate"}).status_code == 200
    srv.sent_ok.append(rid)
    stored_ok(srv)


def test_json_with_wrong_types(srv):
    assert post(srv, b'{"resourceLogs": "nope"}', "application/json").status_code == 400
    assert post(srv, b"[1, 2]", "application/json").status_code == 400
    assert post(srv, b'{"resourceLogs": [', "application/json").status_code == 400
    doc = capture_logs_json(["api_request", "user_prompt"])
    records = doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    records.append({"timeUnixNano": "not a number", "body": {"stringValue": "x"}})
    records.append({"attributes": [{"key": "a", "value": {"intValue": {"nested": 1}}}]})
    r = post(srv, orjson.dumps(doc), "application/json")
    assert r.status_code == 200, "partial success: the good records are kept"
    body = r.json()
    assert body["partialSuccess"]["rejectedLogRecords"] == "2" or body["partialSuccess"]["rejectedLogRecords"] == 2
    assert "rejected" in body["partialSuccess"]["errorMessage"]
    srv.sent_ok.append("req_fake_33cedb8e75ea4b0d")
    all_bad = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "zzz"}]}]}]}
    assert post(srv, orjson.dumps(all_bad), "application/json").status_code == 400
    stored_ok(srv)


def test_unknown_metrics_and_events_are_kept(srv):
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "timeUnixNano": "1795606195403000000", "body": {"stringValue": "claude_code.brand_new_event"},
        "attributes": [{"key": "event.name", "value": {"stringValue": "brand_new_event"}},
                       {"key": "weird", "value": {"kvlistValue": {"values": [
                           {"key": "k", "value": {"arrayValue": {"values": [{"intValue": "7"}]}}}]}}}]}]}]}]}
    metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "claude_code.future.metric", "gauge": {"dataPoints": [{"asInt": "5", "timeUnixNano": "1"}]}},
        {"name": "claude_code.latency", "histogram": {"aggregationTemporality": 2, "dataPoints": [
            {"count": "3", "sum": 1.5, "bucketCounts": ["1", "2"], "explicitBounds": [0.5],
             "timeUnixNano": "2"}]}}]}]}]}
    assert post(srv, orjson.dumps(logs), "application/json").status_code == 200
    assert post(srv, orjson.dumps(metrics), "application/json", path="/v1/metrics").status_code == 200
    wait_until(lambda: srv.reader.scalar("SELECT count(*) FROM otel_event WHERE event_name = 'brand_new_event'") == 1,
               what="unknown event kept")
    ev = srv.reader.scalar("SELECT attributes->'weird' FROM otel_event WHERE event_name = 'brand_new_event'")
    assert orjson.loads(ev) == {"k": [7]}
    q = "SELECT * FROM otel_point WHERE metric_name IN ('claude_code.future.metric', 'claude_code.latency')"
    wait_until(lambda: len(srv.reader.query(q)) == 2, what="unknown metrics kept")
    pts = {r["metric_name"]: r for r in srv.reader.query(q)}
    assert pts["claude_code.future.metric"]["value"] == 5 and pts["claude_code.future.metric"]["kind"] == "gauge"
    assert pts["claude_code.latency"]["kind"] == "histogram" and orjson.loads(pts["claude_code.latency"]["data"])["count"] == 3


_valid = logs_request(["fuzz-a", "fuzz-b"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.one_of(
    st.binary(max_size=2048).map(lambda b: ("application/x-protobuf", b)),
    st.tuples(st.integers(0, len(_valid) - 1), st.integers(0, 255)).map(
        lambda t: ("application/x-protobuf", _valid[: t[0]] + bytes([t[1]]) + _valid[t[0] + 1:])),
    st.integers(0, len(_valid)).map(lambda n: ("application/x-protobuf", _valid[:n])),
    st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(
                     st.sampled_from(["resourceLogs", "scopeLogs", "logRecords", "attributes", "key", "value",
                                      "stringValue", "intValue", "timeUnixNano", "traceId", "body", "x",
                                      "resourceMetrics", "scopeMetrics", "metrics", "sum", "dataPoints", "asInt",
                                      "resourceSpans", "scopeSpans", "spans", "spanId", "name"]), c,
                     max_size=4), max_leaves=20).map(lambda d: ("application/json", json.dumps(d).encode()))),
       path=st.sampled_from(["/v1/logs", "/v1/metrics", "/v1/traces"]))
def test_fuzz_never_breaks_the_server(srv, case, path):
    ctype, body = case
    r = post(srv, body, ctype, path=path)
    assert r.status_code in (200, 400), (r.status_code, r.content[:200])
    assert httpx.get(srv.url + "/healthz").status_code == 200


def test_after_everything_nothing_else_was_lost(srv):
    good(srv, "final")
    stored_ok(srv)
    assert srv.reader.scalar("SELECT count(*) FROM quarantine WHERE source = 'otlp'") == 0
