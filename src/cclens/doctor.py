"""``cclens doctor``: is this machine sending everything to cclens? Each problem comes with its fix.

:func:`run_checks` returns a list of :class:`Check` (``ok`` / ``warn`` / ``fail``, what was found, and the
command that fixes it). Checks: Claude Code settings present and valid, hooks installed for every
event, the shim runnable, telemetry variables consistent (with each other, the hooks and the
server), the server reachable, the token accepted, transcripts found, shipping up to date, and no
hook events stuck in the shim's spool.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from .errors import ConfigError
from .setup_claude_code import (COMMAND_ONLY_EVENTS, HOOKED_EVENTS, TOKEN_ENV, URL_ENV, is_cclens_handler,
                                load_settings_file, normalise_server, settings_path)


@dataclass
class Check:
    name: str
    status: str  # ok / warn / fail
    detail: str
    fix: str | None = None


def _setup_cmd(server: str | None, token: str | None = None) -> str:
    cmd = f"cclens setup claude-code --server {server or 'URL'}"
    if token:
        cmd += " --token TOKEN"
    return cmd + " --write"


def merged_settings(project_dir: Path | None = None) -> tuple[dict[str, Any], list[Check]]:
    """The env and hooks Claude Code would see (managed > local > project > user), and a check per file."""
    checks: list[Check] = []
    env: dict[str, str] = {}
    hooks: dict[str, list[Any]] = {}
    found = []
    for scope in ("user", "project", "local", "managed"):
        path = settings_path(scope, project_dir=project_dir)
        try:
            doc = load_settings_file(path)
        except ConfigError as exc:
            checks.append(Check(f"settings ({scope})", "fail", str(exc), f"fix the JSON in {path}, then "
                                "`cclens doctor` again"))
            continue
        if not doc:
            continue
        found.append(f"{scope}: {path}")
        if isinstance(doc.get("env"), dict):
            env.update({k: str(v) for k, v in doc["env"].items()})
        for event, groups in (doc.get("hooks") or {}).items():
            if isinstance(groups, list):
                hooks.setdefault(event, []).extend(groups)
    if found:
        checks.insert(0, Check("settings", "ok", "; ".join(found)))
    return {"env": env, "hooks": hooks}, checks


def _handlers(hooks: dict[str, list[Any]], event: str) -> list[dict[str, Any]]:
    return [h for g in hooks.get(event, []) if isinstance(g, dict) for h in g.get("hooks") or []
            if is_cclens_handler(h)]


def _command_runs(command: str) -> bool:
    try:
        first = shlex.split(command)[0]
    except (ValueError, IndexError):
        return False
    return Path(first).exists() if os.sep in first else shutil.which(first) is not None


def check_settings(server: str | None, merged: dict[str, Any]) -> list[Check]:
    env, hooks = merged["env"], merged["hooks"]
    token = env.get(TOKEN_ENV)
    fix = _setup_cmd(server, token)
    out: list[Check] = []
    if not env and not hooks:
        return [Check("settings", "fail", "no Claude Code settings file configures cclens", fix)]
    missing = [e for e in HOOKED_EVENTS if not _handlers(hooks, e)]
    if missing:
        out.append(Check("hooks", "fail", f"{len(missing)} event(s) without a cclens hook: "
                         f"{', '.join(missing[:6])}{'…' if len(missing) > 6 else ''}", fix))
    else:
        out.append(Check("hooks", "ok", f"cclens hooks on all {len(HOOKED_EVENTS)} events"))
    http_on_command_only = [e for e in COMMAND_ONLY_EVENTS
                            if any(h.get("type") == "http" for h in _handlers(hooks, e))]
    if http_on_command_only:
        out.append(Check("hooks", "warn", f"HTTP hooks on {', '.join(http_on_command_only)} are never sent by "
                         "Claude Code; those events need the `cclens hook` command", fix))
    commands = {h["command"] for e in HOOKED_EVENTS for h in _handlers(hooks, e) if h.get("type") == "command"}
    broken = [c for c in commands if not _command_runs(c)]
    if broken:
        out.append(Check("hook shim", "fail", f"the hook command cannot run: {sorted(broken)[0]}",
                         "pip install cclens (so that cclens-hook exists), then " + fix))
    elif commands:
        out.append(Check("hook shim", "ok", sorted(commands)[0]))
    urls = {normalise_server(h["url"].rsplit("/hooks", 1)[0]) for e in HOOKED_EVENTS for h in _handlers(hooks, e)
            if h.get("type") == "http" and h.get("url")}
    out.extend(check_telemetry(server, env, urls))
    return out


def check_telemetry(server: str | None, env: dict[str, str], hook_servers: set[str]) -> list[Check]:
    fix = _setup_cmd(server, env.get(TOKEN_ENV))
    problems = []
    if env.get("CLAUDE_CODE_ENABLE_TELEMETRY") not in ("1", "true"):
        problems.append("CLAUDE_CODE_ENABLE_TELEMETRY is not 1")
    for var in ("OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"):
        if "otlp" not in env.get(var, "").split(","):
            problems.append(f"{var} does not include otlp")
    protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    if protocol not in ("http/protobuf", "http/json", "grpc"):
        problems.append(f"OTEL_EXPORTER_OTLP_PROTOCOL is {protocol or 'unset'}")
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    try:
        endpoint_base = normalise_server(endpoint) if endpoint else ""
    except ConfigError:
        endpoint_base = ""
        problems.append(f"OTEL_EXPORTER_OTLP_ENDPOINT {endpoint!r} is not a URL")
    if not endpoint:
        problems.append("OTEL_EXPORTER_OTLP_ENDPOINT is unset")
    if server and endpoint_base and protocol != "grpc" and endpoint_base != server:
        problems.append(f"OTLP goes to {endpoint_base}, not {server}")
    for other in sorted(hook_servers - ({server} if server else set())):
        problems.append(f"hooks go to {other}, not {server}")
    if env.get(URL_ENV) and server and normalise_server(env[URL_ENV]) != server:
        problems.append(f"{URL_ENV} is {env[URL_ENV]}, not {server}")
    token = env.get(TOKEN_ENV)
    header = env.get("OTEL_EXPORTER_OTLP_HEADERS", "")
    if token and f"Authorization=Bearer {token}" not in header:
        problems.append("OTEL_EXPORTER_OTLP_HEADERS does not carry the same token as the hooks")
    if "Bearer%20" in header:
        problems.append("OTEL_EXPORTER_OTLP_HEADERS uses %20: Claude Code sends it literally; write a space")
    stray = [k for k in os.environ if k.startswith("OTEL_EXPORTER_OTLP") and k in env and os.environ[k] != env[k]]
    if stray:
        problems.append(f"your shell sets {', '.join(sorted(stray))} differently from the settings")
    if problems:
        return [Check("telemetry", "fail", "; ".join(problems), fix)]
    return [Check("telemetry", "ok", f"OTLP {protocol} to {endpoint_base}")]


Get = Callable[..., Any]


def check_server(server: str | None, token: str | None, *, client: Any = None) -> list[Check]:
    if not server:
        return [Check("server", "fail", "no server URL in the settings or on the command line",
                      _setup_cmd(None))]
    import httpx2 as httpx

    if client is None:
        with httpx.Client(timeout=5.0) as own:
            return check_server(server, token, client=own)
    http = client
    try:
        health = http.get(f"{server}/healthz")
        if health.status_code != 200:
            return [Check("server", "fail", f"{server}/healthz answered {health.status_code}",
                          "check the server's log; restart it with `cclens serve`")]
        info = health.json()
    except (httpx.HTTPError, ValueError) as exc:
        return [Check("server", "fail", f"{server} is not reachable ({type(exc).__name__})",
                      f"start it (`cclens serve`) or fix the URL: {_setup_cmd(None)}")]
    out = [Check("server", "ok", f"{server} cclens {info.get('version', '?')}")]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = http.post(f"{server}/hooks/batch", content=b"", headers=headers)
    except httpx.HTTPError as exc:
        out.append(Check("token", "fail", f"ingest probe failed ({type(exc).__name__})", "check the server's log"))
        return out
    if r.status_code == 200:
        out.append(Check("token", "ok", "ingest accepted" + ("" if token else " without a token (loopback server)")))
    elif r.status_code in (401, 403):
        out.append(Check("token", "fail", f"the server refused the {'token' if token else 'request without a token'} "
                         f"({r.status_code})", "cclens token create --role ingest  (on the server), then "
                         + _setup_cmd(server, "TOKEN")))
    else:
        out.append(Check("token", "warn", f"ingest probe answered {r.status_code}", "check the server's log"))
    if "transcripts_tailer" in info:
        out.append(Check("local tailer", "ok", "the server ingests this machine's transcripts itself"))
    return out


def check_transcripts(server: str | None, *, extra_paths: list[Path] | None = None,
                      server_tails_locally: bool = False) -> list[Check]:
    from .ship import ShipState, state_path
    from .sources.transcripts import discover
    from .sources.transcripts.files import storable_path

    files = discover(extra_paths)
    if not files:
        return [Check("transcripts", "warn", "no Claude Code transcripts on this machine yet",
                      "use Claude Code once; transcripts appear in ~/.claude/projects")]
    out = [Check("transcripts", "ok", f"{len(files)} transcript file(s)")]
    if not server or server_tails_locally:
        return out
    path = state_path(server)
    if not path.exists():
        out.append(Check("shipping", "fail", "transcripts are not shipped to the server",
                         f"cclens ship --server {server}  (or from cron: cclens ship --server {server} --once)"))
        return out
    state = ShipState.load(path, server=server, host=_host())
    behind = 0
    for f in files:
        c = state.cursors.get(storable_path(str(f)))
        try:
            size = f.stat().st_size
        except OSError:
            continue
        behind += max(size - (c.offset if c else 0), 0)
    age = _age(state.last_success)
    if state.last_error:
        out.append(Check("shipping", "fail", f"last attempt failed: {state.last_error}",
                         f"cclens ship --server {server} --once"))
    elif behind > 64 * 1024 or (age is not None and age > 3600 and behind):
        out.append(Check("shipping", "warn", f"{behind:,} bytes not shipped yet (last success "
                         f"{'never' if age is None else f'{age / 60:.0f} min ago'})",
                         f"cclens ship --server {server}  (keep it running, or cron --once)"))
    else:
        out.append(Check("shipping", "ok", f"up to date ({behind:,} bytes pending)"))
    return out


def check_spool(server: str | None) -> list[Check]:
    from .hook_shim import spool_dir

    d = spool_dir()
    pending = len(list(d.glob("*.json"))) if d.exists() else 0
    if not pending:
        return [Check("hook spool", "ok", "empty")]
    return [Check("hook spool", "warn", f"{pending} hook event(s) waiting to be sent",
                  f"cclens hook --flush --server {server or 'URL'}")]


def _host() -> str:
    from .config import load_settings

    return load_settings().host


def _age(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return time.time() - datetime.fromisoformat(iso).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def run_checks(server: str | None = None, token: str | None = None, *, project_dir: Path | None = None,
               extra_paths: list[Path] | None = None, client: Any = None) -> list[Check]:
    """Every check, in the order a person would fix them."""
    merged, checks = merged_settings(project_dir)
    env = merged["env"]
    server = normalise_server(server) if server else (normalise_server(env[URL_ENV]) if env.get(URL_ENV) else None)
    token = token or env.get(TOKEN_ENV)
    checks += check_settings(server, merged)
    server_checks = check_server(server, token, client=client)
    checks += server_checks
    tails = any(c.name == "local tailer" for c in server_checks) and _is_loopback(server)
    checks += check_transcripts(server, extra_paths=extra_paths, server_tails_locally=tails)
    checks += check_spool(server)
    return checks


def _is_loopback(server: str | None) -> bool:
    host = urlsplit(server or "").hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")
