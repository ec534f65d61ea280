"""Sustained OTLP ingestion over loopback into a real ``cclens serve``.

Several client processes send OTLP/HTTP protobuf log batches shaped like Claude Code's (api_request,
tool_result and user_prompt events with Claude Code's attributes) plus token/cost metric exports,
paced to a target rate. Reports records/s, p50/p99 acknowledgement latency, and loss (every
acknowledged record must be in the warehouse exactly once, checked through the server's API).

    .venv/bin/python bench/otlp.py                 # 20 s at 20,000 records/s
    .venv/bin/python bench/otlp.py --full          # 60 s (the target run)
    .venv/bin/python bench/otlp.py --rate 0        # as fast as the clients can go
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- Claude-Code-shaped batches ---------------------------------------------------------------------
def _template(batch: int):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    for k, v in (("service.name", "claude-code"), ("service.version", "2.1.197"), ("os.type", "linux"),
                 ("host.arch", "amd64")):
        a = rl.resource.attributes.add()
        a.key, a.value.string_value = k, v
    sl = rl.scope_logs.add()
    sl.scope.name, sl.scope.version = "com.anthropic.claude_code.events", "2.1.197"
    mutable = []  # (session kv, sequence kv, unique kv or None) per record
    for i in range(batch):
        kind = ("api_request", "tool_result", "user_prompt")[i % 3]
        rec = sl.log_records.add()
        rec.body.string_value = f"claude_code.{kind}"
        rec.time_unix_nano = 1795606195403000000 + i * 1000

        def kv(key, value):
            a = rec.attributes.add()
            a.key = key
            if isinstance(value, bool) or isinstance(value, str):
                a.value.string_value = str(value).lower() if isinstance(value, bool) else value
            elif isinstance(value, int):
                a.value.int_value = value
            else:
                a.value.double_value = value
            return a

        kv("user.id", "d1607fe35e6db3e42e8cb326e3149d1a82f3dffce8e085fb34da42569319d5ec")
        s = kv("session.id", "")
        kv("terminal.type", "tmux")
        kv("event.name", kind)
        kv("event.timestamp", "2026-11-25T11:29:55.403Z")
        seq = kv("event.sequence", i)
        kv("prompt.id", "342adb50-3590-4f55-a771-d32b549b7c17")
        uniq = None
        if kind == "api_request":
            for k, v in (("model", "claude-opus-4-8"), ("input_tokens", 120), ("output_tokens", 60),
                         ("cache_read_tokens", 8150), ("cache_creation_tokens", 4000), ("cost_usd", 0.0271),
                         ("cost_usd_micros", 27100), ("duration_ms", 174), ("speed", "normal"),
                         ("query_source", "repl_main_thread"), ("effort", "high")):
                kv(k, v)
            uniq = kv("request_id", "")
        elif kind == "tool_result":
            for k, v in (("tool_name", "Bash"), ("success", "true"), ("duration_ms", "15"),
                         ("tool_input_size_bytes", "92"), ("tool_result_size_bytes", "138"),
                         ("decision_type", "accept"), ("decision_source", "config")):
                kv(k, v)
            uniq = kv("tool_use_id", "")
        else:
            kv("prompt_length", "16")
            kv("prompt", "<REDACTED>")
        mutable.append((s, seq, uniq))
    return req, mutable


def _metrics_body(client: int, n: int, ts: int) -> bytes:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    req = ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    sm.scope.name = "com.anthropic.claude_code"
    for name, unit, types in (("claude_code.token.usage", "tokens", ("input", "output", "cacheRead", "cacheCreation")),
                              ("claude_code.cost.usage", "USD", (None,))):
        m = sm.metrics.add()
        m.name, m.unit = name, unit
        m.sum.aggregation_temporality, m.sum.is_monotonic = 1, True
        for t in types:
            dp = m.sum.data_points.add()
            dp.start_time_unix_nano, dp.time_unix_nano, dp.as_double = ts - 60_000_000_000, ts, 1.0
            for k, v in (("session.id", f"bench-{client}-{n}"), ("model", "claude-opus-4-8[1m]"),
                         ("query_source", "main")) + ((("type", t),) if t else ()):
                a = dp.attributes.add()
                a.key, a.value.string_value = k, v
    return req.SerializeToString()


def client(idx: int, port: int, batch: int, rate: float, duration: float, start_at: float, out: mp.Queue) -> None:
    req, mutable = _template(batch)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    lat: list[float] = []
    acked = acked_api = points = errors = retried = 0
    n = 0
    interval = batch / rate if rate else 0.0
    while time.time() < start_at:
        time.sleep(0.001)
    t_end = start_at + duration
    next_t = start_at
    while True:
        now = time.time()
        if now >= t_end:
            break
        if interval:
            if now < next_t:
                time.sleep(next_t - now)
            next_t += interval
        session = f"bench-{idx}-{n}"
        for i, (s, seq, uniq) in enumerate(mutable):
            s.value.string_value = session
            if uniq is not None:
                uniq.value.string_value = f"{session}-{i}"
        body = req.SerializeToString()
        t0 = time.perf_counter()
        while True:
            try:
                conn.request("POST", "/v1/logs", body, {"Content-Type": "application/x-protobuf"})
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                time.sleep(0.1)
                continue
            if resp.status in (429, 503):
                retried += 1
                time.sleep(float(resp.getheader("Retry-After") or 1))
                continue
            break
        lat.append(time.perf_counter() - t0)
        if resp.status == 200:
            acked += batch
            acked_api += sum(1 for i in range(batch) if i % 3 == 0)
        else:
            errors += 1
        n += 1
        if n % 25 == 0:  # a metrics export now and then, as Claude Code sends every 60 s per process
            conn.request("POST", "/v1/metrics", _metrics_body(idx, n, time.time_ns()),
                         {"Content-Type": "application/x-protobuf"})
            r = conn.getresponse()
            r.read()
            points += 5 if r.status == 200 else 0
    out.put({"lat": lat, "acked": acked, "acked_api": acked_api, "points": points, "errors": errors,
             "retried": retried, "requests": n})


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=300, help="log records per request")
    ap.add_argument("--rate", type=float, default=20000, help="target log records/s over all clients (0 = max)")
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--full", action="store_true", help="60 s, the target run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary warehouse")
    ap.add_argument("--no-record", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args()
    if args.full:
        args.duration = 60
    tmp = Path(tempfile.mkdtemp(prefix="cclens-bench-otlp-"))
    db = tmp / "wh.duckdb"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCLENS_", "OTEL_"))}
    log = open(tmp / "serve.log", "wb")
    srv = subprocess.Popen([sys.executable, "-m", "cclens.cli", "--db", str(db), "serve", "--port", str(port),
                            "--grpc-port", "0", "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT,
                           env=env)
    try:
        import httpx2 as httpx

        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or srv.poll() is not None:
                print((tmp / "serve.log").read_text())
                return 1
            time.sleep(0.1)
        out: mp.Queue = mp.Queue()
        start_at = time.time() + 1.0
        per_client = args.rate / args.clients if args.rate else 0
        procs = [mp.Process(target=client, args=(i, port, args.batch, per_client, args.duration, start_at, out))
                 for i in range(args.clients)]
        for p in procs:
            p.start()
        results = [out.get(timeout=args.duration + 300) for _ in procs]
        for p in procs:
            p.join()
        wall = args.duration
        lat = [x for r in results for x in r["lat"]]
        acked = sum(r["acked"] for r in results)
        acked_api = sum(r["acked_api"] for r in results)
        points = sum(r["points"] for r in results)
        t_drain = time.time()
        from cclens.client import RemoteWarehouse, find_server
        from cclens.config import load_settings

        info = find_server(load_settings(db=db))
        with RemoteWarehouse(info) as wh:
            while True:
                h = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
                if h["otlp"]["backlog_entries"] == 0:
                    break
                time.sleep(0.2)
            drain = time.time() - t_drain
            wstats = h["writer"]
            stored = wh.scalar("SELECT count(*) FROM otel_event")
            distinct = wh.scalar("SELECT count(*) FROM (SELECT DISTINCT request_id, record_index FROM otel_event)")
            api_rows = wh.scalar("SELECT count(*) FROM api_request")
            api_keys = wh.scalar("SELECT count(DISTINCT request_key) FROM api_request")
            stored_points = wh.scalar("SELECT count(*) FROM otel_point")
        sys.path.insert(0, str(ROOT / "bench"))
        from _machine import machine_line, write_section

        rows = [
            ("clients × batch", f"{args.clients} processes × {args.batch} log records per request (OTLP/HTTP protobuf)"),
            ("target rate", f"{args.rate:,.0f} log records/s" if args.rate else "as fast as possible"),
            ("duration", f"{wall:.0f} s"),
            ("acknowledged", f"{acked:,} log records in {len(lat):,} requests + {points:,} metric points"),
            ("throughput", f"{acked / wall:,.0f} log records/s"),
            ("ack latency p50 / p99 / max", f"{pct(lat, 50) * 1000:.1f} / {pct(lat, 99) * 1000:.1f} / "
                                            f"{max(lat) * 1000:.1f} ms"),
            ("429/503 answers, errors", f"{sum(r['retried'] for r in results)}, {sum(r['errors'] for r in results)}"),
            ("spool backlog left when clients stopped", f"applied {drain:.1f} s later"),
            ("writer thread busy / CPU", f"{wstats['busy_seconds']:.1f} s / {wstats['cpu_seconds']:.1f} s "
                                         f"of {wall + drain:.0f} s"),
            ("server process CPU", f"{h['process_cpu_seconds']:.1f} s"),
            ("writer CPU per log record", f"{wstats['cpu_seconds'] / max(stored, 1) * 1e6:.0f} µs "
                                          f"(≈ {max(stored, 1) / max(wstats['cpu_seconds'], 1e-9):,.0f} records/s "
                                          "on one free core)"),
            ("stored events / distinct", f"{stored:,} / {distinct:,}"),
            ("api_request rows / distinct keys / acknowledged", f"{api_rows:,} / {api_keys:,} / {acked_api:,}"),
            ("metric points stored / acknowledged", f"{stored_points:,} / {points:,}"),
            ("loss", f"{acked - stored:,}"),
        ]
        ok = stored == acked == distinct and api_rows == api_keys == acked_api and stored_points == points
        load = os.getloadavg()
        print(f"machine: {machine_line()}; load average {load[0]:.1f} during the run")
        w = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k:<{w}}  {v}")
        print("\nresult:", "OK (nothing lost, nothing twice)" if ok else "MISMATCH")
        if not args.no_record:
            table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
            body = (f"`bench/otlp.py{' --full' if args.full else ''}`: a real `cclens serve` on loopback, "
                    f"clients in other processes on the same machine.\n\nMachine: {machine_line()}; "
                    f"1-minute load average {load[0]:.1f} at the end (other work shares the 2 cores).\n\n"
                    f"{table}\n\nResult: {'nothing lost, nothing stored twice' if ok else 'MISMATCH'}. "
                    "An acknowledgement means the batch is fsynced to the write-ahead spool; the single writer "
                    "models it into DuckDB right after (the backlog line says how far behind it was). "
                    "When the writer cannot keep up (other processes taking the CPU, or more than its capacity), "
                    "the spool grows up to 512 MiB and the receiver then answers 503 with Retry-After; nothing "
                    "acknowledged is lost either way.")
            write_section(str(ROOT / "docs" / "benchmarks.md"), "OTLP ingestion", body)
        return 0 if ok else 1
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(120)
        except subprocess.TimeoutExpired:
            srv.kill()
        log.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept", tmp)


if __name__ == "__main__":
    sys.exit(main())
