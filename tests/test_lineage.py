"""Lineage and delivery metrics on a small hand-built organisation: a real git repository, hook events as
Claude Code sends them (with and without content capture), GitHub pull requests, CI runs and
deployments, Jira issues and priced API requests. Every expected value is written out here."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import orjson
import pytest

from cclens.metrics import delivery
from cclens.metrics.catalog import compute
from cclens.model.lineage import links_of, rebuild_lineage, trace_session
from cclens.model.pricing import bundled_table
from cclens.sources.git import sync_repository
from cclens.sources.hooks import parse_http_hook, store_events
from git_support import Repo

UTC = timezone.utc
DAY = datetime(2026, 3, 2, tzinfo=UTC)
REPO = "github.com/acme/app"
MODEL = "claude-sonnet-4-5"
S1, S2, S3 = "11111111-aaaa-4000-8000-000000000001", "22222222-bbbb-4000-8000-000000000002", \
    "33333333-cccc-4000-8000-000000000003"
PRICES = bundled_table()


def at(h: int, m: int = 0, s: int = 0) -> datetime:
    return DAY + timedelta(hours=h, minutes=m, seconds=s)


def hook(wh, body: dict, when: datetime, capture: bool) -> None:
    ev = parse_http_hook(orjson.dumps(body), received_at=when)
    with wh.transaction():
        store_events(wh, [ev], capture_content=capture)


def bash_call(wh, sid: str, cwd: str, tool_id: str, start: datetime, end: datetime, *, command: str,
              stdout: str = "", git_sha: str | None = None, capture: bool) -> None:
    base = {"session_id": sid, "cwd": cwd, "transcript_path": f"/x/{sid}.jsonl", "tool_name": "Bash",
            "tool_use_id": tool_id, "permission_mode": "default"}
    hook(wh, {**base, "hook_event_name": "PreToolUse", "tool_input": {"command": command}}, start, capture)
    response = {"stdout": stdout, "stderr": "", "interrupted": False, "isImage": False}
    if git_sha:
        response["gitOperation"] = {"commit": {"sha": git_sha, "kind": "committed"}}
    hook(wh, {**base, "hook_event_name": "PostToolUse", "tool_input": {"command": command},
              "tool_response": response, "duration_ms": int((end - start).total_seconds() * 1000)}, end, capture)


def request(wh, sid: str, when: datetime, n: int, cwd: str, branch: str) -> None:
    wh.execute("INSERT INTO api_request (request_key, request_id, session_id, ts, model, input_tokens, output_tokens, "
               "from_transcripts, cwd, git_branch) VALUES (?, ?, ?, ?, ?, ?, ?, true, ?, ?)",
               [f"req_{sid[:4]}_{n}", f"req_{sid[:4]}_{n}", sid, when, MODEL, 1000 * n, 100 * n, cwd, branch])


def session_cost(n_values: list[int]) -> float:
    return sum(PRICES.cost(MODEL, input_tokens=1000 * n, output_tokens=100 * n) for n in n_values)


def insert(wh, table: str, **row) -> None:
    wh.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


@pytest.fixture
def org(tmp_path, warehouse):
    wh = warehouse
    repo = Repo(tmp_path / "app", start=at(8))
    repo.git("remote", "add", "origin", "git@github.com:acme/app.git")
    cwd = str(repo.path.resolve())
    c0 = repo.commit("Initial", {"README.md": "hello\n"}, when=at(9))
    # S1 (content captured): writes on feature/PROJ-1-parser and commits through Bash at 10:00:30
    repo.checkout("feature/PROJ-1-parser", new=True)
    c1 = repo.commit("Add parser\n\nCo-Authored-By: Claude <noreply@anthropic.com>\n",
                     {"parser.py": "a\nb\nc\n"}, when=at(10, 0, 30))
    hook(wh, {"session_id": S1, "cwd": cwd, "hook_event_name": "UserPromptSubmit", "prompt": "add a parser"},
         at(9, 58), True)
    bash_call(wh, S1, cwd, "toolu_s1_commit", at(10, 0, 29), at(10, 0, 31), command="git commit -am parser",
              stdout=f"[feature/PROJ-1-parser {c1[:7]}] Add parser\n 1 file changed", git_sha=c1[:7], capture=True)
    for n in (1, 2):
        request(wh, S1, at(9, 59 + n), n, cwd, "feature/PROJ-1-parser")
    # S2 (no content capture, and a Claude Code that reports no gitOperation — cclens keeps that id even
    # without capture, so only its absence forces inference): a Bash call from 11:00:00 to 11:00:05 in
    # which c2 is committed
    repo.checkout("main")
    repo.checkout("ops-fix", new=True)
    c2 = repo.commit("Fix the deploy script", {"deploy.sh": "x\ny\n"}, when=at(11, 0, 2))
    hook(wh, {"session_id": S2, "cwd": cwd, "hook_event_name": "UserPromptSubmit", "prompt": "fix deploy"},
         at(10, 55), False)
    bash_call(wh, S2, cwd, "toolu_s2_bash", at(11, 0, 0), at(11, 0, 5), command="git commit -am fix",
              git_sha=None, capture=False)
    request(wh, S2, at(10, 58), 3, cwd, "ops-fix")
    # a human commit on another branch while S2 is still open: a weak, non-attributing guess at most
    repo.checkout("main")
    repo.checkout("docs", new=True)
    c3 = repo.commit("Docs", {"docs.md": "d\n"}, when=at(11, 0, 40))
    hook(wh, {"session_id": S2, "cwd": cwd, "hook_event_name": "Stop"}, at(11, 1), False)
    # a human commit long after every session
    c4 = repo.commit("More docs", {"docs.md": "d\ne\n"}, when=at(15))
    # S3 worked elsewhere: its cost reaches no commit
    request(wh, S3, at(12), 4, "/somewhere/else", "main")
    sync_repository(wh, repo.path)

    # GitHub: three merged pull requests, CI, deployments
    m1, m2, m3 = "a" * 40, "b" * 40, "c" * 40
    for number, title, head, created, merged, msha, commits in (
            (1, "Parser", "feature/PROJ-1-parser", at(10, 5), at(12), m1, [c1]),
            (2, "OPS-2 fix deploys", "ops-fix", at(11, 10), at(14), m2, [c2]),
            (3, "Docs", "docs", at(15, 5), at(16), m3, [c3, c4])):
        pr_id = f"{REPO}#{number}"
        insert(wh, "pull_request", pr_id=pr_id, repo_id=REPO, number=number, title=title, state="closed",
               author_login=f"dev{number}", head_ref=head, head_sha=commits[-1], base_ref="main", created_at=created,
               merged_at=merged, closed_at=merged, merge_commit_sha=msha, synced_at=at(20),
               first_commit_at=min(repo_commit_time(wh, c) for c in commits),
               first_review_at=created + timedelta(hours=1) if number != 3 else None)
        for c in commits:
            insert(wh, "pr_commit", pr_id=pr_id, repo_id=REPO, number=number, sha=c,
                   author_ts=repo_commit_time(wh, c), message=wh.scalar("SELECT message FROM commit WHERE sha = ?", [c]))
    insert(wh, "ci_run", run_id="901", provider="github_actions", repo_id=REPO, head_sha=c1, conclusion="success",
           workflow_name="CI", pr_numbers=[1], created_at=at(10, 6))
    for dep_id, sha, created, ok in (("d1", m1, at(12, 30), True), ("d2", "f" * 40, at(14, 45), True),
                                     ("d3", "e" * 40, at(17), False)):
        insert(wh, "deployment", deployment_id=dep_id, provider="github", repo_id=REPO, environment="production",
               sha=sha, created_at=created, status="success" if ok else "failure",
               succeeded_at=created + timedelta(minutes=5) if ok else None, failed=not ok)
    insert(wh, "deployment", deployment_id="d0", provider="github", repo_id=REPO, environment="staging", sha=m2,
           created_at=at(14, 10), status="success", succeeded_at=at(14, 12), failed=False)
    for key in ("PROJ-1", "OPS-2", "OPS-9"):
        insert(wh, "issue", issue_key=key, provider="jira", summary=f"{key} summary", status="Done", synced_at=at(20))
    stats = rebuild_lineage(wh, now=at(20))
    return {"c": [c0, c1, c2, c3, c4], "stats": stats, "cwd": cwd, "repo": repo}


def repo_commit_time(wh, sha):
    return wh.scalar("SELECT author_ts FROM commit WHERE sha = ?", [sha])


def session_links(wh) -> dict[tuple[str, str], dict]:
    return {(r["from_id"], r["to_id"]): r for r in wh.query(
        "SELECT * FROM lineage_link WHERE kind = 'session_commit'")}


def test_session_commit_links(org, warehouse):
    c0, c1, c2, c3, c4 = org["c"]
    links = session_links(warehouse)
    exact = links[(S1, c1)]
    assert exact["method"] == "exact" and exact["confidence"] == 1.0
    ev = orjson.loads(exact["evidence"])
    assert ev["sources"] == ["hooks"] and ev["tool_use_ids"] == ["toolu_s1_commit"] and ev["short_sha"] == c1[:7]
    guess = links[(S2, c2)]
    assert guess["method"] == "inferred" and guess["confidence"] == 0.85
    assert orjson.loads(guess["evidence"])["rule"] == "tool_window"
    # the human commit during S2, on another branch: session-window guess below the threshold
    weak = links[(S2, c3)]
    assert weak["method"] == "inferred" and weak["confidence"] == 0.35
    assert orjson.loads(weak["evidence"])["rule"] == "session_window"
    # nothing else: c0 before any session, c4 after every session, S1's exact Bash call not reused
    assert set(links) == {(S1, c1), (S2, c2), (S2, c3)}


def test_pr_issue_ci_and_deployment_links(org, warehouse):
    c0, c1, c2, c3, c4 = org["c"]
    assert {r["to_id"] for r in links_of(warehouse, "commit", c1) if r["kind"] == "commit_pr"} == {f"{REPO}#1"}
    issues = {(r["from_id"], r["to_id"]): orjson.loads(r["evidence"])["found_in"] for r in warehouse.query(
        "SELECT * FROM lineage_link WHERE kind = 'pr_issue'")}
    assert issues == {(f"{REPO}#1", "PROJ-1"): ["branch"], (f"{REPO}#2", "OPS-2"): ["title"]}
    commit_issues = {(r["from_id"], r["to_id"]) for r in warehouse.query(
        "SELECT * FROM lineage_link WHERE kind = 'commit_issue'")}
    assert commit_issues == {(c1, "PROJ-1")}  # from the branch it was reached by
    ci = warehouse.query("SELECT from_type, from_id, kind FROM lineage_link WHERE to_type = 'ci_run' ORDER BY kind")
    assert [(r["kind"], r["from_id"]) for r in ci] == [("commit_ci_run", c1), ("pr_ci_run", f"{REPO}#1")]
    deps = {r["from_id"]: (r["to_id"], r["method"], r["confidence"]) for r in warehouse.query(
        "SELECT * FROM lineage_link WHERE kind = 'pr_deployment'")}
    assert deps == {f"{REPO}#1": ("d1", "exact", 1.0), f"{REPO}#2": ("d2", "inferred", 0.7)}
    trace = trace_session(warehouse, S1)
    assert {(r["node_type"], r["node_id"]) for r in trace} >= {("commit", c1), ("pull_request", f"{REPO}#1"),
                                                               ("issue", "PROJ-1"), ("deployment", "d1"),
                                                               ("ci_run", "901")}
    assert org["stats"]["session_commit:exact"] == 1 and org["stats"]["session_commit:inferred"] == 2
    # deterministic: a rebuild gives the same links
    before = warehouse.query("SELECT * EXCLUDE (built_at) FROM lineage_link ORDER BY ALL")
    rebuild_lineage(warehouse)
    assert warehouse.query("SELECT * EXCLUDE (built_at) FROM lineage_link ORDER BY ALL") == before


def test_delivery_per_pull_request(org, warehouse):
    c0, c1, c2, c3, c4 = org["c"]
    prs = {r["number"]: r for r in delivery.pull_requests(warehouse, PRICES, since=date(2026, 3, 1),
                                                          until=date(2026, 3, 3))}
    assert set(prs) == {1, 2, 3}
    assert (prs[1]["assisted"], prs[1]["assisted_by"], prs[1]["sessions"]) == (True, "exact", 1)
    assert prs[1]["cost_usd"] == pytest.approx(session_cost([1, 2]), abs=1e-6)
    assert (prs[2]["assisted"], prs[2]["assisted_by"]) == (True, "inferred")
    assert prs[2]["cost_usd"] == pytest.approx(session_cost([3]), abs=1e-6)
    assert (prs[3]["assisted"], prs[3]["assisted_by"], prs[3]["cost_usd"]) == (False, None, None)
    assert prs[1]["issues"] == ["PROJ-1"] and prs[2]["issues"] == ["OPS-2"]
    # timeline: cycle = merge - first commit; review lag = first review - opened; lead = deploy - first commit
    assert prs[1]["cycle_time_h"] == pytest.approx((at(12) - at(10, 0, 30)).total_seconds() / 3600, abs=1e-3)
    assert prs[1]["review_lag_h"] == pytest.approx(1.0)
    assert prs[1]["lead_time_h"] == pytest.approx((at(12, 35) - at(10, 0, 30)).total_seconds() / 3600, abs=1e-3)
    assert prs[2]["lead_time_h"] == pytest.approx((at(14, 50) - at(11, 0, 2)).total_seconds() / 3600, abs=1e-3)
    assert prs[3]["lead_time_h"] is None and prs[3]["review_lag_h"] is None


def test_delivery_summary_tickets_and_shares(org, warehouse):
    kw = dict(since=date(2026, 3, 2), until=date(2026, 3, 8))
    rows = {r["segment"]: r for r in delivery.summary(warehouse, PRICES, **kw)}
    assert (rows["assisted"]["merged_prs"], rows["not_assisted"]["merged_prs"], rows["all"]["merged_prs"]) == (2, 1, 3)
    assert rows["all"]["merged_prs_per_week"] == 3.0
    assert rows["assisted"]["claude_cost_usd"] == pytest.approx(session_cost([1, 2, 3]), abs=1e-5)
    assert rows["assisted"]["cost_per_merged_pr_usd"] == pytest.approx(session_cost([1, 2, 3]) / 2, abs=1e-5)
    # production deployments: d1 (PR1, success), d2 (PR2, success), d3 (failure); staging d0 not counted
    assert (rows["all"]["deployments"], rows["all"]["failed_deployments"]) == (2, 1)
    assert rows["all"]["change_failure_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert (rows["assisted"]["deployments"], rows["assisted"]["change_failure_rate"]) == (2, 0.0)
    # commits (reachable, not merges): c0..c4 = 5; attributed: c1 (exact), c2 (0.85) — not c3 (0.35)
    assert rows["all"]["commits"] == 5 and rows["all"]["attributed_commit_share"] == 0.4
    # lines added: c0 1, c1 3, c2 2, c3 1, c4 1 → attributed 5 of 8
    assert rows["all"]["attributed_line_share"] == pytest.approx(5 / 8, abs=1e-4)
    tickets = {r["issue_key"]: r for r in delivery.tickets(warehouse, PRICES, **kw)}
    assert set(tickets) == {"PROJ-1", "OPS-2"}
    assert tickets["PROJ-1"]["cost_usd"] == pytest.approx(session_cost([1, 2]), abs=1e-6)
    assert tickets["PROJ-1"]["sessions"] == 1 and tickets["PROJ-1"]["pull_requests"] == [f"{REPO}#1"]
    cost = delivery.unattributed_cost(warehouse, PRICES, **kw)
    assert cost["sessions"] == 3 and cost["linked_sessions"] == 2
    assert cost["session_cost_usd"] == pytest.approx(session_cost([1, 2, 3, 4]), abs=1e-5)
    assert cost["linked_cost_usd"] == pytest.approx(session_cost([1, 2, 3]), abs=1e-5)


def test_catalog_metrics(org, warehouse):
    kw = dict(since=date(2026, 3, 2), until=date(2026, 3, 2), prices=PRICES)
    merged = compute(warehouse, "merged_pull_requests", **kw).rows[0]
    assert (merged["value"], merged["assisted"], merged["not_assisted"]) == (3, 2, 1)
    share = compute(warehouse, "attributed_commit_share", **kw).rows[0]
    assert (share["value"], share["attributed_commits"], share["commits"]) == (0.4, 2, 5)
    cfr = compute(warehouse, "change_failure_rate", **kw).rows[0]
    assert cfr["value"] == pytest.approx(1 / 3) and cfr["assisted"] == 0.0
    cycle = compute(warehouse, "pr_cycle_time", **kw).rows[0]
    assert cycle["assisted"] < cycle["not_assisted"]
    (week,) = compute(warehouse, "merged_pull_requests", group_by=["week"], **kw).rows
    assert (week["week"], week["value"]) == (date(2026, 3, 2), 3) and "github" in week["sources"]


def test_exact_links_from_transcripts_and_otel_too(tmp_path, warehouse):
    """The same exact link from a transcript's toolUseResult and from OTel's git_commit_id."""
    repo = Repo(tmp_path / "r")
    sha = repo.commit("x", {"a": "1\n"})
    sync_repository(warehouse, repo.path)
    line = {"type": "user", "sessionId": S1, "cwd": str(repo.path.resolve()),
            "message": {"role": "user", "content": [{"tool_use_id": "toolu_t", "type": "tool_result"}]},
            "toolUseResult": {"stdout": f"[main {sha[:9]}] x\n", "stderr": ""}}
    warehouse.execute("INSERT INTO landing_transcript_line_stored (line_key, host, path, generation, byte_offset, byte_length, "
                      "record_type, session_id, ts, raw, ingested_at) VALUES ('k', 'h', 'p', 0, 0, 1, 'user', ?, ?, ?, ?)",
                      [S1, at(9), orjson.dumps(line).decode(), at(9)])  # cwd is read from raw
    warehouse.execute("INSERT INTO otel_event (request_id, record_index, event_name, ts, session_id, attributes) "
                      "VALUES ('r', 0, 'tool_result', ?, ?, ?)",
                      [at(9), S2, orjson.dumps({"tool_name": "Bash", "tool_use_id": "toolu_o",
                                                "tool_parameters": orjson.dumps({"git_commit_id": sha[:7]}).decode()}).decode()])
    # the same commit seen by the same session with a longer short SHA is still one link
    warehouse.execute("INSERT INTO otel_event (request_id, record_index, event_name, ts, session_id, attributes) "
                      "VALUES ('r', 2, 'tool_result', ?, ?, ?)",
                      [at(9), S1, orjson.dumps({"tool_name": "Bash", "tool_use_id": "toolu_t",
                                                "tool_parameters": orjson.dumps({"git_commit_id": sha[:12]}).decode()}).decode()])
    warehouse.execute("INSERT INTO otel_event (request_id, record_index, event_name, ts, session_id, attributes) "
                      "VALUES ('r', 1, 'tool_result', ?, ?, ?)",
                      [at(9), S3, orjson.dumps({"tool_name": "Bash", "tool_parameters": "<REDACTED>"}).decode()])
    rebuild_lineage(warehouse)
    links = {(r["from_id"], r["to_id"]): orjson.loads(r["evidence"])["sources"] for r in warehouse.query(
        "SELECT * FROM lineage_link WHERE kind = 'session_commit' AND method = 'exact'")}
    assert links == {(S1, sha): ["otel", "transcripts"], (S2, sha): ["otel"]}


def test_people_join_across_git_github_and_claude_code(org, warehouse):
    """A GitHub login meets its git email through its PR commits, and the people model's alias of that
    email makes PR author and commit author one person."""
    from cclens.model.identity import link

    c1 = org["c"][1]
    warehouse.execute("UPDATE pr_commit SET author_login = 'dev1', author_email = 'ada@example.com' WHERE sha = ?", [c1])
    link(warehouse, "email:ada@example.com", "p-ada", name="Ada")
    prs = {r["number"]: r for r in delivery.pull_requests(warehouse, PRICES, since=date(2026, 3, 2),
                                                          until=date(2026, 3, 2))}
    assert prs[1]["person"] == "p-ada"          # github_login dev1 → ada@example.com → p-ada
    assert prs[2]["person"] == "github_login:dev2"  # unlinked: its own identity, listed, not dropped
    rows = compute(warehouse, "attributed_commit_share", since=date(2026, 3, 2), until=date(2026, 3, 2),
                   prices=PRICES, group_by=["day"]).rows
    assert rows[0]["value"] == 0.4
    link(warehouse, "github_login:dev2", "p-ada")
    prs = {r["number"]: r for r in delivery.pull_requests(warehouse, PRICES, since=date(2026, 3, 2),
                                                          until=date(2026, 3, 2))}
    assert prs[2]["person"] == "p-ada"


def test_engineering_identities_are_listed_for_the_people_model(warehouse):
    warehouse.execute("INSERT INTO eng_identity VALUES ('github', 'Dev1', NULL, 'dev1@example.com', ?, ?), "
                      "('git', 'dev1@example.com', 'Dev One', 'dev1@example.com', ?, ?), "
                      "('jira', '712020:abc', 'Dev One', NULL, ?, ?)", [DAY] * 6)
    rows = {(r["kind"], r["value"]): r for r in warehouse.query("SELECT * FROM eng_observed_identity")}
    assert set(rows) == {("github_login", "dev1"), ("git_email", "dev1@example.com"), ("jira_id", "712020:abc")}
    assert rows[("github_login", "dev1")]["hint_email"] == "dev1@example.com"
    assert rows[("jira_id", "712020:abc")]["first_day"] == DAY.date()


def test_commit_id_survives_without_content_capture(warehouse, tmp_path):
    """hooks keep tool_response.gitOperation (an id) when content capture is off; the rest is dropped."""
    sid = "44444444-dddd-4000-8000-000000000004"
    bash_call(warehouse, sid, "/r", "toolu_x", at(9), at(9, 0, 3), command="git commit -m secret",
              stdout="[main abc1234] secret", git_sha="abc1234", capture=False)
    raws = [orjson.loads(r["raw"]) for r in warehouse.query(
        "SELECT raw FROM landing_hook_event WHERE event_name = 'PostToolUse'")]
    assert raws and raws[0]["tool_response"] == {"gitOperation": {"commit": {"sha": "abc1234", "kind": "committed"}}}
    assert "secret" not in orjson.dumps(raws[0]).decode()
