"""Versioned schema migrations, grouped by component.

Each component (``core``, ``transcripts``, ``otel``, ``anthropic`` …) owns an ordered list of
migrations; ``schema_migrations`` records ``(component, version)`` once applied. Components are
independent, so a new source adds its own module under :mod:`cclens.warehouse.schema` without touching
anyone else's. A migration is a SQL string (statements separated by ``;``) or a callable taking the
warehouse. Migrations are append-only: never edit one that has shipped, add the next version.

Register with::

    register("mysource", [
        "CREATE TABLE mysource_thing (id VARCHAR PRIMARY KEY, n BIGINT)",
        "ALTER TABLE mysource_thing ADD COLUMN note VARCHAR",
    ])
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Union

Migration = Union[str, Callable[[Any], None]]

_REGISTRY: dict[str, list[Migration]] = {}


def register(component: str, migrations: list[Migration]) -> None:
    """Declare the ordered migrations of ``component`` (version N = ``migrations[N-1]``)."""
    _REGISTRY[component] = list(migrations)


def registered() -> dict[str, list[Migration]]:
    """All components' migrations; imports every module of :mod:`cclens.warehouse.schema` first."""
    from . import schema

    for mod in pkgutil.iter_modules(schema.__path__):
        importlib.import_module(f"{schema.__name__}.{mod.name}")
    return dict(_REGISTRY)


def split_statements(sql: str) -> list[str]:
    """Split a migration on ``;`` at line ends (our migrations never put ``;`` inside literals)."""
    return [s.strip() for s in sql.split(";\n") if s.strip().rstrip(";").strip()]
