"""The Jira source against the loopback fake: the JQL search API with nextPageToken paging, long
changelogs, sprints and status categories, incremental runs, 429/503/5xx, bad credentials."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from cclens.config import Settings
from cclens.errors import ConfigError
from cclens.sources.jira import build_jql, sync_jira
from fakes.jira_api import STATUSES, FakeJira, Issue

UTC = timezone.utc
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def settings(url: str, **kw) -> Settings:
    base = dict(jira_url=url, jira_email=FakeJira.EMAIL, jira_api_token=FakeJira.TOKEN,
                engineering_sync_start=date(2026, 1, 1))
    base.update(kw)
    return Settings(**base)


class Sleeper:
    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, s: float) -> None:
        self.waits.append(s)


@pytest.fixture
def jira():
    fake = FakeJira(embedded_changelog=2)  # most issues have more: the changelog endpoint is exercised
    fake.generate(seed=4, issues=130)      # 260 issues: three pages of 100
    return fake


def test_full_sync_equals_the_fake(jira, warehouse):
    with jira.serve() as url:
        (result,) = sync_jira(settings(url), warehouse, sleep=Sleeper(), now=NOW)
    assert result.status == "ok", result.error
    assert result.counts["issues"] == 260 and result.counts["pages"] == 3
    rows = {r["issue_key"]: r for r in warehouse.query("SELECT * FROM issue")}
    assert set(rows) == set(jira.issues)
    transitions = warehouse.query("SELECT * FROM issue_transition")
    assert len(transitions) == sum(len(i.histories) for i in jira.issues.values())
    for key in ("PROJ-1", "OPS-77", "PROJ-130"):
        issue, row = jira.issues[key], rows[key]
        assert (row["status"], row["status_category"]) == (issue.status, STATUSES[issue.status])
        assert row["sprints"] == issue.sprints and row["labels"] == issue.labels
        assert row["created_at"] == issue.created and row["updated_at"] == issue.updated
        assert row["resolved_at"] == issue.resolved
        assert row["assignee_id"] == issue.assignee and row["assignee_name"] == jira.people[issue.assignee]["displayName"]
        started = [h["created"] for h in issue.histories if STATUSES[h["to"]] == "indeterminate"]
        assert row["first_in_progress_at"] == (min(started) if started else None)
        got = [(t["from_status"], t["to_status"], t["ts"]) for t in warehouse.query(
            "SELECT * FROM issue_transition WHERE issue_key = ? ORDER BY ts", [key])]
        assert got == [(h["from"], h["to"], h["created"]) for h in issue.histories]
    people = {r["identity"]: r for r in warehouse.query("SELECT * FROM eng_identity WHERE system = 'jira'")}
    assert set(people) == set(jira.people) and people["712020:ada"]["email"] == "ada@example.com"
    assert warehouse.scalar("SELECT count(*) FROM landing_eng_page WHERE source = 'jira'") > 3
    assert not warehouse.scalar("SELECT count(*) FROM landing_eng_page WHERE payload LIKE ?", [f"%{jira.TOKEN}%"])
    changelog_reads = [p for p, s in jira.log if p.endswith("/changelog")]
    assert changelog_reads, "long changelogs were read from the changelog endpoint"


def test_incremental_reads_recent_changes_and_a_changed_query_starts_over(jira, warehouse):
    with jira.serve() as url:
        sync_jira(settings(url), warehouse, sleep=Sleeper(), now=NOW)
        jira.log.clear()
        latest = max(i.updated for i in jira.issues.values())
        jira.transition("PROJ-3", "Done", latest + timedelta(hours=5))
        jira.add_issue(Issue(key="OPS-500", summary="new", issue_type="Bug", status="To Do",
                             created=latest + timedelta(hours=6), updated=latest + timedelta(hours=6)))
        (again,) = sync_jira(settings(url), warehouse, sleep=Sleeper(), now=NOW)
        assert again.status == "ok"
        assert again.counts["issues"] < 40  # the day of overlap, not everything
        assert warehouse.scalar("SELECT status FROM issue WHERE issue_key = 'PROJ-3'") == "Done"
        assert warehouse.scalar("SELECT count(*) FROM issue") == 261
        assert warehouse.scalar("SELECT count(*) FROM issue_transition") == sum(
            len(i.histories) for i in jira.issues.values())  # re-read issues are replaced, not doubled
        (narrow,) = sync_jira(settings(url, jira_jql="project = OPS"), warehouse, sleep=Sleeper(), now=NOW)
        assert narrow.counts["issues"] == 131  # a new query: read from the start again


def test_rate_limits_and_server_errors_end_complete(jira, warehouse):
    jira.fail(429, retry_after=7, path="/search/jql", after=1)
    jira.fail(503, retry_after=3, path="/changelog", after=5)
    jira.fail(500, count=2, path="/search/jql", after=2)
    jira.fail(502, path="/rest/api/3/field")
    sleeper = Sleeper()
    with jira.serve() as url:
        (result,) = sync_jira(settings(url), warehouse, sleep=sleeper, now=NOW)
    assert result.status == "ok", result.error
    assert warehouse.scalar("SELECT count(*) FROM issue") == 260
    assert 7 in sleeper.waits and 3 in sleeper.waits and result.retries >= 5
    assert all(r.remaining == 0 for r in jira.rules)


def test_bad_credentials_and_missing_settings(jira, warehouse):
    with jira.serve() as url:
        (result,) = sync_jira(settings(url, jira_api_token="wrong-token-value"), warehouse, sleep=Sleeper())
    assert result.status == "error" and "jira_api_token" in result.error
    assert "wrong-token-value" not in result.error
    assert warehouse.query("SELECT last_error FROM source_state WHERE source = 'jira'")[0]["last_error"]
    with pytest.raises(ConfigError, match="jira_url, jira_email, jira_api_token"):
        sync_jira(Settings(), warehouse)


def test_bad_jql_is_reported(jira, warehouse):
    with jira.serve() as url:
        (result,) = sync_jira(settings(url, jira_jql="assignee was banana"), warehouse, sleep=Sleeper())
    assert result.status == "error" and "HTTP 400" in result.error and "JQL" in result.error


def test_jql_is_bounded_and_ordered():
    since = datetime(2026, 5, 2, 13, 45, tzinfo=UTC)
    assert build_jql(None, since) == 'updated >= "2026/05/02 13:45" ORDER BY updated ASC'
    assert build_jql("project = A", since) == '(project = A) AND updated >= "2026/05/02 13:45" ORDER BY updated ASC'
