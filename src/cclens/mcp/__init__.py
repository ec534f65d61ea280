"""The cclens MCP server: Claude (or any MCP client) queries usage, cost and delivery figures.

One implementation (:func:`cclens.mcp.server.build_server`, on the official ``mcp`` SDK's ``MCPServer``)
served two ways:

* ``cclens mcp`` — stdio, for the local user (:class:`cclens.mcp.backends.LocalBackend`);
* ``/mcp`` on ``cclens serve`` — streamable HTTP with the REST API's tokens and roles
  (:mod:`cclens.server.mcp_http`, :class:`cclens.mcp.backends.ServeBackend`).

Tools (:mod:`cclens.mcp.tools` computes them from the metrics layer): ``list_metrics``, ``get_metric``,
``compare_periods``, ``top_people``, ``top_teams``, ``session_timeline``, ``source_status``,
``describe_schema``, ``run_sql``. Resources: the metric catalog (JSON), the metrics and schema docs
(Markdown). Prompts: ``weekly_adoption_summary``, ``cost_review``. See docs/mcp.md.
"""
