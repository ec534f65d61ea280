"""The person-day layer (cclens.metrics.person_day): the catalog reads the same figures from it as from the
raw tables for every metric, grouping and range it answers; it is not used where it cannot answer; and it
follows identity links, API re-syncs, late event rows and membership changes."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from cclens.metrics import facts, person_day, rollup
from cclens.metrics.catalog import METRICS, compile_metric, compute
from cclens.model.identity import link
from cclens.model.pricing import bundled_table
from metrics_support import MARCH, build_org, groupings

PRICES = bundled_table()
RANGES = [(date(2026, 3, 1), date(2026, 3, 31)), (date(2026, 3, 16), date(2026, 3, 31)),
          (date(2026, 3, 20), date(2026, 3, 31)), (date(2026, 3, 1), date(2026, 3, 15)),
          (date(2026, 3, 10), date(2026, 3, 10))]


def _req(wh, key, session, ts, *, email=None, uid=None, host=None, model="claude-sonnet-4-5", tokens=100, bt=False,
         bo=True):
    wh.execute("""INSERT INTO api_request (request_key, session_id, ts, model, input_tokens, output_tokens,
                  cache_creation_tokens, cache_read_tokens, host, user_email, user_id, project, from_transcripts,
                  from_otel) VALUES (?, ?, ?, ?, ?, 10, 0, 0, ?, ?, ?, '/p', ?, ?)""",
               [key, session, ts, model, tokens, host, email, uid, bt, bo])
    rollup.mark_dirty(wh, "api_request", "SELECT ?::TIMESTAMPTZ", [ts])


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(timezone.utc)


@pytest.fixture
def org(warehouse, tmp_path):
    """The golden organisation plus sessions that span UTC midnights (counted on their first day in the
    asked range), one of them on a day where an API source wins."""
    build_org(warehouse, tmp_path)
    with warehouse.transaction():
        _req(warehouse, "md1a", "MD1", _ts("2026-03-15T23:50:00Z"), uid="uid-dan")
        _req(warehouse, "md1b", "MD1", _ts("2026-03-16T00:10:00Z"), uid="uid-dan", bt=True)
        _req(warehouse, "md2a", "MD2", _ts("2026-03-19T23:55:00Z"), email="ann@acme.test")
        _req(warehouse, "md2b", "MD2", _ts("2026-03-20T00:05:00Z"), email="ann@acme.test")
        _req(warehouse, "fast", "F1", _ts("2026-03-21T10:00:00Z"), email="cat@acme.test", model="claude-opus-4-8",
             tokens=250_000)
    rollup.refresh(warehouse)
    assert person_day.built(warehouse) and person_day.fresh(warehouse)
    return warehouse


def _norm(v):
    if isinstance(v, float):
        return pytest.approx(v, rel=1e-9, abs=1e-12)
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def _rows(wh, monkeypatch, name, group_by=(), *, layer, since=MARCH["since"], until=MARCH["until"], tz="UTC",
          filters=None):
    monkeypatch.setattr(facts, "USE_ROLLUPS", layer)
    monkeypatch.setattr(facts, "USE_LAYER", layer)
    res = compute(wh, name, since=since, until=until, tz=tz, group_by=list(group_by), prices=PRICES,
                  filters=filters)
    return res.rows, res.coverage


def _reads_layer(wh, monkeypatch, name, group_by=(), **kw) -> bool:
    monkeypatch.setattr(facts, "USE_ROLLUPS", True)
    monkeypatch.setattr(facts, "USE_LAYER", True)
    sql, _ = compile_metric(wh, name, group_by=list(group_by), prices=PRICES, **{**MARCH, **kw})
    return "pd_" in sql


def _same(wh, monkeypatch, name, group_by=(), **kw):
    raw, raw_cov = _rows(wh, monkeypatch, name, group_by, layer=False, **kw)
    lay, lay_cov = _rows(wh, monkeypatch, name, group_by, layer=True, **kw)
    assert lay == [{k: _norm(v) for k, v in r.items()} for r in raw], (name, group_by, kw)
    assert lay_cov == raw_cov, (name, group_by, kw)
    return lay


def _groupings(metric):
    return groupings(d for d in metric.dims if d not in ("source", "project"))


@pytest.mark.parametrize("since,until", RANGES)
def test_every_metric_same_from_the_layer_as_raw(org, monkeypatch, since, until):
    checked = 0
    for m in list(METRICS.values()):
        if m.name.startswith("_") or m.group not in ("adoption", "output", "tokens", "cost", "engagement",
                                                      "efficiency"):
            continue
        for g in _groupings(m):
            _same(org, monkeypatch, m.name, g, since=since, until=until)
            if m.family not in ("roster", "billed"):
                assert _reads_layer(org, monkeypatch, m.name, g, since=since, until=until), (m.name, g)
            checked += 1
    assert checked > 60


def test_sessions_spanning_midnight_count_on_their_first_day_in_the_range(org, monkeypatch):
    full = {(r["person"], r["day"]): r["value"] for r in _same(org, monkeypatch, "sessions", ("person", "day"))}
    assert full[("dan", date(2026, 3, 15))] == 1 and full[("dan", date(2026, 3, 16))] is None  # active, no new session
    assert full[("ann", date(2026, 3, 19))] == 1
    late = {(r["person"], r["day"]): r["value"] for r in _same(org, monkeypatch, "sessions", ("person", "day"),
                                                               since=date(2026, 3, 16))}
    assert late[("dan", date(2026, 3, 16))] == 1
    # from 03-20 ann's session continues on a day Claude Code Analytics reports her: the API's 1 wins
    from20 = {(r["person"], r["day"]): (r["value"], r["sources"])
              for r in _same(org, monkeypatch, "sessions", ("person", "day"), since=date(2026, 3, 20))}
    assert from20[("ann", date(2026, 3, 20))] == (1, ["claude_code_analytics"])


def test_queries_the_layer_cannot_answer_read_the_rollups(org, monkeypatch):
    assert _reads_layer(org, monkeypatch, "tokens", ("team", "week"))
    assert not _reads_layer(org, monkeypatch, "tokens", ("team",), tz="Europe/Paris")
    assert not _reads_layer(org, monkeypatch, "tokens", ("source",))
    assert not _reads_layer(org, monkeypatch, "tokens", ("project",))
    assert not _reads_layer(org, monkeypatch, "tokens", (), filters={"model": ["claude-opus-4-8"]})
    assert not _reads_layer(org, monkeypatch, "lines_added", (), filters={"source": ["otel"]})
    assert _reads_layer(org, monkeypatch, "lines_added", ("person",), filters={"team": ["web"], "person": ["ann"]})
    for name, g, kw in (("tokens", ("model",), {"filters": {"model": ["claude-opus-4-8"]}}),
                        ("sessions", ("person",), {"tz": "Pacific/Auckland"}),
                        ("lines_added", ("person",), {"filters": {"team": ["web"]}})):
        _same(org, monkeypatch, name, g, **kw)


def test_a_link_made_after_ingest_changes_the_figures_at_once_and_after_the_rebuild(org, monkeypatch):
    before = {r["person"]: r["value"] for r in _same(org, monkeypatch, "tokens", ("person",))}
    assert before["otel_user_id:uid-zed"] == 20 and "eve" not in before
    link(org, "otel_user_id:uid-zed", "eve")
    assert not person_day.fresh(org)
    assert not _reads_layer(org, monkeypatch, "tokens", ("person",))  # stale: not read
    now = {r["person"]: r["value"] for r in _same(org, monkeypatch, "tokens", ("person",))}
    assert now["eve"] == 20 and "otel_user_id:uid-zed" not in now
    res = rollup.refresh(org)
    assert res["layer"]["layer"] == "days" and res["layer"]["days"] == 1  # only zed's day is recomputed
    assert person_day.fresh(org) and _reads_layer(org, monkeypatch, "tokens", ("person",))
    after = {r["person"]: r["value"] for r in _same(org, monkeypatch, "tokens", ("person",))}
    assert after == now
    assert {r["team"]: r["value"] for r in _same(org, monkeypatch, "active_people", ("team",))}["platform"] == 3


def test_unlinking_and_a_people_import_recompute_what_they_touch(org, monkeypatch, tmp_path):
    org.execute("DELETE FROM alias WHERE kind = 'host' AND value = 'cat-desktop'")  # cat's transcripts: by host
    assert not _reads_layer(org, monkeypatch, "tokens", ("person",))
    want = _same(org, monkeypatch, "tokens", ("person",))
    assert "host:cat-desktop" in {r["person"] for r in want}
    res = rollup.refresh(org)
    assert res["layer"]["layer"] == "days" and res["layer"]["days"] == 2  # cat's 03-03 and 03-10
    assert _reads_layer(org, monkeypatch, "tokens", ("person",)) and _same(org, monkeypatch, "tokens", ("person",)) == want
    monkeypatch.setattr(person_day, "ALIAS_LIMIT", 0)  # a large import: the layer is rebuilt
    org.execute("INSERT INTO alias VALUES ('host', 'cat-desktop', 'cat', 'link', now())")
    assert rollup.refresh(org)["layer"]["layer"] == "full"
    for name in ("tokens", "sessions", "active_people"):
        _same(org, monkeypatch, name, ("person",))
    assert _reads_layer(org, monkeypatch, "tokens", ("person",))


def test_a_membership_change_applies_without_a_refresh(org, monkeypatch):
    before = {r["team"]: r["value"] for r in _same(org, monkeypatch, "lines_added", ("team",))}
    org.execute("UPDATE membership SET team_id = 'platform' WHERE person_id = 'bob'")
    assert person_day.fresh(org) and _reads_layer(org, monkeypatch, "lines_added", ("team",))
    after = {r["team"]: r["value"] for r in _same(org, monkeypatch, "lines_added", ("team",))}
    assert after["platform"] == before["platform"] + 110 and after["web"] == before["web"] - 110


def test_an_api_resync_recomputes_its_days(org, monkeypatch):
    with org.transaction():
        org.execute("UPDATE cc_actor_day SET lines_added = 999, fetched_at = fetched_at + INTERVAL 1 HOUR "
                    "WHERE day = DATE '2026-03-09' AND actor_type = 'user'")
    assert not person_day.fresh(org)
    assert not _reads_layer(org, monkeypatch, "lines_added", ("person",))
    assert {r["person"]: r["value"] for r in _same(org, monkeypatch, "lines_added", ("person",))}["bob"] == 999 + 10
    res = rollup.refresh(org)
    assert res["layer"]["days"] == 1
    assert _reads_layer(org, monkeypatch, "lines_added", ("person",))
    assert {r["person"]: r["value"] for r in _same(org, monkeypatch, "lines_added", ("person",))}["bob"] == 999 + 10


def test_a_late_row_recomputes_every_day_of_its_session(org, monkeypatch):
    # MD1 (dan, 03-15/16) gets a transcript row on 03-18 with no identity of its own: it takes dan's from
    # the session, and the session's other days are recomputed with it
    with org.transaction():
        _req(org, "md1c", "MD1", _ts("2026-03-18T09:00:00Z"), bt=True, bo=False)
    assert _reads_layer(org, monkeypatch, "sessions", since=date(2026, 4, 1), until=date(2026, 4, 30))
    assert not _reads_layer(org, monkeypatch, "sessions", since=date(2026, 3, 17), until=date(2026, 3, 17))
    res = rollup.refresh(org)
    assert res["layer"]["days"] == 3  # 03-18 and the session's 03-15, 03-16
    for since, until in RANGES:
        _same(org, monkeypatch, "sessions", ("person", "day"), since=since, until=until)
        _same(org, monkeypatch, "tokens", ("person", "day"), since=since, until=until)
    # the one documented difference: from 03-17 the raw path sees no identity for MD1 (its identified rows
    # are before the range) and leaves the row unattributed; the layer takes the session's identity from
    # all its rows
    kw = dict(since=date(2026, 3, 17), until=date(2026, 3, 31))
    raw = _rows(org, monkeypatch, "sessions", ("person", "day"), layer=False, **kw)[0]
    lay = _rows(org, monkeypatch, "sessions", ("person", "day"), layer=True, **kw)[0]
    assert {"person": None, "day": date(2026, 3, 18), "value": None, "sources": [], "person_name": None} in raw
    assert {"person": "dan", "day": date(2026, 3, 18), "value": 1, "sources": ["transcripts"],
            "person_name": "Dan"} in lay
    days = {r["day"]: r["multi"] for r in org.query("SELECT day, multi FROM pd_session_day WHERE session_id = 'MD1'")}
    assert days == {date(2026, 3, 15): True, date(2026, 3, 16): True, date(2026, 3, 18): True}
    late = {(r["person"], r["day"]): r["value"] for r in _same(org, monkeypatch, "tokens", ("person", "day"))}
    assert late[("dan", date(2026, 3, 18))] == 110


def test_an_otel_user_id_whose_email_arrives_later_moves_its_points(org, monkeypatch):
    with org.transaction():
        org.execute("""INSERT INTO otel_point (request_id, metric_name, kind, temporality, ts, value, user_id, type)
                       VALUES ('p-new', 'claude_code.lines_of_code.count', 'sum', 'delta',
                               TIMESTAMPTZ '2026-03-05 10:00:00+00', 7, 'uid-new', 'added')""")
        rollup.mark_dirty(org, "otel_point", "SELECT TIMESTAMPTZ '2026-03-05 10:00:00+00'")
    rollup.refresh(org)
    first = {r["person"]: r["value"] for r in _same(org, monkeypatch, "lines_added", ("person",))}
    assert first["otel_user_id:uid-new"] == 7
    with org.transaction():  # weeks later an OTel event shows uid-new with eve's email
        _req(org, "late-eve", "E9", _ts("2026-03-28T10:00:00Z"), email="eve@acme.test", uid="uid-new")
    res = rollup.refresh(org)
    assert date(2026, 3, 5) in {r["day"] for r in org.query("SELECT DISTINCT day FROM pd_output WHERE person = 'eve'")}
    assert res["layer"]["days"] == 2
    after = {r["person"]: r["value"] for r in _same(org, monkeypatch, "lines_added", ("person",))}
    assert after["eve"] == 7 and "otel_user_id:uid-new" not in after


def test_the_server_refresher_builds_the_layer(warehouse, tmp_path):
    import time

    from cclens.server.rollup_refresh import RollupRefresher
    from cclens.server.writer import Writer

    build_org(warehouse, tmp_path)
    writer = Writer(warehouse)
    writer.add_source(RollupRefresher(writer, interval=0.05))
    writer.start()
    try:
        writer.submit(lambda wh: link(wh, "otel_user_id:uid-zed", "eve")).result(timeout=30)
        reader = writer.reader()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not person_day.fresh(reader):
            time.sleep(0.02)
        assert person_day.fresh(reader)
        assert reader.scalar("SELECT sum(input_tokens + output_tokens) FROM pd_tokens WHERE person = 'eve'") == 20
        reader.close()
    finally:
        writer.stop()


def test_a_price_table_with_another_long_context_threshold_is_not_priced_from_the_layer(org, monkeypatch):
    from cclens.model.pricing import load_table

    table = load_table(None, {"claude-sonnet-4-5": {"input": 3, "output": 15, "long_context": {
        "threshold": 100_000, "input": 6, "output": 22.5, "cache_write_5m": 7.5, "cache_write_1h": 12,
        "cache_read": 0.6}}})
    monkeypatch.setattr(facts, "USE_ROLLUPS", True)
    monkeypatch.setattr(facts, "USE_LAYER", True)
    assert "pd_tokens" in compile_metric(org, "estimated_cost", prices=PRICES, **MARCH)[0]
    assert "pd_tokens" not in compile_metric(org, "estimated_cost", prices=table, **MARCH)[0]
    assert "pd_tokens" in compile_metric(org, "tokens", prices=table, **MARCH)[0]  # no price involved
