"""Metric catalog query times on a generated organisation.

Generates, straight into a DuckDB warehouse with SQL (no HTTP): PEOPLE people in 50 teams (10 % move
team mid-May), PEOPLE x DAYS of Claude Code Analytics rows (actor-days at 60 % activity, with
per-model usage and tool actions), Enterprise Analytics user-days, the Cost and Usage API days, and
EVENTS OpenTelemetry events (50 per session; 30 % api_request, which also land in ``api_request``,
20 % of those sessions seen in transcripts too) with 6 metric points per session. Then computes every
catalog metric over one quarter grouped by team and week (``billed_cost`` has no team: by week) and
prints p50/p95 per metric. Target: p95 < 300 ms per metric.

    .venv/bin/python bench/query.py                  # 5,000 people x 365 days, 5 million OTel events
    .venv/bin/python bench/query.py --full           # 5,000 people x 365 days, 50 million OTel events
    .venv/bin/python bench/query.py --events 1000000 --runs 5 --no-record
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from _machine import machine, machine_line, write_section  # noqa: E402

START = "2026-01-01"
QUARTER = (date(2026, 4, 1), date(2026, 6, 30))
MODELS = "['claude-opus-4-8', 'claude-sonnet-4-5', 'claude-haiku-4-5']"


def generate(wh, people: int, days: int, events: int) -> dict[str, float]:
    """Fill ``wh``; returns seconds per step."""
    t: dict[str, float] = {}

    def step(name: str, *sqls: str) -> None:
        t0 = time.perf_counter()
        for sql in sqls:
            wh.execute(sql)
        t[name] = time.perf_counter() - t0
        print(f"  {name}: {t[name]:.1f} s", flush=True)

    now = "TIMESTAMPTZ '2027-01-02 00:00:00+00'"
    step("people", f"""
        INSERT INTO person SELECT 'p' || i, 'Person ' || i, CASE WHEN i >= 10 THEN 'p' || (i % 10) END, 'import', {now}
        FROM range({people}) r(i)""", f"""
        INSERT INTO alias SELECT 'email', 'p' || i || '@org.test', 'p' || i, 'import', {now} FROM range({people}) r(i)""",
         f"""INSERT INTO alias SELECT 'otel_user_id', 'u' || i, 'p' || i, 'import', {now} FROM range({people}) r(i)
             WHERE i % 10 = 3""",
         f"INSERT INTO team SELECT 't' || j, 'Team ' || j, NULL, {now} FROM range(50) r(j)", f"""
        INSERT INTO membership
        SELECT 'p' || i, 't' || (i % 50), DATE '{START}', CASE WHEN i % 10 = 0 THEN DATE '2026-05-14' END, 'import', {now}
        FROM range({people}) r(i)
        UNION ALL
        SELECT 'p' || i, 't' || ((i + 1) % 50), DATE '2026-05-15', NULL, 'import', {now}
        FROM range({people}) r(i) WHERE i % 10 = 0""")
    ad = f"""(SELECT DATE '{START}' + d::INTEGER AS day, i, hash(i * 1000 + d) AS h
              FROM range({days}) a(d), range({people}) b(i) WHERE hash(i * 1000 + d) % 10 < 6)"""
    step("claude_code_analytics", f"""
        INSERT INTO cc_actor_day SELECT day, 'user', 'p' || i || '@org.test', 'p' || i || '@org.test', NULL, false,
               'vscode', 'org', 'api', NULL, 1 + h % 3, h % 200, h % 50, h % 3, h % 2, 1, {now}, 'bench'
        FROM {ad}""", f"""
        INSERT INTO cc_daily SELECT day, 'user', 'p' || i || '@org.test', 'p' || i || '@org.test', NULL, false, 'vscode',
               {MODELS}[1 + (h % 3)::INTEGER], 1000 + h % 5000, 200 + h % 1000, h % 20000, h % 3000,
               (h % 500)::DECIMAL(20, 6), 'USD', {now}, 'bench'
        FROM {ad}""", f"""
        INSERT INTO cc_tool_action SELECT day, 'user', 'p' || i || '@org.test', false, 'vscode', t.tool,
               h % 20, h % 3
        FROM {ad}, (VALUES ('edit_tool'), ('write_tool')) t(tool)""")
    step("enterprise_analytics", f"""
        INSERT INTO engagement_day (day, user_id, email, chat_message_count, chat_conversation_count, cc_session_count,
               cc_lines_added, cc_lines_removed, cc_commit_count, cc_pull_request_count, cc_tool_accepted,
               cc_tool_rejected, web_search_count, fetched_at, run_id)
        SELECT day, 'user_' || i, 'p' || i || '@org.test', h % 30, h % 5, 1 + h % 2, h % 150, h % 40, h % 2, h % 2,
               h % 15, h % 2, h % 3, {now}, 'bench'
        FROM (SELECT DATE '{START}' + d::INTEGER AS day, i, hash(i * 7919 + d) AS h
              FROM range({days}) a(d), range({people}) b(i) WHERE hash(i * 7919 + d) % 10 < 5)""")
    step("usage_and_cost_api", f"""
        INSERT INTO cost_day (day, grouping, model, cost_type, currency, amount_cents, amount_raw, fetched_at)
        SELECT DATE '{START}' + d::INTEGER, 'description', m, 'tokens', 'USD', 100000 + d, (100000 + d)::VARCHAR, {now}
        FROM range({days}) a(d), unnest({MODELS}) u(m)""", f"""
        INSERT INTO usage_bucket (bucket_start, bucket_end, bucket_width, grouping, model, uncached_input_tokens,
               cache_creation_5m_tokens, cache_creation_1h_tokens, cache_read_tokens, output_tokens,
               web_search_requests, fetched_at)
        SELECT TIMESTAMPTZ '{START} 00:00:00+00' + d * INTERVAL 1 DAY, TIMESTAMPTZ '{START} 00:00:00+00'
               + (d + 1) * INTERVAL 1 DAY, '1d', 'model', m, 5000000, 0, 0, 9000000, 1000000, 0, {now}
        FROM range({days}) a(d), unnest({MODELS}) u(m)""")
    # OTel: session s = i // 50 (event e = i % 50), person hash(s) % people, start anywhere in the year
    sess = events // 50
    ev = f"""(SELECT i, i // 50 AS s, i % 50 AS e, (hash(i // 50) % {people}) AS p,
                 TIMESTAMPTZ '{START} 00:00:00+00' + to_seconds((hash(i // 50 + 17) % ({days} * 86400 - 3600))::BIGINT
                     + (i % 50) * 30) AS ts
              FROM range({events}) r(i))"""
    step("otel_event", f"""
        INSERT INTO otel_event (request_id, record_index, event_name, ts, session_id, user_id, user_email, sequence,
               attributes)
        SELECT 'bench-' || (i // 100), (i % 100)::INTEGER,
               CASE WHEN e % 10 < 3 THEN 'api_request' WHEN e % 10 = 3 THEN 'user_prompt'
                    WHEN e % 10 < 7 THEN 'tool_result' ELSE 'tool_decision' END,
               ts, 's' || s, 'u' || p, CASE WHEN p % 10 = 3 THEN NULL ELSE 'p' || p || '@org.test' END, e,
               CASE WHEN e % 10 < 3 THEN '{{"request_id": "r' || i || '", "input_tokens": ' || (100 + i % 900) || '}}' END
        FROM {ev}""")
    step("api_request", f"""
        INSERT INTO api_request (request_key, request_id, session_id, ts, model, input_tokens, output_tokens,
               cache_creation_tokens, cache_read_tokens, host, project, user_id, user_email, otel_cost_usd,
               from_transcripts, from_otel)
        SELECT 'r' || i, 'r' || i, 's' || s, ts, {MODELS}[1 + (s % 3)::INTEGER], 100 + i % 900, 50 + i % 400,
               i % 2000, i % 30000, 'host' || p, '/repo/' || (p % 40), 'u' || p,
               CASE WHEN p % 10 = 3 THEN NULL ELSE 'p' || p || '@org.test' END, NULL, s % 5 = 0, true
        FROM {ev} WHERE e % 10 < 3""")
    step("otel_point", f"""
        INSERT INTO otel_point (request_id, metric_name, kind, temporality, ts, value, session_id, user_id, model,
               type, attributes)
        SELECT 'bench-p' || s, m.name, 'sum', 'delta',
               TIMESTAMPTZ '{START} 00:00:00+00' + to_seconds((hash(s + 17) % ({days} * 86400 - 3600))::BIGINT + 60),
               m.v, 's' || s, 'u' || (hash(s) % {people}), m.model, m.type, m.attrs
        FROM range({sess}) r(s), (VALUES
            ('claude_code.lines_of_code.count', 40.0, 'added', 'claude-opus-4-8', NULL),
            ('claude_code.lines_of_code.count', 7.0, 'removed', 'claude-opus-4-8', NULL),
            ('claude_code.code_edit_tool.decision', 3.0, NULL, NULL, '{{"tool_name": "Edit", "decision": "accept"}}'),
            ('claude_code.code_edit_tool.decision', 1.0, NULL, NULL, '{{"tool_name": "Write", "decision": "reject"}}'),
            ('claude_code.active_time.total', 600.0, 'user', NULL, NULL),
            ('claude_code.commit.count', 1.0, NULL, NULL, NULL)) m(name, v, type, model, attrs)""")
    step("checkpoint", "CHECKPOINT")
    return t


def measure(wh, runs: int, prices, paths: tuple[bool, ...] = (True,)) -> list[dict]:
    """p50/p95 per metric; ``paths`` lists facts.USE_ROLLUPS values, alternated run by run (so a load
    spike on the shared machine hits both paths alike). Keys p50/p95 for the last path, raw_p50/raw_p95
    for the raw one when both are timed."""
    from cclens.metrics import facts
    from cclens.metrics.catalog import METRICS, compute

    def pct(times: list[float]) -> tuple[float, float]:
        times = sorted(times)
        return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]

    out = []
    # the metrics of this catalog; modules registered later (delivery: bench/git.py) need other data
    for name, m in list(METRICS.items()):
        group_by = ["team", "week"] if "team" in m.dims else ["week"]
        kw = dict(since=QUARTER[0], until=QUARTER[1], tz="UTC", group_by=group_by, prices=prices)
        times: dict[bool, list[float]] = {p: [] for p in paths}
        for p in paths:
            facts.USE_ROLLUPS = p
            compute(wh, name, **kw)  # warm-up (and the model list of the price CTE)
        for _ in range(runs):
            for p in paths:
                facts.USE_ROLLUPS = p
                t0 = time.perf_counter()
                res = compute(wh, name, **kw)
                times[p].append((time.perf_counter() - t0) * 1000)
        p50, p95 = pct(times[paths[-1]])
        row = {"metric": name, "group_by": ",".join(group_by), "rows": len(res.rows), "p50": p50, "p95": p95}
        line = f"  {name:28s} {','.join(group_by):10s} rows {len(res.rows):6d}  p50 {p50:7.0f} ms  p95 {p95:7.0f} ms"
        if len(paths) > 1:
            row["raw_p50"], row["raw_p95"] = pct(times[False])
            line += f"   (raw: p50 {row['raw_p50']:7.0f} ms  p95 {row['raw_p95']:7.0f} ms)"
        out.append(row)
        print(line, flush=True)
    return out


def check(wh, prices) -> str:
    """Every metric once through the layer and once without it (rollups): the rows must be equal."""
    from cclens.metrics import facts
    from cclens.metrics.catalog import METRICS, compute

    def same(a, b):  # floats: sums in another order differ in the last bits
        if isinstance(a, float) and isinstance(b, float):
            return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return a == b

    bad = []
    for name, m in list(METRICS.items()):
        group_by = ["team", "week"] if "team" in m.dims else ["week"]
        kw = dict(since=QUARTER[0], until=QUARTER[1], tz="UTC", group_by=group_by, prices=prices, coverage=False)
        facts.USE_LAYER = True
        a = compute(wh, name, **kw).rows
        facts.USE_LAYER = False
        b = compute(wh, name, **kw).rows
        facts.USE_LAYER = True
        if not same(a, b):
            bad.append(name)
        print(f"  check {name}: {'same' if name not in bad else 'DIFFERENT'} ({len(a)} rows)", flush=True)
    return "yes, all " + str(len(METRICS)) if not bad else "NO for " + ", ".join(bad)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=5000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--events", type=int, default=5_000_000, help="OTel events (default 5 million)")
    ap.add_argument("--full", action="store_true", help="50 million OTel events (the target size)")
    ap.add_argument("--runs", type=int, default=7, help="timed runs per metric (after one warm-up)")
    ap.add_argument("--db", type=Path, help="keep the generated warehouse here (default: a temp dir)")
    ap.add_argument("--reuse", action="store_true", help="--db already holds a generated warehouse")
    ap.add_argument("--no-record", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument("--raw", action="store_true", help="read the raw tables, not the rollups (the old path)")
    ap.add_argument("--compare", action="store_true", help="time the raw and rollup paths, run by run alternated")
    ap.add_argument("--no-layer", action="store_true", help="read the rollups, not the person-day layer")
    ap.add_argument("--check", action="store_true",
                    help="also compute every metric once without the person-day layer and compare the rows")
    args = ap.parse_args()
    events = 50_000_000 if args.full else args.events

    from cclens.model.pricing import bundled_table
    from cclens.warehouse import open_warehouse

    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory(prefix="cclens-bench-query-")
        args.db = Path(tmp.name) / "bench.duckdb"
    print(f"machine: {machine_line()}")
    wh = open_warehouse(args.db)
    gen: dict[str, float] = {}
    if not args.reuse:
        print(f"generating {args.people:,} people x {args.days} days and {events:,} OTel events into {args.db}")
        gen = generate(wh, args.people, args.days, events)
    counts = {t: wh.scalar(f"SELECT count(*) FROM {t}") for t in
              ("cc_actor_day", "cc_daily", "engagement_day", "otel_event", "api_request", "otel_point")}
    print("rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    from cclens.metrics import facts, rollup

    facts.USE_ROLLUPS = not args.raw
    facts.USE_LAYER = not args.no_layer
    wh.execute("DELETE FROM alias WHERE kind = 'host' AND value = 'host7'")  # the link timed below (--reuse)
    t0 = time.perf_counter()
    full = rollup.refresh(wh, full=True)
    build_s = time.perf_counter() - t0
    layer_s = full.get("layer_seconds", 0.0)
    wh.execute("INSERT INTO rollup_dirty SELECT DATE '2026-05-14', 'api_request'")
    t0 = time.perf_counter()
    one = rollup.refresh(wh)
    day_s = time.perf_counter() - t0
    day_layer_days = one.get("layer", {}).get("days")
    day_layer_s = one.get("layer", {}).get("seconds", 0.0)
    # a re-synced day of the Claude Code Analytics API (rows rewritten, newer fetched_at)
    wh.execute("UPDATE cc_actor_day SET fetched_at = fetched_at + INTERVAL 1 HOUR WHERE day = DATE '2026-05-14'")
    t0 = time.perf_counter()
    api = rollup.refresh(wh)
    api_s = time.perf_counter() - t0
    # one identity linked by hand (`cclens people link`): the days where it appears are recomputed
    wh.execute("INSERT INTO alias VALUES ('host', 'host7', 'p7', 'link', now())")
    t0 = time.perf_counter()
    linked = rollup.refresh(wh)
    link_s = time.perf_counter() - t0
    rcounts = {t: wh.scalar(f"SELECT count(*) FROM {t}") for t in
               ("rollup_request", "rollup_point", "pd_activity", "pd_sessions", "pd_tokens", "pd_output", "pd_tools")}
    refresh_line = (f"full build {build_s:.1f} s (of which the person-day layer {layer_s:.1f} s), one alias "
                    f"linked {link_s * 1000:.0f} ms (layer days recomputed: {linked.get('layer', {}).get('days')}; "
                    f"over {1000:,} changed aliases rebuild the layer), one dirty event day {day_s * 1000:.0f} ms (of which the layer "
                    f"{day_layer_s * 1000:.0f} ms, days recomputed: {day_layer_days}), one re-synced API day {api_s * 1000:.0f} ms "
                    f"(layer days: {api.get('layer', {}).get('days')})")
    path = "raw" if args.raw else "rollups" if args.no_layer else "person-day layer (rollups where it cannot answer)"
    print(f"rollups: {refresh_line}; " + ", ".join(f"{k} {v:,}" for k, v in rcounts.items()) + f"; catalog reads {path}")
    print(f"each metric over {QUARTER[0]} … {QUARTER[1]}, grouped by team and week, {args.runs} runs:")
    load0 = os.getloadavg()[0]
    results = measure(wh, args.runs, bundled_table(), (False, True) if args.compare else (not args.raw,))
    load1 = os.getloadavg()[0]
    checked = check(wh, bundled_table()) if args.check else None
    wh.close()
    size = args.db.stat().st_size / 2**30
    worst = max(r["p95"] for r in results)
    over = [r["metric"] for r in results if r["p95"] >= 300]
    if not args.no_record:
        m = machine()
        lines = [f"`bench/query.py{' --full' if args.full else ''}`: {args.people:,} people × {args.days} days of "
                 f"Claude Code Analytics rows and **{events:,} OTel events** "
                 f"({'the target size' if events >= 50_000_000 else 'a reduced size; --full is 50 million'}), "
                 f"generated straight into DuckDB ({size:.1f} GiB; "
                 + (f"generation {sum(gen.values()):.0f} s). " if gen else "generated by an earlier run, `--reuse`). ")
                 + f"Every catalog metric over one quarter ({QUARTER[0]} … {QUARTER[1]}), grouped by team and week "
                 f"(billed_cost by week: it has no team), {args.runs} runs after a warm-up, through "
                 "`compute()` on the warehouse file (one SELECT each).", "",
                 f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory']} RAM, {m['os']}, Python {m['python']}, "
                 f"DuckDB {m['duckdb']}, {m['date']}. Load average (1 min) {load0:.1f} before and {load1:.1f} "
                 "after the queries: the machine is shared with other work, so times are upper bounds.", "",
                 "Rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + ".", "",
                 f"Read path: {'raw tables and rollups, alternated run by run (`--compare`)' if args.compare else path}. "
                 f"Rollups and layer: {refresh_line}; " + ", ".join(f"{k} {v:,}" for k, v in rcounts.items()) + ".",
                 "",
                 *([f"Check (`--check`): every metric's rows from the layer equal the rollup path's: {checked}.", ""]
                   if checked else []),
                 "| metric | group by | result rows | p50 | p95 |", "|---|---|---:|---:|---:|"]
        lines += [f"| `{r['metric']}` | {r['group_by']} | {r['rows']:,} | {r['p50']:.0f} ms | {r['p95']:.0f} ms |"
                  for r in results]
        if args.compare:
            lines[-len(results) - 2:] = [
                "| metric | group by | result rows | raw p50 | raw p95 | rollups p50 | rollups p95 |",
                "|---|---|---:|---:|---:|---:|---:|"] + [
                f"| `{r['metric']}` | {r['group_by']} | {r['rows']:,} | {r['raw_p50']:.0f} ms | {r['raw_p95']:.0f} ms "
                f"| {r['p50']:.0f} ms | {r['p95']:.0f} ms |" for r in results]
        lines += ["", f"Target p95 < 300 ms per metric: {'met' if not over else 'not met for ' + ', '.join(over)} "
                  f"(worst p95 {worst:.0f} ms)."]
        write_section(str(ROOT / "docs" / "benchmarks.md"), "Metrics queries", "\n".join(lines))
    print(f"worst p95: {worst:.0f} ms; over 300 ms: {', '.join(over) or 'none'}")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
