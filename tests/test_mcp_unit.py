"""The MCP server's own rules, in process (the official client connected to the server object) and on an
open loopback app: no audit, no answer; outcomes recorded; roles; anonymous readers."""

from __future__ import annotations

import asyncio

import pytest
from mcp import Client

from cclens.audit import AuditEntry
from cclens.config import load_settings
from cclens.mcp.middleware import _outcome
from cclens.mcp.server import _inline_refs, build_server
from cclens.mcp.tools import Caller
from cclens.server.app import create_app
from mcp_support import MARCH, calls, http_target, text_of
from metrics_support import build_org
from serve_support import ThreadServer


class FakeBackend:
    surface = "test"

    def __init__(self, wh, settings, caller=Caller("tester", "viewer"), fail_audit=False):
        self.wh, self.settings, self._caller, self.fail_audit = wh, settings, caller, fail_audit
        self.entries: list[AuditEntry] = []

    def caller(self, request):
        return self._caller

    async def read(self, fn):
        return fn(self.wh)

    async def audit(self, entry):
        if self.fail_audit:
            raise RuntimeError("disk full")
        self.entries.append(entry)


def in_process(backend, todo):
    async def work():
        async with Client(build_server(backend)) as client:
            return [await client.call_tool(name, args) for name, args in todo]

    return asyncio.run(work())


@pytest.fixture
def org(warehouse, db_path, tmp_path):
    build_org(warehouse, tmp_path)
    return warehouse, load_settings(db=db_path, tz="UTC")


def test_no_audit_no_answer(org):
    wh, settings = org
    backend = FakeBackend(wh, settings, fail_audit=True)
    (r,) = in_process(backend, [("get_metric", {"name": "tokens", **MARCH})])
    assert r.is_error and "could not be written to the audit log (disk full)" in text_of(r)
    assert r.structured_content is None and "2270" not in text_of(r)


def test_outcomes_are_recorded(org):
    wh, settings = org
    backend = FakeBackend(wh, settings)
    ok, bad, sql = in_process(backend, [("top_teams", {"metric": "tokens", **MARCH}),
                                        ("top_teams", {"metric": "billed_cost"}),
                                        ("run_sql", {"sql": "SELECT 1"})])
    assert not ok.is_error and bad.is_error and sql.is_error
    first, second, third = backend.entries
    assert (first.principal, first.role, first.surface, first.action, first.ok, first.rows) == (
        "tester", "viewer", "test", "tools/call top_teams", True, 3)
    assert first.arguments == {"metric": "tokens", **MARCH} and first.duration_ms > 0
    assert not second.ok and "cannot be broken down by team" in second.error and second.rows is None
    assert not third.ok and "needs an analyst or admin token (this one is viewer)" in third.error


def test_schema_helpers():
    schema = {"type": "object", "properties": {"f": {"anyOf": [{"$ref": "#/$defs/F"}, {"type": "null"}],
                                                     "description": "d"}},
              "$defs": {"F": {"type": "object", "properties": {"a": {"type": "string"}}}}}
    assert _inline_refs(schema) == {"type": "object", "properties": {"f": {"anyOf": [
        {"type": "object", "properties": {"a": {"type": "string"}}}, {"type": "null"}], "description": "d"}}}
    assert _outcome({"isError": True, "content": [{"type": "text", "text": "boom"}]}) == (False, "boom", None)
    assert _outcome({"content": [], "structuredContent": {"row_count": 4}}) == (True, None, 4)
    assert _outcome(None) == (True, None, None)


def test_anonymous_reader_on_an_open_loopback_bind(org, db_path):
    wh, _ = org
    app = create_app(load_settings(db=db_path, tz="UTC"), wh, require_auth=False)
    with ThreadServer(app) as srv:
        metric, sql = calls(http_target(srv.url + "/mcp", None), [("get_metric", {"name": "tokens", **MARCH}),
                                                                  ("run_sql", {"sql": "SELECT 1"})])
    assert not metric.is_error and metric.structured_content["rows"][0]["value"] == 25270
    assert sql.is_error and "this one is anonymous" in text_of(sql)
    rows = wh.query("SELECT principal, role, ok FROM audit_log ORDER BY ts")
    assert [(r["principal"], r["role"], r["ok"]) for r in rows] == [("anonymous", "anonymous", True),
                                                                    ("anonymous", "anonymous", False)]


def test_row_limit_and_logging_left_alone(org):
    import logging

    wh, settings = org
    before = list(logging.getLogger().handlers)
    (r,) = in_process(FakeBackend(wh, settings), [("get_metric", {"name": "tokens", "group_by": ["person"],
                                                                  "limit": 2, **MARCH})])
    assert logging.getLogger().handlers == before, "the SDK's root logging setup is undone"
    d = r.structured_content
    assert (d["row_count"], d["truncated"]) == (2, True) and d["total_rows"] > 2
    assert "2 of " in text_of(r) and "raise limit" in text_of(r)
