"""Hooks and shipping: how fast the hook shim returns, how fast POST /hooks answers, how fast
``cclens ship`` moves transcripts compared with a local ingest.

    .venv/bin/python bench/hooks_ship.py            # ~1-2 minutes
    .venv/bin/python bench/hooks_ship.py --full     # a 200 MB transcript corpus

Everything runs against a real ``cclens serve`` subprocess on loopback. Writes the "Hooks and
shipping" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    def __init__(self, db: Path, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(db.with_suffix(".log"), "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "cclens.cli", "--db", str(db), "serve", "--port",
                                      str(self.port), "--grpc-port", "0", "--log-level", "warning"],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit(f"cclens serve did not start; see {self.log.name}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def bench_shim(url: str, env: dict[str, str], n: int) -> list[tuple[str, list[float]]]:
    payload = orjson.dumps({"session_id": "bench", "hook_event_name": "SessionStart", "source": "startup",
                            "cwd": "/r", "transcript_path": "/r/x.jsonl"})
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(100)  # accepts connections, never answers
    cases = [("server up", url), ("server down (refused)", f"http://127.0.0.1:{free_port()}"),
             ("server never answers", f"http://127.0.0.1:{black_hole.getsockname()[1]}")]
    shim = str(Path(sys.executable).with_name("cclens-hook"))
    out = []
    for name, target in cases:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run([shim, "--server", target], input=payload, env=env, capture_output=True, timeout=30)
            times.append(time.perf_counter() - t)
        out.append((name, times))
    black_hole.close()
    return out


def bench_http_hooks(url: str, n: int, workers: int) -> dict[str, float]:
    body = orjson.dumps({"session_id": "bench-http", "hook_event_name": "PreToolUse", "tool_name": "Bash",
                         "tool_use_id": "t", "cwd": "/r"})
    lat = []
    with httpx.Client(base_url=url) as client:
        for i in range(n):
            b = body.replace(b'"t"', f'"t{i}"'.encode())
            t = time.perf_counter()
            client.post("/hooks", content=b, headers={"Content-Type": "application/json"})
            lat.append(time.perf_counter() - t)
    local = threading.local()

    def one(i: int) -> None:
        if not hasattr(local, "c"):
            local.c = httpx.Client(base_url=url)
        local.c.post("/hooks", content=body.replace(b'"t"', f'"c{i}"'.encode()),
                     headers={"Content-Type": "application/json"})

    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(n)))
    concurrent = n / (time.perf_counter() - t)
    return {"p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000, "seq_per_s": n / sum(lat),
            "concurrent_per_s": concurrent}


def bench_store(tmp: Path, batch: int) -> tuple[float, float]:
    from cclens.sources.hooks import parse_http_hook, store_events
    from cclens.warehouse import open_warehouse

    wh = open_warehouse(tmp / "store.duckdb")
    names = ["PreToolUse", "PostToolUse", "PostToolBatch"]
    events = [parse_http_hook(orjson.dumps({"session_id": f"s{i // 300}", "hook_event_name": names[i % 3],
                                            "tool_name": "Bash", "tool_use_id": f"t{i // 3}", "cwd": "/r",
                                            "tool_calls": [{"tool_name": "Bash", "tool_use_id": f"t{i // 3}"}]}))
              for i in range(6000)]
    t = time.perf_counter()
    for i in range(0, 5700, batch):
        with wh.transaction():
            store_events(wh, events[i:i + batch])
    batched = 5700 / (time.perf_counter() - t)
    t = time.perf_counter()
    for e in events[5700:]:
        with wh.transaction():
            store_events(wh, [e])
    single = 300 / (time.perf_counter() - t)
    wh.close()
    return batched, single


def bench_ship(tmp: Path, env: dict[str, str], corpus_bytes: int) -> dict[str, float]:
    from cclens.sources.transcripts import ingest_paths
    from cclens.synth.transcripts import generate
    from cclens.warehouse import open_warehouse

    projects = Path(env["HOME"]) / ".claude" / "projects"
    truth = generate(projects, target_bytes=corpus_bytes, seed=21)
    wh = open_warehouse(tmp / "local.duckdb")
    t = time.perf_counter()
    ingest_paths(wh, [projects], host="bench", include_defaults=False)
    local_s = time.perf_counter() - t
    wh.close()
    server = Serve(tmp / "ship.duckdb", {**env, "CCLENS_SERVER_WATCH_TRANSCRIPTS": "0"})
    try:
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "cclens.cli", "ship", "--server", server.url, "--once", "-q"],
                           env={**env, "CCLENS_HOST": "bench"}, capture_output=True, text=True)
        ship_s = time.perf_counter() - t
        if r.returncode:
            raise SystemExit(r.stderr)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cclens.cli", "ship", "--server", server.url, "--once", "-q"],
                       env={**env, "CCLENS_HOST": "bench"}, capture_output=True)
        noop_s = time.perf_counter() - t
    finally:
        server.stop()
    return {"mb": truth.bytes / 1e6, "files": truth.files, "local_s": local_s, "ship_s": ship_s, "noop_s": noop_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="200 MB corpus, 2000 hook calls")
    args = parser.parse_args()
    n_shim, n_http, corpus = (50, 2000, 200_000_000) if args.full else (15, 500, 30_000_000)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        home = tmp / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CCLENS_", "CLAUDE_", "OTEL_"))}
        env.update(HOME=str(home), XDG_DATA_HOME=str(tmp / "xdg"), XDG_CONFIG_HOME=str(tmp / "cfg"))
        server = Serve(tmp / "hooks.duckdb", {**env, "CCLENS_SERVER_WATCH_TRANSCRIPTS": "0"})
        try:
            shim = bench_shim(server.url, env, n_shim)
            http = bench_http_hooks(server.url, n_http, 8)
        finally:
            server.stop()
        from cclens.warehouse import open_warehouse

        wh = open_warehouse(tmp / "hooks.duckdb")
        stored = wh.scalar("SELECT count(*) FROM landing_hook_event WHERE session_id = 'bench-http'")
        wh.close()
        if stored != 2 * n_http:
            raise SystemExit(f"only {stored} of {2 * n_http} HTTP hook events were stored")
        writer_rate, single_rate = bench_store(tmp, 64)
        ship = bench_ship(tmp, env, corpus)
    rows = ["| case | runs | p50 | p95 | max |", "|---|---:|---:|---:|---:|"]
    for name, times in shim:
        rows.append(f"| `cclens-hook`, {name} | {len(times)} | {pct(times, 50) * 1000:.0f} ms | "
                    f"{pct(times, 95) * 1000:.0f} ms | {max(times) * 1000:.0f} ms |")
    body = "\n".join([
        f"Machine: {machine_line()}.",
        "",
        "Hook shim, whole process as Claude Code runs it (interpreter start included; budget 1 s):",
        "",
        *rows,
        "",
        f"`POST /hooks` (HTTP hook; answered once queued for the writer): p50 {http['p50_ms']:.1f} ms, "
        f"p99 {http['p99_ms']:.1f} ms, {http['seq_per_s']:.0f} events/s sequential, "
        f"{http['concurrent_per_s']:.0f} events/s with 8 concurrent clients ({n_http} events each; the client "
        f"shares the 2 cores). All {stored:,} events were in the warehouse after a graceful stop.",
        "",
        f"Storing and modelling hook events in the writer (in-process, batches of 64, tool lifecycle "
        f"events): {writer_rate:,.0f} events/s; one event per transaction: {single_rate:,.0f} events/s.",
        "",
        f"Transcripts ({ship['mb']:.0f} MB, {ship['files']} files, synthetic corpus): local ingest "
        f"{ship['local_s']:.1f} s ({ship['mb'] / ship['local_s']:.1f} MB/s); `cclens ship --once` to a "
        f"loopback server {ship['ship_s']:.1f} s ({ship['mb'] / ship['ship_s']:.1f} MB/s, gzip, 8 MB batches); "
        f"a second `--once` with nothing new {ship['noop_s']:.2f} s.",
    ])
    print(body)
    write_section(str(ROOT / "docs" / "benchmarks.md"), "Hooks and shipping", body)


if __name__ == "__main__":
    main()
