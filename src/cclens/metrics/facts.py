"""Per-source facts in one shape, the layer every catalog metric is computed from.

Each *family* (activity, sessions, tokens, cost, output, tool decisions, active time, engagement,
billed cost, roster) is a UNION of one SELECT per source, every row carrying the same columns:

    day      DATE       the day: in the report zone for event sources (transcripts, OTel), the UTC
                        day for the daily APIs (Claude Code Analytics, Enterprise, Cost) — labelled so
    person   VARCHAR    the resolved person key (:func:`cclens.model.identity.person_key_sql`)
    srcs     INTEGER    bitmask of the sources behind the row (:data:`SOURCE_BITS`; a request seen in
                        transcripts and OTel has both bits) — cheaper to aggregate than lists
    tier     INTEGER    precedence when sources overlap for one person and day: 1 Claude Code
                        Analytics, 2 Enterprise Analytics, 3 events (transcripts/OTel, one row per request)
    …dims    model, project, token_type, tool (when the family has them; NULL = the source lacks it)
    …values  the family's measures

The SQL uses DuckDB named parameters (``$tz``, ``$lo`` …); :func:`bind` turns them into positional
ones so the query also runs through ``cclens serve``. Event timestamps are bucketed to 15 minutes
(UTC) before the zone conversion: every zone offset is a multiple of 15 minutes, so the day is exact
and the costly conversion runs on thousands of buckets, not millions of rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..model.identity import person_key_sql
from ..model.pricing import PriceTable, priced_requests_cte
from . import rollup

# The one switch between the two ways of reading event facts: the rollup tables (when built, with raw
# rows for dirty days; see :mod:`cclens.metrics.rollup`) or the raw tables. Results are the same.
USE_ROLLUPS = True
# Read the person-day layer (:mod:`cclens.metrics.person_day`) when a query can (needs the rollups).
USE_LAYER = True

EVENT_SOURCES = ("transcripts", "otel")
ALL_SOURCES = ("transcripts", "otel", "claude_code_analytics", "enterprise_analytics", "usage_api", "cost_api")
TIER = {"claude_code_analytics": 1, "enterprise_analytics": 2, "transcripts": 3, "otel": 3}
SOURCE_BITS = {"transcripts": 1, "otel": 2, "claude_code_analytics": 4, "enterprise_analytics": 8, "cost_api": 16,
               "people": 32}
TR, OT, CCB, EAB, COSTB, PEOPLEB = (SOURCE_BITS[k] for k in SOURCE_BITS)


def register_source(name: str) -> int:
    """The bit of source ``name`` in ``srcs`` masks, allocating a new one for a new source."""
    if name not in SOURCE_BITS:
        SOURCE_BITS[name] = 1 << max(SOURCE_BITS.values()).bit_length()
    return SOURCE_BITS[name]


def mask_of(sources) -> int:
    """The bitmask of a list of source names."""
    return sum(SOURCE_BITS[s] for s in set(sources))


def sources_of(mask: int | None) -> list[str]:
    """The sorted source names of a bitmask (None or 0: no source)."""
    return sorted(s for s, b in SOURCE_BITS.items() if (mask or 0) & b)

# Claude Code Analytics / Enterprise name the edit tools differently from OTel and transcripts
TOOL_NAMES = {"edit_tool": "Edit", "multi_edit_tool": "MultiEdit", "write_tool": "Write",
              "notebook_edit_tool": "NotebookEdit"}
ALL_EDIT_TOOLS = "(all edit tools)"  # Enterprise Analytics rows: totals over the edit tools



def summed_tokens_price(alias: str, long: bool) -> str:
    """SQL: the USD-per-million-tokens price of summed token columns of ``alias`` (input, output, cache
    writes 5 min / 1 h, cache read) at ``model_price p``'s normal or long-context rates; the caller
    applies the fast multiplier and divides by 1e6 (the ``api_request_cost`` formula on sums)."""
    def rate(kind: str) -> str:
        return f"p.{'long_' if long else ''}{kind}_per_mtok"
    return (f"{alias}.input_tokens * {rate('input')} + {alias}.output_tokens * {rate('output')}"
            f" + {alias}.cache_write_5m_tokens * {rate('cache_write_5m')}"
            f" + {alias}.cache_write_1h_tokens * {rate('cache_write_1h')}"
            f" + {alias}.cache_read_tokens * {rate('cache_read')}")

@dataclass
class Ctx:
    """The range and options one query is compiled for."""

    tz: str
    since: date
    until: date
    prices: PriceTable | None = None
    models: list[str] = field(default_factory=list)   # models present, for the inline price table
    rollups: bool = False   # read event facts from the rollups (compile_metric sets it when they are built)
    dirty: dict[str, list[int]] = field(default_factory=dict)   # rollup days to read raw, per source

    @property
    def lo(self) -> datetime:
        return datetime.combine(self.since, time(0), ZoneInfo(self.tz))

    @property
    def hi(self) -> datetime:
        return datetime.combine(self.until + timedelta(days=1), time(0), ZoneInfo(self.tz))

    def params(self) -> dict[str, Any]:
        lo, hi = self.lo, self.hi
        return {"tz": self.tz, "lo": lo, "hi": hi, "since": self.since, "until": self.until,
                "q_lo": int(lo.timestamp()) // 900, "q_hi": int(hi.timestamp()) // 900 + 1,
                "q_from": int(lo.timestamp()) // 900, "q_to": int(hi.timestamp()) // 900}


_PARAM = re.compile(r"'(?:[^']|'')*'|\$([a-z_][a-z0-9_]*)")


def bind(sql: str, values: dict[str, Any]) -> tuple[str, list[Any]]:
    """Replace ``$name`` (outside string literals) with ``?``; returns the SQL and ordered params.
    Days and timestamps travel as ISO strings cast in SQL, so the parameters are plain JSON (the
    query may go through ``cclens serve``)."""
    params: list[Any] = []

    def sub(m: re.Match) -> str:
        if m.group(1) is None:
            return m.group(0)
        v = values[m.group(1)]
        if isinstance(v, datetime):
            params.append(v.isoformat())
            return "CAST(? AS TIMESTAMPTZ)"
        if isinstance(v, date):
            params.append(v.isoformat())
            return "CAST(? AS DATE)"
        params.append(v)
        return "?"

    return _PARAM.sub(sub, sql), params


def sql_literal(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def priced_cte(ctx: Ctx) -> str:
    """``model_price AS (…), api_request_cost AS (…)`` from :func:`priced_requests_cte`, with the price
    values inlined (they are ours, not the caller's) so the text composes with other CTEs."""
    if ctx.prices is None:
        raise ValueError("cost metrics need a price table")
    sql, params = priced_requests_cte(ctx.prices, ctx.models)
    it = iter(params)
    body = re.sub(r"\?", lambda _m: sql_literal(next(it)), sql.strip())
    assert body.startswith("WITH ")
    return body[len("WITH "):]


def _srcs(bt: str, bo: str) -> str:
    return f"(CASE WHEN {bt} THEN {TR} ELSE 0 END + CASE WHEN {bo} THEN {OT} ELSE 0 END)"


class Facts:
    """Builds the CTEs of one query. ``need(name)`` adds a CTE (and what it depends on) once."""

    def __init__(self, ctx: Ctx):
        self.ctx = ctx
        self.ctes: dict[str, str] = {}
        self.priced = False
        self.want_cost = False

    def sql_with(self) -> str:
        parts = []
        if self.priced:
            parts.append(priced_cte(self.ctx))
        parts += [f"{name} AS (\n{body}\n)" for name, body in self.ctes.items()]
        return "WITH " + ",\n".join(parts) + "\n" if parts else ""

    def add_cte(self, body: str) -> str:
        """Add an anonymous CTE (referenced more than once, so DuckDB computes it once); returns its name."""
        for name, existing in self.ctes.items():
            if existing == body:
                return name
        return self._add(f"x{len(self.ctes)}", body)

    def _add(self, name: str, body: str) -> str:
        if name not in self.ctes:
            self.ctes[name] = body
        return name

    # -- shared building blocks --------------------------------------------------------------
    def qday(self) -> str:
        return self._add("qday", """
    SELECT q, timezone($tz, make_timestamptz(q * 900000000))::DATE AS day FROM range($q_lo, $q_hi) r(q)""")

    def ev(self, cost: bool) -> str:
        """api_request in range, aggregated per 15 minutes × session × identity × model × project.
        With ``want_cost`` set (a query that also needs cost), every family shares the priced scan."""
        cost = cost or self.want_cost
        if cost:
            self.priced = True
        name = "ev_cost" if cost else "ev"
        if name in self.ctes:
            return name
        self.qday()
        table = "api_request_cost" if cost else "api_request"
        money = (",\n           sum(cost_usd) AS cost_usd, bool_or(price_key IS NULL) AS unpriced" if cost
                 else "")
        if self.ctx.rollups and (not cost or self.rollup_prices_ok()):
            self._add(f"{name}_raw", self._ev_raw_rollup(cost))
        else:
            self._add(f"{name}_raw", f"""
    SELECT epoch_ms(ts) // 900000 AS q, session_id, host, lower(user_email) AS email, account_uuid, user_id,
           coalesce(model, 'unknown') AS model, coalesce(project, 'unknown') AS project,
           from_transcripts AS bt, from_otel AS bo, count(*) AS requests,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cache_creation_tokens) AS cache_creation_tokens, sum(cache_read_tokens) AS cache_read_tokens{money}
    FROM {table} WHERE ts >= $lo AND ts < $hi
    GROUP BY ALL""")
        # a transcript row has no user identity: the OTel events of the same session give it
        self._add(f"{name}_sess", f"""
    SELECT session_id, max(email) AS email, max(account_uuid) AS account_uuid, max(user_id) AS user_id
    FROM {name}_raw WHERE session_id IS NOT NULL
      AND (email IS NOT NULL OR account_uuid IS NOT NULL OR user_id IS NOT NULL)
    GROUP BY session_id""")
        joins, person = person_key_sql([
            ("email", "coalesce(r.email, s.email)"), ("otel_account_uuid", "coalesce(r.account_uuid, s.account_uuid)"),
            ("otel_user_id", "coalesce(r.user_id, s.user_id)"), ("host", "r.host")], prefix="ea")
        return self._add(name, f"""
    SELECT d.day, {person} AS person, r.* EXCLUDE (q, email, account_uuid, user_id, host)
    FROM {name}_raw r JOIN qday d ON d.q = r.q LEFT JOIN {name}_sess s ON s.session_id = r.session_id
    {joins}""")

    def pt(self) -> str:
        """OTel metric points in range (delta values), per 15 minutes × user × metric × attributes."""
        if "pt" in self.ctes:
            return "pt"
        self.qday()
        if self.ctx.rollups:
            self._add("pt_raw", rollup.point_source_sql(self.ctx.dirty.get("otel_point", [])))
            self._add("uid_map", f"""
    SELECT user_id, max(email) AS email, max(account_uuid) AS account_uuid
    FROM {self.rq()} WHERE user_id IS NOT NULL AND (email IS NOT NULL OR account_uuid IS NOT NULL)
    GROUP BY user_id""")
        self._add("pt_raw", """
    SELECT epoch_ms(ts) // 900000 AS q, user_id, metric_name, type, model,
           CASE WHEN metric_name = 'claude_code.code_edit_tool.decision' THEN attributes->>'tool_name' END AS tool,
           CASE WHEN metric_name = 'claude_code.code_edit_tool.decision' THEN attributes->>'decision' END AS decision,
           sum(value) AS value
    FROM otel_point
    WHERE ts >= $lo AND ts < $hi AND metric_name IN ('claude_code.lines_of_code.count', 'claude_code.commit.count',
          'claude_code.pull_request.count', 'claude_code.code_edit_tool.decision', 'claude_code.active_time.total',
          'claude_code.session.count', 'claude_code.token.usage')
    GROUP BY ALL""")
        # OTel events carry user.id together with user.email / account uuid: use them for the points
        self._add("uid_map", """
    SELECT user_id, max(lower(user_email)) AS email, max(account_uuid) AS account_uuid
    FROM api_request WHERE ts >= $lo AND ts < $hi AND user_id IS NOT NULL
      AND (user_email IS NOT NULL OR account_uuid IS NOT NULL)
    GROUP BY user_id""")
        joins, person = person_key_sql([("email", "u.email"), ("otel_account_uuid", "u.account_uuid"),
                                        ("otel_user_id", "p.user_id")], prefix="pa")
        return self._add("pt", f"""
    SELECT d.day, {person} AS person, p.* EXCLUDE (q, user_id)
    FROM pt_raw p JOIN qday d ON d.q = p.q LEFT JOIN uid_map u ON u.user_id = p.user_id
    {joins}""")

    # -- rollup path ----------------------------------------------------------------------------
    def rq(self) -> str:
        """The rollup rows of api_request in range (raw rows re-summed for dirty days)."""
        return self._add("rq", rollup.request_source_sql(self.ctx.dirty.get("api_request", [])))

    def rollup_prices_ok(self) -> bool:
        """The rollup splits requests at the 200k long-context threshold: it prices exactly when every
        model's threshold is that one (or none); otherwise cost is priced from raw rows."""
        prices = self.ctx.prices.prices.values() if self.ctx.prices else ()
        return all(not p.long_context or int(p.long_context["threshold"]) == rollup.LONG_CONTEXT for p in prices)

    def _ev_raw_rollup(self, cost: bool) -> str:
        """ev_raw / ev_cost_raw from the rollup: same grain and columns as the raw SELECT; cost is the
        api_request_cost formula applied to the summed tokens of one (model, fast, long-context) group."""
        rq = self.rq()
        money = join = ""
        if cost:
            money = (f""",
           sum(CASE WHEN p.price_key IS NULL THEN NULL ELSE (
               CASE WHEN r.long_ctx AND p.long_context_threshold IS NOT NULL THEN {summed_tokens_price('r', True)}
                    ELSE {summed_tokens_price('r', False)} END
               * CASE WHEN r.fast THEN coalesce(p.fast_multiplier, 1) ELSE 1 END / 1e6) END) AS cost_usd,
           bool_or(p.price_key IS NULL) AS unpriced""")
            join = "LEFT JOIN model_price p ON p.model = r.model"
        return f"""
    SELECT r.q, r.session_id, r.host, r.email, r.account_uuid, r.user_id,
           coalesce(r.model, 'unknown') AS model, coalesce(r.project, 'unknown') AS project, r.bt, r.bo,
           sum(r.requests)::BIGINT AS requests, sum(r.input_tokens) AS input_tokens,
           sum(r.output_tokens) AS output_tokens, sum(r.cache_creation_tokens) AS cache_creation_tokens,
           sum(r.cache_read_tokens) AS cache_read_tokens{money}
    FROM {rq} r {join}
    GROUP BY ALL"""

    # Claude Code Analytics rows name a user by email or an API key by name: one (kind, value) per row,
    # so one alias join (rows are not pre-aggregated: every later step sums, and local/remote rows of
    # one actor-day simply both count)
    _CC_KIND = "CASE WHEN actor_type = 'api_key' THEN 'api_key_name' ELSE 'email' END"

    def _cc(self, name: str, cols: str, table: str, value: str) -> str:
        return self._add(name, f"""
    SELECT c.day, coalesce(a.person_id, c.akind || ':' || c.avalue) AS person, c.* EXCLUDE (day, akind, avalue)
    FROM (SELECT day, {self._CC_KIND} AS akind, {value} AS avalue, {cols}
          FROM {table} WHERE day >= $since AND day <= $until) c
    LEFT JOIN alias a ON a.kind = c.akind AND a.value = c.avalue""")

    def cc(self) -> str:
        """Claude Code Analytics actor-days in range (local and remote rows of one actor-day both count)."""
        return self._cc("cc", "num_sessions AS sessions, lines_added, lines_removed, commits, pull_requests",
                        "cc_actor_day", "CASE WHEN actor_type = 'api_key' THEN coalesce(api_key_name, actor_id) "
                        "ELSE lower(coalesce(email, actor_id)) END")

    def cc_daily(self) -> str:
        return self._cc("ccd", "model, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, "
                        "estimated_cost_cents::DOUBLE / 100 AS cost_usd", "cc_daily",
                        "CASE WHEN actor_type = 'api_key' THEN coalesce(api_key_name, actor_id) "
                        "ELSE lower(coalesce(email, actor_id)) END")

    def cc_tools(self) -> str:
        cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in TOOL_NAMES.items())
        return self._cc("cct", f"CASE tool {cases} ELSE tool END AS tool, accepted, rejected", "cc_tool_action",
                        "CASE WHEN actor_type = 'api_key' THEN actor_id ELSE lower(actor_id) END")

    def eng(self) -> str:
        """Enterprise Analytics user-days in range."""
        joins, person = person_key_sql([("email", "lower(e.email)"), ("anthropic_account", "e.user_id")], prefix="en")
        return self._add("eng", f"""
    SELECT e.day, {person} AS person, e.* EXCLUDE (day, email, user_id, fetched_at, run_id)
    FROM engagement_day e {joins}
    WHERE e.day >= $since AND e.day <= $until""")

    # -- families ------------------------------------------------------------------------------
    def family(self, name: str) -> str:
        """Add the CTEs of family ``name`` and return the name of its fact CTE."""
        return getattr(self, f"f_{name}")()

    def f_activity(self) -> str:
        ev, pt, cc, eng = self.ev(False), self.pt(), self.cc(), self.eng()
        return self._add("f_activity", f"""
    SELECT day, person, bit_or({_srcs('bt', 'bo')}) AS srcs, 3 AS tier FROM {ev} GROUP BY day, person
    UNION ALL SELECT DISTINCT day, person, {OT}, 3 FROM {pt}
    UNION ALL SELECT day, person, {CCB}, 1 FROM {cc}
    UNION ALL SELECT day, person, {EAB}, 2 FROM {eng}
      WHERE coalesce(cc_session_count, 0) + coalesce(cc_lines_added, 0) + coalesce(cc_lines_removed, 0)
          + coalesce(cc_commit_count, 0) + coalesce(cc_tool_accepted, 0) + coalesce(cc_tool_rejected, 0) > 0""")

    def f_sessions(self) -> str:
        ev, cc, eng = self.ev(False), self.cc(), self.eng()
        self._add("ev_sessions", f"""
    SELECT session_id, min(day) AS day, arg_min(person, day) AS person, bool_or(bt) AS bt, bool_or(bo) AS bo
    FROM {ev} WHERE session_id IS NOT NULL GROUP BY session_id""")
        return self._add("f_sessions", f"""
    SELECT day, person, {_srcs('bt', 'bo')} AS srcs, 3 AS tier, count(*) AS sessions
    FROM ev_sessions GROUP BY day, person, bt, bo
    UNION ALL SELECT day, person, {CCB}, 1, sessions FROM {cc}
    UNION ALL SELECT day, person, {EAB}, 2, cc_session_count FROM {eng}
      WHERE cc_session_count IS NOT NULL""")

    def f_tokens(self) -> str:
        ev, ccd = self.ev(False), self.cc_daily()
        cols = "input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens"
        total = "input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens"
        return self._add("f_tokens", f"""
    SELECT day, person, {_srcs('bt', 'bo')} AS srcs, 3 AS tier, model, project, {cols}, {total} AS tokens FROM {ev}
    UNION ALL
    SELECT day, person, {CCB}, 1, model, NULL, {cols}, {total} FROM {ccd}""")

    def f_tokens_by_type(self) -> str:
        """The tokens family with one row per token type (only when grouping or filtering by it)."""
        self.f_tokens()
        return self._add("f_tokens_by_type", """
    SELECT day, person, srcs, tier, model, project, token_type, n AS tokens
    FROM (SELECT * EXCLUDE (tokens) FROM f_tokens)
    UNPIVOT (n FOR token_type IN (input_tokens AS 'input', output_tokens AS 'output',
                                  cache_read_tokens AS 'cache_read', cache_creation_tokens AS 'cache_creation'))""")

    def f_cost(self) -> str:
        ev, ccd = self.ev(True), self.cc_daily()
        return self._add("f_cost", f"""
    SELECT day, person, {_srcs('bt', 'bo')} AS srcs, 3 AS tier, model, project, cost_usd,
           CASE WHEN unpriced THEN model END AS unpriced_model
    FROM {ev}
    UNION ALL
    SELECT day, person, {CCB}, 1, model, NULL, cost_usd, NULL FROM {ccd}""")

    def f_output(self) -> str:
        pt, cc, eng = self.pt(), self.cc(), self.eng()
        # OTel counters only send a point when something happened: a person-day with any OTel point
        # had telemetry on, so a missing counter there is a real 0
        return self._add("f_output", f"""
    SELECT day, person, {CCB} AS srcs, 1 AS tier, lines_added, lines_removed, commits, pull_requests FROM {cc}
    UNION ALL
    SELECT day, person, {EAB}, 2, cc_lines_added, cc_lines_removed, cc_commit_count, cc_pull_request_count FROM {eng}
    UNION ALL
    SELECT day, person, {OT}, 3,
           coalesce(sum(value) FILTER (WHERE metric_name = 'claude_code.lines_of_code.count' AND type = 'added'), 0),
           coalesce(sum(value) FILTER (WHERE metric_name = 'claude_code.lines_of_code.count' AND type = 'removed'), 0),
           coalesce(sum(value) FILTER (WHERE metric_name = 'claude_code.commit.count'), 0),
           coalesce(sum(value) FILTER (WHERE metric_name = 'claude_code.pull_request.count'), 0)
    FROM {pt} GROUP BY day, person""")

    def f_tools(self) -> str:
        pt, cct, eng = self.pt(), self.cc_tools(), self.eng()
        # Enterprise Analytics keeps only the edit tools' totals (the per-tool record is in landing)
        return self._add("f_tools", f"""
    SELECT day, person, {CCB} AS srcs, 1 AS tier, tool, accepted, rejected FROM {cct}
    UNION ALL
    SELECT day, person, {EAB}, 2, '{ALL_EDIT_TOOLS}', cc_tool_accepted, cc_tool_rejected FROM {eng}
    WHERE cc_tool_accepted IS NOT NULL OR cc_tool_rejected IS NOT NULL
    UNION ALL
    SELECT day, person, {OT}, 3, tool, coalesce(sum(value) FILTER (WHERE decision = 'accept'), 0),
           coalesce(sum(value) FILTER (WHERE decision = 'reject'), 0)
    FROM {pt} WHERE metric_name = 'claude_code.code_edit_tool.decision' GROUP BY day, person, tool""")

    def f_active_time(self) -> str:
        pt = self.pt()
        return self._add("f_active_time", f"""
    SELECT day, person, {OT} AS srcs, 3 AS tier, sum(value) AS seconds
    FROM {pt} WHERE metric_name = 'claude_code.active_time.total' GROUP BY day, person""")

    def f_engagement(self) -> str:
        eng = self.eng()
        return self._add("f_engagement", f"""
    SELECT day, person, {EAB} AS srcs, 2 AS tier, chat_message_count AS chat_messages,
           chat_conversation_count AS chat_conversations, web_search_count AS web_searches
    FROM {eng}""")

    def f_billed(self) -> str:
        # the Cost API may have been pulled with several groupings: per day use one of them (the one
        # that names models when there is one), never their sum
        return self._add("f_billed", f"""
    SELECT day, NULL::VARCHAR AS person, {COSTB} AS srcs, 1 AS tier,
           coalesce(model, CASE WHEN cost_type IS NULL OR cost_type = 'tokens' THEN 'unknown' ELSE cost_type END)
               AS model, amount_cents::DOUBLE / 100 AS cost_usd
    FROM cost_day
    WHERE day >= $since AND day <= $until
    QUALIFY grouping = first_value(grouping) OVER (
        PARTITION BY day ORDER BY contains(grouping, 'description') DESC, length(grouping), grouping)""")

    def f_roster(self) -> str:
        """Every known person on every day of the range (the denominator of "share of known people")."""
        return self._add("f_roster", f"""
    SELECT r.day::DATE AS day, p.person_id AS person, {PEOPLEB} AS srcs, 0 AS tier
    FROM range($since::TIMESTAMP, $until::TIMESTAMP + INTERVAL 1 DAY, INTERVAL 1 DAY) r(day), person p""")
