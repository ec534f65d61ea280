"""End to end: the real Claude Code CLI commits in a test repository; cclens links that commit to the
session exactly, and the session's cost to the pull request that contains it in the fake GitHub.

Claude Code 2.1.197 runs headless against the fake Messages API (scenario ``git_commit``: Write
feature.py, then ``git add … && git commit -m …`` through Bash), with ``cclens setup claude-code
--hook-transport command`` (the ``cclens hook`` shim for every event) and OTLP to a real ``cclens
serve`` that keeps content (``capture_content``; see docs/lineage.md for what exact lineage needs).
Transcripts are shipped with ``cclens ship``. Then ``cclens sync-eng git github`` reads the clone and
the fake GitHub (where the commit sits in a merged pull request), and the CLI's own output is checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import httpx2 as httpx
import pytest

from fake_messages_api import GIT_COMMIT_MESSAGE, FakeMessagesAPI
from fakes.github_api import FakeGitHub, Pull
from serve_support import ServeProcess, wait_until
from ship_support import run_ship_once
from test_e2e_claude_code import claude_binary, claude_totals

UTC = timezone.utc
BRANCH = "feature/PROJ-42-feature"
pytestmark = pytest.mark.slow


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cclens.cli", *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})


def git(repo, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}).stdout.strip()


def test_claude_code_commit_is_linked_to_its_session_and_its_cost_to_the_pr(tmp_path, isolated_env):
    binary = claude_binary()
    home = isolated_env
    db = tmp_path / "server" / "cclens.duckdb"
    db.parent.mkdir()
    gh = FakeGitHub(now=datetime.now(UTC))
    with gh.serve() as gh_url:
        gh.add_repo("acme/app", org="acme")
        repo = tmp_path / "work" / "app"
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", BRANCH)
        git(repo, "config", "user.name", "Dev One")
        git(repo, "config", "user.email", "dev1@example.com")
        git(repo, "remote", "add", "origin", f"{gh_url}/acme/app.git")
        (repo / "README.md").write_text("app\n")
        git(repo, "add", "README.md")
        old = "1767225600 +0000"  # 2026-01-01: a human commit well before the session
        git(repo, "commit", "-q", "-m", "Initial", env={"GIT_AUTHOR_DATE": old, "GIT_COMMITTER_DATE": old})
        initial = git(repo, "rev-parse", "HEAD")

        server = ServeProcess(db, grpc=False, env={"CCLENS_SERVER_WATCH_TRANSCRIPTS": "0",
                                                   "CCLENS_CAPTURE_CONTENT": "1"}).start()
        try:
            setup = cli("setup", "claude-code", "--server", server.url, "--protocol", "http/json",
                        "--hook-transport", "command", "--write")
            assert setup.returncode == 0, setup.stderr
            with FakeMessagesAPI("git_commit") as api:
                result = run_claude(binary, api, repo, home)
            sid = result["session_id"]
            sha = git(repo, "rev-parse", "HEAD")
            assert sha != initial and git(repo, "log", "-1", "--format=%s") == GIT_COMMIT_MESSAGE
            shipped = run_ship_once(server.url)
            assert shipped.returncode == 0, shipped.stderr

            def landed():
                view = httpx.get(f"{server.url}/api/v1/sessions/{sid}", timeout=10)
                if view.status_code != 200:
                    return False
                src = view.json().get("sources", {})
                tokens = claude_totals(result)
                return ("hooks" in src and (src.get("otel") or {}).get("tokens") == tokens
                        and (src.get("transcripts") or {}).get("tokens") == tokens)
            wait_until(landed, timeout=60, what=f"hooks, OTel and transcripts of session {sid}")
        finally:
            code = server.stop()
        assert code == 0, server.log()[-3000:]

        # the commit, pushed and merged through a pull request in the fake GitHub
        committed = datetime.fromtimestamp(int(git(repo, "log", "-1", "--format=%ct")), UTC)
        merged = committed + timedelta(hours=2)
        gh.add_pull("acme/app", Pull(
            number=7, title="PROJ-42: add feature", user="dev1", head_ref=BRANCH, head_sha=sha, base_ref="main",
            created_at=committed + timedelta(minutes=10), updated_at=merged, state="closed", closed_at=merged,
            merged_at=merged, merge_commit_sha="9" * 40,
            commits=[{"sha": sha, "login": "dev1", "email": "dev1@example.com", "name": "Dev One",
                      "date": committed, "message": GIT_COMMIT_MESSAGE}]))
        gh.add_review("acme/app", 7, "reviewer", "APPROVED", committed + timedelta(hours=1))
        env = {"CCLENS_GIT_REPOS": str(repo), "CCLENS_GITHUB_TOKEN": gh.TOKEN, "CCLENS_GITHUB_API_URL": gh_url,
               "CCLENS_GITHUB_REPOS": "acme/app",
               "CCLENS_ENGINEERING_SYNC_START": (committed - timedelta(days=2)).date().isoformat()}
        sync = cli("--db", str(db), "sync-eng", "git", "github", "--format", "json", env=env)
        assert sync.returncode == 0, sync.stdout + sync.stderr
        statuses = {(r["source"], r["status"]) for r in json.loads(sync.stdout)}
        assert statuses == {("git", "ok"), ("github", "ok"), ("lineage", "ok")}, sync.stdout

    # the session → commit link is exact, seen by all three sources
    show = cli("--db", str(db), "lineage", "show", "--commit", sha, "--format", "json")
    assert show.returncode == 0, show.stderr
    links = json.loads(show.stdout)
    (session_link,) = [r for r in links if r["kind"] == "session_commit"]
    assert (session_link["from_id"], session_link["method"], session_link["confidence"]) == (sid, "exact", 1.0)
    evidence = json.loads(session_link["evidence"])
    assert evidence["sources"] == ["hooks", "otel", "transcripts"] and evidence["short_sha"] == sha[:7]
    pr_id = f"127.0.0.1:{gh_url.rsplit(':', 1)[1]}/acme/app#7"
    assert any(r["kind"] == "commit_pr" and r["to_id"] == pr_id for r in links)
    # the human commit made before the session is not attributed to it
    before = json.loads(cli("--db", str(db), "lineage", "show", "--commit", initial, "--format", "json").stdout)
    assert not [r for r in before if r["kind"] == "session_commit"]
    # the session's cost lands on the pull request, equal to Claude Code's own figure
    day = committed.date()
    report = cli("--db", str(db), "report", "delivery", "--by", "prs", "--since", day.isoformat(),
                 "--until", (day + timedelta(days=1)).isoformat(), "--tz", "UTC", "--format", "json")
    assert report.returncode == 0, report.stderr
    (pr,) = json.loads(report.stdout)
    assert pr["pr_id"] == pr_id and pr["assisted"] and pr["assisted_by"] == "exact" and pr["sessions"] == 1
    assert pr["cost_usd"] == pytest.approx(result["total_cost_usd"], abs=1e-6)
    assert pr["cycle_time_h"] == pytest.approx(2.0, abs=1e-3) and pr["review_lag_h"] == pytest.approx(50 / 60, abs=1e-3)
    trace = json.loads(cli("--db", str(db), "lineage", "show", "--session", sid, "--format", "json").stdout)
    assert {(r["node_type"], r["node_id"]) for r in trace} == {("commit", sha), ("pull_request", pr_id)}


def run_claude(binary, api: FakeMessagesAPI, repo, home) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE", "OTEL_", "ANTHROPIC_", "CCLENS_"))}
    env.update(HOME=str(home), ANTHROPIC_BASE_URL=api.url, ANTHROPIC_API_KEY="sk-ant-fake",
               CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1", DISABLE_ERROR_REPORTING="1",
               OTEL_LOG_TOOL_DETAILS="1")  # OTel then carries tool_parameters.git_commit_id too
    if os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"
    proc = subprocess.run([str(binary), "-p", "add the feature and commit it", "--output-format", "json",
                           "--dangerously-skip-permissions"], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, f"claude failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)
