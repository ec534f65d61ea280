"""The person-day layer: the catalog's fact families with the person resolved and the winning source
per person-day already chosen, one row per UTC day × person (× model or tool), kept fresh incrementally.

Why: over a quarter the catalog spent most of its time resolving people (alias joins over every API
actor-day and event bucket) and choosing the most complete source per person-day (a group-by and
join over ~500,000 rows). Both depend only on the day's rows and the aliases, so they are done once
here (``pd_*`` tables, :mod:`cclens.warehouse.schema.rollup` version 2); a query scans ~450,000 narrow
rows of one table, joins the small dated team membership, and groups.

What stays at query time, so figures follow changes without a rebuild:

* team membership (dated), the ``person`` table (known people), prices (cost is priced in the query
  from per-model token sums split by fast mode and the 200k long-context threshold, exactly as the
  rollup path does);
* event sessions that span several UTC days: a session counts on its first day *in the asked range*,
  which depends on the range, so ``pd_session_day`` keeps them per day and the query counts them
  (single-day sessions are pre-counted in ``pd_sessions``).

Identity borrowing is over the whole history: a transcript row takes the OTel identity of its session,
and an OTel metric point's ``user.id`` its email, from every row of that session / user id, not only
the rows inside the asked range (the raw path uses the range; they differ only when a session's
identity-bearing rows all lie outside the range).

Freshness (:func:`refresh`, run by :func:`cclens.metrics.rollup.refresh`):

* event days marked dirty are recomputed, widened to every day of the sessions they touch (a new row
  can change a session's person or make it multi-day) and to the days of OTel user ids whose email
  changed;
* the daily API tables (Claude Code Analytics, Enterprise Analytics) are fingerprinted per day (rows,
  latest ``fetched_at``): days whose fingerprint changed are recomputed;
* an alias change (import, link, unlink) recomputes the days where the changed identities appear (and
  the days of their sessions); more than :data:`ALIAS_LIMIT` changed aliases rebuild the layer.

A query uses the layer only when it can give the same answer as the raw path (:func:`usable`): UTC
days, no source or project grouping, no filter that changes which source wins (model, tool, token
type, source), prices the rollup split can price, the alias and API fingerprints unchanged and no
event day within two days of the range waiting for a refresh. Otherwise the query reads the rollups or
raw tables as before: slower, never stale.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any, Iterable

from .facts import CCB, EAB, Ctx, Facts, _srcs, summed_tokens_price

LAYER_TZ = "UTC"
TABLES = ("pd_activity", "pd_sessions", "pd_session_day", "pd_tokens", "pd_output", "pd_tools", "pd_active_time",
          "pd_engagement")
_EPOCH = date(1970, 1, 1)
# the families the layer holds (their rows already won their person-day); others (a module's own
# families, roster, billed) are computed as before
LAYER_FAMILIES = frozenset({"activity", "sessions", "tokens", "tokens_by_type", "cost", "output", "tools",
                            "active_time", "engagement"})

# fingerprints: any alias change rebuilds; the API tables per day (rows, newest fetch)
ALIAS_FP = "(SELECT count(*) || ':' || coalesce(bit_xor(hash(kind, value, person_id)), 0) FROM alias)"
_API = {"cc_actor_day": "max(fetched_at)", "cc_daily": "max(fetched_at)", "engagement_day": "max(fetched_at)",
        "cc_tool_action": "NULL::TIMESTAMPTZ"}
API_FP = " || '|' || ".join(f"(SELECT count(*) || ':' || coalesce({fx}::VARCHAR, '') FROM {t})" for t, fx in _API.items())
FP_SQL = f"{ALIAS_FP} || '#' || {API_FP}"


def state_sql() -> str:
    """Columns for :func:`cclens.metrics.rollup.state`: ``pd_built`` and ``pd_fresh`` (fingerprints match)."""
    return (f"(SELECT count(*) FROM pd_state WHERE key = 'fp') AS pd_built, "
            f"coalesce((SELECT value FROM pd_state WHERE key = 'fp') = ({FP_SQL}), false) AS pd_fresh")


def usable(ctx: Ctx, group_by: Iterable[str], filters: dict[str, Any], built: bool, fresh: bool,
           dirty: dict[str, list[int]], prices_ok: bool) -> bool:
    """True when a query can read the layer and get the raw path's answer (see the module doc)."""
    if not (built and fresh and prices_ok) or ctx.tz != LAYER_TZ:
        return False
    if set(group_by) & {"source", "project"} or set(filters) - {"person", "team"}:
        return False
    lo, hi = (ctx.since - _EPOCH).days - 2, (ctx.until - _EPOCH).days + 2
    return not any(lo <= d <= hi for days in dirty.values() for d in days)


# -- query time: the families read from the layer -----------------------------------------------

_RANGE = "day >= $since AND day <= $until"


class LayerFacts(Facts):
    """:class:`Facts` whose families read the person-day layer. Its rows are already the winners of
    their person-day, so the compiler skips the precedence step (``layer = True``)."""

    layer = True

    def f_activity(self) -> str:
        return self._add("f_activity", f"SELECT day, person, srcs, 0 AS tier FROM pd_activity WHERE {_RANGE}")

    def f_sessions(self) -> str:
        # multi-day event sessions: on their first day in the range, unless an API source reported the
        # person that day (the API rows of pd_sessions won it)
        self._add("pd_multi", f"""
    SELECT session_id, min(day) AS day, arg_min(person, day) AS person, bool_or(bt) AS bt, bool_or(bo) AS bo
    FROM pd_session_day WHERE multi AND {_RANGE} GROUP BY session_id""")
        return self._add("f_sessions", f"""
    SELECT day, person, srcs, tier, sessions FROM pd_sessions WHERE {_RANGE}
    UNION ALL
    SELECT m.day, m.person, {_srcs('m.bt', 'm.bo')}, 3, count(*) FROM pd_multi m
    WHERE NOT EXISTS (SELECT 1 FROM pd_sessions a WHERE a.day = m.day AND a.person = m.person AND a.tier < 3
                      AND a.day >= $since AND a.day <= $until)
    GROUP BY m.day, m.person, m.bt, m.bo""")

    def f_tokens(self) -> str:
        return self._add("f_tokens", f"""
    SELECT day, person, srcs, tier, model, NULL::VARCHAR AS project, input_tokens, output_tokens,
           cache_read_tokens, cache_creation_tokens,
           input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens AS tokens
    FROM pd_tokens WHERE {_RANGE}""")

    def f_cost(self) -> str:
        self.priced = True
        return self._add("f_cost", f"""
    SELECT t.day, t.person, t.srcs, t.tier, t.model, NULL::VARCHAR AS project,
           CASE WHEN t.tier = 1 THEN t.api_cost_usd WHEN p.price_key IS NULL THEN NULL ELSE (
               CASE WHEN t.long_ctx AND p.long_context_threshold IS NOT NULL THEN {summed_tokens_price('t', True)}
                    ELSE {summed_tokens_price('t', False)} END
               * CASE WHEN t.fast THEN coalesce(p.fast_multiplier, 1) ELSE 1 END / 1e6) END AS cost_usd,
           CASE WHEN t.tier = 3 AND p.price_key IS NULL THEN t.model END AS unpriced_model
    FROM pd_tokens t LEFT JOIN model_price p ON p.model = t.model WHERE t.day >= $since AND t.day <= $until""")

    def f_output(self) -> str:
        return self._add("f_output", f"""
    SELECT day, person, srcs, tier, lines_added, lines_removed, commits, pull_requests FROM pd_output WHERE {_RANGE}""")

    def f_tools(self) -> str:
        return self._add("f_tools", f"SELECT day, person, srcs, tier, tool, accepted, rejected FROM pd_tools WHERE {_RANGE}")

    def f_active_time(self) -> str:
        return self._add("f_active_time", f"SELECT day, person, srcs, tier, seconds FROM pd_active_time WHERE {_RANGE}")

    def f_engagement(self) -> str:
        return self._add("f_engagement", f"""
    SELECT day, person, srcs, tier, chat_messages, chat_conversations, web_searches FROM pd_engagement WHERE {_RANGE}""")


def coverage_sql(source: str) -> str | None:
    """Source coverage of an event source over ``[$since, $until]`` (UTC days) from ``pd_cov``: rows, first
    and last day, the raw coverage's figures for a UTC range; None for other sources."""
    srcs = {"transcripts": "'transcripts'", "otel": "'otel_request', 'otel_point'"}.get(source)
    if srcs is None:
        return None
    return (f"SELECT sum(n), timezone('UTC', min(day)::TIMESTAMP), timezone('UTC', max(day)::TIMESTAMP) "
            f"FROM pd_cov WHERE src IN ({srcs}) AND n > 0 AND {_RANGE}")


def models_sql() -> str:
    """The models a layer query may need a price for (event rows in range)."""
    return f"SELECT DISTINCT model FROM pd_tokens WHERE tier = 3 AND {_RANGE}"


# -- build -----------------------------------------------------------------------------------------

# event rows from the rollup, with the columns pricing needs kept apart (fast, long context, cache ttl)
_EV_RAW = """
    SELECT r.q, r.session_id, r.host, r.email, r.account_uuid, r.user_id, coalesce(r.model, 'unknown') AS model,
           r.bt, r.bo, r.fast, r.long_ctx, sum(r.requests)::BIGINT AS requests, sum(r.input_tokens) AS input_tokens,
           sum(r.output_tokens) AS output_tokens, sum(r.cache_creation_tokens) AS cache_creation_tokens,
           sum(r.cache_read_tokens) AS cache_read_tokens, sum(r.cache_write_5m_tokens) AS cache_write_5m_tokens,
           sum(r.cache_write_1h_tokens) AS cache_write_1h_tokens
    FROM rollup_request r WHERE r.q >= $q_from AND r.q < $q_to
    GROUP BY ALL"""
UID_MAP = """
    SELECT user_id, max(email) AS email, max(account_uuid) AS account_uuid
    FROM rollup_request WHERE user_id IS NOT NULL AND (email IS NOT NULL OR account_uuid IS NOT NULL)
    GROUP BY user_id"""
# the sessions of the range, from all their rows (not only this range): identity and number of UTC days
_SESS = """
    SELECT session_id, max(email) AS email, max(account_uuid) AS account_uuid, max(user_id) AS user_id,
           count(DISTINCT q // 96) AS n
    FROM rollup_request WHERE session_id IN (SELECT DISTINCT session_id FROM rollup_request
                                             WHERE q >= $q_from AND q < $q_to AND session_id IS NOT NULL)
    GROUP BY session_id"""
# the per-source rows of the range every family reads, staged once per run of days
_STAGED = {"ev": "_pd_ev", "pt": "_pd_pt", "cc": "_pd_cc", "ccd": "_pd_ccd", "cct": "_pd_cct", "eng": "_pd_eng"}


def _winners(fam: str) -> str:
    """The rows of ``fam`` whose source won their person-day (the compiler's precedence, done once)."""
    return (f"SELECT b.* FROM {fam} b JOIN (SELECT person, day, min(tier) AS tier FROM {fam} GROUP BY person, day) w "
            f"ON w.person = b.person AND w.day = b.day AND w.tier = b.tier")


def _ctx(since: date, until: date) -> Ctx:
    return Ctx(tz=LAYER_TZ, since=since, until=until, rollups=True, dirty={})


def _stage(since: date, until: date) -> list[tuple[str, list[Any]]]:
    """Statements creating the temp tables of :data:`_STAGED` for UTC days ``since``..``until``: the
    catalog's own per-source fact SQL (:class:`Facts`), with identities borrowed over all history."""
    from .facts import bind

    out = [bind(f"CREATE OR REPLACE TEMP TABLE _pd_sess AS {_SESS}", _ctx(since, until).params())]
    for cte, table in _STAGED.items():
        f = Facts(_ctx(since, until))
        f._add("ev_raw", _EV_RAW)       # ev() keeps these (it adds a CTE only once)
        f._add("ev_sess", "SELECT session_id, email, account_uuid, user_id FROM _pd_sess")
        f._add("uid_map", "SELECT * FROM pd_uid_map")
        name = {"ev": lambda: f.ev(False), "pt": f.pt, "cc": f.cc, "ccd": f.cc_daily, "cct": f.cc_tools,
                "eng": f.eng}[cte]()
        out.append(bind(f"CREATE OR REPLACE TEMP TABLE {table} AS {f.sql_with()}SELECT * FROM {name}", f.ctx.params()))
    return out


def _facts(since: date, until: date) -> Facts:
    """A :class:`Facts` whose per-source CTEs read the staged tables."""
    f = Facts(_ctx(since, until))
    for cte, table in _STAGED.items():
        f._add(cte, f"SELECT * FROM {table}")
    return f


def _inserts(since: date, until: date) -> list[tuple[str, str, list[Any]]]:
    """(table, INSERT … SELECT, params) filling the layer for UTC days ``since``..``until`` from the staged
    tables; the session-day table first (pd_sessions reads it). Rows go in day order (scans prune)."""
    from .facts import bind

    out: list[tuple[str, str, list[Any]]] = []

    def add(table: str, f: Facts, select: str) -> None:
        sql, params = bind(f"INSERT INTO {table} {f.sql_with()}{select} ORDER BY 1", f.ctx.params())
        out.append((table, sql, params))

    f = _facts(since, until)
    add("pd_session_day", f, """
    SELECT e.day, e.session_id, min(e.person), bool_or(e.bt), bool_or(e.bo), any_value(m.n) > 1
    FROM _pd_ev e JOIN _pd_sess m USING (session_id)
    GROUP BY e.day, e.session_id""")

    f = _facts(since, until)
    fam = f.f_activity()
    add("pd_activity", f, f"SELECT day, person, bit_or(srcs) FROM {fam} GROUP BY day, person")

    f = _facts(since, until)
    f._add("fs", f"""
    SELECT day, person, {_srcs('bt', 'bo')} AS srcs, 3 AS tier, count(*) AS sessions
    FROM pd_session_day WHERE NOT multi AND {_RANGE} GROUP BY day, person, bt, bo
    UNION ALL SELECT day, person, {CCB}, 1, sessions FROM _pd_cc
    UNION ALL SELECT day, person, {EAB}, 2, cc_session_count FROM _pd_eng WHERE cc_session_count IS NOT NULL""")
    add("pd_sessions", f, f"SELECT day, person, srcs, tier, sum(sessions) FROM ({_winners('fs')}) "
                          "GROUP BY day, person, srcs, tier")

    f = _facts(since, until)
    f._add("ft", f"""
    SELECT day, person, {_srcs('bt', 'bo')} AS srcs, 3 AS tier, model, fast, long_ctx, input_tokens, output_tokens,
           cache_read_tokens, cache_creation_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
           NULL::DOUBLE AS api_cost_usd FROM _pd_ev
    UNION ALL
    SELECT day, person, {CCB}, 1, model, false, false, input_tokens, output_tokens, cache_read_tokens,
           cache_creation_tokens, 0, 0, cost_usd FROM _pd_ccd""")
    add("pd_tokens", f, f"""
    SELECT day, person, srcs, tier, model, fast, long_ctx, sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
           sum(cache_creation_tokens), sum(cache_write_5m_tokens), sum(cache_write_1h_tokens), sum(api_cost_usd)
    FROM ({_winners('ft')}) GROUP BY day, person, srcs, tier, model, fast, long_ctx""")

    for table, family, cols, dims in (
            ("pd_output", "output", ("lines_added", "lines_removed", "commits", "pull_requests"), ()),
            ("pd_tools", "tools", ("accepted", "rejected"), ("tool",)),
            ("pd_active_time", "active_time", ("seconds",), ()),
            ("pd_engagement", "engagement", ("chat_messages", "chat_conversations", "web_searches"), ())):
        f = _facts(since, until)
        fam = f.family(family)
        keys = ", ".join(("day", "person", "srcs", "tier", *dims))
        add(table, f, f"SELECT {keys}, {', '.join(f'sum({c})' for c in cols)} FROM ({_winners(fam)}) GROUP BY {keys}")
    return out


RUN_GAP = 7   # days between two runs recomputed with them: one pass costs ~0.3 s fixed + ~0.03 s a day


def _runs(days: Iterable[date], gap: int = 0) -> list[tuple[date, date]]:
    """Runs of ``days`` as (first, last): consecutive days, or at most ``gap`` days apart (the days in
    between are recomputed too: cheaper than another pass)."""
    out: list[tuple[date, date]] = []
    for d in sorted(set(days)):
        if out and d <= out[-1][1] + timedelta(days=1 + gap):
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def _day_list(days: Iterable[date]) -> str:
    return ", ".join(f"DATE '{d}'" for d in sorted(set(days)))


def _api_days_select() -> str:
    return " UNION ALL ".join(f"SELECT '{t}' AS tbl, day, count(*) AS n, {fx} AS fetched FROM {t} GROUP BY day"
                              for t, fx in _API.items())


def _data_days(wh: Any) -> list[date]:
    row = wh.query("""SELECT least((SELECT min(q) // 96 FROM rollup_request), (SELECT min(q) // 96 FROM rollup_point),
                                   (SELECT datediff('day', DATE '1970-01-01', min(day)) FROM cc_actor_day),
                                   (SELECT datediff('day', DATE '1970-01-01', min(day)) FROM cc_daily),
                                   (SELECT datediff('day', DATE '1970-01-01', min(day)) FROM cc_tool_action),
                                   (SELECT datediff('day', DATE '1970-01-01', min(day)) FROM engagement_day)) AS lo,
                             greatest((SELECT max(q) // 96 FROM rollup_request), (SELECT max(q) // 96 FROM rollup_point),
                                   (SELECT datediff('day', DATE '1970-01-01', max(day)) FROM cc_actor_day),
                                   (SELECT datediff('day', DATE '1970-01-01', max(day)) FROM cc_daily),
                                   (SELECT datediff('day', DATE '1970-01-01', max(day)) FROM cc_tool_action),
                                   (SELECT datediff('day', DATE '1970-01-01', max(day)) FROM engagement_day)) AS hi""")[0]
    if row["lo"] is None:
        return []
    return [_EPOCH + timedelta(days=int(row["lo"])), _EPOCH + timedelta(days=int(row["hi"]))]


# raw event rows per UTC day and source, for source coverage (counts of rows, as the raw coverage reads)
_COV = """
    SELECT CAST(timezone('UTC', ts) AS DATE) AS day, 'transcripts', count(*) FROM api_request
    WHERE from_transcripts AND ts >= ? AND ts < ? GROUP BY 1
    UNION ALL SELECT CAST(timezone('UTC', ts) AS DATE), 'otel_request', count(*) FROM api_request
    WHERE from_otel AND ts >= ? AND ts < ? GROUP BY 1
    UNION ALL SELECT CAST(timezone('UTC', ts) AS DATE), 'otel_point', count(*) FROM otel_point
    WHERE ts >= ? AND ts < ? GROUP BY 1"""


def _recount(wh: Any, runs: list[tuple[date, date]]) -> None:
    """Rewrite the event coverage counts of the UTC day runs."""
    from datetime import datetime, time as dtime, timezone

    for lo, hi in runs:
        wh.execute("DELETE FROM pd_cov WHERE day >= ? AND day <= ?", [lo, hi])
        a = datetime.combine(lo, dtime(0), timezone.utc)
        b = datetime.combine(hi + timedelta(days=1), dtime(0), timezone.utc)
        wh.execute(f"INSERT INTO pd_cov {_COV}", [a, b] * 3)


def _recompute(wh: Any, runs: list[tuple[date, date]], cov: bool = True) -> None:
    """Rewrite the layer for the UTC day runs; ``cov``: the event coverage counts too."""
    for lo, hi in runs:
        for table in TABLES:
            wh.execute(f"DELETE FROM {table} WHERE day >= ? AND day <= ?", [lo, hi])
        for sql, params in _stage(lo, hi):
            wh.execute(sql, params)
        for _table, sql, params in _inserts(lo, hi):
            wh.execute(sql, params)
        for table in ("_pd_sess", *_STAGED.values()):
            wh.execute(f"DROP TABLE IF EXISTS {table}")
        if cov:
            _recount(wh, [(lo, hi)])


# where each alias kind the layer resolves appears: the UTC days to recompute when such an alias changes
# (a superset is harmless: a day is recomputed whole)
_DN = "DATE '1970-01-01' + (q // 96)::INTEGER"
_ALIAS_DAYS = {
    "email": ["SELECT day FROM cc_actor_day WHERE lower(coalesce(email, actor_id)) IN (SELECT unnest(?))",
              "SELECT day FROM cc_daily WHERE lower(coalesce(email, actor_id)) IN (SELECT unnest(?))",
              "SELECT day FROM cc_tool_action WHERE lower(actor_id) IN (SELECT unnest(?))",
              "SELECT day FROM engagement_day WHERE lower(email) IN (SELECT unnest(?))",
              f"SELECT {_DN} FROM rollup_request WHERE email IN (SELECT unnest(?))",
              f"SELECT {_DN} FROM rollup_point WHERE user_id IN (SELECT user_id FROM pd_uid_map "
              f"WHERE email IN (SELECT unnest(?)))"],
    "anthropic_account": ["SELECT day FROM engagement_day WHERE user_id IN (SELECT unnest(?))"],
    "otel_account_uuid": [f"SELECT {_DN} FROM rollup_request WHERE account_uuid IN (SELECT unnest(?))",
                          f"SELECT {_DN} FROM rollup_point WHERE user_id IN (SELECT user_id FROM pd_uid_map "
                          f"WHERE account_uuid IN (SELECT unnest(?)))"],
    "otel_user_id": [f"SELECT {_DN} FROM rollup_request WHERE user_id IN (SELECT unnest(?))",
                     f"SELECT {_DN} FROM rollup_point WHERE user_id IN (SELECT unnest(?))"],
    "api_key_name": ["SELECT day FROM cc_actor_day WHERE coalesce(api_key_name, actor_id) IN (SELECT unnest(?))",
                     "SELECT day FROM cc_daily WHERE coalesce(api_key_name, actor_id) IN (SELECT unnest(?))",
                     "SELECT day FROM cc_tool_action WHERE actor_id IN (SELECT unnest(?))"],
    "host": [f"SELECT {_DN} FROM rollup_request WHERE host IN (SELECT unnest(?))"],
}
ALIAS_LIMIT = 1000   # more changed aliases than this (a people import): rebuild instead


def _alias_days(wh: Any) -> set[date] | None:
    """The UTC days touched by the aliases added, removed or re-pointed since the layer was refreshed;
    None when too many changed (rebuild)."""
    changed = wh.query("""SELECT DISTINCT kind, value FROM (
                              (SELECT kind, value, person_id FROM alias EXCEPT SELECT * FROM pd_alias)
                              UNION ALL (SELECT * FROM pd_alias EXCEPT SELECT kind, value, person_id FROM alias))""")
    if len(changed) > ALIAS_LIMIT:
        return None
    by_kind: dict[str, list[str]] = {}
    for r in changed:
        by_kind.setdefault(r["kind"], []).append(r["value"])
    days: set[date] = set()
    for kind, values in by_kind.items():
        for sql in _ALIAS_DAYS.get(kind, ()):
            days |= {r["day"] for r in wh.query(f"SELECT DISTINCT d AS day FROM ({sql}) t(d)", [values])}
    return days


def _save_state(wh: Any, api: bool = True, alias: bool = False) -> None:
    if alias:
        wh.execute("DELETE FROM pd_alias")
        wh.execute("INSERT INTO pd_alias SELECT kind, value, person_id FROM alias")
    if api:
        wh.execute("DELETE FROM pd_api_day")
        wh.execute(f"INSERT INTO pd_api_day {_api_days_select()}")
    wh.execute("DELETE FROM pd_state")
    wh.execute(f"INSERT INTO pd_state SELECT 'fp', {FP_SQL}")
    wh.execute(f"INSERT INTO pd_state SELECT 'alias', {ALIAS_FP}")
    wh.execute("INSERT INTO pd_state SELECT 'built_at', now()::VARCHAR")


def build(wh: Any) -> dict[str, Any]:
    """Rebuild the whole layer (inside the caller's transaction; the rollups must be current)."""
    t0 = time.perf_counter()
    for table in (*TABLES, "pd_cov"):
        wh.execute(f"DELETE FROM {table}")
    wh.execute("DELETE FROM pd_uid_map")
    wh.execute(f"INSERT INTO pd_uid_map {UID_MAP}")
    span = _data_days(wh)
    if span:
        _recompute(wh, [(span[0], span[1])], cov=False)
    wh.execute(f"INSERT INTO pd_cov {_COV}", ["1900-01-01T00:00:00+00:00", "3000-01-01T00:00:00+00:00"] * 3)
    _save_state(wh, alias=True)
    return {"layer": "full", "seconds": round(time.perf_counter() - t0, 3)}


def built(wh: Any) -> bool:
    try:
        return bool(wh.scalar("SELECT count(*) FROM pd_state WHERE key = 'fp'"))
    except Exception:
        return False


def fresh(wh: Any) -> bool:
    """True when the layer is built and no alias or daily API row changed since (events: rollup_dirty)."""
    try:
        return bool(wh.scalar(f"SELECT coalesce((SELECT value FROM pd_state WHERE key = 'fp') = ({FP_SQL}), false)"))
    except Exception:
        return False


def refresh(wh: Any, event_days: Iterable[date] = (), *, full: bool = False) -> dict[str, Any]:
    """Bring the layer up to date after the rollups were refreshed for ``event_days`` (UTC days whose
    event rows changed). Inside the caller's transaction."""
    if full or not built(wh):
        return build(wh)
    t0 = time.perf_counter()
    days = set(event_days)
    alias_changed = bool(wh.scalar(f"SELECT (SELECT value FROM pd_state WHERE key = 'alias') <> {ALIAS_FP}"))
    if alias_changed:
        touched = _alias_days(wh)
        if touched is None:
            return build(wh)
        days |= touched
    if days:
        # every day of the sessions these days touch (a row may change a session's person or span): the
        # session-days already in the layer, and the sessions of the new rows
        from .rollup import _q_in

        dl = _day_list(days)
        qin = _q_in([(d - _EPOCH).days for d in days])
        rows = wh.query(f"""
            WITH s AS (SELECT DISTINCT session_id FROM rollup_request WHERE {qin} AND session_id IS NOT NULL
                       UNION SELECT session_id FROM pd_session_day WHERE day IN ({dl}) AND session_id IS NOT NULL)
            SELECT DISTINCT day FROM pd_session_day WHERE session_id IN (SELECT session_id FROM s)""")
        days |= {r["day"] for r in rows}
        # OTel user ids of these days whose email/account changed: every day of their metric points
        wh.execute(f"""CREATE OR REPLACE TEMP TABLE _pd_uids AS
                       SELECT DISTINCT user_id FROM rollup_request WHERE {qin} AND user_id IS NOT NULL""")
        wh.execute(f"""CREATE OR REPLACE TEMP TABLE _pd_uid AS SELECT * FROM ({UID_MAP})
                       WHERE user_id IN (SELECT user_id FROM _pd_uids)""")
        changed = [r["user_id"] for r in wh.query("""
            SELECT user_id FROM (SELECT * FROM _pd_uid EXCEPT SELECT * FROM pd_uid_map
                                 UNION ALL (SELECT * FROM pd_uid_map WHERE user_id IN (SELECT user_id FROM _pd_uids)
                                            EXCEPT SELECT * FROM _pd_uid))""")]
        if changed:
            rows = wh.query("SELECT DISTINCT q // 96 AS dn FROM rollup_point WHERE user_id IN (SELECT unnest(?))",
                            [changed])
            days |= {_EPOCH + timedelta(days=int(r["dn"])) for r in rows}
            wh.execute("DELETE FROM pd_uid_map WHERE user_id IN (SELECT user_id FROM _pd_uids)")
            wh.execute("INSERT INTO pd_uid_map SELECT * FROM _pd_uid")
        wh.execute("DROP TABLE IF EXISTS _pd_uid")
        wh.execute("DROP TABLE IF EXISTS _pd_uids")
    api_changed = not fresh(wh)
    if api_changed:
        rows = wh.query(f"""
            SELECT DISTINCT day FROM (
                (SELECT * FROM ({_api_days_select()}) EXCEPT SELECT * FROM pd_api_day)
                UNION ALL (SELECT * FROM pd_api_day EXCEPT SELECT * FROM ({_api_days_select()})))""")
        days |= {r["day"] for r in rows}
    if not days:
        if api_changed or alias_changed:  # nothing the layer reads changed: only the fingerprint moves
            _save_state(wh, api=api_changed, alias=alias_changed)
        return {"layer": "none", "days": 0, "seconds": round(time.perf_counter() - t0, 3)}
    _recompute(wh, _runs(days, RUN_GAP), cov=False)
    _recount(wh, _runs(set(event_days)))   # widened, alias and API days: their event rows did not change
    _save_state(wh, api=api_changed, alias=alias_changed)
    return {"layer": "days", "days": len(days), "seconds": round(time.perf_counter() - t0, 3)}
