"""The cclens MCP server (official ``mcp`` SDK, :class:`mcp.server.mcpserver.MCPServer`), one definition
for both transports.

:func:`build_server` takes a :class:`Backend` — how to read the warehouse, who the caller is, where the
audit log goes — and returns the server with its tools, resources and prompts:

* stdio (``cclens mcp``): :class:`cclens.mcp.backends.LocalBackend` reads through
  :func:`cclens.client.open_reader` (the file, or the running ``cclens serve``); the caller is the local
  user (role ``local``).
* streamable HTTP (``/mcp`` on ``cclens serve``): :class:`cclens.mcp.backends.ServeBackend` reads on the
  server's read cursors; the caller is the bearer token's principal (same tokens and roles as the REST API).

Every ``tools/call``, ``resources/read`` and ``prompts/get`` is written to the audit log by
:class:`cclens.mcp.middleware.AuditMiddleware` before the answer leaves, with its arguments, row count and
outcome.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Callable, Literal, Protocol, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from .. import __version__
from ..audit import AuditEntry
from ..config import Settings
from ..errors import CclensError
from ..metrics.catalog import GROUP_BY, METRICS, load_modules
from . import text, tools
from .middleware import AuditMiddleware
from .tools import Caller

T = TypeVar("T")

INSTRUCTIONS = """cclens answers questions about how Claude Code is used in this organisation: adoption, \
tokens, cost, output (lines, commits, pull requests), per person, team, model and day, from every source \
cclens collects (session transcripts, OpenTelemetry, hooks, the Claude Code Analytics, Enterprise Analytics, \
Usage and Cost APIs). Start with list_metrics; get_metric computes one metric for a date range, grouped and \
filtered; compare_periods, top_people and top_teams build on it; source_status says how fresh and complete \
each source is. Every row carries `sources` (its provenance). A null value means "no data from any source of \
this metric" and is not 0. Money is USD. Dates are YYYY-MM-DD days in the zone `tz` (the daily APIs report \
UTC days)."""


class Backend(Protocol):
    """What the server needs from its transport: settings, the caller, reads, and the audit log."""

    surface: str
    settings: Settings

    def caller(self, request: Any) -> Caller:
        """The caller of a request (``request`` is the HTTP request, or None on stdio)."""

    async def read(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(reader)`` off the event loop on a read-only view of the warehouse."""

    async def audit(self, entry: AuditEntry) -> None:
        """Write ``entry`` to the audit log (durably, before the answer is sent)."""


# -- argument types (their JSON schema is what the model sees) ---------------------------------------------
load_modules()  # every metric family registered, so the enums below list them all
MetricName = Literal[tuple(METRICS)]  # type: ignore[valid-type]
MetricGroup = Literal[tuple(dict.fromkeys(m.group for m in METRICS.values()))]  # type: ignore[valid-type]
Dimension = Literal[tuple(GROUP_BY)]  # type: ignore[valid-type]
PeopleDimension = Literal["person", "team"]
Day = Annotated[str | None, Field(description="A day, YYYY-MM-DD (inclusive, in tz). Default: see the tool.",
                                  json_schema_extra={"format": "date"})]
Tz = Annotated[str | None, Field(description="IANA time zone for days of event sources, e.g. Europe/Paris or "
                                             "UTC. Default: the server's report zone. The daily APIs report UTC "
                                             "days whatever tz is.")]
GroupBy = Annotated[list[Dimension] | None, Field(description="Dimensions to break the metric down by (each "
                                                  "metric allows some; list_metrics says which). Empty: one total.")]


class MetricFilters(BaseModel):
    """Restrict a metric to some values of a dimension (each a list: any of them)."""

    model_config = ConfigDict(extra="forbid")
    person: list[str] | None = Field(None, description="Person ids from the people file (e.g. ann), or identity "
                                     "keys such as email:ann@acme.test for unlinked people.")
    team: list[str] | None = Field(None, description="Team ids from the people file (membership dates apply).")
    model: list[str] | None = Field(None, description="Model ids, e.g. claude-opus-4-8.")
    project: list[str] | None = Field(None, description="Project directories (only transcripts and OTel know them).")
    source: list[str] | None = Field(None, description="Sources: transcripts, otel, claude_code_analytics, "
                                     "enterprise_analytics, cost_api.")
    token_type: list[Literal["input", "output", "cache_read", "cache_creation"]] | None = Field(
        None, description="Token types (tokens metric).")
    tool: list[str] | None = Field(None, description="Edit tools: Edit, MultiEdit, Write, NotebookEdit "
                                   "(edit_accept_rate).")

    def as_dict(self) -> dict[str, list[str]]:
        return {k: v for k, v in self.model_dump(exclude_none=True).items() if v}


Filters = Annotated[MetricFilters | None, Field(description="Optional filters, e.g. {\"team\": [\"platform\"]}.")]


# -- output schemas (structured content is validated against them) -----------------------------------------
class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class MetricOut(_Open):
    metric: str
    unit: str
    group_by: list[str]
    since: str
    until: str
    tz: str
    rows: list[dict[str, Any]] = Field(description="One row per group: the group keys, value (null = no data, "
                                       "not 0), metric-specific columns, and sources (provenance).")
    row_count: int
    total_rows: int
    truncated: bool
    coverage: dict[str, Any]
    notes: list[str]
    filters: dict[str, list[str]]
    provenance: dict[str, Any]
    currency: str | None = None


class CatalogOut(_Open):
    metrics: list[dict[str, Any]]
    group_by: list[str]
    filters: list[str]
    count: int


class CompareOut(_Open):
    metric: str
    unit: str
    group_by: list[str]
    current_period: dict[str, str]
    previous_period: dict[str, str]
    rows: list[dict[str, Any]]
    row_count: int
    truncated: bool
    notes: list[str]
    provenance: dict[str, Any]


class TopOut(_Open):
    metric: str
    unit: str
    by: str
    rows: list[dict[str, Any]]
    row_count: int
    ranked_of: int
    no_data: list[str]


class SessionOut(_Open):
    session_id: str
    sources: dict[str, Any]
    events: list[dict[str, Any]]
    event_count: int
    truncated: bool


class SourcesOut(_Open):
    since: str
    until: str
    tz: str
    sources: list[dict[str, Any]]
    notes: list[str]


class SchemaOut(_Open):
    pass


class SqlOut(_Open):
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    max_rows: int


READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every local ``$ref`` replaced by its definition (simpler for every client)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = walk(dict(defs[ref.split("/")[-1]]))
                return {**target, **{k: walk(v) for k, v in node.items() if k != "$ref"}}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def build_server(backend: Backend) -> MCPServer:
    """The cclens MCP server over ``backend`` (see the module doc)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    server = MCPServer("cclens", title="cclens: Claude Code usage, cost and delivery",
                       instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")
    # the SDK configures the root logger (a Rich handler); cclens's own logging setup stays in charge
    for h in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(h)
    root.setLevel(level)
    server.middleware.append(AuditMiddleware(backend))

    def caller_of(ctx: Context) -> Caller:
        return backend.caller(ctx.request_context.request)

    def zone(tz: str | None) -> str:
        from ..timeutil import check_tz

        return check_tz(tz, backend.settings.tz)

    def day(value: str | None, option: str):
        from ..timeutil import parse_day

        return parse_day(value, option)

    def prices():
        from ..model.pricing import effective_table

        return effective_table(backend.settings)

    async def run(work: Callable[[Any], dict[str, Any]], render: Callable[[dict[str, Any]], str]) -> CallToolResult:
        try:
            data = await backend.read(work)
        except CclensError as exc:
            raise ToolError(str(exc)) from None
        return CallToolResult(content=[TextContent(type="text", text=render(data))], structured_content=data)

    def guard(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except CclensError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(name="list_metrics", title="List metrics", annotations=READ_ONLY, description=(
        "List the metric catalog: every metric cclens computes, with its unit, description, the sources that "
        "feed it and the dimensions it can be grouped by. Call this first to pick a metric name for get_metric."))
    async def list_metrics(group: Annotated[MetricGroup | None, Field(description="Only this group of metrics.")] = None,
                           ) -> Annotated[CallToolResult, CatalogOut]:
        data = guard(lambda: tools.list_metrics(group))
        return CallToolResult(content=[TextContent(type="text", text=text.catalog(data))], structured_content=data)

    @server.tool(name="get_metric", title="Get a metric", annotations=READ_ONLY, description=(
        "Compute one catalog metric over a range of days, optionally grouped (e.g. by team and week) and "
        "filtered (e.g. one team or model). The same numbers as the cclens dashboard and REST API. Each row "
        "has value (null = no data, not 0) and sources (which sources made it); cost is in USD. Default range: "
        "the last 30 days up to today in tz."))
    async def get_metric(ctx: Context, name: Annotated[MetricName, Field(description="Metric name (list_metrics).")],
                         since: Day = None, until: Day = None, tz: Tz = None, group_by: GroupBy = None,
                         filters: Filters = None,
                         limit: Annotated[int, Field(ge=1, le=tools.MAX_METRIC_ROWS,
                                                     description="Most rows to return.")] = 200,
                         ) -> Annotated[CallToolResult, MetricOut]:
        caller, z = caller_of(ctx), guard(lambda: zone(tz))
        d0, d1 = guard(lambda: (day(since, "since"), day(until, "until")))
        fl = filters.as_dict() if filters else {}
        p = guard(prices)
        return await run(lambda r: tools.get_metric(r, p, caller, name=name, since=d0, until=d1, tz=z,
                                                    group_by=group_by or [], filters=fl, limit=limit), text.metric)

    @server.tool(name="compare_periods", title="Compare two periods", annotations=READ_ONLY, description=(
        "Compare a metric between two periods per group (person, team, model, source…): current, previous, "
        "change and change_pct. Default current period: the last 7 days up to today; default previous period: "
        "the same number of days just before. Time dimensions (day/week/month) cannot be grouped by here."))
    async def compare_periods(ctx: Context, name: Annotated[MetricName, Field(description="Metric name.")],
                              since: Day = None, until: Day = None, previous_since: Day = None,
                              previous_until: Day = None, tz: Tz = None,
                              group_by: Annotated[list[Dimension] | None, Field(
                                  description="Dimensions to compare per (not day/week/month).")] = None,
                              filters: Filters = None,
                              limit: Annotated[int, Field(ge=1, le=tools.MAX_METRIC_ROWS,
                                                          description="Most rows to return.")] = 200,
                              ) -> Annotated[CallToolResult, CompareOut]:
        caller, z = caller_of(ctx), guard(lambda: zone(tz))
        days = guard(lambda: [day(v, o) for v, o in ((since, "since"), (until, "until"),
                                                     (previous_since, "previous_since"),
                                                     (previous_until, "previous_until"))])
        fl = filters.as_dict() if filters else {}
        p = guard(prices)
        return await run(lambda r: tools.compare_periods(
            r, p, caller, name=name, since=days[0], until=days[1], previous_since=days[2], previous_until=days[3],
            tz=z, group_by=group_by or [], filters=fl, limit=limit), text.compare)

    def top_tool(by: str):
        async def top_fn(ctx: Context,
                         metric: Annotated[MetricName, Field(description="Metric to rank by.")],
                         since: Day = None, until: Day = None, tz: Tz = None, filters: Filters = None,
                         limit: Annotated[int, Field(ge=1, le=1000, description="How many to return.")] = 10,
                         ascending: Annotated[bool, Field(description="Lowest first.")] = False,
                         ) -> Annotated[CallToolResult, TopOut]:
            caller, z = caller_of(ctx), guard(lambda: zone(tz))
            d0, d1 = guard(lambda: (day(since, "since"), day(until, "until")))
            fl = filters.as_dict() if filters else {}
            p = guard(prices)
            return await run(lambda r: tools.top(r, p, caller, by=by, metric=metric, since=d0, until=d1, tz=z,
                                                 filters=fl, limit=limit, ascending=ascending), text.top)
        return top_fn

    server.add_tool(top_tool("person"), name="top_people", title="Top people", annotations=READ_ONLY, description=(
        "Rank people by a metric over a range (default: last 30 days), highest first: rank, person id, name, "
        "value, sources. People with no data for the metric are listed under no_data, not ranked as 0."))
    server.add_tool(top_tool("team"), name="top_teams", title="Top teams", annotations=READ_ONLY, description=(
        "Rank teams by a metric over a range (default: last 30 days), highest first. A person counts in a team "
        "only on the days they were in it; people without a team are in (no team)."))

    @server.tool(name="session_timeline", title="Session timeline", annotations=READ_ONLY, description=(
        "One Claude Code session as each source saw it (transcripts, OpenTelemetry, hooks): requests, tokens "
        "by type, cost with its basis, prompts, tool uses, first/last timestamp; and the events in time order."))
    async def session_timeline(ctx: Context, session_id: Annotated[str, Field(
                                   min_length=1, max_length=200, description="The session id (a UUID).")],
                               limit: Annotated[int, Field(ge=1, le=5000, description="Most events.")] = 200,
                               ) -> Annotated[CallToolResult, SessionOut]:
        caller = caller_of(ctx)
        return await run(lambda r: tools.session_timeline(r, caller, session_id, limit), text.session)

    @server.tool(name="source_status", title="Source status", annotations=READ_ONLY, description=(
        "How fresh and complete each source is: whether it ever reported, its newest data and age in hours, "
        "when data last arrived or synced, the last sync error, and its rows in the range (null = no data "
        "there). Check this before trusting a figure for recent days."))
    async def source_status(since: Day = None, until: Day = None, tz: Tz = None,
                            ) -> Annotated[CallToolResult, SourcesOut]:
        z = guard(lambda: zone(tz))
        d0, d1 = guard(lambda: (day(since, "since"), day(until, "until")))
        return await run(lambda r: tools.source_status(r, since=d0, until=d1, tz=z), text.sources)

    @server.tool(name="describe_schema", title="Describe the schema", annotations=READ_ONLY, description=(
        "The warehouse tables and views run_sql can read (name, kind, estimated rows, what each holds), or one "
        "table's columns and types."))
    async def describe_schema(table: Annotated[str | None, Field(
                                  max_length=200, description="A table or view name; omit to list them.")] = None,
                              ) -> Annotated[CallToolResult, SchemaOut]:
        return await run(lambda r: tools.describe_schema(r, table), text.schema)

    @server.tool(name="run_sql", title="Run read-only SQL", annotations=READ_ONLY, description=(
        "Run one read-only SELECT (DuckDB SQL) over the warehouse tables (describe_schema lists them), with a "
        "row limit and a 30 s time limit. No file, network or settings functions; no writes. Needs an analyst "
        "or admin token. Prefer get_metric for catalog figures: it applies the source precedence rules."))
    async def run_sql(ctx: Context, sql: Annotated[str, Field(min_length=1, max_length=100_000,
                                                              description="One SELECT statement.")],
                      max_rows: Annotated[int, Field(ge=1, le=tools.MAX_SQL_ROWS, description="Most rows.")] = 100,
                      ) -> Annotated[CallToolResult, SqlOut]:
        caller = caller_of(ctx)
        return await run(lambda r: tools.run_sql(r, caller, sql, max_rows), text.sql)

    for tool in server._tool_manager.list_tools():  # noqa: SLF001 - publish flat schemas
        tool.parameters = _inline_refs(tool.parameters)
    _resources(server, backend)
    _prompts(server)
    return server


def _resources(server: MCPServer, backend: Backend) -> None:
    import json

    @server.resource("cclens://metrics/catalog", name="metric-catalog", mime_type="application/json",
                     description="The metric catalog as JSON (the same as GET /api/v1/metrics).")
    def catalog_json() -> str:
        return json.dumps(tools.list_metrics())

    @server.resource("cclens://docs/metrics", name="metrics-doc", mime_type="text/markdown",
                     description="How metrics are computed (rules: no data vs 0, source precedence, days, teams, "
                                 "cost) and the catalog, as Markdown.")
    def metrics_doc() -> str:
        return text.METRICS_DOC + "\n" + _catalog_markdown()

    @server.resource("cclens://docs/schema", name="schema-doc", mime_type="text/markdown",
                     description="The warehouse tables and views with their columns, as Markdown (for run_sql).")
    async def schema_doc() -> str:
        return await backend.read(text.schema_markdown)

    @server.resource("cclens://metrics/{name}", name="metric", mime_type="application/json",
                     description="One metric's catalog entry as JSON.")
    def metric_entry(name: str) -> str:
        from ..metrics.catalog import get

        try:
            return json.dumps(get(name).describe())
        except CclensError as exc:
            from mcp.server.mcpserver.exceptions import ResourceError

            raise ResourceError(str(exc)) from None


def _catalog_markdown() -> str:
    from ..metrics.catalog_doc import render_markdown

    return render_markdown()


def _prompts(server: MCPServer) -> None:
    @server.prompt(name="weekly_adoption_summary", title="Weekly adoption summary", description=(
        "Summarise Claude Code adoption week by week: active people, share of the roster, sessions, per team, "
        "with the change from the previous period and the sources behind each figure."))
    def weekly_adoption_summary(weeks: str = "4", team: str | None = None) -> str:
        return text.adoption_prompt(weeks, team)

    @server.prompt(name="cost_review", title="Cost review", description=(
        "Review Claude Code spend for a range: estimated cost by team and model, billed cost, cost per active "
        "person, the top spenders, unpriced models, and how the sources agree."))
    def cost_review(since: str | None = None, until: str | None = None, team: str | None = None) -> str:
        return text.cost_prompt(since, until, team)
