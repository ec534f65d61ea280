"""JSON-safe values and the short text rendering that goes with every structured MCP result.

:func:`jsonable` turns what the metrics layer returns (dates, timestamps, Decimals, tuples) into plain
JSON values: dates and timestamps as ISO strings, Decimals as floats. :func:`table` renders rows as a
compact pipe-separated table, ``—`` for "no data" (never 0).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable, Sequence


def jsonable(v: Any) -> Any:
    """``v`` with every value JSON-safe (ISO dates, floats for Decimals, lists for tuples/sets)."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [jsonable(x) for x in v]
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def cell(v: Any) -> str:
    """One value as text: ``—`` for None (no data), lists comma-joined, floats without noise."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(round(v, 6)) if abs(v) < 1e15 else f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(cell(x) for x in v) if v else "—"
    if isinstance(v, dict):
        return ", ".join(f"{k}={cell(x)}" for k, x in v.items())
    return str(v).replace("|", "/").replace("\n", " ")


def table(rows: Sequence[dict[str, Any]], columns: Iterable[str] | None = None) -> str:
    """``rows`` as ``a | b | c`` lines under a header line; ``(no rows)`` when empty."""
    cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    if not rows:
        return "(no rows)"
    lines = [" | ".join(cols)]
    lines += [" | ".join(cell(r.get(c)) for c in cols) for r in rows]
    return "\n".join(lines)


def columns_with_sources_last(rows: Sequence[dict[str, Any]], first: Sequence[str] = ()) -> list[str]:
    """The rows' columns: ``first`` in order, then the rest, ``sources`` last."""
    seen: dict[str, None] = {c: None for c in first}
    for r in rows:
        for c in r:
            seen.setdefault(c, None)
    cols = [c for c in seen if c != "sources"]
    return cols + (["sources"] if "sources" in seen else [])
