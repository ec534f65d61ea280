"""POST /hooks and /hooks/batch on a real uvicorn: empty 200s, landing, order, quarantine, auth."""

from __future__ import annotations

import json

import httpx2 as httpx
import orjson
import pytest

from cclens.config import load_settings
from cclens.server.app import ROUTER_MODULES, create_app
from cclens.server.auth import create_token
from cclens.server.hooks import hooks_section
from serve_support import ThreadServer, wait_until

SID = "3649b710-3145-482c-8c8e-916950e37083"


def http_bodies(fixtures):
    return [json.loads(line)["body"] for line in (fixtures / "http_hooks_one_per_event.jsonl").read_text().splitlines()]


@pytest.fixture
def hook_app(warehouse, db_path):
    return create_app(load_settings(db=db_path), warehouse, router_modules=["hooks"])


def test_hooks_router_is_registered():
    assert "hooks" in ROUTER_MODULES


def test_http_hooks_answer_empty_200_and_land_in_order(hook_app, warehouse, fixtures):
    bodies = [b for b in http_bodies(fixtures) if b["session_id"] == SID]
    with ThreadServer(hook_app) as srv, httpx.Client(base_url=srv.url) as client:
        for body in bodies:
            r = client.post("/hooks", content=orjson.dumps(body), headers={"Content-Type": "application/json"})
            assert r.status_code == 200 and r.content == b""
        # unknown events are kept, not rejected
        r = client.post("/hooks?host=lap1", json={"session_id": SID, "hook_event_name": "SomethingNew", "x": 1})
        assert r.status_code == 200 and r.content == b""
        health = client.get("/healthz").json()["hooks"]
        assert health["events"] == len(bodies) + 1
    names = [r["event_name"] for r in warehouse.query(
        "SELECT event_name FROM landing_hook_event WHERE session_id = ? ORDER BY ts, seq", [SID])]
    assert names == [b["hook_event_name"] for b in bodies] + ["SomethingNew"]
    assert warehouse.scalar("SELECT host FROM landing_hook_event WHERE event_name = 'SomethingNew'") == "lap1"
    assert warehouse.scalar("SELECT count(DISTINCT via) FROM landing_hook_event") == 1
    view = hooks_section(warehouse, SID)
    assert view["detail"]["session"]["end_reason"] == "other" and view["prompts"] == 1
    assert {t["tool_name"]: t["status"] for t in view["detail"]["tool_uses"]} == {"Write": "success"}


def test_garbage_is_quarantined_and_answered(hook_app, warehouse):
    with ThreadServer(hook_app) as srv, httpx.Client(base_url=srv.url) as client:
        for bad in (b"not json", b"[1,2]", b'{"no_event": 1}'):
            r = client.post("/hooks", content=bad)
            assert r.status_code == 200 and r.headers.get("x-cclens-quarantined") == "1"
        r = client.post("/hooks/batch", content=b"garbage line\n" + orjson.dumps(
            {"id": "ok1", "hook_time": 1.0, "body": orjson.dumps({"session_id": "s", "hook_event_name": "Setup"}).decode()}),
            headers={"X-Cclens-Sent-Time": "2.0"})
        assert r.status_code == 200 and r.json() == {"stored": 1, "duplicates": 0, "rejected": 1}
        # the writer is asynchronous for quarantined HTTP hooks: wait for it through a committed job
        assert client.post("/hooks/batch", content=b"").json()["stored"] == 0
    reasons = [r["reason"] for r in warehouse.query("SELECT reason FROM quarantine WHERE source = 'hooks'")]
    assert len(reasons) == 4 and any("not JSON" in x for x in reasons)
    assert warehouse.scalar("SELECT event_name FROM landing_hook_event") == "Setup"


def test_batch_is_idempotent(hook_app, warehouse):
    envs = [orjson.dumps({"id": f"id{i}", "hook_time": 100.0 + i, "host": "lap",
                          "body": orjson.dumps({"session_id": "s1", "hook_event_name": name}).decode()})
            for i, name in enumerate(["SessionStart", "UserPromptSubmit", "Stop", "SessionEnd"])]
    body = b"\n".join(envs) + b"\n"
    with ThreadServer(hook_app) as srv, httpx.Client(base_url=srv.url) as client:
        assert client.post("/hooks/batch", content=body, headers={"X-Cclens-Sent-Time": "110"}).json()["stored"] == 4
        again = client.post("/hooks/batch", content=body, headers={"X-Cclens-Sent-Time": "200"}).json()
        assert again == {"stored": 0, "duplicates": 4, "rejected": 0}
    rows = warehouse.query("SELECT event_name, ts, received_at FROM landing_hook_event ORDER BY ts")
    assert [r["event_name"] for r in rows] == ["SessionStart", "UserPromptSubmit", "Stop", "SessionEnd"]
    # the wait on the client (sent - hook time) is taken off the server's receive time
    assert (rows[0]["received_at"] - rows[0]["ts"]).total_seconds() == pytest.approx(10.0, abs=0.01)
    assert warehouse.scalar("SELECT host FROM hook_session") == "lap"


def test_ingest_token_required_when_auth_is_on(warehouse, db_path):
    _, token = create_token(warehouse, "ingest", "laptops")
    _, viewer = create_token(warehouse, "viewer", "dash")
    app = create_app(load_settings(db=db_path), warehouse, router_modules=["hooks"], require_auth=True)
    body = {"session_id": "s", "hook_event_name": "Stop"}
    with ThreadServer(app) as srv, httpx.Client(base_url=srv.url) as client:
        assert client.post("/hooks", json=body).status_code == 401
        assert client.post("/hooks", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/hooks", json=body, headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
        assert client.post("/hooks/batch", content=b"").status_code == 401
        ok = client.post("/hooks", json=body, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.content == b""
    assert warehouse.scalar("SELECT count(*) FROM landing_hook_event") == 1


def test_session_view_has_a_hooks_section(warehouse, db_path, fixtures):
    app = create_app(load_settings(db=db_path), warehouse, router_modules=["hooks", "sessions_api"])
    bodies = [b for b in http_bodies(fixtures) if b["session_id"] == SID]
    with ThreadServer(app) as srv, httpx.Client(base_url=srv.url) as client:
        for body in bodies:
            assert client.post("/hooks", json=body).status_code == 200
        # answered before the commit: the events are stored a moment later
        view = wait_until(lambda: (v := client.get(f"/api/v1/sessions/{SID}")).status_code == 200 and
                          v.json()["sources"]["hooks"]["events"] == len(bodies) and v, what="hooks stored")
    hooks = view.json()["sources"]["hooks"]
    assert hooks["prompts"] == 1 and hooks["tool_uses"] == 1 and hooks["events"] == len(bodies)
    assert [e["event"] for e in hooks["detail"]["timeline"]] == [b["hook_event_name"] for b in bodies]
