"""MCP tool-call latency: the cclens MCP server over streamable HTTP (``/mcp`` on a real ``cclens serve``) and
over stdio (``cclens mcp``, on the file and through the server), measured from the official MCP client.

Builds the demo organisation (``cclens.demo.build_demo``; 60 people over 90 days by default), starts
``cclens serve`` on it, and times each tool ``--runs`` times after one warm-up (client-side: request to
answer, audit row written). Also times the stdio server's start (spawn to initialised session) and, as a
baseline, the REST call that answers the same question as ``get_metric``.

    .venv/bin/python bench/mcp_tools.py                       # 60 people x 90 days, 10 runs per tool
    .venv/bin/python bench/mcp_tools.py --people 300 --days 180 --runs 20
    .venv/bin/python bench/mcp_tools.py --no-record
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from _machine import machine_line, write_section  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p * (len(s) - 1)))]


def calls_for(since: str, until: str, session_id: str) -> list[tuple[str, dict]]:
    rng = {"since": since, "until": until, "tz": "UTC"}
    return [
        ("list_metrics", {}),
        ("get_metric", {"name": "tokens", "group_by": ["team", "week"], **rng}),
        ("get_metric", {"name": "estimated_cost", "group_by": ["person"], **rng}),
        ("compare_periods", {"name": "active_people", "group_by": ["team"], "until": until}),
        ("top_people", {"metric": "estimated_cost", "limit": 10, **rng}),
        ("session_timeline", {"session_id": session_id}),
        ("source_status", rng),
        ("describe_schema", {"table": "api_request"}),
        ("run_sql", {"sql": "SELECT model, count(*) AS n, sum(output_tokens) AS out FROM api_request GROUP BY 1"}),
    ]


async def time_session(target, todo, runs: int) -> tuple[float, dict[str, list[float]]]:
    from mcp import Client

    server = target() if callable(target) else target
    t0 = time.perf_counter()
    async with Client(server, mode="legacy") as client:
        start_ms = (time.perf_counter() - t0) * 1000
        out: dict[str, list[float]] = {}
        for name, args in todo:
            label = f"{name} {args.get('name') or args.get('metric') or ''}".strip()
            r = await client.call_tool(name, args)   # warm-up
            assert not r.is_error, (label, r.content)
            for _ in range(runs):
                t = time.perf_counter()
                r = await client.call_tool(name, args)
                out.setdefault(label, []).append((time.perf_counter() - t) * 1000)
                assert not r.is_error, (label, r.content)
    return start_ms, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=60)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--no-record", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args()

    import httpx2 as httpx
    from mcp_support import http_target, stdio_target
    from serve_support import ServeProcess

    from cclens.demo import build_demo
    from cclens.server.auth import create_token
    from cclens.warehouse import open_warehouse

    for key in list(os.environ):
        if key.startswith(("CCLENS_", "CLAUDE_", "OTEL_", "ANTHROPIC_")):
            del os.environ[key]
    tmp = tempfile.TemporaryDirectory()
    db = Path(tmp.name) / "demo.duckdb"
    t = time.perf_counter()
    r = build_demo(db, people=args.people, days=args.days)
    print(f"demo: {r.people} people, {r.sessions:,} sessions, {r.requests:,} requests ({time.perf_counter() - t:.0f} s)",
          flush=True)
    wh = open_warehouse(db)
    _, analyst = create_token(wh, "analyst", "bench")
    last = wh.scalar("SELECT max(ts)::DATE FROM api_request")
    sid = wh.scalar("SELECT session_id FROM api_request WHERE from_transcripts AND from_otel GROUP BY 1 "
                    "ORDER BY count(*) DESC LIMIT 1")
    wh.close()
    since = (last.fromordinal(last.toordinal() - 29)).isoformat()
    todo = calls_for(since, last.isoformat(), sid)
    results: dict[str, dict[str, list[float]]] = {}
    starts: dict[str, float] = {}

    # stdio on the file (no server): each call opens the warehouse, reads, writes its audit row
    starts["stdio, file"], results["stdio, file"] = asyncio.run(time_session(stdio_target(db), todo, args.runs))
    with ServeProcess(db, grpc=False, env={"CCLENS_SERVER_WATCH_TRANSCRIPTS": "0"}) as srv:
        starts["http"], results["http"] = asyncio.run(time_session(http_target(srv.url + "/mcp", analyst), todo,
                                                                   args.runs))
        starts["stdio, via serve"], results["stdio, via serve"] = asyncio.run(
            time_session(stdio_target(db), todo, args.runs))
        rest = []
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {analyst}"}, timeout=120) as client:
            params = {"group_by": "team,week", "since": since, "until": last.isoformat(), "tz": "UTC"}
            client.get("/api/v1/metrics/tokens", params=params)
            for _ in range(args.runs):
                t = time.perf_counter()
                assert client.get("/api/v1/metrics/tokens", params=params).status_code == 200
                rest.append((time.perf_counter() - t) * 1000)

    transports = list(results)
    lines = ["| tool | " + " | ".join(f"{tr} p50 / p95 (ms)" for tr in transports) + " |",
             "|---|" + "---:|" * len(transports)]
    for label in results["http"]:
        cells = [f"{statistics.median(results[tr][label]):.0f} / {pct(results[tr][label], 0.95):.0f}"
                 for tr in transports]
        lines.append(f"| `{label}` | " + " | ".join(cells) + " |")
    lines.append("| session start (spawn/connect to initialised) | " + " | ".join(
        f"{starts[tr]:.0f}" for tr in transports) + " |")
    table = "\n".join(lines)
    body = (f"`bench/mcp_tools.py`. Machine: {machine_line()}.\n\nDemo organisation: {r.people} people, {args.days} days, "
            f"{r.requests:,} API requests; last 30 days of data; {args.runs} timed calls per tool after a warm-up, "
            "from the official MCP client (legacy handshake, as Claude Code); every call also writes its audit "
            f"row before answering.\n\n{table}\n\nREST baseline for the same question as `get_metric tokens` "
            f"(`GET /api/v1/metrics/tokens?group_by=team,week`): p50 {statistics.median(rest):.0f} ms, "
            f"p95 {pct(rest, 0.95):.0f} ms.")
    print(body)
    if not args.no_record:
        write_section(str(ROOT / "docs" / "benchmarks.md"), "MCP server", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
