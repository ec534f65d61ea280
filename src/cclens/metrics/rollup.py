"""Rollups of the event tables for the metric catalog, kept fresh incrementally.

The catalog's event facts (:mod:`cclens.metrics.facts`) start from ``api_request`` and ``otel_point``
summed per 15-minute UTC bucket. The rollup tables (:mod:`cclens.warehouse.schema.rollup`) hold exactly
those sums, so a query reads thousands of bucket rows instead of millions of events; the report zone
and identity resolution still happen at query time (every zone offset is a multiple of 15 minutes, and
aliases are joined on the raw identity columns), so results are the raw path's for any zone.

Freshness: every ingest path adds its touched (UTC day, source) pairs to ``rollup_dirty`` in its own
transaction (:func:`mark_dirty`). :func:`refresh` recomputes those days (all days the first time). A
query never trusts a dirty day: it reads the raw rows for dirty days and the rollup for the rest
(:func:`request_source_sql`), so a reader that cannot refresh (read-only file, a remote server that
has not refreshed yet) still gets exact results, only slower. ``cclens serve`` refreshes on its
writer thread shortly after commits; CLI commands that own the file refresh before reading.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)

SOURCES = ("api_request", "otel_point")
LONG_CONTEXT = 200_000   # the rollup's long-context split; other thresholds are priced from raw rows
POINT_METRICS = ("claude_code.lines_of_code.count", "claude_code.commit.count", "claude_code.pull_request.count",
                 "claude_code.code_edit_tool.decision", "claude_code.active_time.total",
                 "claude_code.session.count", "claude_code.token.usage")
_POINT_IN = ", ".join(f"'{m}'" for m in POINT_METRICS)

# the rollup rows of api_request rows (``{where}`` restricts them)
REQUEST_SELECT = f"""
SELECT epoch_ms(ts) // 900000 AS q, session_id, host, lower(user_email) AS email, account_uuid, user_id, model, project,
       from_transcripts AS bt, from_otel AS bo, coalesce(speed = 'fast', false) AS fast,
       (input_tokens + cache_creation_tokens + cache_read_tokens) > {LONG_CONTEXT} AS long_ctx,
       count(*)::BIGINT AS requests, sum(input_tokens)::HUGEINT AS input_tokens,
       sum(output_tokens)::HUGEINT AS output_tokens, sum(cache_creation_tokens)::HUGEINT AS cache_creation_tokens,
       sum(cache_read_tokens)::HUGEINT AS cache_read_tokens,
       sum(coalesce(cache_creation_5m_tokens, cache_creation_tokens - coalesce(cache_creation_1h_tokens, 0)))::HUGEINT
           AS cache_write_5m_tokens,
       sum(coalesce(cache_creation_1h_tokens, 0))::HUGEINT AS cache_write_1h_tokens
FROM api_request WHERE ts IS NOT NULL AND {{where}}
GROUP BY ALL"""

POINT_SELECT = f"""
SELECT epoch_ms(ts) // 900000 AS q, user_id, metric_name, type, model,
       CASE WHEN metric_name = 'claude_code.code_edit_tool.decision' THEN attributes->>'tool_name' END AS tool,
       CASE WHEN metric_name = 'claude_code.code_edit_tool.decision' THEN attributes->>'decision' END AS decision,
       sum(value) AS value
FROM otel_point WHERE ts IS NOT NULL AND metric_name IN ({_POINT_IN}) AND {{where}}
GROUP BY ALL"""

_TABLE = {"api_request": ("rollup_request", REQUEST_SELECT), "otel_point": ("rollup_point", POINT_SELECT)}
_DAYN = "datediff('day', DATE '1970-01-01', day)"


def mark_dirty(wh: Any, source: str, ts_select: str, params: list[Any] | None = None) -> None:
    """Record the UTC days of the timestamps ``ts_select`` returns (a one-column SELECT) as dirty for
    ``source`` ('api_request' or 'otel_point'). Call it inside the ingest transaction, after the write."""
    wh.execute(f"INSERT INTO rollup_dirty SELECT DISTINCT CAST(timezone('UTC', t.ts) AS DATE), '{source}' "
               f"FROM ({ts_select}) t(ts) WHERE t.ts IS NOT NULL", params)


def ready(wh: Any) -> bool:
    """True when the rollups have been built on ``wh`` (before that, the catalog reads raw tables)."""
    try:
        return bool(wh.scalar("SELECT count(*) FROM rollup_state WHERE name = 'events'"))
    except Exception:  # an older warehouse without the table, or a server that refuses the read
        return False


def dirty_count(wh: Any) -> int:
    return int(wh.scalar("SELECT count(*) FROM rollup_dirty") or 0)


def refresh(wh: Any, *, full: bool = False) -> dict[str, Any]:
    """Bring the rollups up to date: rebuild everything the first time (or with ``full``), else
    recompute only the dirty (day, source) pairs. One transaction; returns what was done."""
    from . import person_day  # the person-day layer is refreshed with the rollups

    t0 = time.perf_counter()
    with wh.transaction():
        if full or not ready(wh):
            for table, select in _TABLE.values():
                wh.execute(f"DELETE FROM {table}")
                wh.execute(f"INSERT INTO {table} {select.format(where='TRUE')} ORDER BY q")  # q-range scans prune
            wh.execute("DELETE FROM rollup_dirty")
            wh.execute("DELETE FROM rollup_state WHERE name = 'events'")
            wh.execute("INSERT INTO rollup_state VALUES ('events', now(), now())")
            t1 = time.perf_counter()
            person_day.build(wh)
            return {"mode": "full", "days": None, "seconds": time.perf_counter() - t0,
                    "layer_seconds": time.perf_counter() - t1}
        pairs = wh.query("SELECT DISTINCT src, day FROM rollup_dirty")
        if not pairs:
            layer = person_day.refresh(wh)
            return {"mode": "none" if layer["layer"] == "none" else "layer", "days": 0,
                    "seconds": time.perf_counter() - t0, "layer": layer}
        for src, (table, select) in _TABLE.items():
            days = sorted({r["day"] for r in pairs if r["src"] == src})
            if not days:
                continue
            dns = [(d - _EPOCH).days for d in days]
            wh.execute(f"DELETE FROM {table} WHERE {_q_in(dns)}")
            wh.execute(f"INSERT INTO {table} {select.format(where=_ts_in(dns))}")
        wh.execute("DELETE FROM rollup_dirty WHERE (src, day) IN (SELECT (src, day) FROM (VALUES "
                   + ", ".join(f"('{r['src']}', DATE '{r['day']}')" for r in pairs) + ") v(src, day))")
        wh.execute("UPDATE rollup_state SET refreshed_at = now() WHERE name = 'events'")
        layer = person_day.refresh(wh, {r["day"] for r in pairs})
    return {"mode": "dirty", "days": len(pairs), "seconds": time.perf_counter() - t0, "layer": layer}


def refresh_if_owned(wh: Any) -> None:
    """Refresh when ``wh`` is a local writable warehouse file (a CLI command that owns it); a remote or
    read-only warehouse is left alone (queries read raw rows for its dirty days)."""
    if not hasattr(wh, "transaction") or getattr(wh, "read_only", False):
        return
    from . import person_day

    try:
        if ready(wh) and dirty_count(wh) == 0 and person_day.fresh(wh):
            return
        refresh(wh)
    except Exception as exc:  # read-only file, locked, older schema: the raw fallback keeps results right
        log.debug("rollup refresh skipped: %s", exc)


from datetime import date as _date  # noqa: E402

_EPOCH = _date(1970, 1, 1)


def _dirty_cte(src: str) -> str:
    return f"SELECT DISTINCT {_DAYN} AS dn FROM rollup_dirty WHERE src = '{src}'"


def state(wh: Any) -> tuple[bool, dict[str, list[int]]]:
    """(built?, {source: dirty UTC day numbers}) in one small read; (False, {}) when the rollups cannot be
    read (an older warehouse, a server refusing the tables)."""
    try:
        rows = wh.query(f"SELECT (SELECT count(*) FROM rollup_state WHERE name = 'events') AS built, "
                        f"(SELECT list(DISTINCT {{'src': src, 'dn': {_DAYN}}}) FROM rollup_dirty) AS dirty")
    except Exception:
        return False, {}
    dirty: dict[str, list[int]] = {}
    for item in rows[0]["dirty"] or []:
        dirty.setdefault(item["src"], []).append(int(item["dn"]))
    return bool(rows[0]["built"]), {k: sorted(v) for k, v in dirty.items()}


def layer_state(wh: Any) -> tuple[bool, dict[str, list[int]], bool, bool]:
    """:func:`state` plus the person-day layer's (built?, fresh?) in the same small read."""
    from . import person_day

    built, dirty = state(wh)
    if not built:
        return built, dirty, False, False
    try:  # a separate read: folded into state()'s it made DuckDB plan slower (22 ms vs 7 ms)
        row = wh.query("SELECT " + person_day.state_sql())[0]
    except Exception:
        return built, dirty, False, False
    return built, dirty, bool(row["pd_built"]), bool(row["pd_fresh"])


def _ts_in(dns: list[int]) -> str:
    """``ts`` on one of the UTC day numbers ``dns``, with an enclosing range the scan can prune on."""
    lo, hi = min(dns), max(dns) + 1
    return (f"ts >= make_timestamptz({lo} * 86400000000) AND ts < make_timestamptz({hi} * 86400000000) "
            f"AND epoch_ms(ts) // 86400000 IN ({', '.join(map(str, dns))})")


def _q_in(dns: list[int]) -> str:
    return f"q >= {min(dns) * 96} AND q < {(max(dns) + 1) * 96} AND q // 96 IN ({', '.join(map(str, dns))})"


def _source_sql(table: str, select: str, dirty: list[int]) -> str:
    clean = f"SELECT * FROM {table} WHERE q >= $q_from AND q < $q_to"
    if not dirty:
        return clean
    dn = ", ".join(map(str, dirty))
    raw = select.format(where=f"ts >= $lo AND ts < $hi AND {_ts_in(dirty)}")
    return f"{clean} AND q // 96 NOT IN ({dn})\nUNION ALL BY NAME {raw}"


def request_source_sql(dirty: list[int]) -> str:
    """The rollup rows of ``api_request`` in ``[$lo, $hi)``: the rollup for clean days, the raw rows
    re-summed for the ``dirty`` days (UTC day numbers), so a stale rollup never shows."""
    return _source_sql("rollup_request", REQUEST_SELECT, dirty)


def point_source_sql(dirty: list[int]) -> str:
    """The rollup rows of the catalog's OTel points in ``[$lo, $hi)`` (raw for the ``dirty`` days)."""
    return _source_sql("rollup_point", POINT_SELECT, dirty)


def models_sql(dirty: list[int]) -> str:
    """Every model a query may need a price for: the rollup's, plus the raw rows of dirty days."""
    sql = "SELECT DISTINCT model FROM rollup_request WHERE model IS NOT NULL"
    if dirty:
        sql += f" UNION SELECT DISTINCT model FROM api_request WHERE model IS NOT NULL AND {_ts_in(dirty)}"
    return sql


def mark_dirty_arrow(wh: Any, source: str, table: Any, column: str = "ts") -> None:
    """:func:`mark_dirty` for rows about to be appended from an Arrow table (UTC days of ``column``)."""
    import pyarrow.compute as pc

    days = [d for d in pc.unique(pc.cast(table.column(column), "date32")).to_pylist() if d is not None]
    if days:
        wh.execute("INSERT INTO rollup_dirty VALUES " + ", ".join(f"(DATE '{d}', '{source}')" for d in days))
