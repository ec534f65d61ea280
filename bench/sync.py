"""Benchmark: backfill the Anthropic reporting APIs from the fake over loopback.

The fake (tests/fakes/anthropic_api.py) runs in its own process, so the numbers are the client's:
HTTP + JSON + modelling + DuckDB writes, with landing of every page. All four sources are pulled
(Enterprise without its client-side 60 requests/minute throttle, which would otherwise dominate).

    .venv/bin/python bench/sync.py                 # 90 days x 500 people (about a minute)
    .venv/bin/python bench/sync.py --full          # the target: 365 days x 2,000 people
    .venv/bin/python bench/sync.py --days 30 --people 200 --no-record

Target (issue 5): 365 days x 2,000 actors in under 60 s and under 300 MB peak RSS.
Results go to docs/benchmarks.md under "## Anthropic API sync" unless --no-record.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import duckdb  # noqa: E402

from cclens.config import load_settings  # noqa: E402
from cclens.sources.sync import sync  # noqa: E402
from cclens.warehouse import open_warehouse  # noqa: E402

NOW = datetime(2027, 1, 15, 12, 0, tzinfo=timezone.utc)   # 365 days back stays after 2026-01-01 (Enterprise)
ADMIN_KEY = "sk-ant-admin01-fake-admin-key-0000"
ANALYTICS_KEY = "sk-ant-api01-fake-analytics-key-0000"
SECTION = "## Anthropic API sync"


def machine() -> dict[str, str]:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        ram = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass
    return {"cpus": str(os.cpu_count()), "cpu": model, "ram": ram, "python": platform.python_version(),
            "duckdb": duckdb.__version__}


def start_fake(people: int, days: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "cclens.synth.anthropic_api",
                             "--people", str(people), "--days", str(days), "--seed", "42",
                             "--now", NOW.strftime("%Y-%m-%dT%H:%M:%SZ")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit("the fake did not start")
    return proc, url


def run(people: int, days: int, memory_limit: str | None) -> tuple[list[dict], dict]:
    proc, url = start_fake(people, days)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "bench.duckdb"
            settings = load_settings(db=str(db), anthropic_admin_key=ADMIN_KEY, anthropic_analytics_key=ANALYTICS_KEY,
                                     anthropic_base_url=url, anthropic_sync_start=(NOW.date() - timedelta(days=days)),
                                     anthropic_enterprise_lookback_days=0)
            wh = open_warehouse(db)
            if memory_limit:  # DuckDB otherwise caches written blocks up to 80% of RAM
                wh.execute(f"SET memory_limit = '{memory_limit}'")
            total_start = time.perf_counter()
            for source, count_sql in (
                ("claude_code_analytics", "SELECT sum(records) FROM cc_actor_day"),
                ("usage", "SELECT count(*) FROM usage_bucket"),
                ("cost", "SELECT count(*) FROM cost_day"),
                ("enterprise_analytics", "SELECT (SELECT count(*) FROM engagement_day) + "
                                         "(SELECT count(*) FROM engagement_summary_day)"),
            ):
                t0 = time.perf_counter()
                (result,) = sync(settings, wh, [source], now=NOW, throttle=False)
                secs = time.perf_counter() - t0
                if result.status != "ok":
                    raise SystemExit(f"{source}: {result.error or result.notes}")
                records = int(wh.scalar(count_sql) or 0)
                rows.append({"source": source, "requests": result.requests, "records": records,
                             "model_rows": result.rows, "seconds": secs, "records_per_s": records / secs})
            total = time.perf_counter() - total_start
            wh.checkpoint()
            wh.close()
            size = db.stat().st_size
    finally:
        proc.terminate()
        proc.wait(30)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    records = sum(r["records"] for r in rows)
    return rows, {"seconds": total, "records": records, "records_per_s": records / total, "peak_mb": peak,
                  "db_mb": size / 1024 / 1024}


def table(rows: list[dict], summary: dict, people: int, days: int, info: dict[str, str]) -> str:
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
    lines += ["", f"Peak RSS of the syncing process: **{summary['peak_mb']:.0f} MB** (DuckDB memory_limit "
              f"{summary['memory_limit']}); warehouse file {summary['db_mb']:.0f} MB (landing keeps every page's "
              "payload).",
              "", f"Machine: {info['cpus']} CPUs ({info['cpu']}), {info['ram']} RAM, Python {info['python']}, "
              f"DuckDB {info['duckdb']}. The fake runs in a separate process on the same machine."]
    return "\n".join(lines)


def record(text: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    current = path.read_text() if path.exists() else "# Benchmarks\n\nMeasured numbers, with the machine they ran on.\n"
    block = f"{SECTION}\n\n`.venv/bin/python bench/sync.py {' '.join(sys.argv[1:])}`".rstrip() + "\n\n" + text + "\n"
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
                    help="DuckDB memory_limit for the run ('' = DuckDB's default, 80%% of RAM)")
    ap.add_argument("--no-record", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args()
    people, days = (2000, 365) if args.full else (args.people, args.days)
    info = machine()
    rows, summary = run(people, days, args.duckdb_memory_limit or None)
    summary["memory_limit"] = args.duckdb_memory_limit or "default (80% of RAM)"
    text = table(rows, summary, people, days, info)
    print(text)
    if not args.no_record:
        record(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
