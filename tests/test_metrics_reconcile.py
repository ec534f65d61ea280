"""Reconciliation on the real Claude Code 2.1.197 capture (tests/fixtures = ../shared/samples/claude-code-2.1.197):
the transcript of session 3649b710 and its OTel events and metrics must agree exactly; and on the
hand-built organisation, the API sources side by side with their drift."""

from __future__ import annotations

import time
from datetime import date

import pytest

from cclens.metrics.reconcile import REASONS, SOURCES, reconcile, wide
from cclens.model.otel import OtelModeller, OtlpRequest
from cclens.model.pricing import bundled_table
from cclens.sources.otlp import decode
from metrics_support import MARCH, build_org
from otlp_support import FIXTURES, capture_logs_json, capture_metrics_raw, to_protobuf

SESSION = "3649b710-3145-482c-8c8e-916950e37083"
REQ = "req_fake_33cedb8e75ea4b0d"
DAY = date(2026, 11, 25)
# the main session's own events in the capture (the other records come from other runs)
MAIN_EVENTS = ["hook_execution_start", "hook_registered", "hook_execution_complete", "user_prompt", "api_request",
               "assistant_response", "tool_decision", "tool_result"]


def _request(signal, body, fmt, rid, message, records):
    return OtlpRequest(request_id=rid, signal=signal, receiver="http", received_at=time.time(), message=message,
                       raw=body, raw_format=fmt, body_sha256=rid * 8, records=records)


@pytest.fixture
def capture(isolated_env, warehouse):
    from cclens.sources.transcripts import ingest_paths

    proj = isolated_env / ".claude" / "projects" / "-home-dev-repo"
    proj.mkdir(parents=True)
    (proj / f"{SESSION}.jsonl").write_bytes((FIXTURES / "transcript_main_session.jsonl").read_bytes())
    ingest_paths(warehouse, [proj], host="laptop", include_defaults=False)
    logs = to_protobuf(capture_logs_json(MAIN_EVENTS))
    d = decode("logs", logs, "protobuf")
    raw = capture_metrics_raw()
    dm = decode("metrics", raw, "json")
    m = OtelModeller()
    with warehouse.transaction():
        m.model_requests(warehouse, [_request("logs", logs, "protobuf", "r-logs", d.message, d.records),
                                     _request("metrics", raw, "json", "r-mets", dm.message, dm.records)])
    m.committed()
    return warehouse


def test_transcripts_and_otel_agree_exactly_on_the_real_capture(capture):
    rep = reconcile(capture, since=DAY, until=DAY, tz="UTC", prices=bundled_table())
    by_source = {r["source"]: r for r in rep["rows"] if r["model"] == "claude-opus-4-8"}
    assert set(by_source) == {"transcripts", "otel_events", "otel_metrics"}
    tr, ev, mt = by_source["transcripts"], by_source["otel_events"], by_source["otel_metrics"]
    # the request both sources saw agrees on every token count
    req = rep["requests"]
    assert (req["matched"], req["equal"], req["different"]) == (1, 1, [])
    # the transcript holds the whole session (3 requests: input 175, output 120, cache read 8150, cache
    # creation 4250 — Claude Code's own totals for it); this capture of the OTel stream holds its first request
    assert (tr["requests"], tr["input_tokens"], tr["output_tokens"], tr["cache_read_tokens"],
            tr["cache_creation_tokens"]) == (3, 175, 120, 8150, 4250)
    assert (ev["requests"], ev["input_tokens"], ev["output_tokens"], ev["cache_creation_tokens"],
            ev["cache_read_tokens"]) == (1, 120, 60, 4000, 0)
    # ... and the two transcript-only requests explain the whole difference, exactly
    assert req["only_transcripts"] == 2 and req["only_otel_events"] == 0
    assert tr["total_tokens"] - ev["total_tokens"] == req["only_transcripts_tokens"] == 12695 - 4180
    # OTel metrics (token.usage / cost.usage deltas of the same export window) equal the OTel events
    assert [mt[k] for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")] == \
        [ev[k] for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")]
    assert mt["cost_usd"] == pytest.approx(ev["reported_cost_usd"]) == pytest.approx(0.0271)
    # Claude Code's own cost of that request equals the cclens price of it (opus-4-8: 5/25/6.25 per Mtok)
    assert ev["cost_usd"] == pytest.approx(ev["reported_cost_usd"], abs=1e-12)
    # and the whole session priced by cclens equals Claude Code's own total_cost_usd for it
    assert tr["cost_usd"] == pytest.approx(0.0345125, abs=1e-12)
    assert ev["token_reference"] == "otel_events" and ev["token_drift_pct"] == 0
    assert mt["token_drift_pct"] == 0
    assert tr["token_drift_pct"] == pytest.approx(100 * (12695 - 4180) / 4180, abs=1e-3)
    assert rep["sources_missing"] == ["claude_code_analytics", "usage_api", "cost_api"]


def test_reconcile_by_person_and_wide(capture):
    rep = reconcile(capture, since=DAY, until=DAY, tz="UTC", prices=bundled_table(), by_person=True)
    people = {(r["source"], r["person"]) for r in rep["rows"]}
    # one OTel install (user.id) in the capture; the transcript rows of the same session resolve to it
    uid = "otel_user_id:d1607fe35e6db3e42e8cb326e3149d1a82f3dffce8e085fb34da42569319d5ec"
    assert ("otel_events", uid) in people and ("otel_metrics", uid) in people
    lines = wide(reconcile(capture, since=DAY, until=DAY, tz="UTC", prices=bundled_table())["rows"])
    opus = next(x for x in lines if x["model"] == "claude-opus-4-8")
    assert opus["transcripts_tokens"] == 12695 and opus["otel_events_tokens"] == opus["otel_metrics_tokens"] == 4180
    assert opus["otel_reported_cost"] == pytest.approx(0.0271)


def test_api_sources_side_by_side_with_drift(warehouse, tmp_path):
    build_org(warehouse, tmp_path)
    rep = reconcile(warehouse, prices=bundled_table(), **MARCH)
    rows = {(r["day"], r["model"], r["source"]): r for r in rep["rows"]}
    opus = (date(2026, 3, 2), "claude-opus-4-8")
    cc, usage, cost = rows[(*opus, "claude_code_analytics")], rows[(*opus, "usage_api")], rows[(*opus, "cost_api")]
    # Usage API (org-wide) 1920 tokens is the token reference; Claude Code Analytics 1800 is 6.25 % below
    assert (usage["total_tokens"], cc["total_tokens"]) == (1920, 1800)
    assert cc["token_reference"] == "usage_api" and cc["token_drift_pct"] == pytest.approx(-6.25)
    # billed $3.00 is the cost reference; Anthropic's Claude Code estimate $2.50 is 16.7 % below
    assert cost["cost_usd"] == 3.0 and cc["cost_drift_pct"] == pytest.approx(-16.6667)
    # the Cost API's ungrouped copy of 03-02 (350 cents) is not added to the description rows
    assert sum(r["cost_usd"] for r in rep["rows"] if r["source"] == "cost_api") == pytest.approx(7.50)
    assert rows[(date(2026, 3, 2), "code_execution", "cost_api")]["cost_usd"] == 0.5
    assert set(rep["reasons"]) == set(SOURCES) and all(REASONS[s] for s in SOURCES)
    assert "subscription" in " ".join(rep["reasons"]["claude_code_analytics"])
