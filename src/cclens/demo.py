"""``cclens demo``: a realistic organisation, fed through the real ingest paths, in its own warehouse.

::

    result = build_demo(db_path, people=60, days=90)     # writes db_path (replacing it), returns counts
    settings = demo_settings(load_settings(), db_path)   # what `cclens demo` serves it with

:func:`build_demo` generates the organisation (:mod:`cclens.synth.org`) and feeds it the way real data
arrives, never by inserting rows:

1. transcript files written like Claude Code's (for the people who ship them), ingested by the
   transcript source, one host at a time;
2. the Anthropic reporting APIs (:class:`~cclens.synth.org_api.OrgAnthropicAPI`, the protocol fake on a
   loopback port) pulled by the sync engine, as ``cclens sync`` does;
3. OpenTelemetry (OTLP/HTTP protobuf to ``/v1/logs`` and ``/v1/metrics``) and hook calls (the shim's
   ``/hooks/batch``) sent to a real ``cclens serve`` app on a free loopback port, which is then shut down
   gracefully (spool applied, checkpoint).

The demo warehouse is a separate file (default ``<data dir>/demo/demo.duckdb``); the user's warehouse is
never opened. :func:`demo_settings` turns off everything that would pull real data into it (the
transcript watcher, API keys, engineering-data tokens).
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import httpx2 as httpx

from .config import Settings, data_dir
from .errors import CclensError

Progress = Callable[[str], None]


class DemoError(CclensError):
    """The demo organisation could not be built."""


@dataclass
class DemoResult:
    db: Path
    people: int
    teams: int
    sessions: int
    requests: int
    otlp_requests: int = 0
    hook_events: int = 0
    transcript_files: int = 0
    api_rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def default_demo_db() -> Path:
    """Where ``cclens demo`` keeps its warehouse: ``<data dir>/demo/demo.duckdb``."""
    return data_dir() / "demo" / "demo.duckdb"


def demo_settings(base: Settings, db: Path, **overrides: Any) -> Settings:
    """``base`` pointed at the demo warehouse, with every path that reads real data switched off."""
    return dataclasses.replace(base, db=Path(db), server_watch_transcripts=False, transcript_paths=[],
                               anthropic_admin_key=None, anthropic_analytics_key=None, github_token=None,
                               jira_api_token=None, server_url=None, server_token=None, **overrides)


def remove_warehouse(db: Path) -> None:
    """Delete a warehouse file and what lives beside it (WAL, spool, discovery file)."""
    for extra in (db, db.with_name(db.name + ".wal"), db.with_name(db.name + ".server.json")):
        extra.unlink(missing_ok=True)
    shutil.rmtree(db.with_name(db.name + ".spool"), ignore_errors=True)


def build_demo(db: Path, *, people: int = 60, days: int = 90, seed: int = 42, now: datetime | None = None,
               settings: Settings | None = None, progress: Progress | None = None) -> DemoResult:
    """Replace ``db`` with a warehouse holding the demo organisation (see the module docstring)."""
    from .synth.org import build_org

    say = progress or (lambda _msg: None)
    if people < 6 or days < 7:
        raise DemoError(f"the demo needs at least 6 people and 7 days (got --people {people} --days {days})")
    started = time.monotonic()
    db = Path(db)
    db.parent.mkdir(parents=True, exist_ok=True)
    remove_warehouse(db)
    settings = demo_settings(settings or Settings(db=db), db)
    org = build_org(seed, people, days, now)
    result = DemoResult(db, len(org.people), len({p.team for p in org.people}), len(org.sessions),
                        sum(len(s.requests) for s in org.sessions))
    say(f"organisation: {result.people} people in {result.teams} teams, {result.sessions:,} sessions, "
        f"{result.requests:,} API requests over {days} days")
    work = db.parent / "laptops"
    shutil.rmtree(work, ignore_errors=True)
    _transcripts_and_apis(org, db, work, settings, result, say)
    _push(org, db, settings, result, say)
    shutil.rmtree(work, ignore_errors=True)
    result.seconds = time.monotonic() - started
    say(f"demo warehouse ready: {db} ({result.seconds:.0f} s)")
    return result


def _transcripts_and_apis(org: Any, db: Path, work: Path, settings: Settings, result: DemoResult,
                          say: Progress) -> None:
    from .model.pricing import bundled_table, sync_model_prices
    from .sources.sync import sync
    from .sources.transcripts import ingest_paths
    from .synth.org_api import OrgAnthropicAPI
    from .synth.org_emit import write_transcripts
    from .warehouse import open_warehouse

    hosts = write_transcripts(org, work)
    wh = open_warehouse(db)
    try:
        for host, projects in sorted(hosts.items()):
            stats = ingest_paths(wh, [projects], host=host, include_defaults=False)
            result.transcript_files += stats.files
        say(f"transcripts: {result.transcript_files} files from {len(hosts)} laptops ingested")
        fake = OrgAnthropicAPI(org)
        with fake.serve() as url:
            api = dataclasses.replace(settings, anthropic_base_url=url, anthropic_admin_key=fake.ADMIN_KEY,
                                      anthropic_analytics_key=fake.ANALYTICS_KEY, anthropic_sync_start=org.start,
                                      anthropic_enterprise_lookback_days=0)
            for r in sync(api, wh, since=org.start, now=org.now):
                if r.status == "error":
                    raise DemoError(f"syncing the demo's {r.source} API failed: {r.error}")
                result.api_rows[r.source] = r.rows
        say("Anthropic APIs synced: " + ", ".join(f"{k} {v:,} rows" for k, v in result.api_rows.items()))
        sync_model_prices(wh, bundled_table())
        from .model.identity import import_people
        from .synth.org_emit import write_people_file

        counts = import_people(wh, write_people_file(org, db.parent / "people.toml"))
        say(f"people file: {counts['people']} people, {counts['teams']} teams, {counts['aliases']} identities linked")
    finally:
        wh.close()


def _push(org: Any, db: Path, settings: Settings, result: DemoResult, say: Progress) -> None:
    """OTLP and hooks through a real server app on a free loopback port, then a graceful stop."""
    from .model.pricing import bundled_table, sync_model_prices
    from .server.app import create_app
    from .synth.org_emit import hook_batches, otlp_requests
    from .warehouse import open_warehouse

    wh = open_warehouse(db)
    try:
        app = create_app(dataclasses.replace(settings, server_port=0), wh, require_auth=False, grpc_port=0)
        server = _AppServer(app)
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=120) as client:
                for path, body in otlp_requests(org, org.sessions):
                    _post(client, path, body, {"content-type": "application/x-protobuf"})
                    result.otlp_requests += 1
                for body in hook_batches(org, org.sessions):
                    sent = {"content-type": "application/x-ndjson", "x-cclens-sent-time": f"{time.time():.6f}"}
                    got = _post(client, "/hooks/batch", body, sent).json()
                    result.hook_events += got.get("stored", 0)
                say(f"OpenTelemetry: {result.otlp_requests} OTLP requests sent; hooks: {result.hook_events:,} "
                    "events sent")
                _wait_applied(client)
        finally:
            server.stop()
        sync_model_prices(wh, bundled_table())
    finally:
        wh.close()


def _post(client: httpx.Client, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    for _attempt in range(60):
        resp = client.post(path, content=body, headers=headers)
        if resp.status_code in (429, 503):
            time.sleep(float(resp.headers.get("retry-after", "1")))
            continue
        if resp.status_code != 200:
            raise DemoError(f"the demo server refused POST {path}: HTTP {resp.status_code} {resp.text[:200]}")
        return resp
    raise DemoError(f"the demo server stayed overloaded for POST {path}")


def _wait_applied(client: httpx.Client, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        otlp = client.get("/healthz").json().get("otlp", {})
        if not otlp.get("backlog_entries") and not otlp.get("inflight"):
            return
        time.sleep(0.1)
    raise DemoError("the demo server did not apply its OTLP backlog within 10 minutes")


class _AppServer:
    """uvicorn with lifespan serving ``app`` on a free loopback port, in a thread."""

    def __init__(self, app: Any):
        import socket

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False,
                                                    log_config=None))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                       name="cclens-demo-feed")

    def start(self, timeout: float = 60) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise DemoError("the demo's feeding server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(300)
        self.sock.close()
