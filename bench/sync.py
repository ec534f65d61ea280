"""Benchmark: backfill the Anthropic reporting APIs from the fake over loopback.

Three processes: the fake APIs (cclens.synth.anthropic_api, which remembers every answer it gave),
a warm-up client that makes the fake generate every page once (not timed), and the measured client,
which syncs all four sources into a fresh DuckDB file. So the numbers are the client's: HTTP, JSON,
modelling, landing every page, DuckDB writes; not the fake's data generation (reported separately).
Enterprise Analytics runs without its client-side 60 requests/minute throttle, which would otherwise
dominate (a real year of Enterprise backfill needs at least N requests / 60 minutes).

    .venv/bin/python bench/sync.py                 # 90 days x 500 people (a minute or two)
    .venv/bin/python bench/sync.py --full          # the target: 365 days x 2,000 people
    .venv/bin/python bench/sync.py --days 30 --people 200 --no-record

Target (issue 5): 365 days x 2,000 actors in under 60 s and under 300 MB peak RSS.
Results go to docs/benchmarks.md under "## Anthropic API sync" unless --no-record.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import orjson  # noqa: E402

NOW = datetime(2027, 1, 15, 12, 0, tzinfo=timezone.utc)   # 365 days back stays after 2026-01-01 (Enterprise)
SECTION = "## Anthropic API sync"
SOURCES = (
    ("claude_code_analytics", "SELECT sum(records) FROM cc_actor_day"),
    ("usage", "SELECT count(*) FROM usage_bucket"),
    ("cost", "SELECT count(*) FROM cost_day"),
    ("enterprise_analytics", "SELECT (SELECT count(*) FROM engagement_day) + (SELECT count(*) FROM engagement_summary_day)"),
)


def machine() -> dict[str, str]:
    """The machine, in this benchmark's keys (bench/_machine.py reads it once for every benchmark)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _machine import machine as shared

    m = shared()
    return {"cpus": m["cores"], "cpu": m["cpu"], "ram": m["memory"], "python": m["python"], "duckdb": m["duckdb"]}


# -- the fake (its own process) --------------------------------------------------------------------
def serve_fake(people: int, days: int) -> None:
    from cclens.synth.anthropic_api import FakeAnthropicAPI

    class RememberingFake(FakeAnthropicAPI):
        """Answers a request it has answered before from memory (same bytes), so the measured run
        does not wait for data generation."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._answers: dict[tuple, tuple] = {}

        def handle(self, method, path, query, headers):
            key = (method, path, query, self._key_kind(headers))
            answer = self._answers.get(key)
            if answer is None:
                answer = super().handle(method, path, query, headers)
                if answer[0] == 200:
                    self._answers[key] = answer
            return answer

    fake = RememberingFake(42, people, days, now=NOW)
    with fake.serve() as url:
        print(url, flush=True)
        threading.Event().wait()


# -- a client (its own process) ----------------------------------------------------------------------
def client(url: str, days: int, db: str, memory_limit: str | None) -> dict:
    from cclens.config import load_settings
    from cclens.sources.sync import sync
    from cclens.warehouse import open_warehouse
    from cclens.synth.anthropic_api import FakeAnthropicAPI

    settings = load_settings(db=db, anthropic_admin_key=FakeAnthropicAPI.ADMIN_KEY,
                             anthropic_analytics_key=FakeAnthropicAPI.ANALYTICS_KEY, anthropic_base_url=url,
                             anthropic_sync_start=(NOW.date() - timedelta(days=days)).isoformat(),
                             anthropic_enterprise_lookback_days=0)
    wh = open_warehouse(db)
    if memory_limit:  # DuckDB otherwise caches written blocks up to 80% of RAM
        wh.execute(f"SET memory_limit = '{memory_limit}'")
    rows = []
    start = time.perf_counter()
    cpu0 = _cpu()
    for source, count_sql in SOURCES:
        t0 = time.perf_counter()
        (result,) = sync(settings, wh, [source], now=NOW, throttle=False)
        secs = time.perf_counter() - t0
        if result.status != "ok":
            raise SystemExit(f"{source}: {result.error or result.notes}")
        records = int(wh.scalar(count_sql) or 0)
        rows.append({"source": source, "requests": result.requests, "records": records,
                     "model_rows": result.rows, "seconds": secs, "records_per_s": records / secs})
    total = time.perf_counter() - start
    cpu = _cpu() - cpu0
    wh.checkpoint()
    wh.close()
    records = sum(r["records"] for r in rows)
    load = os.getloadavg()
    return {"load": f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (1/5/15 min)","rows": rows, "seconds": total, "cpu_seconds": cpu, "records": records, "records_per_s": records / total,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "db_mb": Path(db).stat().st_size / 1024 / 1024}


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_client(url: str, days: int, db: Path, memory_limit: str | None) -> dict:
    out = subprocess.run([sys.executable, __file__, "--client", url, "--days", str(days), "--db", str(db),
                          "--duckdb-memory-limit", memory_limit or ""], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"client failed:\n{out.stderr[-3000:]}")
    return orjson.loads(out.stdout.strip().splitlines()[-1])


def table(summary: dict, warm_s: float | None, people: int, days: int, info: dict[str, str],
          memory_limit: str | None) -> str:
    rows = summary["rows"]
    lines = [f"Backfill of {days} days x {people:,} people (+{max(2, people // 100)} API-key actors) from the fake "
             f"over loopback, {date.today().isoformat()}.",
             "", "| source | requests | API records | model rows | seconds | records/s |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['source']} | {r['requests']:,} | {r['records']:,} | {r['model_rows']:,} | "
                     f"{r['seconds']:.1f} | {r['records_per_s']:,.0f} |")
    lines.append(f"| **all** | {sum(r['requests'] for r in rows):,} | {summary['records']:,} | "
                 f"{sum(r['model_rows'] for r in rows):,} | **{summary['seconds']:.1f}** | "
                 f"{summary['records_per_s']:,.0f} |")
    lines += ["", f"CPU time of the syncing process (all its threads, DuckDB's included): "
              f"{summary['cpu_seconds']:.1f} s for {summary['seconds']:.1f} s of wall time; load average "
              f"{summary.get('load', '?')} on this machine during the run."]
    lines += ["", f"Peak RSS of the syncing process: **{summary['peak_mb']:.0f} MB** (DuckDB memory_limit "
              f"{memory_limit or 'default, 80% of RAM'}); warehouse file {summary['db_mb']:.0f} MB (landing keeps "
              "every page's payload)."]
    if warm_s is not None:
        lines.append(f"The same sync while the fake generated its data (warm-up, not the measurement): {warm_s:.1f} s.")
    lines += ["", f"Machine: {info['cpus']} CPUs ({info['cpu']}), {info['ram']} RAM, Python {info['python']}, "
              f"DuckDB {info['duckdb']}; the fake and the client share it, and other work ran on it too."]
    return "\n".join(lines)


def record(text: str, argv: list[str]) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    current = path.read_text() if path.exists() else "# Benchmarks\n\nMeasured numbers, with the machine they ran on.\n"
    block = f"{SECTION}\n\n`.venv/bin/python bench/sync.py {' '.join(argv)}`".rstrip() + "\n\n" + text + "\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        current = pattern.sub(lambda _: block + "\n", current, count=1)
    else:
        current = current.rstrip() + "\n\n" + block
    path.write_text(current.rstrip() + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=500)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--full", action="store_true", help="365 days x 2,000 people (the issue's target)")
    ap.add_argument("--duckdb-memory-limit", default="128MB",
                    help="DuckDB memory_limit of the measured client ('' = DuckDB's default, 80%% of RAM)")
    ap.add_argument("--no-warm", action="store_true", help="measure while the fake generates (slower, noisier)")
    ap.add_argument("--no-record", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument("--fake", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    args = ap.parse_args()
    people, days = (2000, 365) if args.full else (args.people, args.days)
    if args.fake:
        serve_fake(people, days)
        return 0
    if args.client:
        print(orjson.dumps(client(args.client, days, args.db, args.duckdb_memory_limit or None)).decode())
        return 0

    info = machine()
    fake = subprocess.Popen([sys.executable, __file__, "--fake", "--people", str(people), "--days", str(days)],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = fake.stdout.readline().strip()
        if not url.startswith("http"):
            raise SystemExit("the fake did not start")
        with tempfile.TemporaryDirectory() as tmp:
            warm_s = None
            if not args.no_warm:
                t0 = time.perf_counter()
                run_client(url, days, Path(tmp) / "warm.duckdb", args.duckdb_memory_limit or None)
                warm_s = time.perf_counter() - t0
            summary = run_client(url, days, Path(tmp) / "bench.duckdb", args.duckdb_memory_limit or None)
    finally:
        fake.terminate()
        fake.wait(30)
    text = table(summary, warm_s, people, days, info, args.duckdb_memory_limit or None)
    print(text)
    if not args.no_record:
        record(text, sys.argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
