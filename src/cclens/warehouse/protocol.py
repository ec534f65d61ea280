"""The storage protocol every backend implements.

Kept deliberately small so that a second backend (ClickHouse) is a few hundred lines::

    wh = open_warehouse(path)            # creates the file and applies migrations
    with wh.transaction():
        wh.execute("INSERT INTO t VALUES (?, ?)", [1, "a"])
        wh.append("t", arrow_table)      # bulk load
    rows = wh.query("SELECT * FROM t WHERE x > ?", [0])   # list of dicts
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol, Sequence


class Warehouse(Protocol):
    """A place to store and query cclens data."""

    dialect: str  # "duckdb" or "clickhouse"

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run one statement that returns nothing of interest."""

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Run one SELECT and return its rows as dicts (column name → value)."""

    def query_arrow(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """Run one SELECT and return a ``pyarrow.Table``."""

    def append(self, table: str, data: Any) -> int:
        """Bulk-insert a ``pyarrow.Table`` (columns by name) into ``table``; returns rows inserted."""

    def transaction(self) -> AbstractContextManager[None]:
        """A context in which every statement commits together or not at all."""

    def close(self) -> None:
        """Flush and release the file."""
