"""The MCP endpoint /mcp of a real ``cclens serve`` (subprocess, --require-auth) over the golden
organisation, with the official MCP client: tools list, every tool with valid and invalid arguments,
results equal to the REST API's for the same question, auth (no token, wrong role, team-limited viewer),
and the audit rows every call leaves."""

from __future__ import annotations

import os

import httpx2 as httpx
import pytest

from cclens.server.auth import create_token
from cclens.warehouse import open_warehouse
from mcp_support import (CASES, MARCH, TOOLS, calls, check_cases, discovery_token, http_target, rest, rest_sql,
                         run, same_times, text_of)
from metrics_support import build_org
from serve_support import ServeProcess

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mcp-http")
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith(("CCLENS_", "CLAUDE_", "OTEL_", "ANTHROPIC_")):
                mp.delenv(key)
        (tmp / "home").mkdir()
        mp.setenv("HOME", str(tmp / "home"))
        mp.setenv("TZ", "UTC")
        db = tmp / "wh.duckdb"
        wh = open_warehouse(db)
        build_org(wh, tmp)
        tokens = {role: create_token(wh, role, f"test-{role}") for role in ("viewer", "analyst", "admin", "ingest")}
        tokens["web"] = create_token(wh, "viewer", "web only", teams=["web"])
        tokens["platform"] = create_token(wh, "viewer", "platform only", teams=["platform"])
        wh.close()
        srv = ServeProcess(db, "--require-auth", grpc=False, env={"CCLENS_SERVER_WATCH_TRANSCRIPTS": "0"}).start()
        srv.ids = {k: v[0] for k, v in tokens.items()}
        srv.tokens = {k: v[1] for k, v in tokens.items()}
        srv.tokens["local"] = discovery_token(db)
        srv.mcp = srv.url + "/mcp"
        try:
            yield srv
        finally:
            code = srv.stop()
            assert code == 0, srv.log()[-3000:]


def target(srv, who="viewer"):
    return http_target(srv.mcp, srv.tokens[who])


def test_tools_list(served):
    async def work(client):
        return (await client.list_tools()).tools, (await client.list_resources()).resources, \
            (await client.list_resource_templates()).resource_templates, (await client.list_prompts()).prompts

    tools, resources, templates, prompts = run(target(served), work)
    assert {t.name for t in tools} == TOOLS
    for t in tools:
        assert len(t.description) > 60, t.name
        assert t.input_schema["type"] == "object" and "$defs" not in t.input_schema, t.name
        assert "$ref" not in str(t.input_schema), t.name
        assert t.output_schema and t.output_schema["type"] == "object", t.name
        assert t.annotations.read_only_hint is True and t.annotations.destructive_hint is False
    get_metric = next(t for t in tools if t.name == "get_metric")
    props = get_metric.input_schema["properties"]
    assert "tokens" in props["name"]["enum"] and get_metric.input_schema["required"] == ["name"]
    assert set(props["filters"]["anyOf"][0]["properties"]) == {"person", "team", "model", "project", "source",
                                                               "token_type", "tool"}
    assert props["filters"]["anyOf"][0]["additionalProperties"] is False
    assert {str(r.uri) for r in resources} == {"cclens://metrics/catalog", "cclens://docs/metrics",
                                               "cclens://docs/schema"}
    assert [t.uri_template for t in templates] == ["cclens://metrics/{name}"]
    assert {p.name for p in prompts} == {"weekly_adoption_summary", "cost_review"}


def test_every_tool_valid_and_invalid(served):
    ok = check_cases(target(served, "analyst"))
    assert ok["get_metric"].structured_content["rows"]
    # a viewer reaches every tool but run_sql, which says what it needs
    (r,) = calls(target(served), [("run_sql", CASES["run_sql"][0])])
    assert r.is_error and "needs an analyst or admin token (this one is viewer)" in text_of(r)


def test_results_equal_rest(served):
    url, viewer, analyst = served.url, served.tokens["viewer"], served.tokens["analyst"]
    res = calls(target(served, "analyst"), [
        ("list_metrics", {}),
        ("get_metric", {"name": "tokens", "group_by": ["team"], **MARCH}),
        ("get_metric", {"name": "estimated_cost", "group_by": ["person", "day"],
                        "filters": {"model": ["claude-sonnet-4-5"]}, **MARCH}),
        ("get_metric", {"name": "edit_accept_rate", "group_by": ["tool"], **MARCH}),
        ("top_people", {"metric": "estimated_cost", "limit": 3, **MARCH}),
        ("top_teams", {"metric": "lines_added", **MARCH}),
        ("compare_periods", {"name": "tokens", "since": "2026-03-16", "until": "2026-03-31", "group_by": ["team"]}),
        ("session_timeline", {"session_id": "A1"}),
        ("source_status", MARCH),
        ("run_sql", {"sql": "SELECT model, sum(output_tokens) AS out FROM api_request GROUP BY 1 ORDER BY 1"}),
        ("describe_schema", {"table": "api_request"}),
    ])
    assert all(not r.is_error for r in res), [text_of(r) for r in res if r.is_error]
    cat, tokens, cost, accept, top_people, top_teams, compare, session, status, sql, schema = \
        [r.structured_content for r in res]
    assert cat["metrics"] == rest(url, viewer, "/api/v1/metrics")["metrics"]
    want = rest(url, viewer, "/api/v1/metrics/tokens", group_by="team", **MARCH)
    assert tokens["rows"] == want["rows"] and tokens["coverage"] == want["coverage"]
    assert {r["team"]: r["value"] for r in tokens["rows"]} == {"platform": 2270, "web": 10980, "(no team)": 12020}
    assert cost["rows"] == rest(url, viewer, "/api/v1/metrics/estimated_cost", group_by="person,day",
                                model="claude-sonnet-4-5", **MARCH)["rows"]
    assert cost["currency"] == "USD" and all("sources" in r for r in cost["rows"])
    assert accept["rows"] == rest(url, viewer, "/api/v1/metrics/edit_accept_rate", group_by="tool", **MARCH)["rows"]
    by_person = {r["person"]: r["value"] for r in rest(url, viewer, "/api/v1/metrics/estimated_cost",
                                                       group_by="person", **MARCH)["rows"] if r["value"] is not None}
    best = sorted(by_person.items(), key=lambda kv: -kv[1])[:3]
    assert [(r["person"], r["value"]) for r in top_people["rows"]] == best
    assert [r["rank"] for r in top_people["rows"]] == [1, 2, 3] and top_people["currency"] == "USD"
    by_team = {r["team"]: r["value"] for r in rest(url, viewer, "/api/v1/metrics/lines_added", group_by="team",
                                                   **MARCH)["rows"]}
    assert {r["team"]: r["value"] for r in top_teams["rows"]} == {k: v for k, v in by_team.items() if v is not None}
    cur = {r["team"]: r["value"] for r in rest(url, viewer, "/api/v1/metrics/tokens", group_by="team",
                                               since="2026-03-16", until="2026-03-31", tz="UTC")["rows"]}
    prev = {r["team"]: r["value"] for r in rest(url, viewer, "/api/v1/metrics/tokens", group_by="team",
                                                since="2026-02-28", until="2026-03-15", tz="UTC")["rows"]}
    assert compare["previous_period"] == {"since": "2026-02-28", "until": "2026-03-15"}
    assert {r["team"]: (r["current"], r["previous"]) for r in compare["rows"]} == {
        t: (cur.get(t), prev.get(t)) for t in set(cur) | set(prev)}
    web = next(r for r in compare["rows"] if r["team"] == "web")
    assert web["change"] == cur["web"] - prev["web"]
    assert same_times(session["sources"]) == same_times(rest(url, viewer, "/api/v1/sessions/A1")["sources"])
    assert session["events"] and all(e["source"] in ("transcripts", "hooks", "otel") for e in session["events"])
    assert status["freshness"] == rest(url, viewer, "/api/v1/coverage", **MARCH)["freshness"]
    assert {s["source"] for s in status["sources"]} >= {"transcripts", "otel", "claude_code_analytics", "cost_api"}
    want_sql = rest_sql(url, analyst, "SELECT model, sum(output_tokens) AS out FROM api_request GROUP BY 1 ORDER BY 1",
                        max_rows=100)
    assert {k: sql[k] for k in ("columns", "rows", "row_count", "truncated", "max_rows")} == \
        {k: want_sql[k] for k in ("columns", "rows", "row_count", "truncated", "max_rows")}
    cols = rest_sql(url, analyst, "SELECT column_name FROM information_schema.columns WHERE table_name = "
                                  "'api_request' ORDER BY ordinal_position")
    assert [c["name"] for c in schema["columns"]] == [r[0] for r in cols["rows"]]
    # the text rendering carries the same figures
    assert "platform | Platform | 2270 |" in text_of(res[1])


def test_resources_and_prompts(served):
    async def work(client):
        cat = await client.read_resource("cclens://metrics/catalog")
        doc = await client.read_resource("cclens://docs/metrics")
        schema = await client.read_resource("cclens://docs/schema")
        one = await client.read_resource("cclens://metrics/tokens")
        prompt = await client.get_prompt("cost_review", {"since": "2026-03-01", "until": "2026-03-31"})
        weekly = await client.get_prompt("weekly_adoption_summary", {"weeks": "2", "team": "web"})
        return cat, doc, schema, one, prompt, weekly

    import json

    cat, doc, schema, one, prompt, weekly = run(target(served), work)
    assert json.loads(cat.contents[0].text)["metrics"] == rest(served.url, served.tokens["viewer"],
                                                               "/api/v1/metrics")["metrics"]
    assert "| `tokens` |" in doc.contents[0].text and "never 0" in doc.contents[0].text
    assert "## api_request (table)" in schema.contents[0].text and "api_token" not in schema.contents[0].text
    assert json.loads(one.contents[0].text)["unit"] == "tokens"
    assert "estimated_cost" in prompt.messages[0].content.text and "2026-03-01" in prompt.messages[0].content.text
    assert '"team": ["web"]' in weekly.messages[0].content.text


def _post_initialize(srv, token=None, **headers):
    h = {**ACCEPT, **headers}
    if token:
        h["Authorization"] = f"Bearer {token}"
    return httpx.post(srv.mcp, json=INIT, headers=h, timeout=30)


def test_auth(served):
    r = _post_initialize(served)
    assert r.status_code == 401 and "bearer token is required" in r.json()["detail"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = _post_initialize(served, "ccl_nope_wrong")
    assert r.status_code == 401 and "not valid" in r.json()["detail"]
    r = _post_initialize(served, served.tokens["ingest"])
    assert r.status_code == 403 and "viewer, analyst or admin" in r.json()["detail"]
    for who in ("viewer", "analyst", "admin", "local", "web"):
        r = _post_initialize(served, served.tokens[who])
        assert r.status_code == 200 and r.json()["result"]["serverInfo"]["name"] == "cclens", who
    # DNS rebinding protection on a loopback bind
    r = _post_initialize(served, served.tokens["viewer"], Host="evil.example.com")
    assert r.status_code in (400, 403, 421)


def test_team_limited_viewer(served):
    url, web = served.url, served.tokens["web"]
    res = calls(target(served, "web"), [
        ("get_metric", {"name": "tokens", "group_by": ["team"], **MARCH}),
        ("get_metric", {"name": "tokens", "group_by": ["person"], **MARCH}),
        ("get_metric", {"name": "tokens", "filters": {"team": ["platform"]}, **MARCH}),
        ("get_metric", {"name": "billed_cost", **MARCH}),
        ("top_teams", {"metric": "tokens", **MARCH}),
        ("session_timeline", {"session_id": "A1"}),   # ann in platform that day
        ("compare_periods", {"name": "sessions", "since": "2026-03-16", "until": "2026-03-31", "group_by": ["team"]}),
        ("run_sql", {"sql": "SELECT 1"}),
    ])
    teams, people, other, billed, top, a1, compare, sql = res
    assert {r["team"] for r in teams.structured_content["rows"]} == {"web"}
    assert teams.structured_content["rows"] == rest(url, web, "/api/v1/metrics/tokens", group_by="team", **MARCH)["rows"]
    assert teams.structured_content["filters"] == {"team": ["web"]}
    # ann counts in web only for 03-20 (she moved on the 16th): her platform tokens are not visible
    full = {r["person"]: r["value"] for r in rest(url, served.tokens["viewer"], "/api/v1/metrics/tokens",
                                                  group_by="person", team="web", **MARCH)["rows"]}
    assert {r["person"]: r["value"] for r in people.structured_content["rows"]} == full
    assert "cat" not in full and full["ann"] < 2270 + 3400
    assert other.is_error and "team platform is outside it" in text_of(other)
    assert billed.is_error and "organisation-wide" in text_of(billed)
    assert [r["team"] for r in top.structured_content["rows"]] == ["web"]
    assert a1.is_error and "no source has seen session" in text_of(a1)
    (a1_platform,) = calls(target(served, "platform"), [("session_timeline", {"session_id": "A1"})])
    assert not a1_platform.is_error and a1_platform.structured_content["session_id"] == "A1"
    assert {r["team"] for r in compare.structured_content["rows"]} <= {"web"}
    assert sql.is_error and "this one is viewer" in text_of(sql)
    # REST applies the same scope, and refuses what it cannot limit to teams
    r = httpx.get(url + "/api/v1/metrics/tokens", params={"team": "platform", **MARCH},
                  headers={"Authorization": f"Bearer {web}"}, timeout=30)
    assert r.status_code == 403
    r = httpx.get(url + "/api/v1/sessions/A2", headers={"Authorization": f"Bearer {web}"}, timeout=30)
    assert r.status_code == 403 and "limited to teams web" in r.json()["detail"]


def test_audit_rows(served):
    marker = "SELECT 42 AS audit_marker"
    calls(target(served, "analyst"), [("run_sql", {"sql": marker}), ("get_metric", {"name": "nope"})])
    calls(target(served, "web"), [("get_metric", {"name": "sessions", "group_by": ["team"], **MARCH})])
    rows = rest_sql(served.url, served.tokens["analyst"],
                    "SELECT principal, role, surface, action, arguments, rows, ok, error, duration_ms "
                    "FROM audit_log ORDER BY ts DESC LIMIT 3")
    import json

    got = [dict(zip(rows["columns"], r)) for r in rows["rows"]][::-1]
    sql_row, bad_row, web_row = got
    assert (sql_row["principal"], sql_row["role"], sql_row["surface"], sql_row["action"]) == (
        served.ids["analyst"], "analyst", "mcp-http", "tools/call run_sql")
    assert json.loads(sql_row["arguments"]) == {"sql": marker} and sql_row["rows"] == 1 and sql_row["ok"]
    assert sql_row["duration_ms"] > 0
    assert bad_row["action"] == "tools/call get_metric" and not bad_row["ok"] and "Input should be" in bad_row["error"]
    assert (web_row["principal"], web_row["role"], web_row["ok"]) == (served.ids["web"], "viewer", True)
    assert json.loads(web_row["arguments"])["group_by"] == ["team"] and web_row["rows"] == 1
    health = httpx.get(served.url + "/healthz", timeout=10).json()
    assert health["mcp"]["endpoint"] == "/mcp" and health["mcp"]["calls"] >= 3


def test_team_token_created_through_the_running_server(served):
    import subprocess
    import sys

    def token(*args):
        return subprocess.run([sys.executable, "-m", "cclens.cli", "--db", str(served.db), "token", "create", *args],
                              capture_output=True, text=True, timeout=60)

    made = token("--role", "viewer", "--team", "web", "--name", "web lead")
    assert made.returncode == 0 and "teams web" in made.stderr, made.stderr
    (r,) = calls(http_target(served.mcp, made.stdout.strip()), [("top_teams", {"metric": "tokens", **MARCH})])
    assert [row["team"] for row in r.structured_content["rows"]] == ["web"]
    bad = token("--role", "viewer", "--team", "nosuch")
    assert bad.returncode != 0 and "unknown team nosuch" in bad.stderr and "Traceback" not in bad.stderr
    bad = token("--role", "analyst", "--team", "web")
    assert bad.returncode != 0 and "only viewer tokens" in bad.stderr


def test_get_and_delete_are_refused(served):
    headers = {"Authorization": f"Bearer {served.tokens['viewer']}", "Accept": "text/event-stream"}
    with httpx.stream("GET", served.mcp, headers=headers, timeout=10) as r:   # never an endless stream
        assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert httpx.delete(served.mcp, headers=headers, timeout=10).status_code == 405
