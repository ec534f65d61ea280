"""The engineering commands through the real CLI: sync-eng against the Jira and GitHub fakes, errors as
one line (never a traceback, never a token), reports on an empty warehouse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

from fakes.github_api import FakeGitHub
from fakes.jira_api import FakeJira
from git_support import Repo

UTC = timezone.utc


def cli(db, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cclens.cli", "--db", str(db), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def test_sync_eng_jira_then_tickets_report(tmp_path):
    db = tmp_path / "wh.duckdb"
    jira = FakeJira()
    jira.generate(seed=2, issues=20)
    with jira.serve() as url:
        out = cli(db, "sync-eng", "jira", "--format", "json", CCLENS_JIRA_URL=url, CCLENS_JIRA_EMAIL=jira.EMAIL,
                  CCLENS_JIRA_API_TOKEN=jira.TOKEN, CCLENS_ENGINEERING_SYNC_START="2026-01-01")
    assert out.returncode == 0, out.stderr
    rows = {r["source"]: r for r in json.loads(out.stdout)}
    assert rows["jira"]["status"] == "ok" and rows["jira"]["detail"].startswith("40 issues")
    assert rows["lineage"]["status"] == "ok"
    report = cli(db, "report", "delivery", "--by", "tickets", "--format", "json")
    assert report.returncode == 0 and json.loads(report.stdout) == []  # no pull request references them


def test_errors_are_one_line_without_secrets(tmp_path):
    db = tmp_path / "wh.duckdb"
    gh = FakeGitHub(now=datetime(2026, 6, 1, tzinfo=UTC))
    gh.generate(seed=1, repos=1, pulls=3)
    with gh.serve() as url:
        out = cli(db, "sync-eng", "github", CCLENS_GITHUB_TOKEN="ghp_not_the_right_one", CCLENS_GITHUB_API_URL=url,
                  CCLENS_GITHUB_REPOS="acme/repo0")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "ghp_not_the_right_one" not in out.stderr + out.stdout
    assert "error: github:" in out.stderr and "github_token" in out.stderr
    unknown = cli(db, "sync-eng", "svn")
    assert unknown.returncode == 2 and "choose from git, github, jira" in unknown.stderr
    missing = cli(db, "sync-eng", "jira")
    assert missing.returncode == 2 and "jira_url" in missing.stderr and "Traceback" not in missing.stderr
    show = cli(db, "lineage", "show")
    assert show.returncode != 0 and "exactly one of" in show.stderr


def test_sync_eng_skips_unconfigured_and_reports_on_git_only(tmp_path):
    db = tmp_path / "wh.duckdb"
    repo = Repo(tmp_path / "r")
    repo.commit("one", {"a.txt": "1\n"})
    repo.commit("two\n\nCo-Authored-By: Claude <noreply@anthropic.com>", {"a.txt": "1\n2\n"})
    out = cli(db, "sync-eng", "--format", "json", CCLENS_GIT_REPOS=str(repo.path))
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [(r["source"], r["status"]) for r in rows] == [("git", "ok"), ("github", "skipped"), ("jira", "skipped"),
                                                          ("lineage", "ok")]
    repos = cli(db, "report", "delivery", "--by", "repos", "--since", "2026-03-01", "--until", "2026-03-31",
                "--format", "json")
    (row,) = json.loads(repos.stdout)
    assert (row["commits"], row["attributed_commits"], row["trailer_commits"]) == (2, 0, 1)
    table = cli(db, "report", "delivery", "--since", "2026-03-01", "--until", "2026-03-31")
    assert table.returncode == 0 and "merged_prs" in table.stdout and "attributed_commit_share" in table.stdout
