"""Benchmark: transcripts into cclens vs ccusage, on a generated corpus shaped like real transcripts.

    .venv/bin/python bench/transcripts.py                 # 100 MB and 500 MB corpora
    .venv/bin/python bench/transcripts.py --sizes 50      # quick
    .venv/bin/python bench/transcripts.py --no-write      # do not touch docs/benchmarks.md

Measures, each as a separate process (wall time and peak RSS from wait4):
- cold: `cclens ingest transcripts` into a new warehouse, then `cclens report daily --format json`;
- ccusage: `ccusage daily --json --offline` (it re-reads everything every time);
- warm: `cclens report daily` with nothing changed (it checks for new lines first);
- update: append ~1 MB to 5 files, then `cclens report daily` (ingests the new lines, then reports).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _machine import machine_line, write_section  # noqa: E402

CCUSAGE = ROOT / ".tools" / "node_modules" / ".bin" / "ccusage"
CCLENS = [sys.executable, "-m", "cclens.cli"]


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def corpus(size_mb: int) -> Path:
    from cclens.synth.transcripts import generate

    base = ROOT / "bench" / ".corpus" / f"{size_mb}mb"
    marker = base / ".complete"
    if not marker.exists():
        shutil.rmtree(base, ignore_errors=True)
        print(f"generating a {size_mb} MB corpus in {base} …", flush=True)
        generate(base / "projects", target_bytes=size_mb * 1_000_000, seed=size_mb, days=60, projects=20)
        marker.write_text("ok")
    return base


def bench(size_mb: int, runs: int) -> dict[str, str]:
    src = corpus(size_mb)
    work = Path(tempfile.mkdtemp(prefix="cclens-bench-"))
    try:
        config = work / "claude"
        shutil.copytree(src / "projects", config / "projects")
        env = {**os.environ, "HOME": str(work / "home"), "CLAUDE_CONFIG_DIR": str(config), "TZ": "UTC"}
        env.pop("CCLENS_DB", None)
        db = work / "wh.duckdb"
        t1, m1 = run([*CCLENS, "--db", str(db), "ingest", "transcripts", "-q"], env)
        t2, m2 = run([*CCLENS, "--db", str(db), "report", "daily", "--tz", "UTC", "-f", "json"], env)
        warm = [run([*CCLENS, "--db", str(db), "report", "daily", "--tz", "UTC", "-f", "json"], env)
                for _ in range(runs)]
        cc = [run([str(CCUSAGE), "daily", "--json", "--offline", "-z", "UTC"], env) for _ in range(runs)] \
            if CCUSAGE.exists() else []
        # append ~1 MB (new sessions' lines) to 5 existing files
        from cclens.synth.transcripts import generate

        extra = work / "extra"
        generate(extra / "projects", target_bytes=1_000_000, seed=size_mb + 999, days=1)
        lines = b"".join(p.read_bytes() for p in sorted((extra / "projects").rglob("*.jsonl"))).splitlines(True)
        targets = sorted((config / "projects").rglob("*.jsonl"))[:5]
        appended = 0
        for i, target in enumerate(targets):
            part = b"".join(lines[i::len(targets)])
            appended += len(part)
            with open(target, "ab") as fh:
                fh.write(part)
        upd = run([*CCLENS, "--db", str(db), "report", "daily", "--tz", "UTC", "-f", "json"], env)
        cc_after = run([str(CCUSAGE), "daily", "--json", "--offline", "-z", "UTC"], env) if CCUSAGE.exists() else None
        med = lambda xs: statistics.median(x[0] for x in xs)  # noqa: E731
        peak = max([m1, m2, upd[1]] + [w[1] for w in warm])
        return {
            "corpus": f"{size_mb} MB",
            "cold ingest + report": f"{t1 + t2:.2f} s",
            "ccusage daily": f"{med(cc):.2f} s ({max(c[1] for c in cc):.0f} MiB)" if cc else "n/a",
            "warm report": f"{med(warm):.2f} s",
            "warm vs ccusage": f"{med(cc) / med(warm):.1f}x faster" if cc else "n/a",
            "update +1 MB + report": f"{upd[0]:.2f} s ({appended / 1e6:.1f} MB)",
            "ccusage after update": f"{cc_after[0]:.2f} s" if cc_after else "n/a",
            "cclens peak RSS": f"{peak:.0f} MiB",
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,500", help="corpus sizes in MB, comma separated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = [bench(int(s), args.runs) for s in args.sizes.split(",")]
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    table = "\n".join(lines)
    print(f"machine: {machine_line()}\n\n{table}")
    if not args.no_write:
        body = (f"`{' '.join(['python', 'bench/transcripts.py', '--sizes', args.sizes])}` on {machine_line()}.\n\n"
                f"{table}\n\n"
                "Targets (issue 2, 500 MB): cold ingest + report no slower than ccusage; warm report ≥ 5x faster "
                "than ccusage and flat as history grows; update after appending 1 MB < 0.5 s; peak memory < 500 MB. "
                "See the notes below the table for which are met.")
        write_section(str(ROOT / "docs" / "benchmarks.md"), "Transcripts", body)


if __name__ == "__main__":
    main()
