"""The embedded DuckDB backend (the default).

DuckDB allows one writing process per file; a second process cannot even open it read-only while the
first writes. :func:`open_warehouse` turns that into :class:`WarehouseLockedError` with a hint, and
``cclens serve`` (which owns the file while it runs) is the way to share it.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

# The engine alone (~0.03 s to import): the `duckdb` package around it (its relation API, Arrow
# sources) costs ~0.08 s more and is imported only by what needs it (query_arrow, append, register,
# and direct users of `.con`), so a CLI command that only runs SQL starts faster.
import _duckdb as duckdb

from ..errors import WarehouseError, WarehouseLockedError
from . import arrow_streams, migrations

_LOCK_RE = re.compile(r"(Could not set lock|Conflicting lock)", re.I)


# How DuckDB reports a KeyboardInterrupt raised in Python code it called: the Arrow sources ("... the
# source registered as 'x' failed: KeyboardInterrupt: "), or a module it imports to convert a value
# ("Required module 'decimal' failed to import, due to the following Python exception:" and the
# traceback, whose last line is the exception).
_CALLBACK_INTERRUPT_RE = re.compile(r"(failed: |^)KeyboardInterrupt\b", re.M)


_NO_SPACE = "No space left on device"


def _no_space_line(exc: BaseException) -> str:
    """The line of DuckDB's message that says the disk is full (it wraps it in lines of its own)."""
    return next(line.strip() for line in reversed(str(exc).splitlines()) if _NO_SPACE in line)


def _interrupted(exc: Exception) -> bool:
    """Whether a DuckDB error is Ctrl-C: DuckDB's own interrupt, or a KeyboardInterrupt that Python
    raised while DuckDB was calling into it, which DuckDB reports as an error of its own. Python
    raises KeyboardInterrupt only in the main thread, so an error text on another thread (a server's
    request quoting a user's SQL) is never taken for one."""
    if isinstance(exc, getattr(duckdb, "InterruptException", ())):
        return True
    if type(exc) is RuntimeError:  # the engine's own check of Python's signal flag
        return str(exc) == "Query interrupted"
    return threading.current_thread() is threading.main_thread() and bool(_CALLBACK_INTERRUPT_RE.search(str(exc)))


class DuckDBWarehouse:
    """A DuckDB file (or ``:memory:``) implementing :class:`cclens.warehouse.Warehouse`.

    One instance wraps one connection and is safe to share between threads: statements are
    serialised by a re-entrant lock, and a transaction holds the lock until it ends.
    """

    dialect = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str):
        self._con = con
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection, with the full `duckdb` package loaded (``con.sql()`` and Arrow need it)."""
        import duckdb as _package  # noqa: F401  (adds the relation API to every connection)

        return self._con

    # -- statements ---------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self._lock:
            self._run(sql, params)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._run(sql, params)
            cols = [d[0] for d in cur.description or []]
            with self._errors():
                rows = cur.fetchall()
            return [dict(zip(cols, row)) for row in rows]

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """The rows as tuples (cheaper than :meth:`query`'s dicts where there are thousands)."""
        with self._lock:
            cur = self._run(sql, params)
            with self._errors():
                return cur.fetchall()

    def query_arrow(self, sql: str, params: Sequence[Any] | None = None):
        # con.sql() streams into Arrow without the extra copy a DB-API result makes.
        with self._lock:
            with self._errors():
                return self.con.sql(sql, params=params).to_arrow_table()

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        with self._lock:
            # fetchall, not fetchone: a result left unfinished blocks register() on this connection
            cur = self._run(sql, params)
            with self._errors():
                rows = cur.fetchall()
            return rows[0][0] if rows else None

    def append(self, table: str, data: Any) -> int:
        """Insert an Arrow table by column name (missing columns take their defaults)."""
        if data.num_rows == 0:
            return 0
        with self._lock:
            self.con.register("_cclens_append", data)
            try:
                cols = ", ".join(f'"{c}"' for c in data.column_names)
                self._run(f'INSERT INTO {table} ({cols}) SELECT {cols} FROM _cclens_append', None)
            finally:
                self.con.unregister("_cclens_append")
        return data.num_rows

    def register(self, name: str, data: Any) -> None:
        """Expose an Arrow table (or DataFrame) to SQL as a view named ``name`` until unregistered.
        Without the duckdb package imported, only objects with ``__arrow_c_stream__`` can be, once
        :func:`cclens.warehouse.arrow_streams.enable` has run (the transcript loader calls it)."""
        with self._lock, self._errors():  # DuckDB reads the object's schema here: Ctrl-C may land in it
            con = self._con if arrow_streams.active() else self.con
            con.register(name, data)

    def unregister(self, name: str) -> None:
        """Drop the view :meth:`register` made. In a transaction that already failed this cannot run,
        and need not: the rollback that follows drops the view with everything else."""
        with self._lock:
            con = self._con if arrow_streams.active() else self.con
            try:
                con.unregister(name)
            except duckdb.TransactionException:
                pass

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._run("BEGIN TRANSACTION", None)
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                try:
                    self._con.execute("ROLLBACK")
                except (duckdb.Error, RuntimeError):  # interrupted too, or the connection is gone:
                    pass                              # nothing was committed; the first error stands
                raise
            else:
                self._depth = 0
                try:
                    self._run("COMMIT", None)
                except BaseException:
                    try:  # a COMMIT that did not happen (interrupted) leaves the transaction open
                        self._con.execute("ROLLBACK")
                    except (duckdb.Error, RuntimeError):
                        pass
                    raise

    def checkpoint(self) -> None:
        with self._lock:
            self._run("CHECKPOINT", None)

    def close(self) -> None:
        with self._lock:
            try:
                self._con.close()
            except duckdb.Error:  # pragma: no cover - closing a broken connection
                pass

    def cursor(self) -> "DuckDBWarehouse":
        """A second connection to the same database, for another thread (DuckDB MVCC isolates it)."""
        return DuckDBWarehouse(self._con.cursor(), self.path)

    def __enter__(self) -> "DuckDBWarehouse":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------
    def _run(self, sql: str, params: Sequence[Any] | None):
        with self._errors():
            return self._con.execute(sql, params) if params is not None else self._con.execute(sql)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """DuckDB's errors as :class:`WarehouseError`, and Ctrl-C during a query as KeyboardInterrupt
        (DuckDB reports it as an error of its own, see :func:`_interrupted`)."""
        try:
            yield
        except (duckdb.Error, RuntimeError) as exc:
            if _interrupted(exc):
                raise KeyboardInterrupt from exc
            if not isinstance(exc, duckdb.Error):
                raise
            if _NO_SPACE in str(exc):  # say what to do; DuckDB's text is the detail
                raise WarehouseError(
                    f"no space left on the disk holding warehouse {self.path}: free some and run the command again "
                    f"(what was committed is kept; the rest is read again) [{_no_space_line(exc)}]") from exc
            raise WarehouseError(f"warehouse {self.path}: {exc}") from exc

    # -- schema --------------------------------------------------------------------------------
    def migrate(self) -> list[tuple[str, int]]:
        """Apply every registered migration not yet applied; returns what was applied.

        A new warehouse (no ``schema_migrations`` table) gets all of them in one transaction, each
        migration's SQL in one call: the same catalog as applying them one by one, in about half the
        time (one commit instead of one per migration; tests/test_startup_schema.py compares the two).
        An existing warehouse gets the missing ones one by one, each in its own transaction."""
        with self._lock:
            done = self._applied()
            registry = migrations.registered()
            # core first, the rest in name order, so cross-component views see their tables.
            steps = [(component, version, step)
                     for component in sorted(registry, key=lambda c: (c != "core", c))
                     for version, step in enumerate(registry[component], start=1)]
            if done is None:
                return self._create_schema(steps)
            applied: list[tuple[str, int]] = []
            for component, version, step in steps:
                if (component, version) in done:
                    continue
                with self.transaction():
                    if callable(step):
                        step(self)
                    else:
                        for stmt in migrations.split_statements(step):
                            self._run(stmt, None)
                    self._run("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                              [component, version, datetime.now(timezone.utc)])
                applied.append((component, version))
        return applied

    def _applied(self) -> set[tuple[str, int]] | None:
        """The ``(component, version)`` pairs recorded in ``schema_migrations``, or None when there is no
        such table (a new warehouse). One query on an existing warehouse, the common case."""
        sql = "SELECT component, version FROM schema_migrations"
        if self._depth:  # in a caller's transaction a failed statement would abort it: create, never probe
            self._run(_SCHEMA_MIGRATIONS, None)
            return set(self._run(sql, None).fetchall())
        try:
            return set(self._con.execute(sql).fetchall())
        except duckdb.CatalogException:
            return None

    def _create_schema(self, steps: list[tuple[str, int, Any]]) -> list[tuple[str, int]]:
        """Apply ``steps`` (every migration) to a new warehouse in one transaction."""
        applied: list[tuple[str, int, datetime]] = []
        with self.transaction():
            self._run(_SCHEMA_MIGRATIONS, None)
            for component, version, step in steps:
                if callable(step):
                    step(self)
                else:
                    self._run(step, None)  # DuckDB runs every statement of the string in this one call
                applied.append((component, version, datetime.now(timezone.utc)))
            if applied:
                self._run("INSERT INTO schema_migrations VALUES " + ", ".join(["(?, ?, ?)"] * len(applied)),
                          [value for row in applied for value in row])
        return [(component, version) for component, version, _ in applied]


_SCHEMA_MIGRATIONS = ("CREATE TABLE IF NOT EXISTS schema_migrations (component VARCHAR, version INTEGER, "
                      "applied_at TIMESTAMPTZ, PRIMARY KEY (component, version))")


def open_warehouse(path: str | Path, *, read_only: bool = False, migrate: bool = True) -> DuckDBWarehouse:
    """Open (creating if needed) the DuckDB warehouse at ``path`` and bring its schema up to date.

    Raises :class:`WarehouseLockedError` when another process holds the file, and
    :class:`WarehouseError` for any other failure to open it.
    """
    target = str(path)
    if target != ":memory:":
        p = Path(target).expanduser()
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseError(f"cannot create the directory for warehouse {p}: {exc}") from None
        target = str(p)
    try:
        con = duckdb.connect(target, read_only=read_only)
    except duckdb.Error as exc:
        if _LOCK_RE.search(str(exc)):
            raise WarehouseLockedError(
                f"warehouse {target} is in use by another process (is `cclens serve` running? "
                "run the command with --server URL to go through it, or stop the other process)"
            ) from None
        raise WarehouseError(f"cannot open warehouse {target}: {exc}") from None
    wh = DuckDBWarehouse(con, target)
    if migrate and not read_only:
        try:
            wh.migrate()
        except BaseException:
            wh.close()  # release the file: the caller never gets this connection
            raise
    return wh
