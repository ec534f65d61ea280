"""Kill -9 while clients stream OTLP: every acknowledged record is present exactly once afterwards.

Clients behave like OTel SDK exporters: a request that got no answer (connection reset by the kill)
or a 429/503 is retried with the same body until acknowledged. The server is killed three times
at moments spread over the run and restarted on the same ports; it replays its spool."""

from __future__ import annotations

import os
import random
import threading
import time

import grpc
import httpx2 as httpx

from cclens.client import RemoteWarehouse, find_server
from cclens.config import load_settings
from serve_support import ServeProcess, wait_until
from otlp_support import logs_request


def _client(idx: int, url: str, grpc_port: int, stop: threading.Event, acked: list[str], use_grpc: bool):
    n = 0
    stub = None
    while not stop.is_set():
        ids = [f"c{idx}-{n}-{i}" for i in range(50)]
        body = logs_request(ids, session=f"crash-{idx}-{n}")
        while not stop.is_set():
            try:
                if use_grpc:
                    if stub is None:
                        ch = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
                        stub = ch.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")
                    stub(body, timeout=10)
                    ok = True
                else:
                    r = httpx.post(url + "/v1/logs", content=body, timeout=10,
                                   headers={"content-type": "application/x-protobuf"})
                    ok = r.status_code == 200
            except (httpx.HTTPError, grpc.RpcError):
                ok = False
                stub = None
            if ok:
                acked.extend(ids)
                break
            time.sleep(0.05)
        n += 1


def test_kill_9_loses_nothing_acknowledged_and_stores_nothing_twice(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCLENS_", "OTEL_"))}
    srv = ServeProcess(tmp_path / "wh.duckdb", env=env).start()
    try:
        _run_crash_test(srv)
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.kill()


def _run_crash_test(srv: ServeProcess) -> None:
    stop = threading.Event()
    acked: list[list[str]] = [[] for _ in range(3)]
    threads = [threading.Thread(target=_client, args=(i, srv.url, srv.grpc_port, stop, acked[i], i == 2))
               for i in range(3)]
    for t in threads:
        t.start()
    rng = random.Random(7)
    try:
        for kill in range(3):
            target = sum(map(len, acked)) + 1500 + rng.randrange(1500)
            wait_until(lambda: sum(map(len, acked)) >= target, timeout=120, what="clients making progress")
            time.sleep(rng.random() * 0.3)
            srv.kill()
            srv.start()
        wait_until(lambda: sum(map(len, acked)) >= target + 500, timeout=120, what="progress after restart")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    all_acked = [x for a in acked for x in a]
    assert len(all_acked) == len(set(all_acked))
    info = find_server(load_settings(db=srv.db))
    with RemoteWarehouse(info) as wh:
        wait_until(lambda: httpx.get(srv.url + "/healthz").json()["otlp"]["backlog_entries"] == 0,
                   what="spool applied")
        rows = wh.query("SELECT request_key, count(*) AS n FROM api_request GROUP BY ALL")
        events = wh.query("SELECT attributes->>'request_id' AS rid, count(*) AS n FROM otel_event GROUP BY ALL")
        replayed = wh.scalar("SELECT count(*) FROM landing_otlp_request")
    stored = {r["request_key"]: r["n"] for r in rows}
    ev = {r["rid"]: r["n"] for r in events}
    missing = set(all_acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:3]}\n{srv.log()[-3000:]}"
    assert max(stored.values()) == 1 and max(ev.values()) == 1, "a record was stored twice"
    assert set(ev) == set(stored)
    assert replayed > 0
    assert srv.stop() == 0
