"""``cclens setup claude-code``: the Claude Code settings that send everything to a cclens server.

:func:`settings_fragment` builds the two blocks Claude Code needs:

* ``env`` – OpenTelemetry on (``CLAUDE_CODE_ENABLE_TELEMETRY=1``), OTLP metrics and logs to the server
  (``OTEL_EXPORTER_OTLP_ENDPOINT``; Claude Code appends ``/v1/metrics`` and ``/v1/logs``), the protocol
  (``http/protobuf`` by default, or ``http/json``), export intervals, the ingest token as
  ``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer <token>`` (Claude Code 2.1 does not percent-decode
  this variable, so the space is written as is), and ``CCLENS_SERVER_URL``/``CCLENS_SERVER_TOKEN`` for
  the hook shim and the HTTP hooks' ``Authorization`` header;
* ``hooks`` – for every hook event an HTTP hook POSTing to ``<server>/hooks`` (fast, no process), except
  ``SessionStart`` and ``Setup``, for which Claude Code never sends HTTP hooks: those run the
  ``cclens hook`` shim (always exit 0, silent, bounded time, spools when the server is away). With
  ``hook_transport="command"`` every event uses the shim (slower, but nothing is lost during an
  outage). ``WorktreeCreate``/``WorktreeRemove`` get no hook: a hook there *replaces* git's own
  worktree handling.

:func:`merge_settings` merges the fragment into an existing settings document without touching the
user's own hooks or env (earlier cclens entries are replaced, so re-running is idempotent);
:func:`write_settings` writes it atomically, keeping a backup. :func:`settings_path` says where each
scope lives, including the managed (organisation-wide) file.

With ``--mcp``, :func:`setup_mcp` also adds the cclens MCP server to Claude Code's MCP configuration, in the
format ``claude mcp add`` writes: ``~/.claude.json`` ``mcpServers`` (user scope; ``projects.<dir>.mcpServers``
for local scope), ``<project>/.mcp.json`` (project scope) or ``managed-mcp.json``. An HTTP entry is
``{"type": "http", "url": "<server>/mcp", "headers": {"Authorization": "Bearer …"}}``, a stdio entry
``{"type": "stdio", "command": "…/cclens", "args": ["--db", "…", "mcp"], "env": {}}`` (:func:`mcp_entry`).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .sources.hooks import KNOWN_EVENTS

COMMAND_ONLY_EVENTS = ("SessionStart", "Setup")  # Claude Code skips HTTP hooks for these
NEVER_HOOKED = ("WorktreeCreate", "WorktreeRemove")  # a hook replaces git worktree creation/removal
HOOKED_EVENTS = tuple(e for e in KNOWN_EVENTS if e not in NEVER_HOOKED)
TOKEN_ENV = "CCLENS_SERVER_TOKEN"
URL_ENV = "CCLENS_SERVER_URL"
PROTOCOLS = ("http/protobuf", "http/json")
SCOPES = ("user", "project", "local", "managed")
# Env keys this command owns (removed from a settings file's env when no longer wanted).
OWNED_ENV = ("CLAUDE_CODE_ENABLE_TELEMETRY", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
             "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
             "OTEL_METRIC_EXPORT_INTERVAL", "OTEL_LOGS_EXPORT_INTERVAL", "OTEL_LOG_USER_PROMPTS",
             "OTEL_LOG_TOOL_DETAILS", URL_ENV, TOKEN_ENV)


@dataclass
class SetupOptions:
    """What to configure. ``server`` is the base URL of ``cclens serve`` (no path)."""

    server: str
    token: str | None = None
    protocol: str = "http/protobuf"
    hook_transport: str = "http"  # or "command"
    hook_command: str | None = None  # the shim's command line; default: this installation's cclens-hook
    metrics_interval_ms: int = 60_000
    logs_interval_ms: int = 5_000
    log_prompts: bool = False
    log_tool_details: bool = False
    http_timeout_s: int = 2
    command_timeout_s: int = 5

    def __post_init__(self) -> None:
        self.server = normalise_server(self.server)
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown OTLP protocol {self.protocol!r}; use one of {', '.join(PROTOCOLS)}")
        if self.hook_transport not in ("http", "command"):
            raise ConfigError(f"unknown hook transport {self.hook_transport!r}; use http or command")


def normalise_server(server: str) -> str:
    """``server`` as a base URL (scheme and host required, no trailing slash)."""
    parts = urlsplit(server.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{server!r} is not a server URL; pass something like http://127.0.0.1:8765 or "
                          "https://cclens.example.com")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def default_hook_command() -> str:
    """The shim of this installation: ``cclens-hook`` next to the running interpreter, else on PATH,
    else ``<python> -m cclens.hook_shim``."""
    beside = Path(sys.executable).with_name("cclens-hook")
    if beside.exists():
        return shlex.quote(str(beside))
    found = shutil.which("cclens-hook")
    if found:
        return shlex.quote(found)
    return f"{shlex.quote(sys.executable)} -m cclens.hook_shim"


def telemetry_env(opts: SetupOptions) -> dict[str, str]:
    env = {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": opts.protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": opts.server,
        "OTEL_METRIC_EXPORT_INTERVAL": str(opts.metrics_interval_ms),
        "OTEL_LOGS_EXPORT_INTERVAL": str(opts.logs_interval_ms),
        URL_ENV: opts.server,
    }
    if opts.token:
        env["OTEL_EXPORTER_OTLP_HEADERS"] = f"Authorization=Bearer {opts.token}"
        env[TOKEN_ENV] = opts.token
    if opts.log_prompts:
        env["OTEL_LOG_USER_PROMPTS"] = "1"
    if opts.log_tool_details:
        env["OTEL_LOG_TOOL_DETAILS"] = "1"
    return env


def http_handler(opts: SetupOptions) -> dict[str, Any]:
    handler: dict[str, Any] = {"type": "http", "url": f"{opts.server}/hooks", "timeout": opts.http_timeout_s}
    if opts.token:
        # Interpolated by Claude Code from the env block above; the token is not repeated here.
        handler["headers"] = {"Authorization": f"Bearer ${TOKEN_ENV}"}
        handler["allowedEnvVars"] = [TOKEN_ENV]
    return handler


def command_handler(opts: SetupOptions) -> dict[str, Any]:
    # The URL comes from the env block (CCLENS_SERVER_URL) too; it is repeated so that the command
    # works when a user's own env overrides it.
    cmd = f"{opts.hook_command or default_hook_command()} --server {shlex.quote(opts.server)}"
    return {"type": "command", "command": cmd, "timeout": opts.command_timeout_s}


def hooks_block(opts: SetupOptions) -> dict[str, list[dict[str, Any]]]:
    block: dict[str, list[dict[str, Any]]] = {}
    for event in HOOKED_EVENTS:
        use_command = opts.hook_transport == "command" or event in COMMAND_ONLY_EVENTS
        block[event] = [{"hooks": [command_handler(opts) if use_command else http_handler(opts)]}]
    return block


def settings_fragment(opts: SetupOptions) -> dict[str, Any]:
    """The ``env`` and ``hooks`` blocks for ``opts``."""
    return {"env": telemetry_env(opts), "hooks": hooks_block(opts)}


# -- where settings live ----------------------------------------------------------------------------
def managed_dir() -> Path:
    """Claude Code's managed-settings directory on this OS (read by every user's Claude Code)."""
    system = platform.system()
    if system == "Darwin":
        return Path("/Library/Application Support/ClaudeCode")
    if system == "Windows":
        return Path(r"C:\Program Files\ClaudeCode")
    return Path("/etc/claude-code")


def settings_path(scope: str, *, project_dir: Path | None = None) -> Path:
    """The settings file of ``scope``: user (``~/.claude/settings.json``), project
    (``.claude/settings.json``), local (``.claude/settings.local.json``) or managed."""
    if scope == "user":
        config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
        base = Path(config_dir.split(",")[0]).expanduser() if config_dir else Path.home() / ".claude"
        return base / "settings.json"
    if scope in ("project", "local"):
        base = (project_dir or Path.cwd()) / ".claude"
        return base / ("settings.json" if scope == "project" else "settings.local.json")
    if scope == "managed":
        return managed_dir() / "managed-settings.json"
    raise ConfigError(f"unknown settings scope {scope!r}; use one of {', '.join(SCOPES)}")


# -- merging ------------------------------------------------------------------------------------------
def is_cclens_handler(handler: Any) -> bool:
    """True for a hook handler written by this command (any server): an HTTP hook to ``…/hooks`` or a
    command running the cclens shim."""
    if not isinstance(handler, dict):
        return False
    if handler.get("type") == "http":
        return urlsplit(str(handler.get("url", ""))).path.rstrip("/").endswith("/hooks")
    if handler.get("type") == "command":
        cmd = str(handler.get("command", ""))
        return "cclens-hook" in cmd or "cclens.hook_shim" in cmd or " hook --server" in cmd
    return False


def load_settings_file(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` ({} when the file does not exist)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read Claude Code settings {path}: {exc.strerror or exc}") from None
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"Claude Code settings {path} are not valid JSON ({exc}); fix or move the file, "
                          "then run the command again") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"Claude Code settings {path} are not a JSON object; fix or move the file")
    return doc


def merge_settings(existing: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    """``existing`` with cclens's env keys set and its hooks replaced; everything else kept."""
    doc = json.loads(json.dumps(existing))  # deep copy
    env = doc.get("env") if isinstance(doc.get("env"), dict) else {}
    for key in OWNED_ENV:
        env.pop(key, None)
    env.update(fragment.get("env", {}))
    doc["env"] = env
    hooks = doc.get("hooks") if isinstance(doc.get("hooks"), dict) else {}
    cleaned: dict[str, Any] = {}
    for event, groups in hooks.items():
        kept = []
        for group in groups if isinstance(groups, list) else []:
            if not isinstance(group, dict):
                kept.append(group)
                continue
            handlers = [h for h in group.get("hooks") or [] if not is_cclens_handler(h)]
            if handlers:
                kept.append({**group, "hooks": handlers})
        if kept:
            cleaned[event] = kept
    for event, groups in fragment.get("hooks", {}).items():
        cleaned[event] = cleaned.get(event, []) + groups
    doc["hooks"] = cleaned
    # An allow-list, when one exists, must let our hooks through (absent = every URL allowed).
    allowed = doc.get("allowedHttpHookUrls")
    http_urls = {h["url"] for gs in fragment.get("hooks", {}).values() for g in gs for h in g["hooks"]
                 if h.get("type") == "http"}
    if isinstance(allowed, list) and http_urls:
        for url in sorted(http_urls):
            if url not in allowed:
                allowed.append(url)
    return doc


def write_settings(path: Path, doc: dict[str, Any]) -> Path | None:
    """Write ``doc`` to ``path`` atomically (mode 0600: it holds a token); returns the backup of the
    previous file, if there was one."""
    backup = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            backup = path.with_name(path.name + ".cclens-backup")
            shutil.copy2(path, backup)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except PermissionError:
        raise ConfigError(f"no permission to write {path}; managed settings need an administrator "
                          "(run with sudo, or print them without --write and distribute with your MDM)") from None
    except OSError as exc:
        raise ConfigError(f"cannot write Claude Code settings {path}: {exc.strerror or exc}") from None
    return backup


def setup_claude_code(opts: SetupOptions, *, scope: str = "user", path: Path | None = None,
                      write: bool = False) -> tuple[Path, dict[str, Any], Path | None]:
    """Build the fragment and, with ``write``, merge it into the settings file of ``scope`` (or
    ``path``). Returns ``(target path, document written or to write, backup)``."""
    target = path or settings_path(scope)
    fragment = settings_fragment(opts)
    if not write:
        return target, fragment, None
    merged = merge_settings(load_settings_file(target), fragment)
    backup = write_settings(target, merged)
    return target, merged, backup


# -- the cclens MCP server in Claude Code's MCP configuration -------------------------------------------------
MCP_TRANSPORTS = ("http", "stdio")
MCP_TOKEN_ENV = "CCLENS_MCP_TOKEN"


def default_cclens_command() -> list[str]:
    """This installation's ``cclens``: the script next to the interpreter, else on PATH, else
    ``<python> -m cclens.cli``."""
    beside = Path(sys.executable).with_name("cclens")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("cclens")
    return [found] if found else [sys.executable, "-m", "cclens.cli"]


def mcp_entry(transport: str, *, server: str | None = None, token: str | None = None,
              db: str | Path | None = None, command: list[str] | None = None,
              token_in_env: bool = False) -> dict[str, Any]:
    """The ``mcpServers`` entry for cclens: ``http`` (``<server>/mcp`` with the bearer token; with
    ``token_in_env`` the header reads ``${CCLENS_MCP_TOKEN}`` instead, for files kept in git) or ``stdio``
    (``cclens [--db DB] mcp``)."""
    if transport not in MCP_TRANSPORTS:
        raise ConfigError(f"unknown MCP transport {transport!r}; use http or stdio")
    if transport == "http":
        if not server:
            raise ConfigError("the http MCP transport needs --server URL (the address of cclens serve)")
        entry: dict[str, Any] = {"type": "http", "url": f"{normalise_server(server)}/mcp"}
        if token or token_in_env:
            entry["headers"] = {"Authorization": f"Bearer ${{{MCP_TOKEN_ENV}}}" if token_in_env else f"Bearer {token}"}
        return entry
    cmd = list(command or default_cclens_command())
    args = [*cmd[1:], *(["--db", str(Path(db).expanduser().resolve())] if db else []), "mcp"]
    return {"type": "stdio", "command": cmd[0], "args": args, "env": {}}


def claude_json_path() -> Path:
    """Claude Code's own state file, which holds user- and local-scope MCP servers (``~/.claude.json``, or
    ``$CLAUDE_CONFIG_DIR/.claude.json``)."""
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
    return (Path(config_dir.split(",")[0]).expanduser() if config_dir else Path.home()) / ".claude.json"


def mcp_config_location(scope: str, *, project_dir: Path | None = None) -> tuple[Path, list[str]]:
    """Where ``scope`` keeps MCP servers: the file and the keys leading to its ``mcpServers`` object."""
    project = (project_dir or Path.cwd()).resolve()
    if scope == "user":
        return claude_json_path(), ["mcpServers"]
    if scope == "local":
        return claude_json_path(), ["projects", str(project), "mcpServers"]
    if scope == "project":
        return project / ".mcp.json", ["mcpServers"]
    if scope == "managed":
        return managed_dir() / "managed-mcp.json", ["mcpServers"]
    raise ConfigError(f"unknown settings scope {scope!r}; use one of {', '.join(SCOPES)}")


def merge_mcp(existing: dict[str, Any], keys: list[str], name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """``existing`` with ``entry`` set as server ``name`` under ``keys``; everything else kept."""
    doc = json.loads(json.dumps(existing))
    node = doc
    for key in keys:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[name] = entry
    return doc


def setup_mcp(entry: dict[str, Any], *, name: str = "cclens", scope: str = "user", path: Path | None = None,
              project_dir: Path | None = None, write: bool = False) -> tuple[Path, dict[str, Any], Path | None]:
    """Add ``entry`` as MCP server ``name`` in the configuration of ``scope`` (or the ``mcpServers`` of
    ``path``). Returns ``(target, document written or the fragment to merge, backup)``."""
    target, keys = (path, ["mcpServers"]) if path else mcp_config_location(scope, project_dir=project_dir)
    if not write:
        return target, merge_mcp({}, keys, name, entry), None
    merged = merge_mcp(load_settings_file(target), keys, name, entry)
    return target, merged, write_settings(target, merged)
