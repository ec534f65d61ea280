"""`cclens serve` pulls the engineering sources on its own schedule (a failing one recorded, the others
and the Anthropic syncs unaffected), and `cclens sync git` / `sync-eng` go through a running server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import httpx2 as httpx

from fakes.anthropic_api import FakeAnthropicAPI
from fakes.jira_api import FakeJira
from git_support import Repo
from serve_support import ServeProcess, wait_until


def rest_sql(srv: ServeProcess, sql: str) -> list[dict]:
    token = json.loads(srv.db.with_name(srv.db.name + ".server.json").read_text())["token"]
    r = httpx.post(srv.url + "/api/v1/query", json={"sql": sql}, headers={"Authorization": f"Bearer {token}"},
                   timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    return [dict(zip(body["columns"], row)) for row in body["rows"]]


def shas(srv: ServeProcess) -> set[str]:
    return {r["sha"] for r in rest_sql(srv, "SELECT sha FROM commit")}


def cli(db, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cclens.cli", "--db", str(db), *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env})


def test_serve_schedules_git_and_records_a_failing_source(tmp_path):
    repo = Repo(tmp_path / "clone")
    first = repo.commit("first", {"a.txt": "1\n"})
    api = FakeAnthropicAPI(seed=3, people=4, days=3)
    jira = FakeJira()
    jira.generate(seed=1, issues=5)
    db = tmp_path / "wh.duckdb"
    with api.serve() as api_url, jira.serve() as jira_url:
        env = {"CCLENS_GIT_REPOS": str(repo.path), "CCLENS_GIT_SYNC_INTERVAL_S": "0.5",
               # Jira is configured with a token the fake rejects: it fails on every pass
               "CCLENS_JIRA_URL": jira_url, "CCLENS_JIRA_EMAIL": jira.EMAIL, "CCLENS_JIRA_API_TOKEN": "wrong-token",
               "CCLENS_JIRA_SYNC_INTERVAL_S": "0.5",
               "CCLENS_ANTHROPIC_BASE_URL": api_url, "CCLENS_ANTHROPIC_ADMIN_KEY": api.ADMIN_KEY,
               "CCLENS_ANTHROPIC_SYNC_START": (api.today - timedelta(days=2)).isoformat(),
               "CCLENS_SERVER_WATCH_TRANSCRIPTS": "false"}
        with ServeProcess(db, env=env) as srv:
            # the first pass stores the clone's commit without any CLI call
            wait_until(lambda: shas(srv) == {first}, timeout=120, what="the scheduled git sync")
            # a new commit in the clone is picked up by a later pass
            second = repo.commit("second", {"a.txt": "1\n2\n"})
            wait_until(lambda: shas(srv) == {first, second}, timeout=120, what="the new commit")
            # the failing source is recorded, in source_state and the health endpoint
            state = {r["source"]: r for r in rest_sql(
                srv, "SELECT source, last_success, last_error FROM source_state WHERE source LIKE 'schedule:%'")}
            assert state["schedule:git"]["last_error"] is None and state["schedule:git"]["last_success"]
            assert state["schedule:jira"]["last_success"] is None
            assert "jira" in state["schedule:jira"]["last_error"] and "wrong-token" not in str(state)
            assert "schedule:github" not in state  # not configured: skipped silently
            health = wait_until(lambda: (h := httpx.get(srv.url + "/healthz", timeout=5).json()["scheduler"])
                                ["engineering_runs"] >= 2 and h, timeout=60, what="two engineering passes")
            assert "jira" in health["engineering"]["jira"]["last_error"]
            assert health["engineering"]["git"]["last_error"] is None and "github" not in health["engineering"]
            assert "jira" in health["engineering_last_error"]
            # the Anthropic syncs run on their own thread of the same scheduler, unaffected
            health = wait_until(lambda: (h := httpx.get(srv.url + "/healthz", timeout=5).json()["scheduler"])
                                ["runs"] >= 1 and h, timeout=120, what="a scheduled Anthropic pass")
            assert health["last_error"] is None
            assert rest_sql(srv, "SELECT count(*) AS n FROM usage_bucket")[0]["n"] > 0
            # lineage was rebuilt after the git pass (the run record exists even with no links)
            assert rest_sql(srv, "SELECT count(*) AS n FROM repository")[0]["n"] == 1
        assert "Traceback" not in srv.log()


def test_cli_sync_git_goes_through_a_running_server(tmp_path):
    repo = Repo(tmp_path / "clone")
    one = repo.commit("one", {"a.txt": "1\n"})
    two = repo.commit("two\n\nCo-Authored-By: Claude <noreply@anthropic.com>", {"a.txt": "1\n2\n"})
    db = tmp_path / "wh.duckdb"
    # git configured but not scheduled (interval 0): only the CLI can bring the commits in
    env = {"CCLENS_GIT_REPOS": str(repo.path), "CCLENS_GIT_SYNC_INTERVAL_S": "0",
           "CCLENS_SERVER_WATCH_TRANSCRIPTS": "false"}
    with ServeProcess(db, env=env) as srv:
        assert shas(srv) == set()
        out = cli(db, "sync", "git", "--format", "json", env=env)
        assert out.returncode == 0, out.stderr + srv.log()
        rows = json.loads(out.stdout)
        assert [(r["source"], r["status"]) for r in rows] == [("git", "ok"), ("lineage", "ok")]
        assert rows[0]["detail"].startswith("2 new commits")
        assert shas(srv) == {one, two}
        # sync-eng keeps working, through the server too (the server owns the file)
        three = repo.commit("three", {"b.txt": "x\n"})
        out = cli(db, "sync-eng", "--format", "json", env=env)
        assert out.returncode == 0, out.stderr + srv.log()
        assert [(r["source"], r["status"]) for r in json.loads(out.stdout)] == [
            ("git", "ok"), ("github", "skipped"), ("jira", "skipped"), ("lineage", "ok")]
        assert shas(srv) == {one, two, three}
        # a named source the server has no settings for is one line naming the setting, not a traceback
        missing = cli(db, "sync", "jira", env=env)
        assert missing.returncode == 2 and "jira_url" in missing.stderr and "Traceback" not in missing.stderr
        unknown = cli(db, "sync", "svn", env=env)
        assert unknown.returncode == 2 and "choose from" in unknown.stderr and "git" in unknown.stderr
    # without a server, `cclens sync git` writes the file itself
    four = repo.commit("four", {"b.txt": "y\n"})
    out = cli(db, "sync", "git", "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["detail"].startswith("1 new commits")
    rows = cli(db, "query", "SELECT count(*) AS n FROM commit", "--format", "json", env=env)
    assert json.loads(rows.stdout)[0]["n"] == 4 and four
