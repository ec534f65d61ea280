"""The metrics REST API and the analyst SQL sandbox against a real server (uvicorn on loopback, real HTTP,
real DuckDB), over the golden organisation of tests/metrics_support.py."""

from __future__ import annotations

import csv
import io

import httpx2 as httpx
import pyarrow.parquet as pq
import pytest

from cclens.config import load_settings
from cclens.server.app import create_app
from cclens.server.auth import create_token
from metrics_support import build_org
from serve_support import ThreadServer

MARCH = {"since": "2026-03-01", "until": "2026-03-31", "tz": "UTC"}


@pytest.fixture
def served(db_path, tmp_path):
    from cclens.warehouse import open_warehouse

    wh = open_warehouse(db_path)
    build_org(wh, tmp_path)
    tokens = {role: create_token(wh, role, f"test-{role}")[1] for role in ("analyst", "viewer", "ingest")}
    app = create_app(load_settings(db=db_path), wh, require_auth=True, local_token="local-secret")
    with ThreadServer(app) as srv:
        srv.tokens = tokens
        srv.tokens["local"] = "local-secret"
        yield srv
    wh.close()


def get(srv, path, role="viewer", **params):
    return httpx.get(srv.url + path, params=params, headers={"authorization": f"Bearer {srv.tokens[role]}"},
                     timeout=60)


def sql(srv, text, role="analyst", **params):
    return httpx.post(srv.url + "/api/v1/query", params=params, json={"sql": text},
                      headers={"authorization": f"Bearer {srv.tokens[role]}"}, timeout=60)


def test_catalog_and_metric_json(served):
    cat = get(served, "/api/v1/metrics").json()
    names = {m["name"] for m in cat["metrics"]}
    assert {"active_people", "tokens", "estimated_cost", "billed_cost", "edit_accept_rate"} <= names
    tokens = next(m for m in cat["metrics"] if m["name"] == "tokens")
    assert tokens["unit"] == "tokens" and "claude_code_analytics" in tokens["sources"]
    r = get(served, "/api/v1/metrics/tokens", group_by="team", **MARCH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["unit"] == "tokens" and body["group_by"] == ["team"]
    assert {row["team"]: row["value"] for row in body["rows"]} == {"platform": 2270, "web": 10980,
                                                                   "(no team)": 12020}
    assert body["coverage"]["transcripts"]["rows"] == 4
    # repeated and comma-separated group_by / filters
    r = httpx.get(served.url + "/api/v1/metrics/tokens", params=[("group_by", "team,day"), ("person", "ann"),
                                                                  *MARCH.items()],
                  headers={"authorization": f"Bearer {served.tokens['viewer']}"})
    assert [(x["team"], x["day"], x["value"]) for x in r.json()["rows"]] == [
        ("platform", "2026-03-02", 1800), ("web", "2026-03-20", 3400)]
    cost = get(served, "/api/v1/metrics/estimated_cost", **MARCH).json()
    assert cost["rows"][0]["value"] == pytest.approx(17.70495)


def test_metric_csv_and_parquet(served):
    r = get(served, "/api/v1/metrics/lines_added", group_by="person", format="csv", **MARCH)
    assert r.headers["content-type"].startswith("text/csv")
    rows = {x["person"]: x for x in csv.DictReader(io.StringIO(r.text))}
    assert rows["cat"]["value"] == "" and rows["cat"]["sources"] == ""   # no data, not 0
    assert float(rows["ann"]["value"]) == 90 and rows["ann"]["sources"] == "claude_code_analytics"
    r = httpx.get(served.url + "/api/v1/metrics/tokens", params={"group_by": "model", **MARCH},
                  headers={"authorization": f"Bearer {served.tokens['viewer']}",
                           "accept": "application/vnd.apache.parquet"})
    assert r.status_code == 200
    table = pq.read_table(io.BytesIO(r.content))
    assert dict(zip(table.column("model").to_pylist(), table.column("value").to_pylist())) == {
        "claude-opus-4-8": 2920, "claude-sonnet-4-5": 22350}


def test_metric_errors(served):
    assert get(served, "/api/v1/metrics/nope").status_code == 404
    r = get(served, "/api/v1/metrics/billed_cost", group_by="person", **MARCH)
    assert r.status_code == 400 and "reports no users" in r.json()["detail"]
    assert get(served, "/api/v1/metrics/tokens", since="yesterday").status_code == 400
    assert get(served, "/api/v1/metrics/tokens", tz="Mars/Olympus").status_code == 400
    assert get(served, "/api/v1/metrics/tokens", format="xml").status_code == 400
    assert httpx.get(served.url + "/api/v1/metrics").status_code == 401          # auth required
    assert get(served, "/api/v1/metrics", role="ingest").status_code == 403      # ingest tokens cannot read


def test_reconcile_coverage_people_endpoints(served):
    rec = get(served, "/api/v1/reconcile", **MARCH).json()
    assert rec["rows"] and "reasons" in rec
    cov = get(served, "/api/v1/coverage", **MARCH).json()
    assert {(r["person"], r["day"]) for r in cov["rows"]} >= {("cat", "2026-03-03"), ("dan", "2026-03-05")}
    assert cov["freshness"]["hooks"]["has_data"]
    un = {(r["kind"], r["value"]) for r in get(served, "/api/v1/people/unlinked").json()}
    assert ("otel_user_id", "uid-zed") in un
    # link through the server (local CLI token; a viewer may not)
    body = {"alias": "otel_user_id:uid-zed", "person": "eve"}
    assert httpx.post(served.url + "/api/v1/people/link", json=body,
                      headers={"authorization": f"Bearer {served.tokens['viewer']}"}).status_code == 403
    r = httpx.post(served.url + "/api/v1/people/link", json=body,
                   headers={"authorization": "Bearer local-secret"})
    assert r.status_code == 200 and r.json()["person_id"] == "eve"
    un = {(r["kind"], r["value"]) for r in get(served, "/api/v1/people/unlinked").json()}
    assert ("otel_user_id", "uid-zed") not in un
    ppl = {p["person_id"] for p in get(served, "/api/v1/people").json()}
    assert ppl == {"ann", "bob", "cat", "dan", "eve"}


def test_sql_sandbox_answers_a_select(served):
    r = sql(served, "SELECT model, sum(input_tokens) AS input FROM api_request GROUP BY 1 ORDER BY 1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"] == ["model", "input"] and body["rows"] == [["claude-opus-4-8", 1510],
                                                                        ["claude-sonnet-4-5", 2800]]
    assert body["truncated"] is False
    r = sql(served, "SELECT * FROM range(50)", max_rows=10)
    assert r.json()["row_count"] == 10 and r.json()["truncated"] is True and r.headers["x-cclens-truncated"] == "true"
    r = sql(served, "SELECT day, actor_id FROM cc_actor_day ORDER BY 1, 2", format="csv")
    assert r.text.splitlines()[0] == "day,actor_id"
    r = sql(served, "SELECT count(*) AS n FROM person", format="parquet")
    assert pq.read_table(io.BytesIO(r.content)).column("n").to_pylist() == [5]


@pytest.mark.parametrize("text, reason", [
    ("SELECT * FROM read_csv('/etc/passwd')", "table function read_csv() is not allowed"),
    ("SELECT * FROM '/etc/passwd'", "reading files or URLs is not allowed"),
    ("COPY (SELECT * FROM api_request) TO '/tmp/out.csv'", "COPY statements are not allowed"),
    ("ATTACH '/tmp/other.duckdb' AS other", "ATTACH statements are not allowed"),
    ("INSTALL httpfs", "INSTALL/LOAD statements are not allowed"),
    ("LOAD httpfs", "INSTALL/LOAD statements are not allowed"),
    ("SELECT 1; SELECT 2", "exactly one SELECT statement is allowed; this SQL has 2 statements"),
    ("SELECT 1; DROP TABLE person", "exactly one SELECT statement is allowed"),
    ("PRAGMA database_list", "PRAGMA statements are not allowed"),
    ("SET enable_external_access = true", "SET statements are not allowed"),
    ("SELECT * FROM read_parquet('https://example.test/x.parquet')", "table function read_parquet() is not allowed"),
    ("SELECT * FROM glob('/home/*')", "table function glob() is not allowed"),
    ("SELECT getenv('HOME')", "function getenv() is not allowed"),
    ("SELECT * FROM api_token", "api_token is not readable"),
    ("DELETE FROM person", "DELETE statements are not allowed"),
    ("SELECT * FROM person WHERE person_id IN (SELECT * FROM read_text('/etc/hostname'))", "read_text"),
])
def test_sql_sandbox_rejections(served, text, reason):
    r = sql(served, text)
    assert r.status_code == 400, r.text
    assert reason in r.json()["detail"]


def test_sql_endpoint_roles(served):
    assert sql(served, "SELECT 1", role="viewer").status_code == 403
    assert sql(served, "SELECT 1", role="ingest").status_code == 403
    assert httpx.post(served.url + "/api/v1/query", json={"sql": "SELECT 1"}).status_code == 401
    # the local CLI keeps the internal endpoint (Arrow, parameters) for report SQL
    r = httpx.post(served.url + "/api/v1/query", json={"sql": "SELECT ? AS x", "params": [7]},
                   headers={"authorization": "Bearer local-secret"})
    assert r.status_code == 200 and r.json() == {"columns": ["x"], "rows": [[7]]}


def test_reads_and_refused_sql_are_audited(served):
    assert get(served, "/api/v1/metrics/tokens", group_by="team", **MARCH).status_code == 200
    assert sql(served, "SELECT count(*) FROM person").status_code == 200
    assert sql(served, "SELECT * FROM read_csv('/etc/passwd')").status_code == 400
    r = httpx.post(served.url + "/api/v1/query",
                   json={"sql": "SELECT action, role, ok, rows, arguments FROM audit_log WHERE surface = 'rest' "
                                "ORDER BY ts"}, headers={"authorization": "Bearer local-secret"})
    rows = [dict(zip(r.json()["columns"], row)) for row in r.json()["rows"]]
    assert [(x["action"], x["role"], x["ok"], x["rows"]) for x in rows] == [
        ("GET /api/v1/metrics/{name}", "viewer", True, 3), ("POST /api/v1/query", "analyst", True, 1),
        ("POST /api/v1/query", "analyst", False, None)]
    assert "read_csv" in rows[2]["arguments"] and served.tokens["analyst"] not in str(rows)
