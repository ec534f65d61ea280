"""State shared by every command: global options, settings, and how to reach the warehouse."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import typer

from ..config import Settings, load_settings
from ..warehouse import DuckDBWarehouse, open_warehouse


@dataclass
class AppState:
    """Global options (``--db``, ``--server``) and the lazily loaded settings."""

    db: Optional[Path] = None
    server: Optional[str] = None
    _settings: Optional[Settings] = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(db=self.db, server_url=self.server)
        return self._settings

    def open_warehouse(self) -> DuckDBWarehouse:
        """Open the configured warehouse file for direct use (raises WarehouseLockedError if held)."""
        return open_warehouse(self.settings.db)


def state(ctx: typer.Context) -> AppState:
    """The AppState of the running command (works in sub-groups too)."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = AppState()
    return root.obj
