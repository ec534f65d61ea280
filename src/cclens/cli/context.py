"""State shared by every command: global options, settings, and how to reach the warehouse."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

from ..config import Settings, load_settings

if TYPE_CHECKING:  # Typer is not imported by the light report path (cclens.cli.fast)
    import typer

    from ..warehouse import DuckDBWarehouse


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
        from ..warehouse import open_warehouse  # imported here: the light report path starts its walk first

        return open_warehouse(self.settings.db)

    def server_maybe_running(self) -> bool:
        """Cheap check (no HTTP, no heavy imports): is a server configured or advertised for the warehouse?"""
        db = Path(self.settings.db).expanduser()
        return bool(self.settings.server_url) or db.with_name(db.name + ".server.json").exists()

    @contextmanager
    def reader(self, *, rollups: bool = True) -> Iterator[Any]:
        """A warehouse to read from: the running ``cclens serve`` if there is one (see docs/server.md),
        else the file itself. Readers from a server are read-only. On the file, the metric rollups are
        brought up to date first unless ``rollups`` is False (commands that never read them: the usage
        reports read ``api_request``; dirty days stay marked for the next catalog read)."""
        if self.server_maybe_running():
            from ..client import open_reader

            with open_reader(self.settings) as wh:
                yield wh
            return
        wh = self.open_warehouse()
        if rollups:
            from ..metrics.rollup import refresh_if_owned

            refresh_if_owned(wh)  # this process owns the file: bring the metric rollups up to date first
        try:
            yield wh
        finally:
            wh.close()


def state(ctx: typer.Context) -> AppState:
    """The AppState of the running command (works in sub-groups too)."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = AppState()
    return root.obj
