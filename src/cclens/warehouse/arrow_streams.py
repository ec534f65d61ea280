"""Letting the DuckDB engine scan objects with ``__arrow_c_stream__`` without the ``duckdb`` package.

The engine (``_duckdb``) scans a registered Python object through a *sources* module that the
``duckdb`` package installs when it is imported (``_duckdb._set_arrow_sources``), and importing the
package costs ~60 ms, a good part of an incremental ingest. For objects that export an Arrow C stream
(the transcript scanner's tables) that module needs almost nothing: :func:`enable` installs a minimal
one, built from the package's own predicate module (``duckdb/_sources/nodes.py``, standard library
only, loaded from its file). This is DuckDB's private seam (2.0), so :func:`enable` checks that a scan
through it gives the right rows and otherwise imports the package, which installs its own; importing
the package later (anything that needs its relation API) replaces the minimal module too. Either way
the engine's scans are the same; only how the object is handed over differs.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

_state: dict[str, bool] = {}


class _StreamSource:
    """An object with ``__arrow_c_stream__``, as the engine's Arrow scan asks for it."""

    pull_under_gil = False
    schema_is_stable = True
    one_shot = False

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def rows(self) -> int | None:
        return getattr(self.obj, "num_rows", None)

    def accepts(self, predicate: Any) -> bool:  # no filter pushed into the object: the engine filters
        return False

    def stream(self, columns: Any, filters: Any) -> tuple[object, bool]:
        return self.obj.__arrow_c_stream__(), False


def _adapt(obj: Any) -> _StreamSource:
    if not hasattr(obj, "__arrow_c_stream__"):
        raise TypeError(f"{type(obj).__name__} has no __arrow_c_stream__ (import duckdb to register it)")
    return _StreamSource(obj)


def _minimal_sources() -> types.ModuleType:
    spec = importlib.util.find_spec("duckdb")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the duckdb package is not installed")
    path = f"{spec.submodule_search_locations[0]}/_sources/nodes.py"
    nodes_spec = importlib.util.spec_from_file_location("cclens._duckdb_nodes", path)
    nodes = importlib.util.module_from_spec(nodes_spec)
    sys.modules[nodes_spec.name] = nodes  # dataclasses look their module up while the file runs
    nodes_spec.loader.exec_module(nodes)
    module = types.ModuleType("cclens._duckdb_sources")
    module.adapt = _adapt
    module.nodes = nodes
    module.to_polars = None
    return module


def active() -> bool:
    """Whether registered objects go through the minimal module now (enabled, and the package not
    imported since: it replaces the module with its own)."""
    return _state.get("done", False) and "duckdb" not in sys.modules


def enable(probe: Any) -> bool:
    """Make registered objects with ``__arrow_c_stream__`` scannable on every connection of this
    process; ``probe``: such an object with at least one row, scanned once on a private connection to
    check the minimal module. True when the minimal module is in place, False when the package was
    imported instead (already, or because the check failed). Call it outside any transaction."""
    if "done" in _state:
        return _state["done"]
    import _duckdb

    minimal = False
    if "duckdb" not in sys.modules and hasattr(_duckdb, "_set_arrow_sources"):
        try:
            _duckdb._set_arrow_sources(_minimal_sources())
            con = _duckdb.connect()
            try:
                con.register("_cclens_probe", probe)
                minimal = con.execute("SELECT count(*) FROM _cclens_probe").fetchall() == [(probe.num_rows,)]
            finally:
                con.close()
        except Exception:
            minimal = False
    if not minimal:
        import duckdb  # noqa: F401  (installs the package's own sources)
    _state["done"] = minimal
    return minimal
