"""`cclens serve` pulls the Anthropic APIs on its own schedule, and `cclens sync` goes through it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import httpx2 as httpx

from fakes.anthropic_api import FakeAnthropicAPI
from serve_support import ServeProcess, wait_until


def test_serve_schedules_syncs_and_cli_sync_goes_through_it(tmp_path):
    api = FakeAnthropicAPI(seed=5, people=6, days=4)
    db = tmp_path / "wh.duckdb"
    with api.serve() as url:
        env = {"CCLENS_ANTHROPIC_BASE_URL": url, "CCLENS_ANTHROPIC_ADMIN_KEY": api.ADMIN_KEY,
               "CCLENS_ANTHROPIC_ANALYTICS_KEY": api.ANALYTICS_KEY,
               "CCLENS_ANTHROPIC_SYNC_START": (api.today - timedelta(days=3)).isoformat(),
               "CCLENS_SERVER_WATCH_TRANSCRIPTS": "false"}
        with ServeProcess(db, env=env) as srv:
            # the scheduler's first pass runs shortly after start, through the writer
            health = wait_until(lambda: (h := httpx.get(srv.url + "/healthz", timeout=5).json())["scheduler"]["runs"]
                                >= 1 and h, timeout=120, what="a scheduled sync pass")
            assert health["scheduler"]["last_error"] is None
            # while serve owns the file, `cclens sync` runs inside it instead of failing on the lock
            out = subprocess.run([sys.executable, "-m", "cclens.cli", "--db", str(db), "sync", "usage", "--format",
                                  "json"], capture_output=True, text=True, timeout=300, env={**os.environ, **env})
            assert out.returncode == 0, out.stderr + srv.log()
            assert [r["source"] for r in json.loads(out.stdout)] == ["usage"]
            rows = subprocess.run([sys.executable, "-m", "cclens.cli", "--db", str(db), "query",
                                   "SELECT count(*) AS n FROM usage_bucket", "--format", "json"],
                                  capture_output=True, text=True, timeout=120, env={**os.environ, **env})
            assert rows.returncode == 0, rows.stderr
            assert json.loads(rows.stdout)[0]["n"] > 0
