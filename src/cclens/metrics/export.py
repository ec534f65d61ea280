"""Write warehouse tables or metric results to Parquet or CSV files (``cclens export``).

Tables are read with one ``SELECT *`` each (so export works through ``cclens serve`` too); the
tables the SQL sandbox refuses (``api_token``) cannot be exported.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import QueryError
from .sql_guard import readable_tables

FORMATS = ("parquet", "csv")


def _flat_for_csv(table: pa.Table) -> pa.Table:
    cols = []
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_struct(col.type) \
                or pa.types.is_map(col.type):
            col = pa.array([None if v is None else (";".join(map(str, v)) if isinstance(v, list) else str(v))
                            for v in col.to_pylist()], pa.string())
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def write_table(table: pa.Table, path: Path, fmt: str) -> int:
    """Write ``table`` to ``path`` as ``fmt``; returns the row count."""
    if fmt not in FORMATS:
        raise QueryError(f"unknown export format {fmt!r}; use parquet or csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(_flat_for_csv(table), path)
    return table.num_rows


def rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist([{k: (float(v) if isinstance(v, Decimal) else v) for k, v in r.items()} for r in rows])


def export_tables(wh: Any, tables: list[str], out: Path, fmt: str) -> dict[str, int]:
    """Each table to ``out/<table>.<fmt>`` (or to ``out`` itself for one table with a file name)."""
    allowed = readable_tables(wh)
    for t in tables:
        if t.lower() not in allowed:
            raise QueryError(f"cannot export {t!r}: not a table of the warehouse (or not exportable); "
                             "`cclens query \"SELECT table_name FROM information_schema.tables\"` lists them")
    counts = {}
    single = len(tables) == 1 and out.suffix.lower() in (".parquet", ".csv")
    for t in tables:
        path = out if single else out / f"{t}.{fmt}"
        sql = f'SELECT * FROM "{t}"'
        con = getattr(wh, "con", None)  # con.sql() avoids DuckDB's extra copy of a DB-API result
        counts[str(path)] = write_table(con.sql(sql).to_arrow_table() if con is not None else wh.query_arrow(sql),
                                        path, fmt)
    return counts
