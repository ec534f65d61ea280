"""Units of the OTLP pipeline: cumulative→delta with resets, the spool's replay and torn tails,
name normalisation, and the overload answers (429/503 with retry hints) on HTTP and gRPC."""

from __future__ import annotations

import grpc
import httpx2 as httpx
import pytest
from google.rpc import error_details_pb2, status_pb2

from cclens.config import load_settings
from cclens.model.otel import SeriesState, normalize_model, query_source_class
from cclens.server.app import create_app
from cclens.server.spool import Spool, read_entries
from otlp_support import logs_request
from serve_support import ThreadServer, free_port


def test_cumulative_to_delta_with_resets():
    s = SeriesState()
    s._loaded = True
    assert s.delta("k", 100, 200, 10.0, True) == (10.0, False)     # first point: its whole total
    assert s.delta("k", 100, 300, 15.0, True) == (5.0, False)
    assert s.delta("k", 100, 300, 15.0, True) == (0.0, False)      # a repeated point adds nothing
    assert s.delta("k", 100, 250, 12.0, True) == (0.0, False)      # an older point adds nothing
    assert s.delta("k", 400, 500, 3.0, True) == (3.0, True)        # new start time: restarted
    assert s.delta("k", 400, 600, 1.0, True) == (1.0, True)        # lower total: restarted
    assert s.delta("k", 400, 700, 4.0, True) == (3.0, False)
    s.discard()                                                     # a rolled-back batch leaves no trace
    assert s.delta("k", 100, 200, 10.0, True) == (10.0, False)
    s.commit()
    assert s.delta("k", 100, 300, 11.0, True) == (1.0, False)


def test_names():
    assert normalize_model("claude-opus-4-8[1m]") == "claude-opus-4-8"
    assert normalize_model("claude-sonnet-4-5-20250929") == "claude-sonnet-4-5-20250929"
    assert [query_source_class(q) for q in ("sdk", "repl_main_thread", "agent:builtin:general-purpose",
                                            "generate_session_title", "compact", "main", None)] == \
        ["main", "main", "subagent", "auxiliary", "auxiliary", "main", None]


def _spool(tmp_path, wh, applied, **kw):
    sp = Spool(tmp_path / "spool", "t", apply=lambda w, items: applied.extend(i.meta["n"] for i in items), **kw)
    sp.open(wh)
    return sp


def test_spool_replays_after_the_applied_position_and_cuts_a_torn_tail(tmp_path, warehouse):
    applied: list[int] = []
    sp = _spool(tmp_path, warehouse, applied)
    for n in range(5):
        sp.append({"n": n, "records": 1}, b"x" * 100).result(10)
    items = sp.take(2)
    with warehouse.transaction():
        sp.apply(warehouse, items)
    sp.committed(items)
    sp.close()
    seg = sorted((tmp_path / "spool").glob("t-*.spool"))[-1]
    with open(seg, "ab") as f:
        f.write(b"CCSP\x00\x00\x00\x10\x00")  # a crash in the middle of writing the next entry
    applied2: list[int] = []
    sp2 = _spool(tmp_path, warehouse, applied2)
    assert [e.meta["n"] for e in sp2.take(100)] == [2, 3, 4]
    entries, end, problem = read_entries(seg)
    assert problem is None and len(entries) == 5, "the torn tail was cut off"
    sp2.close()


def test_spool_rotates_and_deletes_applied_segments(tmp_path, warehouse):
    applied: list[int] = []
    sp = _spool(tmp_path, warehouse, applied, segment_bytes=1000)
    for n in range(10):
        sp.append({"n": n, "records": 1}, b"y" * 400).result(10)
    assert len(list((tmp_path / "spool").glob("t-*.spool"))) >= 4
    while items := sp.take(3):
        with warehouse.transaction():
            sp.apply(warehouse, items)
        sp.committed(items)
    assert applied == list(range(10))
    assert len(list((tmp_path / "spool").glob("t-*.spool"))) == 1
    sp.close()


@pytest.mark.parametrize("options,status,code", [
    ({"max_inflight": 0}, 429, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ({"max_backlog_bytes": -1}, 503, grpc.StatusCode.UNAVAILABLE),
])
def test_overload_answers_carry_retry_hints(warehouse, db_path, options, status, code):
    settings = load_settings(db=db_path)
    settings.server_host = "127.0.0.1"
    gport = free_port()
    app = create_app(settings, warehouse, grpc_port=gport, otlp_options=options)
    with ThreadServer(app) as srv:
        r = httpx.post(srv.url + "/v1/logs", content=logs_request(["o-1"]),
                       headers={"content-type": "application/x-protobuf"})
        assert r.status_code == status and int(r.headers["retry-after"]) > 0
        st = status_pb2.Status.FromString(r.content)
        assert st.message
        stub = grpc.insecure_channel(f"127.0.0.1:{gport}").unary_unary(
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export")
        with pytest.raises(grpc.RpcError) as err:
            stub(logs_request(["o-2"]), timeout=10)
        assert err.value.code() == code
        details = dict(err.value.trailing_metadata())["grpc-status-details-bin"]
        info = error_details_pb2.RetryInfo()
        assert status_pb2.Status.FromString(details).details[0].Unpack(info)
        assert info.retry_delay.seconds > 0
    assert warehouse.scalar("SELECT count(*) FROM landing_otlp_request") == 0


def test_a_request_that_cannot_be_modelled_is_quarantined_and_the_rest_kept(warehouse, db_path):
    app = create_app(load_settings(db=db_path), warehouse)
    modeller = app.state.otlp.modeller
    real = modeller.model_requests

    def flaky(wh, reqs):  # a modelling bug triggered by one request only
        if any(b"poison" in r.raw for r in reqs):
            raise RuntimeError("model bug")
        return real(wh, reqs)

    modeller.model_requests = flaky
    with ThreadServer(app) as srv:
        ids = [["ok-1"], ["poison-1"], ["ok-2"], ["ok-3"]]
        for batch in ids:
            r = httpx.post(srv.url + "/v1/logs", content=logs_request(batch),
                           headers={"content-type": "application/x-protobuf"})
            assert r.status_code == 200
        reader = app.state.writer.reader()
        from serve_support import wait_until

        wait_until(lambda: reader.scalar("SELECT count(*) FROM quarantine WHERE source = 'otlp'") == 1
                   and reader.scalar("SELECT count(*) FROM api_request") == 3, what="quarantine + the rest")
        q = reader.query("SELECT origin, reason, raw FROM quarantine")[0]
        assert "http request" in q["origin"] and "model bug" in q["reason"]
        import base64

        assert b"poison-1" in base64.b64decode(q["raw"])
        assert {r["request_key"] for r in reader.query("SELECT request_key FROM api_request")} == {"ok-1", "ok-2", "ok-3"}
        assert httpx.get(srv.url + "/healthz").json()["otlp"]["backlog_entries"] == 0
        reader.close()
