"""A small demo organisation in a warehouse, served by a real ``cclens serve`` app on loopback (shared by the
dashboard tests)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=timezone.utc)
SINCE, UNTIL = "2026-11-07", "2026-11-20"
RANGE = f"since={SINCE}&until={UNTIL}&tz=UTC"
PAGES = ["/", "/adoption", "/cost", "/output", "/people", "/teams", "/sessions", "/sources", "/reconciliation"]


def build(path: Path) -> Path:
    from cclens.demo import build_demo

    db = path / "demo.duckdb"
    build_demo(db, people=12, days=14, seed=7, now=NOW)
    return db


def app_for(db: Path):
    from cclens.config import Settings
    from cclens.demo import demo_settings
    from cclens.server.app import create_app
    from cclens.warehouse import open_warehouse

    wh = open_warehouse(db)
    settings = demo_settings(Settings(db=db), db, tz="UTC")
    return create_app(settings, wh, grpc_port=0), wh
