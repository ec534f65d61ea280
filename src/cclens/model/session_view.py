"""One session as each source saw it: ``GET /api/v1/sessions/{id}`` and ``cclens report sessions``.

:func:`session_view` returns ``{"session_id", "sources": {name: section}, ...}`` where each section
says what that source saw: ``requests``, ``tokens`` by type, ``cost_usd``, ``prompts``, ``tool_uses``,
``first_ts``, ``last_ts`` (sources that never saw the session are absent, not zero). Sections are
pluggable: :data:`SECTIONS` maps a source name to ``"module:function"``; the function takes a reader
and the session id and returns a dict or None. A module that is not installed yet is skipped.

* ``otel`` counts Claude Code's ``api_request`` events (tokens and Claude Code's own cost estimate),
  ``user_prompt`` events and ``tool_result``/``tool_decision`` tool uses; ``metrics`` adds the
  ``token.usage``/``cost.usage`` sums, which should agree.
* ``transcripts`` counts ``api_request`` rows seen in transcripts (tokens are the merged row's: the
  larger of what transcripts and OTel said), priced with the effective price table.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

SECTIONS: dict[str, str] = {
    "otel": "cclens.model.session_view:otel_section",
    "transcripts": "cclens.model.session_view:transcripts_section",
    "hooks": "cclens.server.hooks:hooks_section",
}

_TOKEN_TYPES = {"input": "input", "output": "output", "cacheRead": "cache_read", "cacheCreation": "cache_creation"}


def _resolve(ref: str) -> Callable[[Any, str], Any] | None:
    mod, _, fn = ref.partition(":")
    try:
        return getattr(importlib.import_module(mod), fn)
    except ModuleNotFoundError as exc:
        if exc.name and mod.startswith(exc.name):
            return None
        raise


def session_view(reader: Any, session_id: str) -> dict[str, Any] | None:
    """Every source's view of ``session_id``, or None when no source has it."""
    sources: dict[str, Any] = {}
    for name, ref in SECTIONS.items():
        fn = _resolve(ref)
        if fn is None:
            continue
        try:
            section = fn(reader, session_id)
        except Exception as exc:  # a source whose tables do not exist yet: say so, keep the others
            if "does not exist" in str(exc) or "Catalog Error" in str(exc):
                continue
            raise
        if section:
            sources[name] = section
    if not sources:
        return None
    out: dict[str, Any] = {"session_id": session_id, "sources": sources}
    try:
        links = reader.query("SELECT transient_session_id FROM otel_continue_link WHERE resumed_session_id = ?",
                             [session_id])
        if links:
            out["continued_via"] = [r["transient_session_id"] for r in links]
    except Exception:  # noqa: BLE001 - the otel schema is optional for this view
        pass
    return out


def otel_section(reader: Any, session_id: str) -> dict[str, Any] | None:
    ev = reader.query("""
        SELECT count(*) AS events, min(ts) AS first_ts, max(ts) AS last_ts,
               count(DISTINCT coalesce(attributes->>'request_id', request_id || ':' || record_index))
                   FILTER (WHERE event_name = 'api_request') AS requests,
               count(DISTINCT prompt_id) FILTER (WHERE event_name = 'user_prompt') AS prompts,
               count(DISTINCT attributes->>'tool_use_id')
                   FILTER (WHERE event_name IN ('tool_result', 'tool_decision')) AS tool_uses,
               any_value(user_id) AS user_id, any_value(user_email) AS user_email
        FROM otel_event WHERE session_id = ?""", [session_id])[0]
    pts = reader.query("""
        SELECT metric_name, type, sum(value) AS total, min(ts) AS first_ts, max(ts) AS last_ts
        FROM otel_point WHERE session_id = ? GROUP BY ALL""", [session_id])
    if not ev["events"] and not pts:
        return None
    req = reader.query("""
        SELECT coalesce(sum(input_tokens), 0) AS input, coalesce(sum(output_tokens), 0) AS output,
               coalesce(sum(cache_read_tokens), 0) AS cache_read,
               coalesce(sum(cache_creation_tokens), 0) AS cache_creation, sum(cost_usd) AS cost_usd,
               list(DISTINCT model) FILTER (WHERE model IS NOT NULL) AS models
        FROM (SELECT DISTINCT ON (coalesce(request_id, otlp_request_id || ':' || record_index)) *
              FROM otel_api_request_event WHERE session_id = ?)""", [session_id])[0]
    metrics: dict[str, Any] = {"tokens": {}, "cost_usd": None}
    for p in pts:
        if p["metric_name"] == "claude_code.token.usage" and p["type"]:
            key = _TOKEN_TYPES.get(p["type"], p["type"])
            metrics["tokens"][key] = metrics["tokens"].get(key, 0) + int(p["total"] or 0)
        elif p["metric_name"] == "claude_code.cost.usage":
            metrics["cost_usd"] = (metrics["cost_usd"] or 0) + (p["total"] or 0)
    firsts = [t for t in [ev["first_ts"], *(p["first_ts"] for p in pts)] if t is not None]
    lasts = [t for t in [ev["last_ts"], *(p["last_ts"] for p in pts)] if t is not None]
    return {
        "requests": ev["requests"],
        "tokens": {k: int(req[k]) for k in ("input", "output", "cache_read", "cache_creation")},
        "cost_usd": req["cost_usd"],
        "cost_basis": "Claude Code's own estimate (api_request cost_usd)",
        "models": sorted(req["models"] or []),
        "prompts": ev["prompts"],
        "tool_uses": ev["tool_uses"],
        "events": ev["events"],
        "first_ts": min(firsts) if firsts else None,
        "last_ts": max(lasts) if lasts else None,
        "user_id": ev["user_id"],
        "user_email": ev["user_email"],
        "metrics": metrics if pts else None,
    }


def transcripts_section(reader: Any, session_id: str) -> dict[str, Any] | None:
    from .pricing import current_table, priced_requests_cte

    # Priced in the query with the effective price table (the same formula as the api_request_cost
    # view), so a model_price table that has not been synced yet never shows a priced model as unpriced.
    models = [m["model"] for m in reader.query(
        "SELECT DISTINCT model FROM api_request WHERE session_id = ? AND model IS NOT NULL", [session_id])]
    cte, cte_params = priced_requests_cte(current_table(), models)
    r = reader.query(cte + """
        SELECT count(*) AS requests, coalesce(sum(input_tokens), 0) AS input,
               coalesce(sum(output_tokens), 0) AS output, coalesce(sum(cache_read_tokens), 0) AS cache_read,
               coalesce(sum(cache_creation_tokens), 0) AS cache_creation, sum(cost_usd) AS cost_usd,
               count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced, min(ts) AS first_ts, max(ts) AS last_ts,
               list(DISTINCT model) FILTER (WHERE model IS NOT NULL) AS models
        FROM api_request_cost WHERE session_id = ? AND from_transcripts""", [*cte_params, session_id])[0]
    prompts = reader.scalar("SELECT count(DISTINCT prompt_id) FROM prompt WHERE session_id = ? "
                            "AND source = 'transcripts'", [session_id]) or 0
    tools = reader.scalar("SELECT count(DISTINCT tool_use_id) FROM tool_use WHERE session_id = ? "
                          "AND source = 'transcripts'", [session_id]) or 0
    if not r["requests"] and not prompts and not tools:
        return None
    return {
        "requests": r["requests"],
        "tokens": {k: int(r[k]) for k in ("input", "output", "cache_read", "cache_creation")},
        "cost_usd": r["cost_usd"],
        "cost_basis": f"cclens price table {current_table().version}",
        "unpriced_requests": r["unpriced"],
        "models": sorted(r["models"] or []),
        "prompts": prompts,
        "tool_uses": tools,
        "first_ts": r["first_ts"],
        "last_ts": r["last_ts"],
    }
