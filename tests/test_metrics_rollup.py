"""Metric rollups (cclens.metrics.rollup): the catalog reads the same results from the rollups as from
the raw tables, for every metric, grouping and zone; dirty days are read raw until refreshed; ingest
paths mark the days they touch; ``cclens serve`` refreshes on its writer thread."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from cclens.metrics import facts, rollup
from cclens.metrics.catalog import METRICS, compile_metric, compute, load_modules
from cclens.model.pricing import bundled_table, load_table
from metrics_support import MARCH, build_org, groupings

PRICES = bundled_table()
FIXTURE = Path(__file__).parent / "fixtures" / "transcript_main_session.jsonl"
ZONES = ("UTC", "Asia/Kathmandu", "America/St_Johns", "Pacific/Auckland")


def _extra_requests(wh):
    """Requests near midnight in several zones, a fast one and a long-context one (pricing splits)."""
    rows = []
    for i, (h, m) in enumerate([(23, 50), (0, 5), (18, 14), (18, 15), (11, 44), (12, 1)]):
        ts = datetime(2026, 3, 9 + i, h, m, tzinfo=timezone.utc)
        rows.append((f"x{i}", f"sx{i % 3}", ts, "claude-opus-4-8", 100 + i, 10, 5, 7, "ann-laptop",
                     "Ann@Acme.test" if i % 2 else None, "uid-ann" if i % 3 else None, "/p/x", i % 2 == 0, True,
                     "fast" if i == 1 else None))
    rows.append(("xl", "sxl", datetime(2026, 3, 12, 9, tzinfo=timezone.utc), "claude-sonnet-4-5", 250_000, 100, 0, 0,
                 "cat-desktop", None, None, "/p/y", True, False, None))
    rows.append(("xm", "sxl", datetime(2026, 3, 12, 9, 5, tzinfo=timezone.utc), "claude-sonnet-4-5", 150_000, 100, 0, 0,
                 "cat-desktop", None, None, "/p/y", True, False, None))
    with wh.transaction():
        for r in rows:
            wh.execute("""INSERT INTO api_request (request_key, session_id, ts, model, input_tokens, output_tokens,
                          cache_creation_tokens, cache_read_tokens, host, user_email, user_id, project,
                          from_transcripts, from_otel, speed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", r)
        rollup.mark_dirty(wh, "api_request", "SELECT ts FROM api_request WHERE request_key LIKE 'x%'")


def _norm(v):
    if isinstance(v, float):
        return pytest.approx(v, rel=1e-9, abs=1e-12, nan_ok=True)
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def _both(wh, monkeypatch, name, group_by=(), tz="UTC", prices=PRICES, since=MARCH["since"], until=MARCH["until"]):
    """(rows read raw, rows read from the rollups)."""
    out = []
    monkeypatch.setattr(facts, "USE_LAYER", False)  # the person-day layer: tests/test_metrics_person_day.py
    for use in (False, True):
        monkeypatch.setattr(facts, "USE_ROLLUPS", use)
        out.append(compute(wh, name, since=since, until=until, tz=tz, group_by=list(group_by), prices=prices,
                           coverage=False).rows)
    return out[0], out[1]


@pytest.fixture
def org(warehouse, tmp_path):
    build_org(warehouse, tmp_path)
    _extra_requests(warehouse)
    rollup.refresh(warehouse)
    return warehouse


def _groupings(metric):
    return groupings(d for d in metric.dims if not (metric.name == "billed_cost" and d == "team"))


@pytest.mark.parametrize("tz", ZONES)
def test_every_metric_same_on_rollups_and_raw(org, monkeypatch, tz):
    load_modules()
    checked = 0
    for m in METRICS.values():
        if m.name.startswith("_"):
            continue
        for g in _groupings(m):
            raw, rolled = _both(org, monkeypatch, m.name, g, tz=tz)
            assert rolled == [{k: _norm(v) for k, v in r.items()} for r in raw], (m.name, g, tz)
            checked += 1
    assert checked > 60


def test_rollup_path_reads_the_rollup_tables(org, monkeypatch):
    monkeypatch.setattr(facts, "USE_LAYER", False)
    monkeypatch.setattr(facts, "USE_ROLLUPS", True)
    sql, _ = compile_metric(org, "tokens", group_by=["person"], prices=PRICES, **MARCH)
    assert "rollup_request" in sql
    monkeypatch.setattr(facts, "USE_ROLLUPS", False)
    sql, _ = compile_metric(org, "tokens", group_by=["person"], prices=PRICES, **MARCH)
    assert "rollup_request" not in sql


def test_a_row_written_without_marking_its_day_is_missed_so_the_rollup_is_really_read(org, monkeypatch):
    org.execute("""INSERT INTO api_request (request_key, session_id, ts, model, input_tokens, output_tokens, host,
                   from_transcripts) VALUES ('unmarked', 'su', TIMESTAMPTZ '2026-03-05 10:00:00+00',
                   'claude-opus-4-8', 1000, 0, 'cat-desktop', true)""")
    raw, rolled = _both(org, monkeypatch, "tokens")
    assert raw[0]["value"] == rolled[0]["value"] + 1000


def test_dirty_days_are_read_raw_until_refreshed(org, monkeypatch):
    assert rollup.dirty_count(org) == 0
    with org.transaction():
        org.execute("""INSERT INTO api_request (request_key, session_id, ts, model, input_tokens, output_tokens,
                       host, from_transcripts) VALUES ('late', 'sl', TIMESTAMPTZ '2026-03-05 10:00:00+00',
                       'claude-opus-4-8', 1000, 0, 'cat-desktop', true)""")
        org.execute("""INSERT INTO otel_point (request_id, metric_name, kind, temporality, ts, value, user_id, type)
                       VALUES ('late', 'claude_code.lines_of_code.count', 'sum', 'delta',
                               TIMESTAMPTZ '2026-03-05 10:00:00+00', 7, 'uid-dan', 'added')""")
        rollup.mark_dirty(org, "api_request", "SELECT TIMESTAMPTZ '2026-03-05 10:00:00+00'")
        rollup.mark_dirty(org, "otel_point", "SELECT TIMESTAMPTZ '2026-03-05 10:00:00+00'")
    assert rollup.dirty_count(org) == 2
    for name, g in (("tokens", ("person",)), ("lines_added", ("person", "day")), ("estimated_cost", ("model",))):
        raw, rolled = _both(org, monkeypatch, name, g)
        assert rolled == [{k: _norm(v) for k, v in r.items()} for r in raw]
    before = org.scalar("SELECT count(*) FROM rollup_request")
    assert rollup.refresh(org)["mode"] == "dirty"
    assert rollup.dirty_count(org) == 0
    assert org.scalar("SELECT count(*) FROM rollup_request") == before + 1
    raw, rolled = _both(org, monkeypatch, "lines_added", ("person", "day"))
    assert rolled == raw
    assert [r["value"] for r in rolled if r["person"] == "dan" and r["day"] == date(2026, 3, 5)] == [20 + 7]


def test_a_price_table_with_another_long_context_threshold_is_priced_from_raw_rows(org, monkeypatch, tmp_path):
    sonnet = PRICES.prices["claude-sonnet-4-5"]
    table = load_table(None, {"claude-sonnet-4-5": {"long_context": {**sonnet.long_context, "threshold": 100_000}}}
                       if sonnet.long_context else {"claude-sonnet-4-5": {"input": 3, "output": 15, "long_context": {
                           "threshold": 100_000, "input": 6, "output": 22.5, "cache_write_5m": 7.5,
                           "cache_write_1h": 12, "cache_read": 0.6}}})
    monkeypatch.setattr(facts, "USE_ROLLUPS", True)
    monkeypatch.setattr(facts, "USE_LAYER", False)
    sql, _ = compile_metric(org, "estimated_cost", prices=table, **MARCH)
    assert "api_request_cost" in sql.split("ev_cost_raw AS")[1][:2000]
    raw, rolled = _both(org, monkeypatch, "estimated_cost", ("person",), prices=table)
    assert rolled == [{k: _norm(v) for k, v in r.items()} for r in raw]
    raw200, _ = _both(org, monkeypatch, "estimated_cost", ("person",))
    assert raw200 != raw  # the threshold matters for the 150k-token request


def test_transcript_ingest_marks_its_days_and_refresh_makes_them_clean(warehouse, monkeypatch):
    from cclens.sources.transcripts.ingest import ingest_paths

    rollup.refresh(warehouse)
    ingest_paths(warehouse, [FIXTURE], host="h1", include_defaults=False)
    days = {r["day"] for r in warehouse.query("SELECT DISTINCT day FROM rollup_dirty WHERE src = 'api_request'")}
    want = {r["d"] for r in warehouse.query(
        "SELECT DISTINCT CAST(timezone('UTC', ts) AS DATE) AS d FROM api_request WHERE ts IS NOT NULL")}
    assert want and days == want
    lo, hi = min(want), max(want)
    raw, rolled = _both(warehouse, monkeypatch, "tokens", ("day",), since=lo, until=hi)
    assert raw and rolled == raw
    rollup.refresh(warehouse)
    assert rollup.dirty_count(warehouse) == 0
    monkeypatch.setattr(facts, "USE_ROLLUPS", True)
    assert compute(warehouse, "tokens", since=lo, until=hi, group_by=["day"], prices=PRICES,
                   coverage=False).rows == raw


def test_the_server_writer_refreshes_dirty_days(warehouse):
    import time

    from cclens.server.rollup_refresh import RollupRefresher
    from cclens.server.writer import Writer

    writer = Writer(warehouse)
    refresher = RollupRefresher(writer, interval=0.05)
    writer.add_source(refresher)
    writer.start()
    try:
        def write(wh):
            wh.execute("""INSERT INTO api_request (request_key, session_id, ts, model, input_tokens, host,
                          from_transcripts) VALUES ('w1', 'sw', TIMESTAMPTZ '2026-03-05 10:00:00+00',
                          'claude-opus-4-8', 10, 'h', true)""")
            rollup.mark_dirty(wh, "api_request", "SELECT TIMESTAMPTZ '2026-03-05 10:00:00+00'")

        writer.submit(write).result(timeout=30)
        deadline = time.monotonic() + 30
        reader = writer.reader()
        while time.monotonic() < deadline:
            if rollup.ready(reader) and rollup.dirty_count(reader) == 0 and \
                    reader.scalar("SELECT count(*) FROM rollup_request") == 1:
                break
            time.sleep(0.02)
        assert rollup.dirty_count(reader) == 0
        assert reader.scalar("SELECT sum(input_tokens) FROM rollup_request") == 10
        reader.close()
    finally:
        writer.stop()
