"""Every number the dashboard shows, fetched from the metrics layer — the dashboard computes none itself.

:class:`Figures` is the one place pages get data from. Each method calls a function of
:mod:`cclens.metrics` (or the session view) with the page's filters and returns its rows together
with a :class:`~cclens.server.dashboard_model.Prov` naming the metric and its sources. The REST API
(``/api/v1/…``) and the CLI call the same functions, so a figure here equals the API's for the same
filters (``tests/test_dashboard_api_equality.py``).
"""

from __future__ import annotations

from typing import Any

from ..metrics import anthropic_api, usage
from ..model.pricing import PriceTable
from ..model.session_view import session_view
from . import dashboard_derive as derive
from .dashboard_model import Filters, Prov

TRANSCRIPTS_OTEL = ("transcripts", "otel")
READER_MEMO = True   # a query repeated within one page build runs once (PageReader); off: every time (bench)
DERIVE = True   # derive figures from other figures of the page where exact (dashboard_derive); off: one query each
SOURCE_LABELS = {
    "transcripts": "Session transcripts",
    "otel": "OpenTelemetry",
    "hooks": "Hooks",
    "claude_code_analytics": "Claude Code Analytics API",
    "usage": "Usage API",
    "cost": "Cost API",
    "enterprise_analytics": "Enterprise Analytics API",
}


class PageReader:
    """The read cursor of one page build: a query asked twice with the same parameters (the catalog's
    rollup/layer state check before every metric, the model list before every cost metric) runs once.
    With ``snapshot`` the page reads in one transaction, so its figures are of one data version and a
    repeated answer is exactly what a second run would give (parallel prefetch cursors open their own
    transaction when the prefetch starts: a commit landing in that instant can make them a version newer).
    Everything else is the cursor's."""

    def __init__(self, cur: Any, snapshot: bool = False, memo: dict | None = None, owns: bool = False):
        self._cur = cur
        self._memo: dict[tuple, Any] = {} if memo is None else memo
        self._owns = owns
        self.snapshot = False
        self.hits = 0
        if snapshot:
            try:
                cur.execute("BEGIN TRANSACTION")
                self.snapshot = True
            except Exception:  # noqa: BLE001 - already in a transaction, or a backend without them
                pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)

    @staticmethod
    def _key(kind: str, sql: str, params: Any) -> tuple | None:
        def freeze(v: Any) -> Any:
            return tuple(freeze(x) for x in v) if isinstance(v, (list, tuple)) else v

        key = (kind, sql, freeze(params))
        try:
            hash(key)
        except TypeError:
            return None
        return key

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        key = self._key("q", sql, params) if READER_MEMO else None
        if key is None:
            return self._cur.query(sql, params)
        rows = self._memo.get(key)
        if rows is None:
            rows = self._cur.query(sql, params)
            self._memo[key] = rows
        else:
            self.hits += 1
        return [dict(r) for r in rows]

    def scalar(self, sql: str, params: Any = None) -> Any:
        key = self._key("s", sql, params) if READER_MEMO else None
        if key is None:
            return self._cur.scalar(sql, params)
        if key not in self._memo:
            self._memo[key] = self._cur.scalar(sql, params)
        else:
            self.hits += 1
        return self._memo[key]

    def cursor(self) -> "PageReader":
        """Another cursor (for a parallel prefetch) sharing the answers already known, in its own read
        transaction when this one reads a snapshot (opened the moment the prefetch starts)."""
        return PageReader(self._cur.cursor(), snapshot=self.snapshot, memo=self._memo, owns=True)

    def close(self) -> None:
        """End the snapshot (nothing was written); close the cursor if this reader opened it."""
        if self.snapshot:
            self.snapshot = False
            try:
                self._cur.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - the connection is gone
                pass
        if self._owns:
            self._cur.close()


class Figures:
    """The metrics of one request, over one reader (a read cursor of the server's warehouse)."""

    def __init__(self, reader: Any, filters: Filters, prices: PriceTable, derive: bool | None = None):
        self.reader = reader
        self.f = filters
        self.prices = prices
        self.derive = DERIVE if derive is None else derive
        self._memo: dict[tuple, Any] = {}
        self.calls: list[tuple] = []   # the catalog queries run, in order (what build() learns to prefetch)
        self.vias: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}

    def scoped(self, filters: Filters) -> "Figures":
        """The same request's figures for other filters (e.g. one team): shares the memo and the list of
        calls, so the page's prefetch covers them too."""
        out = Figures(self.reader, filters, self.prices, self.derive)
        out._memo, out.calls = self._memo, self.calls
        return out

    def via(self, vias: dict[tuple[str, tuple[str, ...]], tuple[str, ...]]) -> "Figures":
        """Declare that, for this page's own filters, ``(metric, group_by)`` is to be derived from the same
        metric grouped finer (``{("tokens", ()): ("model",)}``: the total from the per-model rows the page
        shows anyway), one query fewer each (:mod:`cclens.server.dashboard_derive`; exact or refused)."""
        self.vias.update({(m, tuple(g)): tuple(v) for (m, g), v in vias.items()})
        return self

    def _once(self, key: tuple, make: Any) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def _usage_filter(self, f: Filters | None, source: str = "all") -> usage.ReportFilter:
        f = f or self.f
        return usage.ReportFilter(prices=self.prices, tz=f.tz, since=f.since, until=f.until, source=source)

    # -- the metrics catalog (cclens.metrics.catalog): what GET /api/v1/metrics/{name} returns ------
    def metric(self, name: str, group_by: tuple[str, ...] = (), f: Filters | None = None,
               filters: dict[str, list[str]] | None = None) -> tuple[list[dict[str, Any]], Prov]:
        """``compute(name)`` with the page's range, zone and team filter: the rows and their provenance."""
        from ..metrics import catalog

        f = f or self.f
        entry = catalog.get(name)
        org_wide = bool(f.team) and "team" not in entry.dims
        rows = self.rows(name, tuple(group_by), f, filters)
        seen = sorted({s for r in rows for s in (r.get("sources") or [])})
        feeding = tuple(getattr(catalog, "_feeding")(entry))
        text = entry.description + (" Organisation-wide: it has no team dimension, so the team filter does not "
                                    "apply." if org_wide else "")
        if seen:
            text += f" Fed here by: {', '.join(seen)}."
        return rows, Prov(name, feeding, text)

    def rows(self, name: str, group_by: tuple[str, ...], f: Filters,
             filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """The rows ``catalog.compute`` gives for this call: derived from other calls of the page where
        that is exact (a declared :meth:`via`, a ratio from its two parts, a share from its base), else
        computed (once per request)."""
        from ..metrics import catalog

        if self.derive:
            entry = catalog.get(name)
            via = self.vias.get((name, group_by)) if f == self.f else None
            if via is not None and via != group_by:
                try:
                    return derive.regroup(entry, self.rows(name, via, f, filters), via, group_by)
                except derive.NotDerivable:
                    pass   # e.g. fractional sums: ask the catalog
            parts = (entry.numerator, entry.denominator) if entry.numerator else (entry.share_of,) if entry.share_of else ()
            if parts and all(self._team_filtered(p, f) == self._team_filtered(name, f) for p in parts):
                if entry.numerator:
                    return derive.ratio(entry, self.rows(entry.numerator, group_by, f, filters),
                                        self.rows(entry.denominator, group_by, f, filters), group_by)
                if group_by == ("model",):
                    return derive.share(entry, self.rows(entry.share_of, group_by, f, filters), group_by)
        key, make = self.metric_job(name, group_by, f, filters)
        self.calls.append((name, group_by, f, filters))
        return self._once(key, lambda: make(self.reader)).rows

    @staticmethod
    def _team_filtered(name: str, f: Filters) -> bool:
        from ..metrics import catalog

        return bool(f.team) and "team" in catalog.get(name).dims

    def metric_job(self, name: str, group_by: tuple[str, ...], f: Filters,
                   filters: dict[str, list[str]] | None) -> tuple[tuple, Any]:
        """The memo key of a :meth:`metric` call and a function computing it on a given reader (so a
        page's calls can be prefetched on parallel cursors: :func:`cclens.server.dashboard.build`)."""
        from ..metrics import catalog

        flt = dict(filters or {})
        if f.team and "team" in catalog.get(name).dims:
            flt["team"] = [f.team]
        key = ("metric", name, tuple(group_by), f, tuple(sorted((k, tuple(v)) for k, v in flt.items())))

        def make(reader: Any) -> Any:
            return catalog.compute(reader, name, since=f.since, until=f.until, tz=f.tz, group_by=list(group_by),
                                   filters=flt or None, prices=self.prices, coverage=False)
        return key, make

    def prefetch(self, calls: list[tuple], workers: int = 3) -> None:
        """Compute these :meth:`metric` calls ((name, group_by, f, filters) each) on ``workers`` parallel
        read cursors, into the memo the page then reads from. Needs a reader with ``cursor()``."""
        from concurrent.futures import ThreadPoolExecutor

        jobs = {}
        for name, group_by, f, filters in calls:
            key, make = self.metric_job(name, group_by, f, filters)
            if key not in self._memo:
                jobs[key] = make
        if len(jobs) < 2 or not hasattr(self.reader, "cursor"):
            return

        def run(item: tuple) -> None:
            key, make = item
            cur = self.reader.cursor()
            try:
                self._memo[key] = make(cur)
            finally:
                cur.close()

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cclens-dash") as pool:
            list(pool.map(run, jobs.items()))

    def value(self, name: str, f: Filters | None = None) -> tuple[Any, Prov]:
        """The metric's single value over the whole range (None when no source has data)."""
        rows, prov = self.metric(name, (), f)
        return (rows[0]["value"] if rows else None), prov

    def teams(self) -> list[dict[str, str]]:
        return self._once(("teams",), lambda: self.reader.query(
            "SELECT team_id AS key, coalesce(name, team_id) AS name FROM team ORDER BY name"))

    # -- requests seen by transcripts and OTel (priced by the cclens price table) ------------------
    def daily(self, f: Filters | None = None, source: str = "all") -> tuple[list[dict[str, Any]], Prov]:
        f = f or self.f
        rows = self._once(("daily", f, source), lambda: usage.period_report(self.reader, "daily",
                                                                             self._usage_filter(f, source)))
        return rows, Prov("usage.daily", TRANSCRIPTS_OTEL,
                          f"tokens and estimated cost of Claude API requests per day in {f.tz}, each request counted "
                          "once across sources, priced with the cclens price table")

    def weekly(self, f: Filters | None = None) -> tuple[list[dict[str, Any]], Prov]:
        f = f or self.f
        rows = self._once(("weekly", f), lambda: usage.period_report(self.reader, "weekly", self._usage_filter(f)))
        return rows, Prov("usage.weekly", TRANSCRIPTS_OTEL, "tokens and estimated cost per ISO week (Monday start)")

    def models(self, f: Filters | None = None) -> tuple[list[dict[str, Any]], Prov]:
        f = f or self.f
        rows = self._once(("models", f), lambda: usage.model_report(self.reader, self._usage_filter(f)))
        return rows, Prov("usage.models", TRANSCRIPTS_OTEL,
                          "tokens, requests and estimated cost per model; an unpriced model shows its tokens and no cost")

    def sessions(self, f: Filters | None = None) -> tuple[list[dict[str, Any]], Prov]:
        f = f or self.f
        rows = self._once(("sessions", f), lambda: usage.session_report(self.reader, self._usage_filter(f)))
        return rows, Prov("usage.sessions", TRANSCRIPTS_OTEL,
                          "sessions with at least one API request in the period: tokens, estimated cost, models")

    def projects(self, f: Filters | None = None) -> tuple[list[dict[str, Any]], Prov]:
        f = f or self.f
        rows = self._once(("projects", f), lambda: usage.project_report(self.reader, self._usage_filter(f)))
        return rows, Prov("usage.projects", TRANSCRIPTS_OTEL, "tokens and estimated cost per working directory")

    def by_source(self, f: Filters | None = None) -> tuple[dict[str, list[dict[str, Any]]], Prov]:
        f = f or self.f
        out = {s: self.daily(f, s)[0] for s in ("transcripts", "otel")}
        return out, Prov("usage.daily by source", TRANSCRIPTS_OTEL,
                         "the same requests as each source saw them (a request both saw is in both)")

    # -- the Anthropic reporting APIs (UTC days) ---------------------------------------------------
    def api(self, source: str, by: str, f: Filters | None = None) -> tuple[list[dict[str, Any]], Prov]:
        f = f or self.f
        rows = self._once(("api", source, by, f), lambda: anthropic_api.api_report(
            self.reader, source, by=by, since=f.since, until=f.until, tz=f.tz))
        texts = {
            "claude_code_analytics": "Claude Code Analytics API, per actor and UTC day: sessions, lines, commits and "
                                     "PRs by Claude Code, edit tool decisions, tokens and Anthropic's estimated cost; "
                                     "first-party API users only (no Bedrock/Vertex, no subscription users)",
            "cost": "Cost API: what Anthropic bills, per UTC day, in USD (priority tier not included)",
            "usage": "Usage API: tokens per time bucket for the whole organisation (no user dimension)",
            "enterprise_analytics": "Enterprise Analytics API: engagement per user and UTC day (1–3 day lag)",
        }
        return rows, Prov(f"anthropic_api.{source} by {by}", (source,), texts[source])

    def coverage(self, source: str) -> dict[str, Any]:
        return anthropic_api.coverage(self.reader, source)

    # -- one session -------------------------------------------------------------------------------
    def session(self, session_id: str) -> tuple[dict[str, Any] | None, Prov]:
        return session_view(self.reader, session_id), Prov(
            "session view", ("transcripts", "otel", "hooks"), "the session as each source saw it, side by side")

    def session_timeline(self, session_id: str) -> tuple[dict[str, list[dict[str, Any]]], Prov]:
        return session_timeline(self.reader, session_id), Prov(
            "session timeline", ("transcripts", "hooks", "otel"),
            "every prompt, request, tool use and subagent each source recorded for the session, in time order")

    # -- collection health (what arrived, when, what failed) ----------------------------------------
    def source_status(self) -> list[dict[str, Any]]:
        """One row per source: configured/seen, rows, newest data, last arrival or sync, errors, coverage."""
        return self._once(("status",), lambda: source_status(self.reader))


_PUSHED = {
    "transcripts": """SELECT (SELECT count(*) FROM api_request WHERE from_transcripts) AS rows,
                             (SELECT count(*) FROM transcript_file) AS files,
                             (SELECT max(ts) FROM api_request WHERE from_transcripts) AS newest,
                             (SELECT min(ts) FROM api_request WHERE from_transcripts) AS oldest,
                             (SELECT max(finished_at) FROM ingest_run WHERE source = 'transcripts') AS last_arrival""",
    "otel": """SELECT (SELECT count(*) FROM otel_event) + (SELECT count(*) FROM otel_point) AS rows,
                      (SELECT count(*) FROM landing_otlp_request) AS files,
                      (SELECT max(ts) FROM otel_event) AS newest, (SELECT min(ts) FROM otel_event) AS oldest,
                      (SELECT max(received_at) FROM landing_otlp_request) AS last_arrival""",
    "hooks": """SELECT count(*) AS rows, count(DISTINCT session_id) AS files, max(ts) AS newest, min(ts) AS oldest,
                       max(received_at) AS last_arrival FROM landing_hook_event""",
}
_PULLED_TABLES = {"claude_code_analytics": "cc_actor_day", "usage": "usage_bucket", "cost": "cost_day",
                  "enterprise_analytics": "engagement_day"}


def source_status(reader: Any) -> list[dict[str, Any]]:
    errors = {r["source"]: r for r in reader.query(
        "SELECT source, count(*) AS n, max(received_at) AS last FROM quarantine GROUP BY 1")}
    out = []
    for source, sql in _PUSHED.items():
        r = reader.query(sql)[0]
        err = errors.get("otlp" if source == "otel" else source, {})
        out.append({"source": source, "label": SOURCE_LABELS[source], "kind": "push", "seen": bool(r["rows"]),
                    "rows": r["rows"], "units": r["files"], "oldest": r["oldest"], "newest": r["newest"],
                    "last_arrival": r["last_arrival"], "last_error": None, "errors": err.get("n", 0),
                    "covered_from": r["oldest"], "covered_until": r["newest"]})
    for source, table in _PULLED_TABLES.items():
        cov = anthropic_api.coverage(reader, source)
        n = reader.scalar(f"SELECT count(*) FROM {table}") or 0
        state = reader.query("SELECT last_attempt, last_rows FROM source_state WHERE source = ?", [source])
        out.append({"source": source, "label": SOURCE_LABELS[source], "kind": "pull", "seen": bool(n) or cov["synced"],
                    "rows": n, "units": None, "oldest": None, "newest": None,
                    "last_arrival": cov["last_success"], "last_attempt": state[0]["last_attempt"] if state else None,
                    "last_error": cov["last_error"], "errors": 1 if cov["last_error"] else 0,
                    "covered_from": cov["covered_from"], "covered_until": cov["covered_until"]})
    return out


def _num(v: Any) -> str:
    return f"{int(v):,}" if v is not None else "?"


def session_timeline(reader: Any, session_id: str) -> dict[str, list[dict[str, Any]]]:
    """What each source recorded for the session, in time order: ``{source: [{ts, kind, text}]}``."""
    out: dict[str, list[dict[str, Any]]] = {"transcripts": [], "hooks": [], "otel": []}
    t = out["transcripts"]
    for r in reader.query("SELECT ts, length FROM prompt WHERE session_id = ? AND source = 'transcripts'", [session_id]):
        t.append({"ts": r["ts"], "kind": "prompt", "text": f"prompt ({_num(r['length'])} chars)"})
    for r in reader.query("""SELECT ts, model, agent_id, input_tokens + output_tokens + cache_creation_tokens
                                    + cache_read_tokens AS tokens, output_tokens, cost_usd
                             FROM api_request_cost WHERE session_id = ? AND from_transcripts""", [session_id]):
        who = f"subagent {r['agent_id'][:8]} · " if r["agent_id"] else ""
        cost = f" · ${r['cost_usd']:.4f}" if r["cost_usd"] is not None else " · unpriced"
        t.append({"ts": r["ts"], "kind": "agent" if r["agent_id"] else "request",
                  "text": f"{who}request {r['model']} · {_num(r['tokens'])} tokens ({_num(r['output_tokens'])} out){cost}"})
    for r in reader.query("""SELECT ts, tool_name, agent_id, is_error FROM tool_use
                             WHERE session_id = ? AND source = 'transcripts'""", [session_id]):
        who = "subagent · " if r["agent_id"] else ""
        t.append({"ts": r["ts"], "kind": "error" if r["is_error"] else "tool",
                  "text": f"{who}tool {r['tool_name']}{' · error' if r['is_error'] else ''}"})
    for r in reader.query("""SELECT ts, event_name, tool_name, agent_type FROM landing_hook_event
                             WHERE session_id = ? ORDER BY ts, seq""", [session_id]):
        kind = ("tool" if "Tool" in r["event_name"] else "prompt" if "Prompt" in r["event_name"]
                else "agent" if "Subagent" in r["event_name"] else "error" if "Failure" in r["event_name"]
                else "session")
        detail = r["tool_name"] or r["agent_type"] or ""
        out["hooks"].append({"ts": r["ts"], "kind": kind, "text": f"{r['event_name']} {detail}".strip()})
    for r in reader.query("""SELECT ts, event_name, attributes->>'model' AS model, attributes->>'tool_name' AS tool,
                                    attributes->>'cost_usd' AS cost, attributes->>'output_tokens' AS output,
                                    attributes->>'query_source' AS qs, attributes->>'decision' AS decision,
                                    attributes->>'success' AS success
                             FROM otel_event WHERE session_id = ? ORDER BY ts, sequence""", [session_id]):
        name = r["event_name"]
        if name == "api_request":
            text = f"api_request {r['model']} · {r['qs']} · {r['output']} out · ${float(r['cost'] or 0):.4f}"
            kind = "agent" if (r["qs"] or "").startswith("agent:") else "request"
        elif name == "user_prompt":
            text, kind = "user_prompt", "prompt"
        elif name in ("tool_decision", "tool_result"):
            text = f"{name} {r['tool']} · {r['decision'] or ('ok' if r['success'] == 'true' else 'failed')}"
            kind = "tool" if r["success"] != "false" else "error"
        else:
            text, kind = name, "session"
        out["otel"].append({"ts": r["ts"], "kind": kind, "text": text})
    for items in out.values():
        items.sort(key=lambda e: (e["ts"] is None, e["ts"]))
    return out
