"""``cclens setup claude-code`` (blocks, merge, managed) and ``cclens doctor`` against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cclens.config import load_settings
from cclens.doctor import run_checks
from cclens.errors import ConfigError
from cclens.server.app import create_app
from cclens.server.auth import create_token
from cclens.setup_claude_code import (HOOKED_EVENTS, SetupOptions, merge_settings, settings_fragment,
                                      setup_claude_code)
from serve_support import ThreadServer, free_port
from ship_support import run_ship_once

SERVER = "http://127.0.0.1:8765"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cclens.cli", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def by_status(checks):
    return {c.name: c.status for c in checks}


def test_fragment_covers_every_event_the_right_way():
    frag = settings_fragment(SetupOptions(server=SERVER + "/", token="tok", protocol="http/json"))
    env, hooks = frag["env"], frag["hooks"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == SERVER and env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/json"
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == "Authorization=Bearer tok"  # a space, not %20
    assert env["CLAUDE_CODE_ENABLE_TELEMETRY"] == "1" and env["CCLENS_SERVER_TOKEN"] == "tok"
    assert set(hooks) == set(HOOKED_EVENTS) and len(hooks) == 28
    assert "WorktreeCreate" not in hooks and "WorktreeRemove" not in hooks
    for event, groups in hooks.items():
        (handler,) = groups[0]["hooks"]
        if event in ("SessionStart", "Setup"):
            assert handler["type"] == "command" and "--server http://127.0.0.1:8765" in handler["command"]
        else:
            assert handler == {"type": "http", "url": SERVER + "/hooks", "timeout": 2,
                               "headers": {"Authorization": "Bearer $CCLENS_SERVER_TOKEN"},
                               "allowedEnvVars": ["CCLENS_SERVER_TOKEN"]}
    everything_command = settings_fragment(SetupOptions(server=SERVER, hook_transport="command"))["hooks"]
    assert {g[0]["hooks"][0]["type"] for g in everything_command.values()} == {"command"}
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in settings_fragment(SetupOptions(server=SERVER))["env"]
    for bad in ("localhost:8765", "ftp://x"):
        with pytest.raises(ConfigError):
            SetupOptions(server=bad)


def test_write_merges_keeps_user_settings_and_is_idempotent(isolated_env):
    path = isolated_env / ".claude" / "settings.json"
    path.parent.mkdir()
    user_hook = {"type": "command", "command": "~/bin/lint.sh"}
    path.write_text(json.dumps({
        "model": "sonnet", "env": {"FOO": "1", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://old:1"},
        "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [user_hook]}],
                  "Stop": [{"hooks": [{"type": "http", "url": "http://old:1/hooks"}]}]},
        "allowedHttpHookUrls": ["https://corp.example/*"]}))
    r = cli("setup", "claude-code", "--server", SERVER, "--token", "t1", "--write")
    assert r.returncode == 0, r.stderr
    doc = json.loads(path.read_text())
    assert doc["model"] == "sonnet" and doc["env"]["FOO"] == "1"
    assert doc["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == SERVER
    assert doc["hooks"]["PreToolUse"][0] == {"matcher": "Bash", "hooks": [user_hook]}
    assert len(doc["hooks"]["PreToolUse"]) == 2
    assert [h["url"] for g in doc["hooks"]["Stop"] for h in g["hooks"]] == [SERVER + "/hooks"]  # old one replaced
    assert doc["allowedHttpHookUrls"] == ["https://corp.example/*", SERVER + "/hooks"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert path.with_name("settings.json.cclens-backup").exists()
    first = path.read_text()
    assert cli("setup", "claude-code", "--server", SERVER, "--token", "t1", "--write").returncode == 0
    assert path.read_text() == first
    # printing does not touch the file
    r = cli("setup", "claude-code", "--server", "http://other:9")
    assert r.returncode == 0 and json.loads(r.stdout)["env"]["CCLENS_SERVER_URL"] == "http://other:9"
    assert path.read_text() == first


def test_invalid_settings_file_is_one_line_error(isolated_env):
    path = isolated_env / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text("{ not json")
    r = cli("setup", "claude-code", "--server", SERVER, "--write")
    assert r.returncode == 2 and "not valid JSON" in r.stderr and "Traceback" not in r.stderr
    assert path.read_text() == "{ not json"


def test_managed_and_project_targets(tmp_path):
    target = tmp_path / "managed-settings.json"
    r = cli("setup", "claude-code", "--server", SERVER, "--managed", "--write", "--settings-file", str(target))
    assert r.returncode == 0, r.stderr
    doc = json.loads(target.read_text())
    assert doc["hooks"]["SessionStart"][0]["hooks"][0]["command"] == f"cclens-hook --server {SERVER}"
    project = tmp_path / "repo"
    project.mkdir()
    r = cli("setup", "claude-code", "--server", SERVER, "--scope", "local", "--write", cwd=project)
    assert r.returncode == 0 and (project / ".claude" / "settings.local.json").exists()
    merged = merge_settings({}, settings_fragment(SetupOptions(server=SERVER)))
    assert "allowedHttpHookUrls" not in merged  # no allow-list is created where there was none


def test_doctor_walks_a_machine_to_green(warehouse, db_path, isolated_env, fixtures, monkeypatch):
    monkeypatch.setenv("CCLENS_SERVER_WATCH_TRANSCRIPTS", "0")
    _, token = create_token(warehouse, "ingest", "laptops")
    app = create_app(load_settings(db=db_path), warehouse, router_modules=["hooks", "transcripts_api"],
                     require_auth=True)
    with ThreadServer(app) as srv:
        checks = run_checks(srv.url)
        assert by_status(checks)["settings"] == "fail"
        assert any(c.fix and "cclens setup claude-code" in c.fix for c in checks)
        setup_claude_code(SetupOptions(server=srv.url, token=token), write=True)
        checks = run_checks()
        status = by_status(checks)
        assert {k: status[k] for k in ("settings", "hooks", "hook shim", "telemetry", "server", "token")} == {
            k: "ok" for k in ("settings", "hooks", "hook shim", "telemetry", "server", "token")}
        assert status["transcripts"] == "warn"
        # a transcript appears: it must be shipped
        dest = isolated_env / ".claude" / "projects" / "-r" / "s1.jsonl"
        dest.parent.mkdir(parents=True)
        dest.write_bytes((fixtures / "transcript_main_session.jsonl").read_bytes())
        shipping = next(c for c in run_checks() if c.name == "shipping")
        assert shipping.status == "fail" and shipping.fix.startswith(f"cclens ship --server {srv.url}")
        assert run_ship_once(srv.url, "--token", token).returncode == 0
        assert by_status(run_checks())["shipping"] == "ok"
        # the CLI says the same, with exit 0 when nothing fails
        r = cli("doctor", "--format", "json")
        assert r.returncode == 0, r.stdout + r.stderr
        assert {row["status"] for row in json.loads(r.stdout)} <= {"ok", "warn"}
        # a wrong token and an inconsistent endpoint are each reported with their fix
        token_check = next(c for c in run_checks(token="ccl_wrong_token") if c.name == "token")
        assert token_check.status == "fail" and "cclens token create --role ingest" in token_check.fix
        path = isolated_env / ".claude" / "settings.json"
        doc = json.loads(path.read_text())
        doc["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:1"
        path.write_text(json.dumps(doc))
        telemetry = next(c for c in run_checks() if c.name == "telemetry")
        assert telemetry.status == "fail" and "OTLP goes to http://127.0.0.1:1" in telemetry.detail
        assert telemetry.fix.startswith("cclens setup claude-code --server")
    down = run_checks(f"http://127.0.0.1:{free_port()}")
    assert by_status(down)["server"] == "fail"
    r = cli("doctor")
    assert r.returncode == 1 and "Traceback" not in r.stderr
