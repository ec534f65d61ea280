"""``cclens mcp``: the cclens MCP server over stdio (for Claude Code, Claude Desktop, any MCP client)."""

from __future__ import annotations

import typer

from . import app
from .context import state


@app.command("mcp")
def mcp_command(ctx: typer.Context) -> None:
    """Serve the cclens MCP tools (metrics, sessions, sources, schema, read-only SQL) over stdio.

    Reads the warehouse directly, or through `cclens serve` when it holds the file; every call is written
    to the audit log. Add it to Claude Code with `cclens setup claude-code --mcp-only --mcp-transport stdio
    --write`, or use the HTTP endpoint /mcp of `cclens serve` (docs/mcp.md).

    Examples:
      cclens mcp
      cclens --db /srv/cclens/cclens.duckdb mcp
    """
    import anyio

    from ..mcp.backends import LocalBackend
    from ..mcp.server import build_server

    server = build_server(LocalBackend(state(ctx).settings))
    anyio.run(server.run_stdio_async)
