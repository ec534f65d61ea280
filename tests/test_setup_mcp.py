"""``cclens setup claude-code --mcp`` / ``--mcp-only``: the cclens MCP server in Claude Code's MCP
configuration, in the format ``claude mcp add`` writes (checked against the real Claude Code 2.1.197:
``~/.claude.json`` ``mcpServers`` for user scope, ``projects.<dir>.mcpServers`` for local scope,
``.mcp.json`` for project scope). The end-to-end test shows Claude Code using what is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cclens.errors import ConfigError
from cclens.setup_claude_code import claude_json_path, mcp_entry, merge_mcp

SERVER = "http://127.0.0.1:8765"


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cclens.cli", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**os.environ, **(env or {})})


def test_user_scope_http_with_telemetry_keeps_claude_state_and_is_idempotent(isolated_env):
    state = isolated_env / ".claude.json"
    state.write_text(json.dumps({"numStartups": 7, "userID": "u1", "projects": {"/x": {"allowedTools": []}},
                                 "mcpServers": {"github": {"type": "http", "url": "https://example.com/mcp"}}}))
    r = cli("setup", "claude-code", "--server", SERVER, "--token", "ingest-1", "--mcp", "--mcp-token", "view-1",
            "--write")
    assert r.returncode == 0, r.stderr
    doc = json.loads(state.read_text())
    assert doc["numStartups"] == 7 and doc["userID"] == "u1" and doc["projects"] == {"/x": {"allowedTools": []}}
    assert doc["mcpServers"]["github"] == {"type": "http", "url": "https://example.com/mcp"}
    assert doc["mcpServers"]["cclens"] == {"type": "http", "url": SERVER + "/mcp",
                                           "headers": {"Authorization": "Bearer view-1"}}
    assert oct(os.stat(state).st_mode & 0o777) == "0o600"
    assert state.with_name(".claude.json.cclens-backup").exists()
    # the telemetry part is written as before, with the ingest token (not the MCP one)
    settings = json.loads((isolated_env / ".claude" / "settings.json").read_text())
    assert settings["env"]["CCLENS_SERVER_TOKEN"] == "ingest-1" and "view-1" not in json.dumps(settings)
    first = state.read_text()
    assert cli("setup", "claude-code", "--server", SERVER, "--token", "ingest-1", "--mcp", "--mcp-token", "view-1",
               "--write").returncode == 0
    assert state.read_text() == first


def test_mcp_only_stdio_local_scope(isolated_env, tmp_path):
    project = tmp_path / "repo"
    project.mkdir()
    db = tmp_path / "data" / "wh.duckdb"
    r = cli("--db", str(db), "setup", "claude-code", "--mcp-only", "--mcp-transport", "stdio", "--scope", "local",
            "--write", cwd=project)
    assert r.returncode == 0, r.stderr
    doc = json.loads((isolated_env / ".claude.json").read_text())
    entry = doc["projects"][str(project.resolve())]["mcpServers"]["cclens"]
    assert entry["type"] == "stdio" and entry["args"][-3:] == ["--db", str(db.resolve()), "mcp"]
    assert Path(entry["command"]).name in ("cclens", Path(sys.executable).name)
    assert not (isolated_env / ".claude" / "settings.json").exists(), "--mcp-only writes no telemetry settings"
    assert not (project / ".claude").exists()


def test_project_scope_keeps_the_token_out_of_the_file(isolated_env, tmp_path):
    project = tmp_path / "repo"
    project.mkdir()
    r = cli("setup", "claude-code", "--server", "https://cclens.example.com", "--mcp-only", "--mcp-token", "secret-9",
            "--scope", "project", "--write", cwd=project)
    assert r.returncode == 0, r.stderr
    text = (project / ".mcp.json").read_text()
    assert "secret-9" not in text and "CCLENS_MCP_TOKEN" in r.stderr
    assert json.loads(text)["mcpServers"]["cclens"] == {
        "type": "http", "url": "https://cclens.example.com/mcp",
        "headers": {"Authorization": "Bearer ${CCLENS_MCP_TOKEN}"}}


def test_printing_and_errors(isolated_env):
    r = cli("setup", "claude-code", "--server", "https://cclens.example.com", "--mcp-only")
    assert r.returncode == 0 and not (isolated_env / ".claude.json").exists()
    assert json.loads(r.stdout) == {"mcpServers": {"cclens": {"type": "http",
                                                              "url": "https://cclens.example.com/mcp"}}}
    assert "needs a token" in r.stderr   # off loopback the endpoint requires one
    r = cli("setup", "claude-code", "--mcp-only")
    assert r.returncode == 2 and "--server" in r.stderr and "Traceback" not in r.stderr
    r = cli("setup", "claude-code", "--server", SERVER, "--mcp-only", "--mcp-transport", "carrier-pigeon")
    assert r.returncode == 2 and "use http or stdio" in r.stderr
    (isolated_env / ".claude.json").write_text("{ broken")
    r = cli("setup", "claude-code", "--server", SERVER, "--mcp-only", "--write")
    assert r.returncode == 2 and "not valid JSON" in r.stderr
    assert (isolated_env / ".claude.json").read_text() == "{ broken"


def test_library_pieces(monkeypatch, tmp_path):
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cfg"))
    assert claude_json_path() == tmp_path / "cfg" / ".claude.json"
    with pytest.raises(ConfigError, match="needs --server"):
        mcp_entry("http")
    assert mcp_entry("stdio", command=["cclens"]) == {"type": "stdio", "command": "cclens", "args": ["mcp"],
                                                      "env": {}}
    doc = merge_mcp({"projects": "not a dict"}, ["projects", "/p", "mcpServers"], "cclens", {"type": "stdio"})
    assert doc == {"projects": {"/p": {"mcpServers": {"cclens": {"type": "stdio"}}}}}
