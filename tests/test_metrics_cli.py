"""`cclens metrics|metric|query|export|people|report reconcile` on the warehouse file, and the same commands
through a running `cclens serve` (the file is held by the server: reads and writes go through it)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from metrics_support import PEOPLE_TOML, build_org
from serve_support import ServeProcess

MARCH = ["--since", "2026-03-01", "--until", "2026-03-31", "--tz", "UTC"]


def cclens(db: Path, *args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "cclens.cli", "--db", str(db), *args], capture_output=True,
                         text=True, timeout=120, env=dict(os.environ))
    assert "Traceback" not in out.stderr, out.stderr
    return out


@pytest.fixture
def org_db(tmp_path):
    from cclens.warehouse import open_warehouse

    db = tmp_path / "wh.duckdb"
    wh = open_warehouse(db)
    build_org(wh, tmp_path)
    wh.close()
    return db


def _check_reads(db: Path, tmp_path: Path) -> None:
    cat = json.loads(cclens(db, "metrics", "-f", "json").stdout)
    assert "active_people" in {m["name"] for m in cat}
    out = cclens(db, "metric", "tokens", "-g", "team", *MARCH, "-f", "json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert {r["team"]: r["value"] for r in res["rows"]} == {"platform": 2270, "web": 10980, "(no team)": 12020}
    out = cclens(db, "metric", "lines_added", "-g", "person", "--filter", "person=cat,dan", *MARCH, "-f", "csv")
    rows = {r["person"]: r for r in csv.DictReader(io.StringIO(out.stdout))}
    assert rows["cat"]["value"] == "" and float(rows["dan"]["value"]) == 20
    out = cclens(db, "metric", "tokens", *MARCH)                  # table, with the sources footer
    assert "25,270" in out.stdout and "claude_code_analytics" in out.stdout
    bad = cclens(db, "metric", "billed_cost", "-g", "person", *MARCH)
    assert bad.returncode != 0 and "reports no users" in bad.stderr and len(bad.stderr.splitlines()) == 1
    q = cclens(db, "query", "SELECT count(*) AS n FROM cc_actor_day", "-f", "json")
    assert json.loads(q.stdout) == [{"n": 6}]
    rej = cclens(db, "query", "SELECT * FROM read_csv('/etc/passwd')")
    assert rej.returncode != 0 and "read_csv() is not allowed" in rej.stderr
    rec = json.loads(cclens(db, "report", "reconcile", *MARCH, "-f", "json").stdout)
    assert {"claude_code_analytics", "usage_api", "cost_api"} <= set(rec["sources_present"])
    assert "why sources differ" in cclens(db, "report", "reconcile", *MARCH).stdout
    un = json.loads(cclens(db, "people", "unlinked", "-f", "json").stdout)
    assert {"kind": "otel_user_id", "value": "uid-zed"}.items() <= next(
        u for u in un if u["value"] == "uid-zed").items()
    out_dir = tmp_path / f"export-{db.stem}"
    exp = cclens(db, "export", "--table", "cc_actor_day", "--table", "person", "-o", str(out_dir))
    assert exp.returncode == 0, exp.stderr
    assert pq.read_table(out_dir / "cc_actor_day.parquet").num_rows == 6
    exp = cclens(db, "export", "--metric", "active_people", "-g", "week", *MARCH, "-o", str(out_dir / "wau.csv"))
    assert exp.returncode == 0, exp.stderr
    assert [r["value"] for r in csv.DictReader(io.StringIO((out_dir / "wau.csv").read_text()))] == ["4", "2", "1", "1"]
    refused = cclens(db, "export", "--table", "api_token", "-o", str(out_dir / "t.parquet"))
    assert refused.returncode != 0 and "cannot export" in refused.stderr


def test_cli_on_the_file(org_db, tmp_path):
    _check_reads(org_db, tmp_path)
    # `cclens report METRIC` is the same as `cclens metric METRIC`; the lead's report commands keep their names
    alias = json.loads(cclens(org_db, "report", "tokens", "-g", "team", *MARCH, "-f", "json").stdout)
    assert {r["team"]: r["value"] for r in alias["rows"]} == {"platform": 2270, "web": 10980, "(no team)": 12020}
    assert "session_id" in json.loads(cclens(org_db, "report", "sessions", "-f", "json", "--no-refresh").stdout)[0]
    out = cclens(org_db, "people", "link", "otel_user_id:uid-zed", "eve")
    assert out.returncode == 0 and "linked otel_user_id:uid-zed to eve" in out.stdout
    people = json.loads(cclens(org_db, "people", "list", "-f", "json").stdout)
    assert "otel_user_id:uid-zed" in next(p for p in people if p["person_id"] == "eve")["aliases"]
    bad = cclens(org_db, "people", "link", "nonsense", "eve")
    assert bad.returncode != 0 and "is not KIND:VALUE" in bad.stderr


def test_cli_through_a_running_server(org_db, tmp_path):
    with ServeProcess(org_db, grpc=False, env={"CCLENS_SERVER_WATCH_TRANSCRIPTS": "false"}):
        _check_reads(org_db, tmp_path)
        # writes go through the server too (no lock error)
        people = tmp_path / "more.csv"
        people.write_text("person,name,emails,aliases,team,team_from\n"
                          "zed,Zed,zed@acme.test,otel_user_id:uid-zed,web,2026-03-01\n")
        out = cclens(org_db, "people", "import", str(people))
        assert out.returncode == 0, out.stderr
        assert "imported 1 people, 2 aliases, 1 teams, 1 memberships" in out.stdout
        res = json.loads(cclens(org_db, "metric", "active_known_people", *MARCH, "-f", "json").stdout)
        assert res["rows"][0]["value"] == 5
        out = cclens(org_db, "people", "link", "api_key_name:ci-bot", "bob")
        assert out.returncode == 0 and "linked api_key_name:ci-bot to bob" in out.stdout
    # the server released the file: the links are there
    res = json.loads(cclens(org_db, "metric", "tokens", "-g", "person", *MARCH, "-f", "json").stdout)
    assert {r["person"]: r["value"] for r in res["rows"]}["bob"] == 7100 + 12000


def test_people_file_errors(tmp_path, warehouse):
    from cclens.errors import ConfigError
    from cclens.model.identity import import_people

    bad = tmp_path / "p.toml"
    bad.write_text(PEOPLE_TOML + '\n[[person]]\nid = "x"\naliases = { host = ["ann-laptop"] }\n')
    with pytest.raises(ConfigError, match="alias host:ann-laptop is given to both ann and x"):
        import_people(warehouse, bad)
    bad.write_text('[[person]]\nid = "x"\naliases = { shoe_size = "42" }\n')
    with pytest.raises(ConfigError, match="unknown alias kind 'shoe_size'"):
        import_people(warehouse, bad)
    bad.write_text('[[person]]\nid = "x"\n[[person.memberships]]\nteam = "a"\nfrom = "2026-02-30"\n')
    with pytest.raises(ConfigError, match="is not a day"):
        import_people(warehouse, bad)
    csvf = tmp_path / "p.csv"
    csvf.write_text("name,team\nAnn,a\n")
    with pytest.raises(ConfigError, match="CSV header needs"):
        import_people(warehouse, csvf)
    # a CSV with a team history: one row per membership
    csvf.write_text("person,emails,team,team_from,team_to,manager\n"
                    "ann,ann@x.test;a2@x.test,platform,2026-01-01,2026-03-15,\n"
                    "ann,,web,2026-03-16,,\n")
    assert import_people(warehouse, csvf) == {"people": 1, "aliases": 2, "teams": 2, "memberships": 2}
    assert warehouse.query("SELECT team_id, valid_from::VARCHAR AS f, valid_to::VARCHAR AS t FROM membership "
                           "ORDER BY valid_from") == [{"team_id": "platform", "f": "2026-01-01", "t": "2026-03-15"},
                                                      {"team_id": "web", "f": "2026-03-16", "t": None}]
    # re-importing is idempotent
    assert import_people(warehouse, csvf) == {"people": 1, "aliases": 2, "teams": 2, "memberships": 2}
    assert warehouse.scalar("SELECT count(*) FROM alias") == 2
