"""The warehouse: one storage protocol, a DuckDB backend, versioned schema migrations.

Layers (ARCHITECTURE): ``landing_*`` tables keep what arrived with its origin; model tables hold
canonical, deduplicated facts; metrics read the model. Schema lives in :mod:`cclens.warehouse.schema`.
"""

from .protocol import Warehouse
from .duckdb_backend import DuckDBWarehouse, open_warehouse

__all__ = ["Warehouse", "DuckDBWarehouse", "open_warehouse"]
