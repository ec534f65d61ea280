"""`cclens serve` as a user runs it: tokens, auth on HTTP and gRPC, other commands while it runs,
graceful shutdown that flushes everything acknowledged."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import grpc
import httpx2 as httpx
import pytest

from cclens.client import RemoteWarehouse, discovery_path, find_server, open_reader
from cclens.config import load_settings
from cclens.errors import QueryError
from otlp_support import logs_request
from serve_support import ServeProcess

LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCLENS_", "OTEL_"))}
    env["HOME"] = str(tmp_path / "home")
    return env


def cclens(db, *args, env):
    return subprocess.run([sys.executable, "-m", "cclens.cli", "--db", str(db), *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_require_auth_tokens_and_cli_through_the_server(tmp_path):
    env = _env(tmp_path)
    db = tmp_path / "wh.duckdb"
    with ServeProcess(db, "--require-auth", env=env) as srv:
        body = logs_request(["auth-1"])
        ct = {"content-type": "application/x-protobuf"}
        assert httpx.post(srv.url + "/v1/logs", content=body, headers=ct).status_code == 401
        bad = httpx.post(srv.url + "/v1/logs", content=body, headers={**ct, "authorization": "Bearer ccl_x_y"})
        assert bad.status_code == 401

        # the DuckDB file is held by serve, yet `token create` works: it goes through the server
        made = cclens(db, "token", "create", "--role", "ingest", "--name", "laptops", env=env)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        assert token.startswith("ccl_") and token not in made.stderr
        ok = httpx.post(srv.url + "/v1/logs", content=body, headers={**ct, "authorization": f"Bearer {token}"})
        assert ok.status_code == 200

        stub = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}").unary_unary(LOGS)
        with pytest.raises(grpc.RpcError) as err:
            stub(logs_request(["auth-2"]), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub(logs_request(["auth-2"]), timeout=10, metadata=(("authorization", f"Bearer {token}"),))

        # reading through the server with the local token from the discovery file
        info = find_server(load_settings(db=db))
        assert info and info.pid == srv.proc.pid
        assert oct(discovery_path(db).stat().st_mode & 0o777) == "0o600"
        with open_reader(load_settings(db=db)) as wh:
            assert isinstance(wh, RemoteWarehouse)
            assert wh.scalar("SELECT count(*) FROM api_token WHERE role = 'ingest'") == 1
            assert token not in json.dumps(wh.query("SELECT * FROM api_token"), default=str)
            with pytest.raises(QueryError):
                wh.query("DELETE FROM api_token")
            with pytest.raises(QueryError):
                wh.execute("SELECT 1")
        anon = httpx.post(srv.url + "/api/v1/query", json={"sql": "SELECT 1"})
        assert anon.status_code == 401, "the query endpoint never accepts anonymous callers"
        assert srv.stop() == 0
    assert not discovery_path(db).exists()
    from cclens.warehouse import open_warehouse

    wh = open_warehouse(db)  # the server released the file; everything acknowledged is there
    try:
        assert {r["request_key"] for r in wh.query("SELECT request_key FROM api_request")} == {"auth-1", "auth-2"}
        assert wh.scalar("SELECT count(*) FROM landing_otlp_request WHERE token_id IS NOT NULL") == 2
    finally:
        wh.close()


def test_graceful_shutdown_applies_the_spool(tmp_path):
    env = _env(tmp_path)
    db = tmp_path / "wh.duckdb"
    srv = ServeProcess(db, env=env, grpc=False).start()
    ids = [f"g-{i}" for i in range(2000)]
    for i in range(0, len(ids), 200):
        r = httpx.post(srv.url + "/v1/logs", content=logs_request(ids[i:i + 200]),
                       headers={"content-type": "application/x-protobuf"})
        assert r.status_code == 200
    assert srv.stop() == 0  # SIGTERM right away: whatever is still in the spool is applied first
    assert "shutdown complete" in srv.log()
    from cclens.warehouse import open_warehouse

    wh = open_warehouse(db)
    try:
        assert wh.scalar("SELECT count(*) FROM api_request") == 2000
        pos = wh.query("SELECT segment, byte_offset FROM spool_position")[0]
    finally:
        wh.close()
    spool = db.with_name(db.name + ".spool")
    segments = sorted(spool.glob("otlp-*.spool"))
    assert all(int(p.stem.split("-")[1]) >= pos["segment"] for p in segments), "applied segments deleted"


def test_serve_reports_a_busy_port(tmp_path):
    env = _env(tmp_path)
    with ServeProcess(tmp_path / "a.duckdb", env=env, grpc=False) as first:
        out = subprocess.run([sys.executable, "-m", "cclens.cli", "--db", str(tmp_path / "b.duckdb"), "serve",
                              "--port", str(first.port), "--grpc-port", "0"], capture_output=True, text=True,
                             env=env, timeout=60)
        assert out.returncode != 0
        assert "Traceback" not in out.stderr
