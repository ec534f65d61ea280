"""``cclens mcp`` over stdio with the official MCP client (a real subprocess): on the warehouse file
directly, and through a running ``cclens serve`` that holds it. Same tools, same answers, audited."""

from __future__ import annotations

import json
from datetime import date

from cclens.audit import recent
from cclens.mcp.render import jsonable
from cclens.metrics.catalog import compute
from cclens.config import load_settings
from cclens.model.pricing import effective_table
from cclens.server.auth import create_token
from cclens.warehouse import open_warehouse
from mcp_support import (CASES, MARCH, TOOLS, calls, check_cases, rest, rest_sql, run, same_times, stdio_target,
                         text_of)
from metrics_support import build_org
from serve_support import ServeProcess


def _org(tmp_path):
    db = tmp_path / "wh.duckdb"
    wh = open_warehouse(db)
    build_org(wh, tmp_path)
    tokens = {role: create_token(wh, role)[1] for role in ("viewer", "analyst")}
    wh.close()
    return db, tokens


def test_stdio_on_the_file(tmp_path):
    db, _ = _org(tmp_path)
    target = stdio_target(db)

    async def listing(client):
        return (await client.list_tools()).tools

    assert {t.name for t in run(target, listing)} == TOOLS
    check_cases(target)   # the local user may run SQL
    n_calls = 1 + sum(1 + len(invalid) for _, invalid in CASES.values())
    (tokens,) = calls(target, [("get_metric", {"name": "estimated_cost", "group_by": ["team", "model"], **MARCH})])
    # the file is free again between calls: the same figures straight from the catalog
    wh = open_warehouse(db)
    try:
        want = compute(wh, "estimated_cost", since=date(2026, 3, 1), until=date(2026, 3, 31), tz="UTC",
                       group_by=["team", "model"], prices=effective_table(load_settings(db=db)))
        assert tokens.structured_content["rows"] == jsonable(want.rows)
        rows = recent(wh, limit=1000, surface="mcp-stdio")
    finally:
        wh.close()
    assert len(rows) == n_calls
    assert {(r["role"], r["principal"].startswith("local:")) for r in rows} == {("local", True)}
    newest = rows[0]
    assert newest["action"] == "tools/call get_metric" and newest["ok"] and newest["rows"] == len(want.rows)
    assert newest["arguments"] == {"name": "estimated_cost", "group_by": ["team", "model"], **MARCH}
    failed = [r for r in rows if not r["ok"]]
    assert len(failed) == sum(len(invalid) for _, invalid in CASES.values()) and all(r["error"] for r in failed)


def test_stdio_through_a_running_server(tmp_path):
    db, tokens = _org(tmp_path)
    with ServeProcess(db, grpc=False, env={"CCLENS_SERVER_WATCH_TRANSCRIPTS": "0"}) as srv:
        target = stdio_target(db)   # finds the server through the discovery file next to the warehouse
        res = calls(target, [("get_metric", {"name": "tokens", "group_by": ["team", "week"], **MARCH}),
                             ("session_timeline", {"session_id": "C1"}),
                             ("run_sql", {"sql": "SELECT count(*) AS n FROM api_request"}),
                             ("get_metric", {"name": "tokens", "group_by": ["colour"]})])
        metric, session, sql, bad = res
        assert not metric.is_error, text_of(metric)
        assert metric.structured_content["rows"] == rest(srv.url, tokens["viewer"], "/api/v1/metrics/tokens",
                                                         group_by="team,week", **MARCH)["rows"]
        assert same_times(session.structured_content["sources"]) == same_times(
            rest(srv.url, tokens["viewer"], "/api/v1/sessions/C1")["sources"])
        assert sql.structured_content["rows"] == [[7]]
        assert bad.is_error and "Input should be" in text_of(bad)
        audit = rest_sql(srv.url, tokens["analyst"], "SELECT action, role, ok, rows, arguments FROM audit_log "
                                                     "WHERE surface = 'mcp-stdio' ORDER BY ts")
        got = [dict(zip(audit["columns"], r)) for r in audit["rows"]]
        assert [(r["action"], r["role"], r["ok"]) for r in got] == [
            ("tools/call get_metric", "local", True), ("tools/call session_timeline", "local", True),
            ("tools/call run_sql", "local", True), ("tools/call get_metric", "local", False)]
        assert json.loads(got[2]["arguments"]) == {"sql": "SELECT count(*) AS n FROM api_request"}
        assert got[2]["rows"] == 1
