"""Token and cost reports over ``api_request``: by day, week, month, session, project and model.

Every function returns plain rows (dicts) ready for any surface. Cost is computed in the query from
the given price table (:func:`cclens.model.pricing.priced_requests_cte`), so reports are read-only and
work the same on the warehouse file or through a running server. A model without a price contributes
its tokens, is listed in ``unpriced_models``, and has ``cost_usd`` None — never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from ..errors import QueryError
from ..model.pricing import PriceTable, priced_requests_cte

TOKEN_COLS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
SOURCES = {"all": "TRUE", "transcripts": "from_transcripts", "otel": "from_otel"}
PERIODS = {
    "daily": "strftime(timezone(?, ts)::DATE, '%Y-%m-%d')",
    "weekly": "strftime(date_trunc('week', timezone(?, ts))::DATE, '%Y-%m-%d')",
    "monthly": "strftime(timezone(?, ts)::DATE, '%Y-%m')",
}
PERIOD_KEY = {"daily": "date", "weekly": "week", "monthly": "month"}
_QUARTER_US = 15 * 60 * 1_000_000


@dataclass(frozen=True)
class ReportFilter:
    """The shared report options: day range in ``tz`` (inclusive), source, project and session."""

    prices: PriceTable | None = None
    tz: str = "UTC"
    since: date | None = None
    until: date | None = None
    source: str = "all"
    project: str | None = None

    def where(self, *, dated: bool = True) -> tuple[str, list[Any]]:
        """The WHERE of the requests in range; ``dated=False``: those of the source and project that
        have no timestamp (in no period, whatever the range: see :func:`undated`)."""
        if self.source not in SOURCES:
            raise QueryError(f"unknown source {self.source!r}; use one of {', '.join(SOURCES)}")
        clauses = ["ts IS NOT NULL" if dated else "ts IS NULL", SOURCES[self.source]]
        params: list[Any] = []
        if dated and self.since:
            clauses.append("timezone(?, ts)::DATE >= ?")
            params += [self.tz, self.since]
        if dated and self.until:
            clauses.append("timezone(?, ts)::DATE <= ?")
            params += [self.tz, self.until]
        if self.project:
            clauses.append("project = ?")
            params.append(self.project)
        return " AND ".join(clauses), params


def _query(wh, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """``wh.query``; through a running server its plain-JSON form when it has one (no Arrow to import in
    the CLI). JSON gives sums of integers as strings: the functions below convert every number they use."""
    query = getattr(wh, "query_json", None) or wh.query
    return query(sql, params)


def _totals(row: dict[str, Any]) -> dict[str, Any]:
    out = {c: int(row[c] or 0) for c in TOKEN_COLS}
    out["total_tokens"] = sum(out.values())
    out["cost_usd"] = None if row["cost_usd"] is None else float(row["cost_usd"])
    return out


def _group(rows: list[dict[str, Any]], key: str, label: str) -> list[dict[str, Any]]:
    """Fold (key, model) rows into one row per key with a ``models`` list."""
    grouped: dict[Any, dict[str, Any]] = {}
    for r in rows:
        g = grouped.get(r[key])
        if g is None:
            g = grouped[r[key]] = {label: r[key], **{c: 0 for c in TOKEN_COLS}, "total_tokens": 0,
                                   "cost_usd": None, "requests": 0, "unpriced_models": [], "models": []}
        m = {"model": r["model"], **_totals(r), "requests": int(r["requests"])}
        g["models"].append(m)
        for c in (*TOKEN_COLS, "total_tokens", "requests"):
            g[c] += m[c]
        if m["cost_usd"] is None:
            g["unpriced_models"].append(r["model"])
        else:
            g["cost_usd"] = (g["cost_usd"] or 0.0) + m["cost_usd"]
    for g in grouped.values():
        if g["cost_usd"] is not None:
            g["cost_usd"] = round(g["cost_usd"], 10)
        for m in g["models"]:
            if m["cost_usd"] is not None:
                m["cost_usd"] = round(m["cost_usd"], 10)
    return list(grouped.values())


def _priced(wh, flt: ReportFilter) -> tuple[str, list[Any]]:
    """The ``WITH … api_request_cost AS (…)`` prefix pricing the models present with ``flt.prices``."""
    if flt.prices is None:
        raise QueryError("a report needs a price table (ReportFilter.prices)")
    models = [r["model"] for r in _query(wh, "SELECT DISTINCT model FROM api_request WHERE model IS NOT NULL")]
    return priced_requests_cte(flt.prices, models)


def undated(wh, flt: ReportFilter) -> dict[str, int]:
    """``{"requests": N, "total_tokens": T}`` of the requests of ``flt``'s source and project that have no
    timestamp (a transcript line whose ``timestamp`` does not read as one). They are in no day, week or
    session range, so every report leaves them out; the reports say how many there are instead of
    letting them vanish."""
    where, params = flt.where(dated=False)
    row = _query(wh, f"""SELECT count(*) AS requests,
                                sum(input_tokens + output_tokens + cache_creation_tokens + cache_read_tokens) AS tokens
                         FROM api_request WHERE {where}""", params)[0]
    return {"requests": int(row["requests"] or 0), "total_tokens": int(row["tokens"] or 0)}


def period_report(wh, period: str, flt: ReportFilter) -> list[dict[str, Any]]:
    """Tokens, cost and requests per day/week/month (in ``flt.tz``), each with a per-model list."""
    if period not in PERIODS:
        raise QueryError(f"unknown period {period!r}; use daily, weekly or monthly")
    where, params = flt.where()
    cte, cte_params = _priced(wh, flt)
    # Requests are first summed per UTC quarter hour, and only the quarter hours are put in the zone:
    # every UTC offset and every offset change in use is on a quarter hour, so a quarter hour falls in
    # one local day, and converting thousands of quarter hours instead of every request keeps the
    # report cheap as history grows (the conversion was most of the query's time).
    rows = _query(wh, cte + f""", q AS (
        SELECT epoch_us(ts) // {_QUARTER_US} AS q, coalesce(model, 'unknown') AS model,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(cache_creation_tokens) AS cache_creation_tokens, sum(cache_read_tokens) AS cache_read_tokens,
               bool_or(cost_usd IS NULL) AS unpriced, sum(cost_usd) AS cost_usd, count(*) AS requests
        FROM api_request_cost WHERE {where}
        GROUP BY 1, 2)
        SELECT {PERIODS[period].replace("ts)", f"make_timestamptz(q * {_QUARTER_US}))")} AS k, model,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(cache_creation_tokens) AS cache_creation_tokens, sum(cache_read_tokens) AS cache_read_tokens,
               CASE WHEN bool_or(unpriced) THEN NULL ELSE sum(cost_usd) END AS cost_usd,
               sum(requests) AS requests
        FROM q GROUP BY 1, 2 ORDER BY 1, 2
    """, [*cte_params, *params, flt.tz])
    return _group(rows, "k", PERIOD_KEY[period])


def model_report(wh, flt: ReportFilter) -> list[dict[str, Any]]:
    """One row per model over the whole range."""
    where, params = flt.where()
    cte, cte_params = _priced(wh, flt)
    rows = _query(wh, cte + f"""
        SELECT coalesce(model, 'unknown') AS model, any_value(price_key) AS price_key,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(cache_creation_tokens) AS cache_creation_tokens, sum(cache_read_tokens) AS cache_read_tokens,
               CASE WHEN bool_or(cost_usd IS NULL) THEN NULL ELSE sum(cost_usd) END AS cost_usd,
               count(*) AS requests, count(*) FILTER (WHERE long_context) AS long_context_requests
        FROM api_request_cost WHERE {where}
        GROUP BY 1 ORDER BY cost_usd DESC NULLS LAST, 1
    """, [*cte_params, *params])
    return [{"model": r["model"], "priced_as": r["price_key"], **_totals(r), "requests": int(r["requests"]),
             "long_context_requests": int(r["long_context_requests"]),
             "unpriced": r["cost_usd"] is None} for r in rows]


def session_report(wh, flt: ReportFilter) -> list[dict[str, Any]]:
    """One row per session: project, host, first/last activity, tokens, cost, models."""
    where, params = flt.where()
    cte, cte_params = _priced(wh, flt)
    rows = _query(wh, cte + f""", r AS (SELECT * FROM api_request_cost WHERE {where})
        SELECT r.session_id AS k, coalesce(r.model, 'unknown') AS model,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(cache_creation_tokens) AS cache_creation_tokens, sum(cache_read_tokens) AS cache_read_tokens,
               CASE WHEN bool_or(cost_usd IS NULL) THEN NULL ELSE sum(cost_usd) END AS cost_usd,
               count(*) AS requests
        FROM r GROUP BY 1, 2 ORDER BY 1, 2
    """, [*cte_params, *params])
    grouped = _group(rows, "k", "session_id")
    meta = {m["session_id"]: m for m in _query(wh, """
        SELECT s.session_id, s.project, s.host, s.first_ts, s.last_ts, s.git_branch, s.version,
               s.subagent_count, s.prompt_count FROM session s""")}
    fallback = {m["session_id"]: m for m in _query(wh, f"""
        SELECT session_id, any_value(project) AS project, any_value(host) AS host, min(ts) AS first_ts,
               max(ts) AS last_ts FROM api_request WHERE {where} GROUP BY 1""", params)}
    out = []
    for g in grouped:
        m = meta.get(g["session_id"]) or fallback.get(g["session_id"]) or {}
        out.append({"session_id": g["session_id"], "project": m.get("project"), "host": m.get("host"),
                    "first_ts": _iso(m.get("first_ts")), "last_ts": _iso(m.get("last_ts")),
                    "git_branch": m.get("git_branch"), "subagents": m.get("subagent_count"),
                    "prompts": m.get("prompt_count"), **{k: v for k, v in g.items() if k != "session_id"}})
    out.sort(key=lambda r: r["last_ts"] or "", reverse=True)
    return out


def project_report(wh, flt: ReportFilter) -> list[dict[str, Any]]:
    """One row per project (working directory): sessions, tokens, cost, last activity."""
    where, params = flt.where()
    cte, cte_params = _priced(wh, flt)
    rows = _query(wh, cte + f"""
        SELECT coalesce(project, 'unknown') AS k, coalesce(model, 'unknown') AS model,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(cache_creation_tokens) AS cache_creation_tokens, sum(cache_read_tokens) AS cache_read_tokens,
               CASE WHEN bool_or(cost_usd IS NULL) THEN NULL ELSE sum(cost_usd) END AS cost_usd,
               count(*) AS requests
        FROM api_request_cost WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2
    """, [*cte_params, *params])
    extra = {r["k"]: r for r in _query(wh, f"""
        SELECT coalesce(project, 'unknown') AS k, count(DISTINCT session_id) AS sessions, max(ts) AS last_ts
        FROM api_request WHERE {where} GROUP BY 1""", params)}
    out = []
    for g in _group(rows, "k", "project"):
        e = extra.get(g["project"], {})
        out.append({"project": g["project"], "sessions": e.get("sessions"), "last_ts": _iso(e.get("last_ts")),
                    **{k: v for k, v in g.items() if k != "project"}})
    out.sort(key=lambda r: (r["cost_usd"] is None, -(r["cost_usd"] or 0)))
    return out


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value
