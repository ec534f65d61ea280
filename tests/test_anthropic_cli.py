"""`cclens sync` and `cclens api report|status` end to end: the real CLI entry point, settings from
the environment, the fake APIs on a loopback port, a real DuckDB file."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import orjson
import pytest

from cclens.cli import main
from fakes.anthropic_api import FakeAnthropicAPI


@pytest.fixture
def fake(monkeypatch):
    api = FakeAnthropicAPI(seed=11, people=12, days=6)   # the fake's clock is the real one here
    with api.serve() as url:
        monkeypatch.setenv("CCLENS_ANTHROPIC_BASE_URL", url)
        monkeypatch.setenv("CCLENS_ANTHROPIC_ADMIN_KEY", api.ADMIN_KEY)
        monkeypatch.setenv("CCLENS_ANTHROPIC_ANALYTICS_KEY", api.ANALYTICS_KEY)
        monkeypatch.setenv("CCLENS_ANTHROPIC_SYNC_START", (api.today - timedelta(days=5)).isoformat())
        yield api


def cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_sync_then_report_shows_the_api_data(fake, db_path, capsys):
    code, out, err = cli(capsys, "--db", str(db_path), "sync", "--format", "json")
    assert code == 0, err
    results = {r["source"]: r for r in orjson.loads(out)}
    assert {r["status"] for r in results.values()} == {"ok"}
    assert "Traceback" not in err

    code, out, err = cli(capsys, "--db", str(db_path), "api", "report", "--source", "claude_code_analytics",
                         "--format", "json")
    assert code == 0, err
    rows = orjson.loads(out)
    first = fake.today - timedelta(days=5)
    expected = {}
    for i in range(6):
        d = first + timedelta(days=i)
        if fake.cc_records(d):
            expected[d.isoformat()] = sum(r["core_metrics"]["num_sessions"] for r in fake.cc_records(d))
    assert {r["utc_day"]: r["sessions"] for r in rows} == expected

    code, out, err = cli(capsys, "--db", str(db_path), "api", "report", "--source", "cost", "--by", "description",
                         "--format", "csv")
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out)))
    assert table and {"description", "cost_usd", "currency"} <= set(table[0])
    billed = sum(Decimal(r["amount"]) for i in range(5)
                 for r in fake.cost_results(first + timedelta(days=i), ["workspace_id", "description"])) / 100
    assert abs(sum(Decimal(r["cost_usd"]) for r in table) - billed) <= Decimal("0.01") * len(table)

    code, out, err = cli(capsys, "--db", str(db_path), "api", "report", "--source", "enterprise_analytics",
                         "--by", "user", "--format", "json")
    users = orjson.loads(out)
    assert code == 0 and users and all(u["user"].endswith("@example.com") for u in users)

    since = fake.today - timedelta(days=1)
    code, out, err = cli(capsys, "--db", str(db_path), "api", "report", "--source", "usage", "--tz", "Asia/Tokyo",
                         "--since", since.isoformat(), "--format", "json")
    assert code == 0
    assert all(date.fromisoformat(r["day"]) >= since for r in orjson.loads(out))

    code, out, err = cli(capsys, "--db", str(db_path), "api", "report", "--source", "claude_code_analytics",
                         "--by", "actor")
    assert code == 0 and "claude_code_analytics by actor (UTC days)" in out and "pulled" in out

    code, out, err = cli(capsys, "--db", str(db_path), "api", "status", "--format", "json")
    status = {r["source"]: r for r in orjson.loads(out)}
    assert all(s["last_success"] and s["last_error"] is None for s in status.values())


def test_second_sync_lands_nothing_new(fake, db_path, capsys):
    assert cli(capsys, "--db", str(db_path), "sync", "--no-progress", "--format", "json")[0] == 0
    code, out, _ = cli(capsys, "--db", str(db_path), "sync", "--no-progress", "--format", "json")
    assert code == 0
    assert all(r["pages_landed"] == 0 or r["source"] == "usage" for r in orjson.loads(out))


def test_wrong_key_is_one_clear_line_and_exit_1(fake, db_path, capsys, monkeypatch):
    monkeypatch.setenv("CCLENS_ANTHROPIC_ADMIN_KEY", "sk-ant-admin01-not-the-right-one")
    monkeypatch.delenv("CCLENS_ANTHROPIC_ANALYTICS_KEY")
    code, out, err = cli(capsys, "--db", str(db_path), "sync")
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "claude_code_analytics" in errors[0] and "CCLENS_ANTHROPIC_ADMIN_KEY" in errors[0]
    assert "not-the-right-one" not in err + out and "Traceback" not in err
    assert "enterprise_analytics: skipped, no key configured" in err


def test_unknown_source_and_bad_options_are_clear(fake, db_path, capsys):
    code, _, err = cli(capsys, "--db", str(db_path), "sync", "nonsense")
    assert code == 2 and "unknown source nonsense" in err
    code, _, err = cli(capsys, "--db", str(db_path), "api", "report", "--source", "cost", "--by", "actor")
    assert code != 0 and "--by actor is not available for cost" in err


def test_report_on_a_source_never_synced_says_so(db_path, capsys):
    code, out, err = cli(capsys, "--db", str(db_path), "api", "report", "--source", "usage", "--format", "json")
    assert code == 0 and orjson.loads(out) == []
    assert "never been synced" in err
