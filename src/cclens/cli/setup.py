"""``cclens setup claude-code`` and ``cclens doctor``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from . import app
from .context import state
from .output import FORMAT_OPTION, OutputFormat, render

setup_app = typer.Typer(help="Configure clients to send their data to cclens.", no_args_is_help=True)
app.add_typer(setup_app, name="setup")


def Console(*args, **kwargs):  # noqa: N802 - rich imported on use, not at CLI start-up
    from rich.console import Console as _Console

    return _Console(*args, **kwargs)


def Table(*args, **kwargs):  # noqa: N802
    from rich.table import Table as _Table

    return _Table(*args, **kwargs)


@setup_app.command("claude-code")
def setup_claude_code_command(
    ctx: typer.Context,
    server: Optional[str] = typer.Option(None, "--server", help="The cclens server, e.g. https://cclens.example.com."),
    token: Optional[str] = typer.Option(None, "--token", help="An ingest token (`cclens token create --role ingest`)."),
    managed: bool = typer.Option(False, "--managed", help="Target Claude Code's managed-settings.json (org-wide; "
                                 "/etc/claude-code on Linux) instead of ~/.claude/settings.json."),
    write: bool = typer.Option(False, "--write", help="Merge into the settings file (a backup is kept). "
                               "Without it, print the blocks."),
    scope: str = typer.Option("user", "--scope", help="user, project or local (ignored with --managed)."),
    settings_file: Optional[Path] = typer.Option(None, "--settings-file", help="Write this file instead."),
    protocol: str = typer.Option("http/protobuf", "--protocol", help="OTLP protocol: http/protobuf or http/json."),
    hook_transport: str = typer.Option("http", "--hook-transport", help="http (HTTP hooks, plus the cclens hook "
                                       "command for SessionStart/Setup) or command (the spooling command everywhere)."),
    hook_command: Optional[str] = typer.Option(None, "--hook-command", help="How Claude Code runs the shim "
                                               "(default: this installation's cclens-hook; use `cclens-hook` "
                                               "for --managed when installed on every PATH)."),
    log_prompts: bool = typer.Option(False, "--log-prompts", help="Also send prompt text in OTel events."),
    mcp: bool = typer.Option(False, "--mcp", help="Also add the cclens MCP server to Claude Code's MCP "
                             "configuration (user scope: ~/.claude.json; project: .mcp.json; local; managed)."),
    mcp_only: bool = typer.Option(False, "--mcp-only", help="Only add the MCP server (no telemetry, no hooks)."),
    mcp_transport: str = typer.Option("http", "--mcp-transport", help="http (<server>/mcp with --mcp-token) or "
                                      "stdio (Claude Code runs `cclens mcp` on this machine's warehouse)."),
    mcp_token: Optional[str] = typer.Option(None, "--mcp-token", help="A viewer or analyst token for the HTTP MCP "
                                            "endpoint (project scope writes ${CCLENS_MCP_TOKEN} instead)."),
    mcp_name: str = typer.Option("cclens", "--mcp-name", help="The server's name in Claude Code (its tools are "
                                 "mcp__<name>__<tool>)."),
) -> None:
    """Print (or, with --write, merge into the right settings file) the Claude Code `env` block (OTLP
    telemetry to the server) and `hooks` block (every hook event to the server).

    Examples:
      cclens setup claude-code --server http://127.0.0.1:8765 --write
      cclens setup claude-code --server https://cclens.example.com --token $TOKEN --managed > managed-settings.json
      cclens setup claude-code --server http://127.0.0.1:8765 --mcp-only --mcp-token $VIEWER_TOKEN --write
    """
    from ..errors import ConfigError
    from ..setup_claude_code import SetupOptions, setup_claude_code

    settings = state(ctx).settings
    url = server or settings.server_url
    if mcp_only:
        return _add_mcp(ctx, url=url, transport=mcp_transport, token=mcp_token, name=mcp_name,
                        scope="managed" if managed else scope, write=write)
    if not url:
        raise ConfigError("no server: pass --server URL (the address Claude Code can reach cclens serve at)")
    secret = token or (settings.server_token.get_secret_value() if settings.server_token else None)
    opts = SetupOptions(server=url, token=secret, protocol=protocol, hook_transport=hook_transport,
                        hook_command=hook_command or ("cclens-hook" if managed else None), log_prompts=log_prompts)
    target, doc, backup = setup_claude_code(opts, scope="managed" if managed else scope, path=settings_file,
                                            write=write)
    err = Console(stderr=True)
    if write:
        err.print(f"wrote {target}" + (f" (previous version: {backup})" if backup else ""))
        err.print("check it with: cclens doctor")
    else:
        typer.echo(json.dumps(doc, indent=2))
        err.print(f"merge this into {target}, or run again with --write")
    if mcp:
        _add_mcp(ctx, url=url, transport=mcp_transport, token=mcp_token, name=mcp_name,
                 scope="managed" if managed else scope, write=write)


def _add_mcp(ctx: typer.Context, *, url: Optional[str], transport: str, token: Optional[str], name: str,
             scope: str, write: bool) -> None:
    """Add (or print) the cclens MCP server entry for Claude Code (docs/mcp.md)."""
    from ..server.auth import is_loopback
    from ..setup_claude_code import MCP_TOKEN_ENV, mcp_entry, setup_mcp

    entry = mcp_entry(transport, server=url, token=token, db=state(ctx).settings.db,
                      token_in_env=scope == "project" and bool(token))
    target, doc, backup = setup_mcp(entry, name=name, scope=scope, write=write)
    err = Console(stderr=True)
    if write:
        err.print(f"added MCP server {name} ({entry['type']}) to {target}"
                  + (f" (previous version: {backup})" if backup else ""))
    else:
        typer.echo(json.dumps(doc, indent=2))
        err.print(f"merge this into {target}, or run again with --write")
    if transport == "http" and not token:
        from urllib.parse import urlsplit

        if not is_loopback(urlsplit(entry["url"]).hostname or ""):
            err.print("the MCP endpoint of a server off loopback needs a token: add --mcp-token (a viewer token)")
    if scope == "project" and token:
        err.print(f"the token is not written to .mcp.json: set {MCP_TOKEN_ENV} where Claude Code runs")


@app.command("doctor")
def doctor_command(
    ctx: typer.Context,
    server: Optional[str] = typer.Option(None, "--server", help="The server to check against (default: the one "
                                         "in the Claude Code settings)."),
    token: Optional[str] = typer.Option(None, "--token", help="The ingest token (default: from the settings)."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Check that this machine sends everything to cclens: settings present and valid, server reachable,
    token accepted, telemetry variables consistent, transcripts found, shipping up to date. Each
    problem comes with the command that fixes it. Exits 1 when something is broken."""
    from ..doctor import run_checks

    settings = state(ctx).settings
    checks = run_checks(server, token, extra_paths=list(settings.transcript_paths))
    rows = [{"check": c.name, "status": c.status, "detail": c.detail, "fix": c.fix or ""} for c in checks]
    if fmt is OutputFormat.table:
        table = Table(show_header=True)
        for col in ("check", "status", "detail", "fix"):
            table.add_column(col, overflow="fold")
        colours = {"ok": "green", "warn": "yellow", "fail": "red"}
        for r in rows:
            table.add_row(r["check"], f"[{colours[r['status']]}]{r['status']}[/]", r["detail"], r["fix"])
        Console().print(table)
    else:
        render(rows, fmt)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)
