"""The Anthropic sync engine against the fake APIs over real loopback HTTP and a real DuckDB file.

Small page sizes force paging everywhere. Each test compares the warehouse with what the fake serves
(computed independently from the fake's generators), or with a clean reference run.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
import hashlib
from urllib.parse import urlencode, urlsplit

import httpx2
import orjson
import pytest

from cclens.config import load_settings
from cclens.sources import claude_code_api, enterprise_api, usage_cost_api
from cclens.sources.sync import SCHEDULE, due_sources, landing_body, load_state, next_due, run_due_syncs, sync
from cclens.sources.usage_cost_api import DEFAULT_USAGE_GROUP_BY
from cclens.warehouse import open_warehouse
from fakes.anthropic_api import EXTRA_TOOL, FakeAnthropicAPI

UTC = timezone.utc
NOW = datetime(2026, 6, 15, 12, 30, tzinfo=UTC)
START = date(2026, 6, 1)
MODEL_TABLES = ("cc_actor_day", "cc_tool_action", "cc_daily", "usage_bucket", "cost_day", "engagement_day",
                "engagement_summary_day")
VOLATILE = {"fetched_at", "run_id"}


@pytest.fixture(autouse=True)
def small_pages(monkeypatch):
    monkeypatch.setattr(claude_code_api, "PAGE_LIMIT", 7)
    monkeypatch.setattr(enterprise_api, "PAGE_LIMIT", 6)
    monkeypatch.setattr(usage_cost_api, "USAGE_PAGE_LIMIT", 40)
    monkeypatch.setattr(usage_cost_api, "COST_PAGE_LIMIT", 4)


@pytest.fixture
def fake():
    api = FakeAnthropicAPI(seed=7, people=25, days=16, now=NOW)
    with api.serve() as url:
        api.url = url
        yield api


def settings_for(fake, **over):
    values = dict(anthropic_admin_key=fake.ADMIN_KEY, anthropic_analytics_key=fake.ANALYTICS_KEY,
                  anthropic_base_url=fake.url, anthropic_sync_start=START)
    values.update(over)
    return load_settings(**values)


def run(settings, wh, sources=None, *, now=NOW, sleeps=None, **kw):
    sleeps = sleeps if sleeps is not None else []
    return {r.source: r for r in sync(settings, wh, sources, now=now, sleep=sleeps.append, **kw)}


def snapshot(wh) -> dict[str, list[tuple]]:
    out = {}
    for table in MODEL_TABLES:
        cols = [r["column_name"] for r in wh.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table]) if r["column_name"] not in VOLATILE]
        rows = wh.query(f"SELECT {', '.join(cols)} FROM {table}")
        out[table] = sorted((tuple(str(r[c]) for c in cols) for r in rows))
    return out


def days(first: date, end: date):
    d = first
    while d < end:
        yield d
        d += timedelta(days=1)


# -- what the fake serves, computed independently -------------------------------------------------
def expected_cc_daily(fake, first, end):
    out = []
    for d in days(first, end):
        for rec in fake.cc_records(d):
            actor = rec["actor"].get("email_address") or rec["actor"].get("api_key_name")
            for m in rec["model_breakdown"]:
                t = m["tokens"]
                out.append((d, actor, rec["is_remote"], rec["terminal_type"], m["model"], t["input"], t["output"],
                            t["cache_read"], t["cache_creation"], Decimal(m["estimated_cost"]["amount"])))
    return sorted(out)


def expected_tools(fake, first, end):
    return sorted((d, rec["actor"].get("email_address") or rec["actor"].get("api_key_name"), rec["is_remote"],
                   rec["terminal_type"], tool, c["accepted"], c["rejected"])
                  for d in days(first, end) for rec in fake.cc_records(d) for tool, c in rec["tool_actions"].items())


def expected_actor_days(fake, first, end):
    return sorted((d, rec["actor"]["type"], rec["actor"].get("email_address") or rec["actor"].get("api_key_name"),
                   rec["is_remote"], rec["terminal_type"], rec["core_metrics"]["num_sessions"],
                   rec["core_metrics"]["lines_of_code"]["added"], rec["core_metrics"]["commits_by_claude_code"])
                  for d in days(first, end) for rec in fake.cc_records(d))


def expected_usage(fake, first: datetime, end: datetime):
    out = []
    for start, results in fake.usage_results(first, end, "1h", DEFAULT_USAGE_GROUP_BY):
        for r in results:
            out.append((start, r["model"], r["workspace_id"], r["api_key_id"], r["account_id"], r["service_tier"],
                        r["uncached_input_tokens"], r["output_tokens"], r["cache_read_input_tokens"], r["eph_5m"],
                        r["eph_1h"], r["web_search_requests"]))
    return sorted(out, key=str)


def expected_cost(fake, first, end):
    return sorted(((d, r["workspace_id"], r["description"], r["token_type"], r["model"], r["amount"])
                   for d in days(first, end) for r in fake.cost_results(d, ["workspace_id", "description"])), key=str)


def expected_users(fake, first, end):
    def row(d, r):
        cc = r["claude_code_metrics"]
        return (d, r["user"]["id"], r["user"]["email_address"], r["chat_metrics"]["message_count"],
                cc["core_metrics"]["commit_count"], cc["core_metrics"]["lines_of_code"]["added_count"],
                sum(t["accepted_count"] for t in cc["tool_actions"].values()),
                sum(a["message_count"] for a in r["office_metrics"].values()), r["web_search_count"])
    return sorted(row(d, r) for d in days(first, end) for r in fake.users_records(d))


def actual_cc_daily(wh):
    return sorted((r["day"], r["actor_id"], r["is_remote"], r["terminal_type"], r["model"], r["input_tokens"],
                   r["output_tokens"], r["cache_read_tokens"], r["cache_creation_tokens"],
                   r["estimated_cost_cents"]) for r in wh.query("SELECT * FROM cc_daily"))


def actual_usage(wh):
    return sorted(((r["bucket_start"].astimezone(UTC), r["model"], r["workspace_id"], r["api_key_id"],
                    r["account_id"], r["service_tier"], r["uncached_input_tokens"], r["output_tokens"],
                    r["cache_read_tokens"], r["cache_creation_5m_tokens"], r["cache_creation_1h_tokens"],
                    r["web_search_requests"]) for r in wh.query("SELECT * FROM usage_bucket")), key=str)


def actual_cost(wh):
    return sorted(((r["day"], r["workspace_id"], r["description"], r["token_type"], r["model"], r["amount_raw"])
                   for r in wh.query("SELECT * FROM cost_day")), key=str)


def actual_users(wh):
    return sorted(tuple(r.values()) for r in wh.query(
        "SELECT day, user_id, email, chat_message_count, cc_commit_count, cc_lines_added, cc_tool_accepted, "
        "office_message_count, web_search_count FROM engagement_day"))


def assert_matches_fake(wh, fake):
    cc_end = NOW.date() + timedelta(days=1)             # today included (data older than 1 h)
    assert actual_cc_daily(wh) == expected_cc_daily(fake, START, cc_end)
    assert sorted(tuple(r.values()) for r in wh.query(
        "SELECT day, actor_id, is_remote, terminal_type, tool, accepted, rejected FROM cc_tool_action")) == \
        expected_tools(fake, START, cc_end)
    assert sorted(tuple(r.values()) for r in wh.query(
        "SELECT day, actor_type, actor_id, is_remote, terminal_type, num_sessions, lines_added, commits "
        "FROM cc_actor_day")) == [(d, "user" if t == "user_actor" else "api_key", *rest)
                                  for d, t, *rest in expected_actor_days(fake, START, cc_end)]
    usage_end = NOW.replace(minute=0)                  # complete hourly buckets only
    assert actual_usage(wh) == expected_usage(fake, datetime(2026, 6, 1, tzinfo=UTC), usage_end)
    assert actual_cost(wh) == expected_cost(fake, START, NOW.date())   # complete days only
    latest = fake.latest_enterprise_day
    assert actual_users(wh) == expected_users(fake, START, latest + timedelta(days=1))
    summaries = wh.query("SELECT day, daily_active_user_count, monthly_active_user_count FROM engagement_summary_day "
                         "ORDER BY day")
    assert [(r["day"], r["daily_active_user_count"], r["monthly_active_user_count"]) for r in summaries] == [
        (date.fromisoformat(s["starting_at"]), s["daily_active_user_count"], s["monthly_active_user_count"])
        for s in fake.summary_records(START, latest + timedelta(days=1))]


# -- the tests ----------------------------------------------------------------------------------
def test_full_backfill_equals_the_fakes_data(fake, warehouse):
    results = run(settings_for(fake), warehouse)
    assert {n: r.status for n, r in results.items()} == dict.fromkeys(results, "ok")
    assert all(r.pages > r.units for r in results.values()), "small limits must force paging everywhere"
    assert_matches_fake(warehouse, fake)
    # the fake has an empty day and an undocumented tool: both show up as they should
    empty = next(iter(fake.empty_days))
    assert warehouse.scalar("SELECT count(*) FROM cc_actor_day WHERE day = ?", [empty]) == 0
    assert warehouse.scalar("SELECT count(*) FROM landing_anthropic_page WHERE source = 'claude_code_analytics' "
                            "AND unit = ?", [empty.isoformat()]) == 1
    assert warehouse.scalar("SELECT count(*) FROM cc_tool_action WHERE tool = ?", [EXTRA_TOOL]) > 0
    assert warehouse.scalar("SELECT count(*) FROM cc_actor_day WHERE is_remote") > 0
    assert warehouse.scalar("SELECT count(*) FROM cc_actor_day WHERE actor_type = 'api_key'") > 0
    # state: cursor and last success committed with the rows
    state = load_state(warehouse, "claude_code_analytics")
    assert state["cursor"]["start"] == "2026-06-01T00:00:00Z"
    assert state["cursor"]["done_until"] == "2026-06-16T00:00:00Z"
    assert state["last_success"] == NOW and state["last_error"] is None
    assert load_state(warehouse, "enterprise_analytics")["cursor"]["done_until"] == "2026-06-15T00:00:00Z"
    # landing keeps exact payloads with URL and query, never the key
    for row in warehouse.query("SELECT url, params::VARCHAR AS params, payload_bytes, payload_hash, "
                               "request_id FROM landing_anthropic_page USING SAMPLE 5 ROWS"):
        body = landing_body(warehouse, row["payload_hash"])
        assert len(body) == row["payload_bytes"] and hashlib.sha256(body).hexdigest() == row["payload_hash"]
        assert row["request_id"].startswith("req_fake")
        key = fake.ANALYTICS_KEY if "/analytics/" in row["url"] else fake.ADMIN_KEY
        status, _, again = fake.handle("GET", urlsplit(row["url"]).path, urlencode([tuple(p) for p in orjson.loads(row["params"])]),
                                       {"x-api-key": key, "anthropic-version": "2023-06-01"})
        assert status == 200 and again == body, "landing holds exactly what the API served"


def test_enterprise_never_asks_for_a_date_the_api_rejects(fake, warehouse):
    run(settings_for(fake, anthropic_sync_start=date(2025, 12, 1)), warehouse, ["enterprise_analytics"])
    users = [r for r in fake.requests if r["path"].endswith("/analytics/users")]
    assert users and all(r["status"] == 200 for r in users)
    asked = {date.fromisoformat(dict(r["params"])["date"]) for r in users}
    assert min(asked) >= max(date(2026, 1, 1), NOW.date() - timedelta(days=89))
    assert max(asked) == fake.latest_enterprise_day < NOW.date()


def test_enterprise_stops_cleanly_when_the_api_says_a_day_is_not_ready(fake, warehouse):
    fake.enterprise_lag_days = 3   # the API is later than the documented 1-day lag
    results = run(settings_for(fake), warehouse, ["enterprise_analytics"])
    r = results["enterprise_analytics"]
    assert r.status == "ok" and any("latest available day is 2026-06-12" in n for n in r.notes)
    assert warehouse.scalar("SELECT max(day) FROM engagement_day") == date(2026, 6, 12)
    assert load_state(warehouse, "enterprise_analytics")["cursor"]["done_until"] == "2026-06-13T00:00:00Z"


def test_second_sync_changes_nothing(fake, warehouse):
    settings = settings_for(fake)
    run(settings, warehouse)
    before, landed = snapshot(warehouse), warehouse.scalar("SELECT count(*) FROM landing_anthropic_page")
    results = run(settings, warehouse)
    assert all(r.status == "ok" and r.pages_landed == 0 for r in results.values())
    assert sum(r.units for r in results.values()) > 0, "the revisable tail is re-fetched"
    assert snapshot(warehouse) == before
    assert warehouse.scalar("SELECT count(*) FROM landing_anthropic_page") == landed


def test_revised_days_end_revised_without_duplicates(fake, warehouse):
    settings = settings_for(fake)
    run(settings, warehouse)
    revised = [NOW.date() - timedelta(days=1), NOW.date()]   # inside every source's revisable window
    old = actual_cc_daily(warehouse)
    for d in revised:
        fake.revise(d)
    run(settings, warehouse)
    assert actual_cc_daily(warehouse) != old
    assert_matches_fake(warehouse, fake)        # revised numbers, everything else untouched
    dupes = warehouse.scalar("SELECT count(*) FROM (SELECT day, actor_id, is_remote, terminal_type, model, count(*) n "
                             "FROM cc_daily GROUP BY ALL HAVING n > 1)")
    assert dupes == 0
    # every served version is kept in landing
    for d in revised:
        assert warehouse.scalar("SELECT count(DISTINCT payload_hash) FROM landing_anthropic_page "
                                "WHERE source = 'claude_code_analytics' AND unit = ?", [d.isoformat()]) >= 2
    assert warehouse.scalar("SELECT count(*) FROM engagement_day WHERE day = ?", [revised[0]]) == \
        len(fake.users_records(revised[0]))


def test_429_and_500_in_the_middle_of_paging_end_in_the_same_result(fake, warehouse, tmp_path):
    settings = settings_for(fake)
    reference = open_warehouse(tmp_path / "ref.duckdb")
    run(settings, reference)
    fake.fail(429, path="/v1/organizations/usage_report/claude_code", after=3, times=2, retry_after=7)
    fake.fail(500, path="/v1/organizations/usage_report/messages", after=2, times=2)
    fake.fail(503, path="/v1/organizations/cost_report", after=1, times=1)
    fake.fail(429, path="/v1/organizations/analytics/users", after=4, times=1, retry_after=3)
    sleeps: list[float] = []
    results = run(settings, warehouse, sleeps=sleeps)
    assert all(r.status == "ok" for r in results.values())
    assert sleeps.count(7.0) == 2 and 3.0 in sleeps
    assert sum(r.retries for r in results.values()) == 6
    assert snapshot(warehouse) == snapshot(reference)
    reference.close()


class Crash(Exception):
    """Simulated process death in the middle of a sync."""


def crashing_transport(after: int):
    sent = [0]

    def factory():
        inner = httpx2.HTTPTransport()

        class Dying(httpx2.BaseTransport):
            def handle_request(self, request):
                sent[0] += 1
                if sent[0] > after:
                    raise Crash(f"killed after {after} requests")
                return inner.handle_request(request)

            def close(self):
                inner.close()
        return Dying()
    return factory


@pytest.mark.parametrize("after", [15, 47, 80])   # mid-day of Claude Code, mid-usage, mid-Enterprise
def test_crash_mid_sync_resumes_without_loss_or_duplicates(fake, warehouse, tmp_path, after):
    settings = settings_for(fake)
    with pytest.raises(Crash):
        run(settings, warehouse, transport_factory=crashing_transport(after))
    assert warehouse.scalar("SELECT count(*) FROM cc_actor_day") > 0, "units before the crash were committed"
    assert not [r for r in warehouse.query("SELECT source FROM source_state WHERE last_success IS NOT NULL")
                if after < 41 and r["source"] == "claude_code_analytics"]
    run(settings, warehouse)
    assert_matches_fake(warehouse, fake)
    reference = open_warehouse(tmp_path / "ref.duckdb")
    run(settings, reference)
    assert snapshot(warehouse) == snapshot(reference)
    reference.close()


def test_resume_fetches_only_what_is_missing(fake, warehouse):
    settings = settings_for(fake)
    with pytest.raises(Crash):
        run(settings, warehouse, ["claude_code_analytics"], transport_factory=crashing_transport(12))
    done = load_state(warehouse, "claude_code_analytics")["cursor"]["done_until"]
    fake.requests.clear()
    run(settings, warehouse, ["claude_code_analytics"])
    asked = sorted({dict(r["params"])["starting_at"] for r in fake.requests})
    assert asked[0] == done[:10], "resumes at the cursor, not from the start"


def test_wrong_keys_give_one_clear_error_per_key(fake, warehouse):
    settings = settings_for(fake, anthropic_admin_key="sk-ant-admin01-wrong-key-999",
                            anthropic_analytics_key=fake.ADMIN_KEY)   # an Admin key where the Analytics key goes
    results = run(settings, warehouse)
    cc, usage, cost, ent = (results[n] for n in ("claude_code_analytics", "usage", "cost", "enterprise_analytics"))
    assert cc.status == "error"
    assert cc.error.startswith("claude_code_analytics:") and "anthropic_admin_key" in cc.error
    assert "CCLENS_ANTHROPIC_ADMIN_KEY" in cc.error and "HTTP 401" in cc.error and "req_fake" in cc.error
    assert usage.status == cost.status == "skipped" and "was rejected" in usage.notes[0]
    assert ent.status == "error" and ent.error.startswith("enterprise_analytics:")
    assert "anthropic_analytics_key" in ent.error and "read:analytics" in ent.error
    for r in results.values():
        for text in [r.error or "", *r.notes]:
            assert "wrong-key" not in text and fake.ADMIN_KEY not in text
    assert cc.requests == 1, "an auth error is not retried"
    assert "was rejected" in load_state(warehouse, "usage")["last_error"]
    assert load_state(warehouse, "claude_code_analytics")["last_error"] == cc.error


def test_an_analytics_key_cannot_call_the_admin_endpoints(fake, warehouse):
    results = run(settings_for(fake, anthropic_admin_key=fake.ANALYTICS_KEY), warehouse, ["usage"])
    assert results["usage"].status == "error" and "anthropic_admin_key" in results["usage"].error


def test_unconfigured_sources_are_skipped_with_a_note(fake, warehouse):
    results = run(settings_for(fake, anthropic_analytics_key=None), warehouse)
    ent = results["enterprise_analytics"]
    assert ent.status == "skipped" and "CCLENS_ANTHROPIC_ANALYTICS_KEY" in ent.notes[0]
    assert results["usage"].status == "ok"
    assert not [r for r in fake.requests if "/analytics/" in r["path"]]


def test_keys_never_reach_the_warehouse(fake, db_path):
    wh = open_warehouse(db_path)
    run(settings_for(fake), wh)
    run(settings_for(fake, anthropic_admin_key="sk-ant-admin01-wrong-key-999"), wh)
    wh.close()
    raw = db_path.read_bytes() + b"".join(p.read_bytes() for p in db_path.parent.glob("*.wal"))
    for key in (fake.ADMIN_KEY, fake.ANALYTICS_KEY, "sk-ant-admin01-wrong-key-999"):
        assert key.encode() not in raw


def test_expired_cursors_restart_the_day(fake, warehouse):
    settings = settings_for(fake)
    original = fake._offset
    calls = {"n": 0}

    def expiring(cursor, scope):
        if cursor and calls["n"] == 0:
            calls["n"] += 1
            fake.expire_cursors()
        return original(cursor, scope)

    fake._offset = expiring
    results = run(settings, warehouse, ["claude_code_analytics"])
    assert results["claude_code_analytics"].status == "ok"
    assert any(r["status"] == 410 for r in fake.requests)
    assert actual_cc_daily(warehouse) == expected_cc_daily(fake, START, NOW.date() + timedelta(days=1))


def test_enterprise_rate_limit_is_respected(warehouse):
    t = [0.0]
    fake = FakeAnthropicAPI(seed=3, people=8, days=10, now=NOW, enterprise_rate_limit=5, clock=lambda: t[0],
                            empty_days=set())

    def sleep(s):
        t[0] += s
    with fake.serve() as url:
        fake.url = url
        settings = settings_for(fake, anthropic_sync_start=NOW.date() - timedelta(days=8))
        results = {r.source: r for r in sync(settings, warehouse, ["enterprise_analytics"], now=NOW, sleep=sleep,
                                             clock=lambda: t[0])}
    assert results["enterprise_analytics"].status == "ok"
    # the client throttles to 60/min, so the fake's 5/min limit is hit and retry-after honoured
    assert any(r["status"] == 429 for r in fake.requests)
    assert warehouse.scalar("SELECT count(DISTINCT day) FROM engagement_day") == 8


def test_since_refetches_from_that_day_and_keeps_coverage(fake, warehouse):
    settings = settings_for(fake)
    run(settings, warehouse, ["cost"])
    fake.revise(date(2026, 6, 3))
    run(settings, warehouse, ["cost"], since=date(2026, 6, 2))
    assert actual_cost(warehouse) == expected_cost(fake, START, NOW.date())
    assert load_state(warehouse, "cost")["cursor"]["start"] == "2026-06-01T00:00:00Z"


def test_history_outlives_the_apis_window(fake, warehouse):
    settings = settings_for(fake)
    run(settings, warehouse, ["enterprise_analytics"])
    before = warehouse.scalar("SELECT count(*) FROM engagement_day WHERE day < '2026-06-05'")
    assert before > 0
    later = NOW + timedelta(days=30)
    fake.set_now(later)
    fake.enterprise_lookback_days = 20   # the API's rolling window no longer covers early June
    run(settings_for(fake, anthropic_enterprise_lookback_days=20), warehouse, ["enterprise_analytics"], now=later)
    assert warehouse.scalar("SELECT count(*) FROM engagement_day WHERE day < '2026-06-05'") == before
    assert all(r["status"] == 200 for r in fake.requests if "/analytics/" in r["path"])


def test_usage_grouping_and_width_are_configurable(fake, warehouse):
    settings = settings_for(fake, anthropic_usage_bucket_width="1d", anthropic_usage_group_by=["model", "speed"])
    run(settings, warehouse, ["usage"])
    req = [r for r in fake.requests if r["path"].endswith("/messages")]
    assert all(r["anthropic_beta"] == "fast-mode-2026-02-01" and r["status"] == 200 for r in req)
    rows = warehouse.query("SELECT DISTINCT bucket_width, grouping FROM usage_bucket")
    assert rows == [{"bucket_width": "1d", "grouping": "model,speed"}]
    assert warehouse.scalar("SELECT count(*) FROM usage_bucket WHERE workspace_id IS NOT NULL") == 0
    total = sum(r["output_tokens"] for _, rs in fake.usage_results(datetime(2026, 6, 1, tzinfo=UTC),
                                                                     datetime(2026, 6, 15, tzinfo=UTC), "1d", ["model"])
                for r in rs)
    assert warehouse.scalar("SELECT sum(output_tokens) FROM usage_bucket") == total


def test_schedule_runs_what_is_due(fake, warehouse):
    settings = settings_for(fake)
    assert set(due_sources(settings, warehouse, NOW)) == set(SCHEDULE)
    assert next_due(settings, warehouse, NOW) == NOW
    run_due_syncs(settings, warehouse, NOW, sleep=lambda s: None)
    assert due_sources(settings, warehouse, NOW + timedelta(minutes=1)) == []
    assert due_sources(settings, warehouse, NOW + timedelta(minutes=5)) == ["usage"]
    assert set(due_sources(settings, warehouse, NOW + timedelta(hours=1))) == {"usage", "claude_code_analytics"}
    assert set(due_sources(settings, warehouse, NOW + timedelta(days=1))) == set(SCHEDULE)
    assert next_due(settings, warehouse, NOW + timedelta(minutes=1)) == NOW + timedelta(minutes=5)
    fake.requests.clear()
    results = run_due_syncs(settings, warehouse, NOW + timedelta(minutes=6), sleep=lambda s: None)
    assert [r.source for r in results] == ["usage"]
    assert {r["path"] for r in fake.requests} == {"/v1/organizations/usage_report/messages"}
    # a failure is retried after ERROR_RETRY, not after a whole day
    bad = settings_for(fake, anthropic_admin_key="sk-ant-admin01-wrong-key-999")
    later = NOW + timedelta(days=1)
    run_due_syncs(bad, warehouse, later, sleep=lambda s: None)
    assert "cost" not in due_sources(bad, warehouse, later + timedelta(minutes=5))
    assert "cost" in due_sources(bad, warehouse, later + timedelta(minutes=16))


def test_serve_style_submit_routes_every_write(fake, warehouse):
    calls = []

    def submit(fn):
        calls.append(fn)
        with warehouse.transaction():
            return fn(warehouse)
    results = run(settings_for(fake), warehouse, ["cost"], submit=submit)
    assert results["cost"].status == "ok"
    assert len(calls) == results["cost"].units + 1   # one per unit, plus the final state
