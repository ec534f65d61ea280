"""Helpers for the MCP tests: the official MCP client over HTTP and stdio, and one table of tool calls
(valid and invalid arguments) every transport must answer the same way.

The data is the golden organisation of tests/metrics_support.py (March 2026)."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
import os
import sys
from pathlib import Path
from typing import Any

import httpx2 as httpx
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

MARCH = {"since": "2026-03-01", "until": "2026-03-31", "tz": "UTC"}
TOOLS = {"list_metrics", "get_metric", "compare_periods", "top_people", "top_teams", "session_timeline",
         "source_status", "describe_schema", "run_sql"}

# tool -> (valid arguments, [(invalid arguments, a fragment the error must contain), ...])
CASES: dict[str, tuple[dict[str, Any], list[tuple[dict[str, Any], str]]]] = {
    "list_metrics": ({}, [({"group": "nope"}, "Input should be")]),
    "get_metric": ({"name": "tokens", "group_by": ["team"], **MARCH}, [
        ({"name": "billed_cost", "group_by": ["person"], **MARCH}, "cannot be grouped by person"),
        ({"name": "tokens", "since": "March 1st"}, "is not a day; use YYYY-MM-DD"),
        ({"name": "tokens", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"name": "tokens", "filters": {"colour": ["red"]}}, "Extra inputs are not permitted"),
        ({"name": "no_such_metric"}, "Input should be 'active_people'"),
        ({"name": "tokens", "since": "2026-04-01", "until": "2026-03-01"}, "is after until"),
    ]),
    "compare_periods": ({"name": "tokens", "since": "2026-03-16", "until": "2026-03-31", "group_by": ["team"]}, [
        ({"name": "tokens", "group_by": ["week"]}, "cannot group by week"),
        ({"name": "tokens", "previous_since": "2026-02-01"}, "give both previous_since and previous_until"),
    ]),
    "top_people": ({"metric": "lines_added", **MARCH}, [
        ({"metric": "billed_cost"}, "cannot be broken down by person"),
    ]),
    "top_teams": ({"metric": "tokens", **MARCH}, [
        ({"metric": "tokens", "limit": 0}, "greater than or equal to 1"),
    ]),
    "session_timeline": ({"session_id": "A1"}, [
        ({"session_id": "no-such-session"}, "no source has seen session"),
        ({}, "Field required"),
    ]),
    "source_status": ({**MARCH}, [
        ({"since": "2026-04-01", "until": "2026-03-01"}, "is after until"),
    ]),
    "describe_schema": ({"table": "api_request"}, [
        ({"table": "api_requst"}, "did you mean api_request"),
    ]),
    "run_sql": ({"sql": "SELECT model, count(*) AS n FROM api_request GROUP BY 1 ORDER BY 1"}, [
        ({"sql": "DELETE FROM api_request"}, "not allowed"),
        ({"sql": "SELECT * FROM read_csv('/etc/passwd')"}, "read_csv() is not allowed"),
        ({"sql": "SELECT * FROM api_token"}, "not readable"),
        ({"sql": "SELECT 1", "max_rows": 0}, "greater than or equal to 1"),
    ]),
}


def http_target(url: str, token: str | None) -> Any:
    """A factory of the streamable HTTP transport to ``url`` sending ``token`` (the HTTP client is closed
    with the session)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    @asynccontextmanager
    async def transport():
        async with httpx.AsyncClient(headers=headers, timeout=60) as http:
            async with streamable_http_client(url, http_client=http) as streams:
                yield streams

    return transport


def stdio_target(db: Path, *extra: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CCLENS_", "CLAUDE_", "OTEL_", "ANTHROPIC_"))}
    return StdioServerParameters(command=sys.executable, args=["-m", "cclens.cli", "--db", str(db), *extra, "mcp"],
                                 env={**base, **(env or {})})


async def _session(target: Any, work: Any) -> Any:
    server = target() if callable(target) else target
    async with Client(server, mode="legacy") as client:
        return await work(client)


def run(target: Any, work: Any) -> Any:
    """``await work(client)`` on a fresh MCP session to ``target`` (a URL factory or stdio parameters)."""
    return asyncio.run(_session(target, work))


def calls(target: Any, todo: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Call each ``(tool, arguments)`` in one session; the CallToolResults in order."""
    async def work(client: Client) -> list[Any]:
        return [await client.call_tool(name, args) for name, args in todo]

    return run(target, work)


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def check_cases(target: Any, *, sql: bool = True) -> dict[str, Any]:
    """Every tool with valid arguments (a structured, non-error result) and with each invalid argument set
    (an error whose text says what to change). Returns the valid results by tool."""
    todo: list[tuple[str, dict[str, Any]]] = []
    for tool, (valid, invalid) in CASES.items():
        if tool == "run_sql" and not sql:
            continue
        todo.append((tool, valid))
        todo += [(tool, args) for args, _ in invalid]
    results = iter(calls(target, todo))
    ok: dict[str, Any] = {}
    for tool, (valid, invalid) in CASES.items():
        if tool == "run_sql" and not sql:
            continue
        r = next(results)
        assert not r.is_error, (tool, text_of(r))
        assert isinstance(r.structured_content, dict) and text_of(r).strip(), tool
        ok[tool] = r
        for args, fragment in invalid:
            bad = next(results)
            assert bad.is_error, (tool, args, bad.structured_content)
            assert fragment in text_of(bad), (tool, args, text_of(bad))
    return ok


def rest(url: str, token: str, path: str, **params: Any) -> Any:
    r = httpx.get(url + path, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def rest_sql(url: str, token: str, sql: str, **params: Any) -> Any:
    r = httpx.post(url + "/api/v1/query", params=params, json={"sql": sql},
                   headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def discovery_token(db: Path) -> str:
    return json.loads(db.with_name(db.name + ".server.json").read_text())["token"]


def same_times(v: Any) -> Any:
    """``v`` with ISO timestamps parsed (REST's pydantic writes UTC as ``Z``, MCP as ``+00:00``)."""
    from datetime import datetime

    if isinstance(v, dict):
        return {k: same_times(x) for k, x in v.items()}
    if isinstance(v, list):
        return [same_times(x) for x in v]
    if isinstance(v, str) and len(v) >= 19 and v[4] == "-" and v[10] == "T":
        try:
            return datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return v
    return v
