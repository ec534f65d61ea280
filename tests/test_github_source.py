"""The GitHub source against the loopback fake: complete data through Link paging, incremental syncs
that read only what changed (ETags, 304), primary and secondary rate limits, 5xx, bad tokens."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from cclens.config import Settings
from cclens.errors import ConfigError
from cclens.sources.github import github_host, sync_github
from fakes.github_api import FakeGitHub, Pull

UTC = timezone.utc
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def settings(url: str, **kw) -> Settings:
    return Settings(github_token=FakeGitHub.TOKEN, github_api_url=url, github_orgs=["acme"],
                    engineering_sync_start=date(2026, 1, 1), **kw)


def run(gh: FakeGitHub, url: str, wh, **kw):
    return sync_github(kw.pop("settings", None) or settings(url), wh, sleep=gh.sleep, clock=gh.now_ts,
                       now=gh.now, **kw)


def expected_counts(gh: FakeGitHub) -> dict[str, int]:
    pulls = [p for r in gh.repos.values() for p in r["pulls"].values()]
    return {"pull_request": len(pulls), "review": sum(len(p.reviews) for p in pulls),
            "pr_commit": sum(len(p.commits) for p in pulls),
            "ci_run": sum(len(r["runs"]) for r in gh.repos.values()),
            "deployment": sum(len(r["deployments"]) for r in gh.repos.values())}


def stored_counts(wh) -> dict[str, int]:
    return {t: wh.scalar(f"SELECT count(*) FROM {t}") for t in
            ("pull_request", "review", "pr_commit", "ci_run", "deployment")}


@pytest.fixture
def gh():
    fake = FakeGitHub(now=NOW)
    fake.generate(seed=3, org="acme", repos=2, pulls=130)  # 130 > 100: the pull listing has two pages
    return fake


def test_full_sync_equals_the_fake(gh, warehouse):
    with gh.serve() as url:
        results = run(gh, url, warehouse)
    assert [r.status for r in results] == ["ok"] * 3, [r.error for r in results]
    assert stored_counts(warehouse) == expected_counts(gh)
    host = github_host(url)
    # one pull request in detail: timeline derived from its reviews and commits
    pr = gh.pull("acme/repo0", 7)
    row = warehouse.query("SELECT * FROM pull_request WHERE pr_id = ?", [f"{host}/acme/repo0#7"])[0]
    assert row["title"] == pr.title and row["author_login"] == pr.user and row["head_ref"] == pr.head_ref
    assert row["merged_at"] == pr.merged_at and row["created_at"] == pr.created_at
    assert row["first_commit_at"] == min(c["date"] for c in pr.commits) and row["commits"] == len(pr.commits)
    reviews = [r for r in pr.reviews if r["login"] != pr.user]
    assert row["first_review_at"] == (min(r["submitted_at"] for r in reviews) if reviews else None)
    approvals = {r["login"] for r in pr.reviews if r["state"] == "APPROVED"}
    assert row["approvals"] == len(approvals) and sorted(row["labels"]) == sorted(pr.labels)
    # deployments: latest status, first success, failure flag
    deps = warehouse.query("SELECT * FROM deployment")
    assert {d["status"] for d in deps} <= {"success", "failure"}
    assert all((d["failed"] is True) == (d["status"] == "failure") for d in deps)
    assert all((d["succeeded_at"] is not None) == (d["status"] == "success") for d in deps)
    # repositories, teams and members (org-wide), identities
    repos = {r["repo_id"] for r in warehouse.query("SELECT repo_id FROM repository WHERE github_id IS NOT NULL")}
    assert repos == {f"{host}/acme/repo0", f"{host}/acme/repo1"}
    members = warehouse.query("SELECT team_slug, login FROM github_team_member ORDER BY 1, 2")
    assert {(m["team_slug"], m["login"]) for m in members} == {
        (slug, login) for slug, t in gh.orgs["acme"]["teams"].items() for login in t["members"]}
    assert warehouse.scalar("SELECT parent_slug FROM github_team WHERE slug = 'product'") == "platform"
    links = warehouse.query("SELECT identity, email FROM eng_identity WHERE system = 'github' AND email IS NOT NULL")
    assert links and all(r["email"] == f"{r['identity']}@example.com" for r in links)
    # landing keeps pages, never the token
    assert warehouse.scalar("SELECT count(*) FROM landing_eng_page WHERE source = 'github'") > 10
    assert not warehouse.scalar("SELECT count(*) FROM landing_eng_page WHERE payload LIKE ? OR url LIKE ?",
                                [f"%{gh.TOKEN}%", f"%{gh.TOKEN}%"])
    assert warehouse.scalar("SELECT count(*) FROM http_validator") > 0


def test_incremental_sync_reads_only_what_changed(gh, warehouse):
    with gh.serve() as url:
        run(gh, url, warehouse)
        before = stored_counts(warehouse)
        gh.log.clear()
        gh.sleep(600)
        again = run(gh, url, warehouse)
        assert all(r.status == "ok" for r in again)
        assert stored_counts(warehouse) == before
        pulls_calls = [(p, s) for p, s in gh.log if "/pulls" in p]
        # only the first page of each listing, answered 304: no per-PR reads at all
        assert pulls_calls and all(s == 304 for _, s in pulls_calls), pulls_calls
        assert sum(r.not_modified for r in again) >= 2
        # a new review on one pull request, and a brand-new pull request
        gh.sleep(600)
        gh.add_review("acme/repo1", 5, "reviewer-x", "APPROVED", gh.now)
        gh.add_pull("acme/repo1", Pull(number=999, title="PROJ-999 new", user="dev1", head_ref="feature/PROJ-999",
                                       head_sha="f" * 40, base_ref="main", created_at=gh.now, updated_at=gh.now,
                                       commits=[{"sha": "e" * 40, "login": "dev1", "email": "dev1@example.com",
                                                 "name": "Dev1", "date": gh.now - timedelta(hours=1),
                                                 "message": "PROJ-999: new"}]))
        gh.log.clear()
        third = run(gh, url, warehouse)
    # per-PR reads answered with data: only what changed (PR 5's commits did not: 304; the newest
    # unchanged PR, inside the cursor's one-minute overlap, is asked again and answered 304)
    per_pr = {p.split("?")[0] for p, s in gh.log if "/pulls/" in p and s == 200}
    assert len({p.split("?")[0] for p, s in gh.log if "/pulls/" in p}) <= 6
    assert per_pr == {"/repos/acme/repo1/pulls/5/reviews", "/repos/acme/repo1/pulls/999/reviews", "/repos/acme/repo1/pulls/999/commits"}
    assert stored_counts(warehouse) == expected_counts(gh)
    host = github_host(url)
    row = warehouse.query("SELECT approvals, first_approval_at FROM pull_request WHERE pr_id = ?",
                          [f"{host}/acme/repo1#5"])[0]
    assert row["first_approval_at"] is not None
    assert next(r for r in third if r.scope == "acme/repo1").counts["pull_requests"] in (2, 3)  # + the overlap one


def test_secondary_limits_and_server_errors_mid_paging_end_complete(gh, warehouse):
    gh.fail(403, retry_after=30, path="/pulls", after=3)          # secondary limit with retry-after
    gh.fail(429, retry_after=5, path="/reviews", after=10)
    gh.fail(403, path="/commits", after=20)                        # secondary limit, message only
    gh.fail(502, count=2, path="/pulls", after=40)
    gh.fail(500, path="/actions/runs")
    gh.fail(503, path="/deployments", after=5)
    waits = []

    def sleep(s):
        waits.append(s)
        gh.sleep(s)
    with gh.serve() as url:
        results = sync_github(settings(url), warehouse, sleep=sleep, clock=gh.now_ts, now=gh.now)
    assert all(r.status == "ok" for r in results), [r.error for r in results]
    assert stored_counts(warehouse) == expected_counts(gh)
    assert 30 in waits and 5 in waits and 60 in waits  # retry-after honoured; a minute without it
    assert sum(r.retries for r in results) >= 7
    assert all(rule.remaining == 0 for rule in gh.rules)


def test_primary_rate_limit_is_waited_out(warehouse):
    gh = FakeGitHub(now=NOW, rate_limit=40)
    gh.generate(seed=5, org="acme", repos=1, pulls=30)
    start = gh.now_ts()
    with gh.serve() as url:
        results = run(gh, url, warehouse)
    assert all(r.status == "ok" for r in results), [r.error for r in results]
    assert stored_counts(warehouse) == expected_counts(gh)
    assert gh.now_ts() - start >= 3600  # at least one full window waited, on the fake's clock
    over = [s for _, s in gh.log if s == 403]
    assert len(over) <= 1  # the client read x-ratelimit-remaining and waited before being refused


def test_rate_limit_longer_than_patience_is_a_clear_error(warehouse):
    gh = FakeGitHub(now=NOW, rate_limit=3)
    gh.generate(seed=5, org="acme", repos=1, pulls=5)
    with gh.serve() as url:
        from cclens.sources import github as mod

        client = mod.make_client(settings(url), sleep=gh.sleep, clock=gh.now_ts)
        client.max_wait = 60
        results = []
        for _ in range(4):
            try:
                client.get("/repos/acme/repo0")
            except Exception as exc:  # noqa: BLE001 - the error type and text are the point
                results.append(exc)
        client.close()
    assert results and "run the sync again later" in str(results[0])
    assert type(results[0]).__name__ == "SourceUnavailableError"


def test_bad_token_missing_repo_and_no_config(gh, warehouse):
    with gh.serve() as url:
        bad = Settings(github_token="ghp_wrong_token_value", github_api_url=url, github_repos=["acme/repo0"])
        results = sync_github(bad, warehouse, sleep=gh.sleep, clock=gh.now_ts)
        assert results[-1].status == "error" and "github_token" in results[-1].error
        assert "ghp_wrong_token_value" not in results[-1].error
        mixed = Settings(github_token=FakeGitHub.TOKEN, github_api_url=url,
                         github_repos=["acme/nope", "acme/repo1"], engineering_sync_start=date(2026, 1, 1))
        results = {r.scope: r for r in sync_github(mixed, warehouse, sleep=gh.sleep, clock=gh.now_ts, now=gh.now)}
    assert results["acme/nope"].status == "error" and "not found" in results["acme/nope"].error
    assert results["acme/repo1"].status == "ok" and results["acme/repo1"].counts["pull_requests"] == 130
    state = warehouse.query("SELECT source, last_error FROM source_state WHERE source LIKE 'github:%nope'")
    assert state and "not found" in state[0]["last_error"]
    with pytest.raises(ConfigError, match="github_token"):
        sync_github(Settings(github_repos=["a/b"]), warehouse)
    with pytest.raises(ConfigError, match="github_orgs"):
        sync_github(Settings(github_token="x"), warehouse)


def test_since_limits_the_first_sync(gh, warehouse):
    since = (NOW - timedelta(days=20)).date()
    with gh.serve() as url:
        run(gh, url, warehouse, since=since)
    oldest = warehouse.scalar("SELECT min(updated_at) FROM pull_request")
    assert oldest >= datetime(since.year, since.month, since.day, tzinfo=UTC) - timedelta(minutes=1)
    assert warehouse.scalar("SELECT count(*) FROM pull_request") < expected_counts(gh)["pull_request"]


@pytest.mark.parametrize("url, host", [("https://api.github.com", "github.com"),
                                       ("https://ghe.example.com/api/v3", "ghe.example.com"),
                                       ("http://127.0.0.1:8123", "127.0.0.1:8123")])
def test_github_host(url, host):
    assert github_host(url) == host
