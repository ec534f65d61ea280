"""The engineering sync engine and its schedule (sources/eng_sync.py), on a real warehouse and real git."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cclens.config import Settings
from cclens.errors import CclensError
from cclens.sources.eng_sync import due_eng_sources, run_due_eng_syncs, sync_engineering
from fakes.github_api import FakeGitHub
from git_support import Repo

UTC = timezone.utc
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def state(wh, name):
    rows = wh.query("SELECT last_success, last_attempt, last_error FROM source_state WHERE source = ?",
                    [f"schedule:{name}"])
    return rows[0] if rows else None


def test_schedule_intervals_unconfigured_and_disabled(tmp_path, warehouse):
    repo = Repo(tmp_path / "r")
    repo.commit("one", {"a": "1\n"})
    settings = Settings(git_repos=[repo.path], git_sync_interval_s=300)
    assert due_eng_sources(Settings(), warehouse, T0) == []  # nothing configured: nothing due
    assert due_eng_sources(Settings(git_repos=[repo.path], git_sync_interval_s=0), warehouse, T0) == []
    assert due_eng_sources(settings, warehouse, T0) == ["git"]
    rows = run_due_eng_syncs(settings, warehouse, T0)
    assert [(r["source"], r["status"]) for r in rows] == [("git", "ok"), ("lineage", "ok")]
    assert state(warehouse, "git")["last_error"] is None
    assert due_eng_sources(settings, warehouse, T0 + timedelta(seconds=299)) == []
    assert run_due_eng_syncs(settings, warehouse, T0 + timedelta(seconds=299)) == []
    # due again after the interval; nothing new in the clone, so lineage is not rebuilt
    assert [r["source"] for r in run_due_eng_syncs(settings, warehouse, T0 + timedelta(seconds=300))] == ["git"]
    # (the unchanged clone still records its run: the repository's own state moved too)
    assert warehouse.scalar("SELECT max(last_success) FROM source_state WHERE source LIKE 'git:%'") == \
        T0 + timedelta(seconds=300)
    repo.commit("two", {"a": "2\n"})
    rows = run_due_eng_syncs(settings, warehouse, T0 + timedelta(seconds=600))
    assert [r["source"] for r in rows] == ["git", "lineage"] and rows[0]["detail"].startswith("1 new commits")
    assert warehouse.scalar("SELECT count(*) FROM commit") == 2


def test_a_failing_source_is_recorded_retried_later_and_does_not_stop_the_others(tmp_path, warehouse):
    repo = Repo(tmp_path / "r")
    repo.commit("one", {"a": "1\n"})
    gh = FakeGitHub(now=T0)
    gh.generate(seed=1, repos=1, pulls=2)
    with gh.serve() as url:  # GitHub rejects this token: the source fails on every call
        settings = Settings(git_repos=[repo.path], github_token="ghp_secret_value", github_repos=["acme/repo0"],
                            github_api_url=url, github_sync_interval_s=900)
        rows = run_due_eng_syncs(settings, warehouse, T0)
    by = {r["source"]: r for r in rows}
    assert by["git"]["status"] == "ok" and by["github"]["status"] == "error" and by["lineage"]["status"] == "ok"
    assert warehouse.scalar("SELECT count(*) FROM commit") == 1
    err = state(warehouse, "github")
    assert err["last_success"] is None and "github" in err["last_error"] and "ghp_secret_value" not in err["last_error"]
    # the failed source waits min(interval, 15 min) before the next try; git follows its own interval
    assert due_eng_sources(settings, warehouse, T0 + timedelta(minutes=14)) == ["git"]
    assert due_eng_sources(settings, warehouse, T0 + timedelta(minutes=15)) == ["git", "github"]


def test_named_unconfigured_source_raises_unnamed_is_skipped(warehouse):
    rows = sync_engineering(Settings(), warehouse, lineage=False)
    assert [(r["source"], r["status"]) for r in rows] == [("git", "skipped"), ("github", "skipped"),
                                                          ("jira", "skipped")]
    with pytest.raises(CclensError, match="git_repos"):
        sync_engineering(Settings(), warehouse, ["git"])
    with pytest.raises(CclensError, match="choose from git, github, jira"):
        sync_engineering(Settings(), warehouse, ["svn"])
