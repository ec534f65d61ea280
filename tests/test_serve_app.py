"""The app factory: /healthz over a real uvicorn, router modules, writer jobs, auth policy."""

from __future__ import annotations

import asyncio

import httpx2 as httpx
import pytest

from cclens.config import load_settings
from cclens.server.app import ROUTER_MODULES, create_app
from cclens.server.auth import Authenticator, create_token, is_loopback
from cclens.server.writer import Writer
from serve_support import ThreadServer


def test_healthz_over_real_uvicorn(warehouse, db_path):
    app = create_app(load_settings(db=db_path), warehouse)
    with ThreadServer(app) as srv:
        r = httpx.get(srv.url + "/healthz")
        assert r.status_code == 200
        assert r.json()["status"] == "ok"
        assert r.json()["db"] == str(db_path)


def test_router_modules_is_the_extension_point():
    assert "otlp_http" in ROUTER_MODULES and "hooks" in ROUTER_MODULES


def test_writer_job_commits_before_resolving(warehouse):
    warehouse.execute("CREATE TABLE t (x INTEGER)")
    w = Writer(warehouse)
    w.start()
    try:
        assert w.submit(lambda wh: wh.execute("INSERT INTO t VALUES (1)") or 7).result(10) == 7
        reader = w.reader()
        assert reader.scalar("SELECT count(*) FROM t") == 1
        reader.close()
        fut = w.submit(lambda wh: (wh.execute("INSERT INTO t VALUES (2)"), 1 / 0))
        with pytest.raises(ZeroDivisionError):
            fut.result(10)
        assert warehouse.scalar("SELECT count(*) FROM t") == 1  # rolled back, writer still alive
        assert asyncio.run(w.run(lambda wh: wh.scalar("SELECT max(x) FROM t"))) == 1
    finally:
        w.stop()


def test_auth_policy(warehouse):
    token_id, token = create_token(warehouse, "ingest", "laptops")
    assert token not in str(warehouse.query("SELECT * FROM api_token"))

    def lookup(digest):
        rows = warehouse.query("SELECT token_id, role FROM api_token WHERE token_sha256 = ?", [digest])
        return (rows[0]["token_id"], rows[0]["role"]) if rows else None

    open_auth = Authenticator(lookup, require=False)
    assert open_auth.check(None, ["ingest"])[0].role == "anonymous"
    assert open_auth.check("Bearer nope", ["ingest"])[0] is None  # a wrong token is always refused
    strict = Authenticator(lookup, require=True)
    assert strict.check(None, ["ingest"])[0] is None
    assert strict.check(f"Bearer {token}", ["ingest"])[0].token_id == token_id
    assert strict.check(f"Bearer {token}", ["admin"])[0] is None
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
