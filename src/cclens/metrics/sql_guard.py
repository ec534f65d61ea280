"""The read-only SQL sandbox for analysts (``POST /api/v1/query`` with an analyst token, ``cclens query``,
and the MCP server).

::

    from cclens.metrics.sql_guard import check_sql, run_sandboxed
    check_sql("SELECT * FROM read_csv('/etc/passwd')")      # raises SqlRejected with the reason
    res = run_sandboxed(wh, "SELECT model, sum(output_tokens) FROM api_request GROUP BY 1",
                        max_rows=10_000, timeout_s=30)
    res.table, res.truncated, res.elapsed_ms

What is allowed: exactly **one SELECT** statement (``WITH``, ``VALUES``, ``FROM t`` shorthand
included) over the warehouse's own tables and views (``api_token`` excepted) and
``information_schema``. DuckDB parses the SQL (``extract_statements`` for the statement type,
``json_serialize_sql`` for the tree) and the guard walks every node:

* a table function other than ``range``/``generate_series``/``unnest``/``json_each``/``json_tree`` is
  rejected — ``read_csv``, ``read_parquet``, ``read_json``, ``glob``, ``read_text``, ``query``,
  ``*_scan``, ``httpfs`` URLs … read files, the network, or run SQL text;
* scalar functions that read the environment or files (``getenv``, ``read_text``, ``read_blob``,
  ``current_setting``) are rejected;
* a table name that is not a table of the warehouse (``FROM '/etc/passwd'`` is DuckDB's file
  "replacement scan"), another database (``other.main.t``), ``DESCRIBE``/``SHOW`` forms are rejected;
* COPY, ATTACH, DETACH, INSTALL, LOAD, PRAGMA, SET, CALL, EXPORT, any write, and more than one
  statement are rejected by statement type.

Limits: the query runs wrapped as ``SELECT * FROM (<sql>) LIMIT max_rows + 1`` (``truncated`` tells),
and is interrupted after ``timeout_s``. Rejections raise :class:`SqlRejected` (a ``QueryError``) whose
message says what was refused and what is allowed.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import duckdb

from ..errors import QueryError

ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each", "json_tree"})
DENIED_FUNCTIONS = frozenset({"getenv", "current_setting", "read_text", "read_blob", "read_csv", "read_json",
                              "read_parquet", "glob", "query", "query_table", "sniff_csv", "load_extension"})
DENIED_TABLES = frozenset({"api_token"})
ALLOWED_SCHEMAS = frozenset({"", "main", "information_schema"})
# table references that are fine in themselves (their children are still checked)
_REF_TYPES = frozenset({"BASE_TABLE", "SUBQUERY", "JOIN", "EMPTY", "TABLE_FUNCTION", "EXPRESSION_LIST", "PIVOT"})
_STATEMENT_NAMES = {"LOAD": "INSTALL/LOAD", "COPY": "COPY", "ATTACH": "ATTACH", "DETACH": "DETACH",
                    "PRAGMA": "PRAGMA", "SET": "SET", "VARIABLE_SET": "SET", "CALL": "CALL", "EXPORT": "EXPORT",
                    "INSERT": "INSERT", "UPDATE": "UPDATE", "DELETE": "DELETE", "CREATE": "CREATE", "DROP": "DROP",
                    "ALTER": "ALTER", "TRANSACTION": "BEGIN/COMMIT", "EXPLAIN": "EXPLAIN", "MULTI": "PIVOT statement"}
MAX_SQL_CHARS = 100_000


class SqlRejected(QueryError):
    """The SQL is not allowed in the read-only sandbox (the message says why and what is allowed)."""


_parser_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


def _tree(sql: str) -> dict[str, Any]:
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(":memory:")
        doc = json.loads(_parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    if doc.get("error"):
        raise SqlRejected(f"the SQL cannot be checked: {doc.get('error_message')}")
    return doc


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _cte_names(doc: dict[str, Any]) -> set[str]:
    names = set()
    for d in _walk(doc):
        cte = d.get("cte_map")
        if isinstance(cte, dict):
            names |= {str(e.get("key", "")).lower() for e in cte.get("map", [])}
    return names


def check_sql(sql: str, tables: set[str] | None = None) -> str:
    """Check ``sql`` against the sandbox rules; returns it without a trailing ``;``. ``tables`` is the
    set of table/view names that may be read (lowercase); None skips the table allow-list (the
    other checks still apply). Raises :class:`SqlRejected`."""
    if len(sql) > MAX_SQL_CHARS:
        raise SqlRejected(f"the SQL is {len(sql):,} characters; the limit is {MAX_SQL_CHARS:,}")
    try:
        stmts = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise SqlRejected(f"the SQL does not parse: {str(exc).splitlines()[0]}") from None
    if len(stmts) != 1:
        raise SqlRejected(f"exactly one SELECT statement is allowed; this SQL has {len(stmts)} statements")
    kind = stmts[0].type.name
    if kind != "SELECT":
        name = _STATEMENT_NAMES.get(kind, kind)
        raise SqlRejected(f"{name} statements are not allowed: the SQL surface is read-only (one SELECT over "
                          "the warehouse tables)")
    doc = _tree(sql)
    ctes = _cte_names(doc)
    for d in _walk(doc):
        if "class" in d:  # an expression
            fn = str(d.get("function_name", "")).lower() if d.get("class") == "FUNCTION" else ""
            if fn and (fn in DENIED_FUNCTIONS or fn.startswith("read_")):
                raise SqlRejected(f"function {fn}() is not allowed: it reads files or the environment")
            continue
        if "sample" not in d or "type" not in d or str(d["type"]).endswith("_NODE"):
            continue  # not a table reference (query nodes carry a sample clause too)
        ref = d["type"]
        if ref not in _REF_TYPES:
            what = "DESCRIBE/SHOW/SUMMARIZE" if ref == "SHOW_REF" else ref.lower().replace("_", " ")
            raise SqlRejected(f"{what} is not allowed here; query the tables (information_schema.columns "
                              "describes them)")
        if ref == "TABLE_FUNCTION":
            fn = str((d.get("function") or {}).get("function_name", "")).lower()
            if fn not in ALLOWED_TABLE_FUNCTIONS:
                raise SqlRejected(f"table function {fn}() is not allowed: table functions that read files, the "
                                  f"network or other databases are refused (allowed: "
                                  f"{', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))})")
        elif ref == "BASE_TABLE":
            _check_table(d, ctes, tables)
    return sql.strip().rstrip(";").strip()


def _check_table(d: dict[str, Any], ctes: set[str], tables: set[str] | None) -> None:
    name = str(d.get("table_name", ""))
    schema = str(d.get("schema_name", "")).lower()
    catalog = str(d.get("catalog_name", "")).lower()
    low = name.lower()
    if any(c in name for c in "/\\:") or "." in name or low.startswith(("http", "s3")):
        raise SqlRejected(f"{name!r} is not a table: reading files or URLs is not allowed")
    if catalog or schema not in ALLOWED_SCHEMAS:
        raise SqlRejected(f"{'.'.join(p for p in (catalog, schema, name) if p)} is outside the warehouse: only its "
                          "own tables (and information_schema) can be read")
    if schema == "information_schema":
        return
    if low in DENIED_TABLES:  # before the CTE names: `WITH api_token AS (FROM api_token)` reads the table
        raise SqlRejected(f"table {name} is not readable through the SQL surface")
    if not schema and low in ctes:
        return
    if tables is not None and low not in tables:
        raise SqlRejected(f"unknown table {name!r}; information_schema.tables lists the tables")


def readable_tables(wh: Any) -> set[str]:
    """Names of the warehouse's tables and views (lowercase) that the sandbox may read."""
    rows = wh.query("SELECT table_name AS n FROM duckdb_tables() WHERE NOT internal "
                    "UNION SELECT view_name FROM duckdb_views() WHERE NOT internal")
    return {r["n"].lower() for r in rows} - DENIED_TABLES


@dataclass
class SandboxResult:
    """Rows of a sandboxed query as a ``pyarrow.Table``; ``truncated`` when ``max_rows`` cut it."""

    table: Any
    truncated: bool
    elapsed_ms: float
    max_rows: int

    def to_json(self) -> dict[str, Any]:
        cols = self.table.column_names
        return {"columns": cols, "rows": [[r[c] for c in cols] for r in self.table.to_pylist()],
                "row_count": self.table.num_rows, "truncated": self.truncated,
                "elapsed_ms": round(self.elapsed_ms, 1), "max_rows": self.max_rows}


def run_sandboxed(wh: Any, sql: str, *, max_rows: int = 10_000, timeout_s: float = 30.0) -> SandboxResult:
    """Check ``sql`` and run it on ``wh`` with a row limit and a time limit (the query is interrupted
    when ``wh`` is a local DuckDB connection; through a server, the server's own limits apply)."""
    if max_rows < 1:
        raise QueryError("max_rows must be at least 1")
    body = check_sql(sql, readable_tables(wh))
    wrapped = f"SELECT * FROM (\n{body}\n) AS sandboxed LIMIT {int(max_rows) + 1}"
    check_sql(wrapped, None)  # what runs is what was checked
    con = getattr(wh, "con", None)
    timer = threading.Timer(timeout_s, con.interrupt) if con is not None else None
    t0 = time.perf_counter()
    try:
        if timer:
            timer.start()
        # con.sql(...).to_arrow_table() avoids DuckDB's extra copy of a DB-API result
        table = con.sql(wrapped).to_arrow_table() if con is not None else wh.query_arrow(wrapped)
    except duckdb.InterruptException:
        raise QueryError(f"the query ran longer than {timeout_s:g} s and was stopped; narrow it "
                         "(a WHERE on the day or ts column) or aggregate") from None
    except duckdb.Error as exc:
        raise QueryError(f"the query failed: {str(exc).splitlines()[0]}") from None
    finally:
        if timer:
            timer.cancel()
    elapsed = (time.perf_counter() - t0) * 1000
    truncated = table.num_rows > max_rows
    return SandboxResult(table.slice(0, max_rows) if truncated else table, truncated, elapsed, max_rows)
