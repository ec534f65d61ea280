"""The golden test of the metric catalog: a hand-built organisation (tests/metrics_support.py) with data
in every source, and every metric's expected value worked out by hand from its rows.

Reading guide for the numbers (March 2026, UTC; per person-day the most complete source wins:
Claude Code Analytics, then Enterprise Analytics, then transcripts/OTel events):

* ann: 03-02 (platform) and 03-20 (web). Claude Code Analytics covers both days, so her figures come
  from it (tokens 1800 + 3400, cost $2.50 + $1.20, lines 60 + 30, sessions 1 + 1), not from her
  transcripts/OTel rows (which say the same tokens) nor from OTel's 50 lines.
* bob: Claude Code Analytics only (+ Enterprise, lower precedence): tokens 6000 + 1100, $3 + $2.
* cat: transcripts only: 2 sessions, tokens 350 + 120, cost priced by cclens: $0.00165 + $0.0006;
  no source reports his lines or commits -> None, not 0.
* dan: OTel only (Bedrock-style, user.id linked in the people file): 480 tokens, $0.0024, 20 lines.
* uid-zed: an unlinked OTel install: its own person, 20 tokens ($0.0003).
* ci-bot: an API key: 12000 tokens, $9, 500 lines, but not a person in "active people".
* gus: Enterprise Analytics chat only: chat metrics, not an active Claude Code user.
"""

from __future__ import annotations

from datetime import date

import pytest

from cclens.errors import QueryError
from cclens.metrics import facts, rollup
from cclens.metrics.catalog import METRICS, catalog, compile_metric, compute
from cclens.metrics.coverage import freshness, person_day_coverage, source_coverage
from cclens.model.identity import link, people, person_of, unlinked
from cclens.model.pricing import bundled_table
from metrics_support import MARCH, build_org

PRICES = bundled_table()
# events priced by the bundled table (USD per Mtok: opus-4-8 5/25, sonnet-4-5 3/15, cache read 10%)
CAT_COST = (300 * 3 + 50 * 15) / 1e6 + (100 * 3 + 20 * 15) / 1e6      # 0.00225
DAN_COST = (400 * 3 + 80 * 15) / 1e6                                    # 0.0024
ZED_COST = (10 * 5 + 10 * 25) / 1e6                                     # 0.0003
CC_COST = 2.50 + 1.20 + 3.00 + 2.00 + 9.00                             # Claude Code Analytics, cents / 100
TOTAL_COST = CC_COST + CAT_COST + DAN_COST + ZED_COST                  # 17.70495


@pytest.fixture(params=["raw", "rollup", "layer"])
def org(warehouse, tmp_path, request, monkeypatch):
    """The organisation, read from the raw tables, from the rollups, or from the person-day layer where a
    query can use it (every test runs all three ways)."""
    build_org(warehouse, tmp_path)
    monkeypatch.setattr(facts, "USE_ROLLUPS", request.param != "raw")
    monkeypatch.setattr(facts, "USE_LAYER", request.param == "layer")
    if request.param != "raw":
        rollup.refresh(warehouse)
        assert rollup.ready(warehouse)
    if request.param == "layer":
        sql, _ = compile_metric(warehouse, "tokens", group_by=["team"], prices=PRICES, **MARCH)
        assert "pd_tokens" in sql  # the layer is really read
    return warehouse


def run(wh, name, group_by=(), **kw):
    args = {**MARCH, **kw}
    return compute(wh, name, group_by=list(group_by), prices=PRICES, **args)


def values(res, key=None):
    """{group key: value} (or the single value when not grouped)."""
    if key is None:
        assert len(res.rows) == 1, res.rows
        return res.rows[0]["value"]
    return {r[key]: r["value"] for r in res.rows}


def approx(d):
    return {k: (pytest.approx(v) if isinstance(v, float) else v) for k, v in d.items()}


# -- adoption ------------------------------------------------------------------------------------

def test_active_people(org):
    # ann, bob, cat, dan, uid-zed; not ci-bot (API key), not gus (chat only)
    assert values(run(org, "active_people")) == 5
    assert values(run(org, "active_known_people")) == 4
    assert values(run(org, "known_people")) == 5
    share = run(org, "active_share").rows[0]
    assert (share["value"], share["active_known_people"], share["known_people"]) == (0.8, 4, 5)
    by_source = values(run(org, "active_people", ["source"]), "source")
    assert by_source == {"claude_code_analytics": 2, "enterprise_analytics": 2, "otel": 3, "transcripts": 2}


def test_team_change_mid_month_counts_in_each_team_for_its_days(org):
    # ann: platform on 03-02, web on 03-20 -> in both teams for March
    assert values(run(org, "active_people", ["team"]), "team") == {"platform": 2, "web": 3, "(no team)": 1}
    assert values(run(org, "active_people", ["team", "month"]), "team") == {"platform": 2, "web": 3, "(no team)": 1}
    assert values(run(org, "known_people", ["team"]), "team") == {"platform": 3, "web": 3}
    assert approx(values(run(org, "active_share", ["team"]), "team")) == \
        {"platform": pytest.approx(2 / 3), "web": 1.0, "(no team)": None}
    # her tokens follow her: 1800 on the platform day, 3400 on the web day
    assert values(run(org, "tokens", ["team"]), "team") == \
        {"platform": 1800 + 470, "web": 3400 + 7100 + 480, "(no team)": 12000 + 20}
    ann = run(org, "tokens", ["team", "day"], filters={"person": ["ann"]})
    assert [(r["team"], r["day"], r["value"]) for r in ann.rows] == [
        ("platform", date(2026, 3, 2), 1800), ("web", date(2026, 3, 20), 3400)]
    # a later window: only the web membership applies
    late = run(org, "active_people", ["team"], since=date(2026, 3, 16))
    assert values(late, "team") == {"web": 2}  # ann (03-20), bob (03-23)


def test_sessions(org):
    assert values(run(org, "sessions")) == 12  # ann 1+1, bob 2+1, ci-bot 3 (API); cat 2, dan 1, zed 1 (events)
    assert values(run(org, "sessions", ["person"]), "person") == {
        "ann": 2, "bob": 3, "cat": 2, "dan": 1, "otel_user_id:uid-zed": 1, "api_key_name:ci-bot": 3}
    assert values(run(org, "sessions", ["source"]), "source") == {
        "claude_code_analytics": 8, "enterprise_analytics": 3, "transcripts": 3, "otel": 4}
    r = run(org, "sessions_per_active_person").rows[0]
    assert (r["value"], r["sessions"], r["active_people"]) == (12 / 5, 12, 5)


def test_active_time_only_where_otel_reports(org):
    assert values(run(org, "active_time")) == 0.75  # ann 1800 s + dan 900 s
    by_person = values(run(org, "active_time", ["person"]), "person")
    assert by_person == {"ann": 0.5, "dan": 0.25, "bob": None, "cat": None, "otel_user_id:uid-zed": None,
                         "api_key_name:ci-bot": None}


# -- output --------------------------------------------------------------------------------------

def test_lines_commits_prs(org):
    assert values(run(org, "lines_added")) == 60 + 30 + 100 + 10 + 500 + 20
    assert values(run(org, "lines_removed")) == 12 + 5 + 40 + 100 + 0
    assert values(run(org, "commits")) == 1 + 2 + 5 + 0
    assert values(run(org, "pull_requests")) == 1 + 1 + 2 + 1
    res = run(org, "lines_added", ["person"])
    assert values(res, "person") == {"ann": 90, "bob": 110, "cat": None, "dan": 20, "otel_user_id:uid-zed": None,
                                     "api_key_name:ci-bot": 500}
    rows = {r["person"]: r for r in res.rows}
    assert rows["cat"]["sources"] == [] and rows["ann"]["sources"] == ["claude_code_analytics"]
    assert rows["dan"]["sources"] == ["otel"] and rows["ann"]["person_name"] == "Ann"
    # dan had OTel on and removed nothing: a real 0; cat has no source: None
    assert values(run(org, "lines_removed", ["person"]), "person")["dan"] == 0
    assert values(run(org, "lines_added", ["source"]), "source") == {
        "claude_code_analytics": 700, "enterprise_analytics": 130, "otel": 70}


def test_edit_accept_rate_per_tool(org):
    by_tool = {r["tool"]: (r["accepted"], r["rejected"], r["value"]) for r in run(org, "edit_accept_rate", ["tool"]).rows}
    # Edit: ann 5/1 (API, 03-02) + bob 10/2; Write: ann 2, ci-bot 4, dan 2 (OTel); ann's 03-20 comes from
    # Enterprise Analytics, which keeps only the edit tools' totals: 4/0
    assert by_tool == {"Edit": (15, 3, 15 / 18), "Write": (8, 0, 1.0), "(all edit tools)": (4, 0, 1.0)}
    assert values(run(org, "edit_accept_rate")) == 27 / 30
    assert values(run(org, "edit_accept_rate", ["person"]), "person")["cat"] is None


# -- tokens and cost -----------------------------------------------------------------------------

def test_tokens_by_type_model_project(org):
    assert values(run(org, "tokens")) == 25270
    assert values(run(org, "tokens", ["token_type"]), "token_type") == {
        "input": 3500 + 6000 + 400 + 400 + 10 + 10000, "output": 700 + 1100 + 70 + 80 + 10 + 2000,
        "cache_read": 1000, "cache_creation": 0}
    assert values(run(org, "tokens", ["model"]), "model") == {
        "claude-opus-4-8": 1800 + 1100 + 20, "claude-sonnet-4-5": 3400 + 6000 + 470 + 480 + 12000}
    # project: only transcripts and OTel know it
    assert values(run(org, "tokens", ["project"]), "project") == {
        "/repo/a": 1800, "/repo/b": 3400, "/repo/c": 470, "/repo/d": 480, "unknown": 20}
    assert values(run(org, "tokens", ["source"]), "source") == {
        "claude_code_analytics": 24300, "otel": 1200 + 3400 + 480 + 20, "transcripts": 1200 + 600 + 470}
    opus = run(org, "tokens", filters={"model": ["claude-opus-4-8"]})
    assert values(opus) == 1800 + 1100 + 20


def test_estimated_and_billed_cost(org):
    assert values(run(org, "estimated_cost")) == pytest.approx(TOTAL_COST)
    assert approx(values(run(org, "estimated_cost", ["person"]), "person")) == approx({
        "ann": 3.70, "bob": 5.00, "cat": CAT_COST, "dan": DAN_COST, "otel_user_id:uid-zed": ZED_COST,
        "api_key_name:ci-bot": 9.00})
    assert approx(values(run(org, "estimated_cost", ["source"]), "source")) == approx({
        "claude_code_analytics": CC_COST, "transcripts": 0.01 + 0.005 + CAT_COST,
        "otel": 0.01 + (2000 * 3 + 400 * 15 + 1000 * 0.3) / 1e6 + DAN_COST + ZED_COST})
    # Cost API: the 'description' grouping of 03-02 (300 + 50 cents) is used, not also the ungrouped 350
    assert values(run(org, "billed_cost")) == pytest.approx(7.50)
    assert approx(values(run(org, "billed_cost", ["model"]), "model")) == approx({
        "claude-opus-4-8": 3.00, "code_execution": 0.50, "claude-sonnet-4-5": 4.00})
    assert run(org, "billed_cost", ["day"]).rows[0]["day"] == date(2026, 3, 2)


def test_model_mix(org):
    mix = values(run(org, "model_mix"), "model")
    assert mix == {"claude-opus-4-8": pytest.approx(2920 / 25270), "claude-sonnet-4-5": pytest.approx(22350 / 25270)}
    ann = {r["model"]: r["value"] for r in run(org, "model_mix", ["person"]).rows if r["person"] == "ann"}
    assert ann == {"claude-opus-4-8": pytest.approx(1800 / 5200), "claude-sonnet-4-5": pytest.approx(3400 / 5200)}


# -- engagement and efficiency -------------------------------------------------------------------

def test_engagement(org):
    assert values(run(org, "chat_messages")) == 12 + 4 + 5
    assert values(run(org, "chat_conversations")) == 3 + 1 + 2
    by_person = values(run(org, "chat_messages", ["person"]), "person")
    assert by_person["bob"] == 12 and by_person["cat"] is None  # cat: Enterprise has nothing on him


def test_efficiency(org):
    r = run(org, "cost_per_active_person").rows[0]
    assert r["value"] == pytest.approx(TOTAL_COST / 5) and r["active_people"] == 5
    assert values(run(org, "cost_per_session")) == pytest.approx(TOTAL_COST / 12)
    assert values(run(org, "cost_per_pull_request")) == pytest.approx(TOTAL_COST / 5)
    by_team = {r["team"]: r for r in run(org, "cost_per_pull_request", ["team"]).rows}
    # platform has cost but 0 pull requests: undefined, not infinite and not 0
    assert by_team["platform"]["value"] is None and by_team["platform"]["pull_requests"] == 0
    assert by_team["web"]["value"] == pytest.approx((1.20 + 5.00 + DAN_COST) / 3)


# -- days, filters, provenance, errors -----------------------------------------------------------

def test_time_zone_moves_event_days_not_api_days(org):
    # uid-zed's request at 2026-03-06T03:00Z is on 03-05 in Los Angeles
    utc = {r["day"] for r in run(org, "tokens", ["day"], filters={"person": ["otel_user_id:uid-zed"]}).rows}
    la = run(org, "tokens", ["day"], tz="America/Los_Angeles", filters={"person": ["otel_user_id:uid-zed"]})
    assert utc == {date(2026, 3, 6)} and {r["day"] for r in la.rows} == {date(2026, 3, 5)}
    # bob's API day stays 03-09 (UTC) whatever the zone, and the result says so
    bob = run(org, "tokens", ["day"], tz="America/Los_Angeles", filters={"person": ["bob"]})
    assert [r["day"] for r in bob.rows] == [date(2026, 3, 9), date(2026, 3, 23)]
    assert any("UTC days" in n for n in bob.notes)


def test_week_and_month_grouping(org):
    weeks = values(run(org, "active_people", ["week"]), "week")
    # week of 03-02: ann, cat, dan, zed; 03-09: bob, cat (ci-bot is not a person); 03-16: ann; 03-23: bob
    assert weeks == {date(2026, 3, 2): 4, date(2026, 3, 9): 2, date(2026, 3, 16): 1, date(2026, 3, 23): 1}
    assert run(org, "active_people", ["month"]).rows[0]["month"] == "2026-03"


def test_missing_source_is_no_data_in_coverage(org, warehouse):
    res = run(org, "tokens", ["source"], since=date(2026, 3, 24), until=date(2026, 3, 31))
    assert res.rows == [{"source": s, "value": None, "sources": []} for s in ("transcripts", "otel",
                                                                              "claude_code_analytics")]
    assert res.coverage == {"transcripts": None, "otel": None, "claude_code_analytics": None}
    assert "no data" in res.notes[0]
    cov = run(org, "tokens").coverage
    assert cov["transcripts"] == {"rows": 4, "first": date(2026, 3, 2), "last": date(2026, 3, 10)}


def test_errors_are_clear(org):
    with pytest.raises(QueryError, match="unknown metric 'nope'"):
        run(org, "nope")
    with pytest.raises(QueryError, match="billed_cost cannot be grouped by person.*reports no users"):
        run(org, "billed_cost", ["person"])
    with pytest.raises(QueryError, match="unknown group_by 'colour'"):
        run(org, "tokens", ["colour"])
    with pytest.raises(QueryError, match="unknown filter"):
        run(org, "tokens", filters={"colour": ["red"]})
    with pytest.raises(QueryError, match="needs a price table"):
        compute(org, "estimated_cost", **MARCH)


def test_every_metric_compiles_to_one_select_for_every_allowed_grouping(org):
    import duckdb

    for m in METRICS.values():
        for dim in m.dims:
            sql, params = compile_metric(org, m.name, group_by=[dim], prices=PRICES, **MARCH)
            stmts = duckdb.extract_statements(sql)
            assert len(stmts) == 1 and stmts[0].type == duckdb.StatementType.SELECT
            org.query(sql, params)
    names = [c["name"] for c in catalog()]
    assert len(names) == len(set(names)) >= 20


# -- people ----------------------------------------------------------------------------------------

def test_people_and_unlinked(org):
    ppl = {p["person_id"]: p for p in people(org, on=date(2026, 3, 20))}
    assert ppl["ann"]["teams"] == ["web"] and "email:ann@acme.test" in ppl["ann"]["aliases"]
    assert ppl["eve"]["manager_id"] == "ann"
    assert person_of(org, "email", "ANN@acme.test") == "ann"
    assert person_of(org, "otel_user_id", "uid-zed") == "otel_user_id:uid-zed"
    un = {(r["kind"], r["value"]): r for r in unlinked(org)}
    assert un[("otel_user_id", "uid-zed")]["sources"] == ["otel"]
    assert un[("api_key_name", "ci-bot")]["counted_as"] == "counted as an actor, not a person"
    assert un[("email", "gus@acme.test")]["sources"] == ["enterprise_analytics"]
    # ann's OTel user.id was seen with her email: suggested, and her rows already resolve through it
    assert un[("otel_user_id", "uid-ann")]["suggested_person"] == "ann"
    assert ("host", "cat-desktop") not in un and ("email", "bob@acme.test") not in un
    # linking zed to eve makes eve active and the unlinked identity disappears
    link(org, "otel_user_id:uid-zed", "eve")
    assert ("otel_user_id", "uid-zed") not in {(r["kind"], r["value"]) for r in unlinked(org)}
    assert values(run(org, "active_known_people")) == 5
    assert values(run(org, "tokens", ["person"]), "person")["eve"] == 20


def test_person_day_coverage_and_freshness(org):
    cov = {(r["person"], r["day"]): r for r in person_day_coverage(org, since=date(2026, 3, 1),
                                                                     until=date(2026, 3, 31))}
    assert cov[("cat", date(2026, 3, 3))]["sources"] == ["transcripts"]
    ann = cov[("ann", date(2026, 3, 2))]
    assert ann["sources"] == ["claude_code_analytics", "otel", "transcripts"] and not ann["enterprise_analytics"]
    assert cov[("dan", date(2026, 3, 5))]["otel"] and ("bob", date(2026, 3, 10)) not in cov
    fresh = freshness(org)
    assert fresh["claude_code_analytics"]["last_data"] == date(2026, 3, 23)
    assert fresh["hooks"]["has_data"] and fresh["enterprise_analytics"]["last_data"] == date(2026, 3, 20)
    assert source_coverage(org, ["cost_api", "usage_api"], date(2026, 3, 1), date(2026, 3, 31), "UTC") == {
        "cost_api": {"rows": 4, "first": date(2026, 3, 2), "last": date(2026, 3, 9)},
        "usage_api": {"rows": 1, "first": date(2026, 3, 2), "last": date(2026, 3, 2)}}
