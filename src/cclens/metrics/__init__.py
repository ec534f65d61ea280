"""Named measures over the model, used by every surface (CLI, API, dashboard, MCP)."""
