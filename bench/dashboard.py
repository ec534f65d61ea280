"""Dashboard page latency on the demo organisation (``cclens demo``: 60 people, 90 days by default).

Builds the demo warehouse (or reuses ``--db``), serves it with the real app on a loopback port and times
every page over HTTP: *cold* (the page cache emptied before each load: every figure computed by the metrics
catalog) and *warm* (the cache of pages per data version, as a second viewer gets them). Prints a table with
the machine and writes it to docs/benchmarks.md under "## Dashboard" with ``--write``. Target: p95 < 500 ms.

    .venv/bin/python bench/dashboard.py [--people 60 --days 90] [--db demo.duckdb] [--runs 10] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def machine() -> str:
    import duckdb

    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}, "
            f"DuckDB {duckdb.__version__}")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100 * len(values) + 0.5)) - 1))
    return values[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=60)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--db", type=Path, help="an existing demo warehouse (default: build one in a temp dir)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--write", action="store_true", help="record the table in docs/benchmarks.md")
    ap.add_argument("--raw", action="store_true", help="metrics from the raw tables, not the rollups")
    ap.add_argument("--no-prefetch", action="store_true", help="a page's catalog calls one after another")
    ap.add_argument("--no-derive", action="store_true",
                    help="one catalog query per figure (no figure derived from another of the page)")
    ap.add_argument("--tz", default="", help="the pages' time zone (default: the demo's, UTC; the catalog's "
                    "person-day layer serves UTC only)")
    ap.add_argument("--no-reader-memo", action="store_true",
                    help="run a query repeated within one page (the catalog's state check) every time")
    args = ap.parse_args()
    from cclens.metrics import catalog, facts
    from cclens.server import dashboard, dashboard_figures

    facts.USE_ROLLUPS = not args.raw
    dashboard.PREFETCH = not args.no_prefetch
    dashboard_figures.DERIVE = not args.no_derive
    dashboard_figures.READER_MEMO = not args.no_reader_memo
    queries = [0]
    real_compute = catalog.compute

    def counting_compute(*a, **kw):
        queries[0] += 1
        return real_compute(*a, **kw)

    catalog.compute = counting_compute
    load_before = os.getloadavg()[0]

    import httpx2 as httpx
    from dashboard_support import app_for
    from serve_support import ThreadServer

    from cclens.demo import build_demo

    tmp = tempfile.TemporaryDirectory()
    db = args.db
    if db is None:
        db = Path(tmp.name) / "demo.duckdb"
        t = time.perf_counter()
        r = build_demo(db, people=args.people, days=args.days)
        print(f"built the demo: {r.people} people, {r.sessions:,} sessions, {r.requests:,} requests "
              f"in {time.perf_counter() - t:.0f} s", flush=True)
    app, wh = app_for(db)
    sid = wh.scalar("SELECT session_id FROM api_request WHERE from_transcripts AND from_otel "
                    "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
    person = wh.scalar("SELECT person_id FROM person ORDER BY person_id LIMIT 1")
    people_in_db = wh.scalar("SELECT count(*) FROM person")
    paths = ["/", "/adoption", "/cost", "/output", "/people", f"/people/{person}", "/teams", "/teams/platform",
             "/sessions", f"/sessions/{sid}", "/sources", "/reconciliation"]
    rows = []
    with ThreadServer(app) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        cache = app.state.dashboard_cache
        writer = app.state.writer
        # the server refreshes the metric rollups just after start (a commit): wait until the writer has been
        # quiet for 3 s, so a "warm" load is not the first one after a new data version
        deadline, last, since = time.monotonic() + 120, writer.commits, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < 3:
            time.sleep(0.2)
            if writer.commits != last:
                last, since = writer.commits, time.monotonic()
        warmer = app.state.dashboard_warmer
        warmer.quiet = float("inf")   # no pre-rendering while cold loads are timed (measured apart, below)
        for path in paths:
            cold, warm, n_queries = [], [], []
            for i in range(args.runs):
                with cache._lock:
                    cache._items.clear()
                queries[0] = 0
                t = time.perf_counter()
                resp = client.get(path, params={"tz": args.tz} if args.tz else None)
                cold.append((time.perf_counter() - t) * 1000)
                n_queries.append(queries[0])
                assert resp.status_code == 200, (path, resp.status_code)
                t = time.perf_counter()
                client.get(path, params={"tz": args.tz} if args.tz else None)
                warm.append((time.perf_counter() - t) * 1000)
            label = path if len(path) < 28 else path[:25] + "…"
            rows.append((label, statistics.median(cold), pct(cold, 95), statistics.median(warm), pct(warm, 95),
                         max(n_queries)))
            print(f"{label:<30} cold p50 {rows[-1][1]:7.0f} ms  p95 {rows[-1][2]:7.0f} ms   warm p50 "
                  f"{rows[-1][3]:5.1f} ms  p95 {rows[-1][4]:5.1f} ms   {rows[-1][5]} catalog queries", flush=True)
        # the first viewer after new data: the warmer re-renders the pages viewed before, once the writer is quiet
        warmer.quiet, warmer.min_interval = 2.0, 0.0
        after = []
        home = dashboard.cache_key("/", dashboard.Filters.parse({}, app.state.settings.tz), {}, 0)[:-1]
        for _ in range(3):
            writer.submit(lambda _wh: None).result(60)
            # the rollup refresher commits once more within its 2 s interval: wait for 3 s without a commit,
            # then for the warmer's page of that data version
            deadline, last, since = time.monotonic() + 120, writer.commits, time.monotonic()
            while time.monotonic() < deadline and (time.monotonic() - since < 3 or
                                                   (*home, writer.commits) not in cache._items):
                time.sleep(0.1)
                if writer.commits != last:
                    last, since = writer.commits, time.monotonic()
            t = time.perf_counter()
            client.get("/")
            after.append((time.perf_counter() - t) * 1000)
        print(f"first load of / after new data, pre-rendered: {statistics.median(after):.1f} ms", flush=True)
    wh.close()
    n_people = args.people if args.db is None else people_in_db
    table = [f"Machine: {machine()}. Demo organisation: {n_people} people, {args.days} days; last 30 days shown; "
             f"{args.runs} loads per page over HTTP on loopback, time zone {args.tz or 'UTC'}. Metrics from {'raw tables' if args.raw else 'rollups'}, "
             f"catalog calls {'sequential' if args.no_prefetch else 'prefetched in parallel'}, "
             f"{'one query per figure' if args.no_derive else 'figures derived from others where exact'}, "
             f"{'every query run' if args.no_reader_memo else 'a query repeated within a page run once'}; "
             f"1-minute load average {load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
             f"(the 2 cores are shared with other work); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             "| page | catalog queries | cold p50 (ms) | cold p95 (ms) | warm p50 (ms) | warm p95 (ms) |",
             "|---|---:|---:|---:|---:|---:|"]
    table += [f"| `{p}` | {q} | {a:.0f} | {b:.0f} | {c:.1f} | {d:.1f} |" for p, a, b, c, d, q in rows]
    table += ["", f"With pre-rendering after new data (the warmer, on by default in `cclens serve`), the first load of `/` "
              f"after a commit, once the writer was quiet for 2 s, took {statistics.median(after):.1f} ms (median of 3)."]
    text = "\n".join(table)
    print("\n" + text)
    if args.write:
        write_section(ROOT / "docs" / "benchmarks.md", text)
    return 0


INTRO = ("`bench/dashboard.py`. *Cold*: the page cache emptied before each load, so every figure is computed "
         "by the metrics catalog; *warm*: the same URL again with unchanged data (the cache is keyed by the "
         "writer's commit count, so any new data makes the next load cold). *Catalog queries*: the most "
         "`compute()` calls one cold load made. Flags: `--no-derive` (one query per figure), `--no-reader-memo` "
         "(the catalog's state check on every call), `--no-prefetch`, `--raw`, `--tz ZONE`. "
         "Target: every page p95 < 500 ms cold.")


NOTES = "<!-- dashboard:notes (kept by --write) -->"


def write_section(path: Path, text: str) -> None:
    """Replace the "## Dashboard" section's table, keeping anything after :data:`NOTES` in it."""
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    start = doc.find("## Dashboard")
    section = f"## Dashboard\n\n{INTRO}\n\n{text}\n\n"
    if start == -1:
        doc = doc.rstrip() + "\n\n" + section
    else:
        end = doc.find("\n## ", start + 3)
        old = doc[start:end + 1] if end != -1 else doc[start:]
        if NOTES in old:
            section += old[old.index(NOTES):].rstrip() + "\n\n"
        doc = doc[:start] + section + (doc[end + 1:] if end != -1 else "")
    path.write_text(doc)


if __name__ == "__main__":
    sys.exit(main())
