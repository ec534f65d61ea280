"""The transcript source: correctness on real captures, incremental reads, quarantine, idempotence."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cclens.model.pricing import bundled_table
from cclens.sources.transcripts import discover, ingest_paths, read_new
from cclens.synth.transcripts import generate
from cclens.warehouse import open_warehouse

FIXTURE = Path(__file__).parent / "fixtures" / "transcript_main_session.jsonl"


def cli(*args: str, db: Path) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "cclens.cli", "--db", str(db), *args], capture_output=True,
                         text=True, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def totals(wh) -> dict:
    return wh.query("""SELECT sum(input_tokens) AS input, sum(output_tokens) AS output,
                              sum(cache_creation_tokens) AS cache_creation, sum(cache_read_tokens) AS cache_read,
                              count(*) AS requests FROM api_request""")[0]


def test_real_capture_totals_equal_claude_codes_own(tmp_path, db_path):
    """Claude Code's own --output-format json said: 175/120/8150/4250, $0.0345125."""
    out = cli("ingest", "transcripts", str(FIXTURE), "-q", db=db_path)
    assert out.returncode == 0, out.stderr
    out = cli("report", "daily", "--tz", "UTC", "--format", "json", db=db_path)
    assert out.returncode == 0, out.stderr
    days = json.loads(out.stdout)
    assert len(days) == 1
    day = days[0]
    assert day["date"] == "2026-11-25"
    assert (day["input_tokens"], day["output_tokens"], day["cache_read_tokens"], day["cache_creation_tokens"]) == \
        (175, 120, 8150, 4250)
    assert day["cost_usd"] == pytest.approx(0.0345125, abs=1e-12)
    assert day["unpriced_models"] == []
    assert [m["model"] for m in day["models"]] == ["claude-opus-4-8"]
    assert day["models"][0]["cost_usd"] == pytest.approx(0.0345125, abs=1e-12)
    own = json.loads((Path(__file__).parent / "fixtures" / "claude_output_format_json.json").read_text())
    assert own["total_cost_usd"] == pytest.approx(day["cost_usd"], abs=1e-12)


def test_sessions_prompts_and_tool_uses_are_modelled(warehouse):
    ingest_paths(warehouse, [FIXTURE], host="h1", include_defaults=False)
    s = warehouse.query("SELECT * FROM session")
    assert len(s) == 1 and s[0]["session_id"] == "3649b710-3145-482c-8c8e-916950e37083"
    assert s[0]["git_branch"] == "master" and s[0]["version"] == "2.1.197" and s[0]["entrypoint"] == "sdk-cli"
    assert s[0]["cwd"] == "/home/dev/runs/final-json/repo" and s[0]["prompt_count"] == 1
    prompts = warehouse.query("SELECT * FROM prompt")
    assert [(p["prompt_id"], p["length"], p["text"]) for p in prompts] == \
        [("342adb50-3590-4f55-a771-d32b549b7c17", len("create hello.txt"), None)]
    tools = warehouse.query("SELECT tool_name, is_error, result_ts IS NOT NULL AS answered FROM tool_use ORDER BY ts")
    assert tools == [{"tool_name": "Write", "is_error": False, "answered": True},
                     {"tool_name": "Bash", "is_error": False, "answered": True}]


def test_content_is_not_stored_unless_enabled(warehouse, tmp_path):
    ingest_paths(warehouse, [FIXTURE], host="h", include_defaults=False)
    raw = " ".join(r["raw"] for r in warehouse.query("SELECT raw FROM landing_transcript_line"))
    assert "create hello.txt" not in raw  # the prompt text
    assert '"requestId"' in raw and '"usage"' in raw  # the envelope is kept
    other = open_warehouse(tmp_path / "content.duckdb")
    ingest_paths(other, [FIXTURE], host="h", include_defaults=False, capture_content=True)
    assert other.scalar("SELECT text FROM prompt") == "create hello.txt"
    other.close()


def test_second_ingest_reads_nothing_and_changes_nothing(warehouse, tmp_path):
    root = tmp_path / "projects"
    generate(root, target_bytes=400_000, seed=3)
    first = ingest_paths(warehouse, [root], host="h", include_defaults=False)
    before = totals(warehouse)
    lines = warehouse.scalar("SELECT count(*) FROM landing_transcript_line")
    second = ingest_paths(warehouse, [root], host="h", include_defaults=False)
    assert first.new_lines > 0 and second.bytes == 0 and second.new_lines == 0
    assert totals(warehouse) == before
    assert warehouse.scalar("SELECT count(*) FROM landing_transcript_line") == lines


def test_generated_corpus_matches_ground_truth(warehouse, tmp_path):
    root = tmp_path / "projects"
    truth = generate(root, target_bytes=1_500_000, seed=11)
    stats = ingest_paths(warehouse, [root], host="h", include_defaults=False)
    assert stats.quarantined == truth.junk_lines
    expected = truth.totals()
    got = totals(warehouse)
    assert {k: got[k] for k in expected} == expected
    # landing + quarantine account for every line written (copies get a new uuid, so each lands once)
    landed = warehouse.scalar("SELECT count(*) FROM landing_transcript_line")
    assert landed + stats.quarantined == truth.lines


def test_quarantine_keeps_file_offset_and_reason(warehouse, tmp_path):
    f = tmp_path / "p" / "s.jsonl"
    f.parent.mkdir()
    good = FIXTURE.read_bytes().splitlines(keepends=True)
    junk = [b'{"type": "assistant", "message": {\n', b"\xff\xfe not utf8\n", b"42\n", b"\n", b"   \n"]
    f.write_bytes(good[0] + junk[0] + junk[1] + junk[2] + junk[3] + junk[4] + b"".join(good[1:]))
    stats = ingest_paths(warehouse, [f], host="h", include_defaults=False)
    assert stats.quarantined == 3
    q = warehouse.query("SELECT byte_offset, reason FROM quarantine ORDER BY byte_offset")
    off = len(good[0])
    assert q == [{"byte_offset": off, "reason": "invalid JSON"},
                 {"byte_offset": off + len(junk[0]), "reason": "invalid UTF-8"},
                 {"byte_offset": off + len(junk[0]) + len(junk[1]), "reason": "not a JSON object"}]
    assert totals(warehouse)["output"] == 120  # the good lines around the junk still count
    # the CLI says so, in one line, without a traceback
    out = cli("report", "quarantine", "--format", "json", db=tmp_path / "other.duckdb")
    assert out.returncode == 0


def test_partial_trailing_line_is_left_for_next_time(warehouse, tmp_path):
    f = tmp_path / "s.jsonl"
    data = FIXTURE.read_bytes()
    cut = data.index(b"msg_fake_b47cedea2c6f473eac33") + 5  # in the middle of the last request's line
    f.write_bytes(data[:cut])
    ingest_paths(warehouse, [f], host="h", include_defaults=False)
    assert totals(warehouse)["requests"] == 2
    assert warehouse.scalar("SELECT count(*) FROM quarantine") == 0  # the partial line is not junk
    with open(f, "ab") as fh:
        fh.write(data[cut:])
    ingest_paths(warehouse, [f], host="h", include_defaults=False)
    assert totals(warehouse) == {"input": 175, "output": 120, "cache_creation": 4250, "cache_read": 8150,
                                 "requests": 3}


def test_a_first_line_still_being_written_is_not_taken_for_a_replaced_file(warehouse, tmp_path):
    """Seen while Claude Code writes its first line, the file's head hash is that of a partial line;
    once the line is complete the hash differs, but nothing was read yet: same file, same generation."""
    f = tmp_path / "s.jsonl"
    data = FIXTURE.read_bytes()
    f.write_bytes(data[:40])  # no newline yet
    assert ingest_paths(warehouse, [f], host="h", include_defaults=False).new_lines == 0
    f.write_bytes(data)  # the same file, finished (written in place: same inode)
    ingest_paths(warehouse, [f], host="h", include_defaults=False)
    assert totals(warehouse)["requests"] == 3
    assert warehouse.scalar("SELECT max(generation) FROM landing_transcript_line") == 1
    assert warehouse.scalar("SELECT generation FROM transcript_file") == 1
    with open(f, "r+b") as fh:  # a real rewrite after lines were read is still a new generation
        fh.write(b'{"type":"x","sessionId":"other","uuid":"u"}\n')
        fh.truncate()
    ingest_paths(warehouse, [f], host="h", include_defaults=False)
    assert warehouse.scalar("SELECT generation FROM transcript_file") == 2


def test_truncated_and_replaced_files_are_reread_without_double_counting(warehouse, tmp_path):
    f = tmp_path / "s.jsonl"
    data = FIXTURE.read_bytes()
    f.write_bytes(data)
    ingest_paths(warehouse, [f], host="h", include_defaults=False)
    f.write_bytes(data[: data.index(b"\n") + 1])  # truncated to one line
    ingest_paths(warehouse, [f], host="h", include_defaults=False)
    f.write_bytes(data)  # and rewritten whole (new generation)
    ingest_paths(warehouse, [f], host="h", include_defaults=False)
    gen = warehouse.scalar("SELECT generation FROM transcript_file")
    assert gen >= 2
    assert totals(warehouse)["output"] == 120 and totals(warehouse)["requests"] == 3
    # replaced by a different file with the same name (new inode, new first line)
    other = tmp_path / "other.jsonl"
    generate(tmp_path / "gen", target_bytes=50_000, seed=5)
    src = next((tmp_path / "gen").rglob("*.jsonl"))
    shutil.copy(src, other)
    os.replace(other, f)
    ingest_paths(warehouse, [f], host="h", include_defaults=False)
    assert totals(warehouse)["requests"] > 3


def test_reply_split_over_lines_and_copies_count_once(warehouse, tmp_path):
    lines = [json.loads(x) for x in FIXTURE.read_text().splitlines()]
    replies = [x for x in lines if x["type"] == "assistant"]
    first = replies[0]
    snapshot = json.loads(json.dumps(first))
    snapshot["uuid"] = "00000000-0000-0000-0000-000000000001"
    snapshot["message"]["usage"]["output_tokens"] = 1  # an early streaming snapshot of the same request
    copy = json.loads(json.dumps(first))
    copy["uuid"] = "00000000-0000-0000-0000-000000000002"
    copy["sessionId"] = "another-session"
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(x) for x in [snapshot, *lines]) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps(copy) + "\n")
    ingest_paths(warehouse, [tmp_path], host="h", include_defaults=False)
    assert totals(warehouse) == {"input": 175, "output": 120, "cache_creation": 4250, "cache_read": 8150,
                                 "requests": 3}


def test_a_message_replayed_under_another_request_id_counts_once(warehouse, tmp_path):
    """A sidechain replay copies a reply under a new requestId: the message counts once, under the
    request seen first (in time, then file and offset), whether the copy comes in the same run or later."""
    def reply(uuid, request, ts, sidechain, session="s1"):
        return json.dumps({"type": "assistant", "sessionId": session, "uuid": uuid, "timestamp": ts,
                           "requestId": request, "isSidechain": sidechain,
                           "message": {"id": "msg_same", "model": "claude-sonnet-4-5",
                                       "usage": {"input_tokens": 100, "output_tokens": 10}}}) + "\n"

    a = tmp_path / "a.jsonl"
    a.write_text(reply("u1", "req_first", "2026-10-02T10:00:00Z", False)
                 + reply("u2", "req_replay", "2026-10-02T10:05:00Z", True))
    ingest_paths(warehouse, [a], host="h", include_defaults=False)
    assert [r["request_key"] for r in warehouse.query("SELECT request_key FROM api_request")] == ["req_first"]
    b = tmp_path / "b.jsonl"  # a later run brings another copy, under a third request id
    b.write_text(reply("u3", "req_later", "2026-10-02T10:07:00Z", True, session="s2"))
    ingest_paths(warehouse, [b], host="h", include_defaults=False)
    rows = warehouse.query("SELECT request_key, input_tokens FROM api_request")
    assert rows == [{"request_key": "req_first", "input_tokens": 100}]
    c = tmp_path / "c.jsonl"  # another message with its own request is not touched
    c.write_text(reply("u4", "req_other", "2026-10-02T10:08:00Z", False).replace("msg_same", "msg_other"))
    ingest_paths(warehouse, [c], host="h", include_defaults=False)
    assert sorted(r["request_key"] for r in warehouse.query("SELECT request_key FROM api_request")) == [
        "req_first", "req_other"]


def test_unpriced_model_shows_tokens_and_no_cost(tmp_path, db_path):
    rec = json.loads(FIXTURE.read_text().splitlines()[5])
    assert rec["type"] == "assistant"
    rec["message"]["model"] = "claude-imaginary-9"
    f = tmp_path / "u.jsonl"
    f.write_text(json.dumps(rec) + "\n")
    assert cli("ingest", "transcripts", str(f), "-q", db=db_path).returncode == 0
    day = json.loads(cli("report", "daily", "--tz", "UTC", "-f", "json", db=db_path).stdout)[0]
    assert day["unpriced_models"] == ["claude-imaginary-9"]
    assert day["cost_usd"] is None and day["output_tokens"] == 60
    table = cli("report", "daily", "--tz", "UTC", db=db_path).stdout
    assert "unpriced" in table and "claude-imaginary-9" in table


def test_requests_without_a_readable_timestamp_are_noted_not_dropped(tmp_path, db_path, isolated_env):
    lines = FIXTURE.read_text().splitlines()
    dated = json.loads(lines[5])
    undated = json.loads(lines[11])
    assert dated["type"] == undated["type"] == "assistant" and dated["requestId"] != undated["requestId"]
    undated["timestamp"] = "yesterday afternoon"
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps(dated) + "\n" + json.dumps(undated) + "\n")
    assert cli("ingest", "transcripts", str(f), "-q", db=db_path).returncode == 0
    u = undated["message"]["usage"]
    tokens = sum(u.get(k, 0) for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                                        "cache_read_input_tokens"))
    note = (f"note: 1 request ({tokens:,} tokens) has no readable timestamp and is in no row of this report: "
            'cclens query "SELECT * FROM api_request WHERE ts IS NULL"')
    for args in (["report", "daily", "-f", "json"], ["report", "monthly"], ["report", "sessions", "-f", "csv"],
                 ["report", "projects"], ["report", "models", "-f", "json"]):
        out = cli(*args, "--tz", "UTC", db=db_path)
        assert out.returncode == 0 and note in out.stderr.replace("\n", " ").replace("  ", " "), (args, out.stderr)
    day = json.loads(cli("report", "daily", "--tz", "UTC", "-f", "json", db=db_path).stdout)
    assert sum(d["requests"] for d in day) == 1  # the stdout stays the report: the dated request only
    # only the requests the report's filters would take are counted
    other = cli("report", "daily", "--tz", "UTC", "--project", "/no/such/project", db=db_path)
    assert "note:" not in other.stderr
    f.write_text(json.dumps(dated) + "\n")
    clean = tmp_path / "clean.duckdb"
    assert "note:" not in cli("report", "daily", "--tz", "UTC", db=clean).stderr


def test_days_follow_the_time_zone(tmp_path, db_path):
    rec = json.loads(FIXTURE.read_text().splitlines()[5])
    rec["timestamp"] = "2026-11-25T02:30:00.000Z"
    f = tmp_path / "tz.jsonl"
    f.write_text(json.dumps(rec) + "\n")
    cli("ingest", "transcripts", str(f), "-q", db=db_path)
    utc = json.loads(cli("report", "daily", "--tz", "UTC", "-f", "json", db=db_path).stdout)
    ny = json.loads(cli("report", "daily", "--tz", "America/New_York", "-f", "json", db=db_path).stdout)
    assert [d["date"] for d in utc] == ["2026-11-25"] and [d["date"] for d in ny] == ["2026-11-24"]
    since = json.loads(cli("report", "daily", "--tz", "UTC", "--since", "20261126", "-f", "json", db=db_path).stdout)
    assert since == []
    bad = cli("report", "daily", "--since", "yesterday", db=db_path)
    assert bad.returncode != 0 and "--since" in bad.stderr


def test_discovery_covers_every_documented_root(tmp_path, monkeypatch, isolated_env):
    home = isolated_env
    paths = [home / ".claude/projects/p1/s1.jsonl", home / ".config/claude/projects/p2/s2.jsonl",
             tmp_path / "cfgA/projects/p3/s3.jsonl", tmp_path / "cfgB/projects/p4/s4.jsonl",
             home / ".claude/projects/p1/s1/subagents/agent-a1.jsonl"]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{tmp_path / 'cfgA'},{tmp_path / 'cfgB'}")
    found = {str(p) for p in discover()}
    assert found == {str(p.resolve()) for p in paths}
    assert [str(p) for p in discover([paths[0]], include_defaults=False)] == [str(paths[0].resolve())]


def test_read_new_reports_nothing_for_an_unchanged_file(tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_bytes(FIXTURE.read_bytes())
    chunk, cursor = read_new(f, None)
    assert chunk is not None and chunk.end_offset == f.stat().st_size
    again, cursor2 = read_new(f, cursor)
    assert again is None and cursor2.offset == cursor.offset


def test_price_table_matches_published_opus_and_sonnet_rates():
    table = bundled_table()
    assert table.cost("claude-sonnet-4-5-20250929", input_tokens=175, output_tokens=120, cache_write_5m=4250,
                      cache_read=8150) == pytest.approx(0.0207075, abs=1e-12)
    assert table.resolve("claude-opus-4-8[1m]").key == "claude-opus-4-8"
    assert table.resolve("<synthetic>") is None


def test_commit_ids_are_kept_without_content_capture(warehouse, tmp_path):
    """A Bash tool result that made a commit keeps toolUseResult.gitOperation (an id, not content)."""
    lines = [json.loads(x) for x in FIXTURE.read_text().splitlines()]
    result = next(x for x in lines if x["type"] == "user" and isinstance(x["message"]["content"], list))
    result["toolUseResult"] = {"stdout": "[main 3c76dfa] secret message", "stderr": "",
                               "gitOperation": {"commit": {"sha": "3c76dfa", "kind": "committed"}}}
    f = tmp_path / "g.jsonl"
    f.write_text(json.dumps(result) + "\n")
    ingest_paths(warehouse, [f], host="h", include_defaults=False)
    raw = json.loads(warehouse.scalar("SELECT raw FROM landing_transcript_line"))
    assert raw["toolUseResult"] == {"gitOperation": {"commit": {"sha": "3c76dfa", "kind": "committed"}}}
    assert "secret message" not in json.dumps(raw) and "content" not in raw["message"]
