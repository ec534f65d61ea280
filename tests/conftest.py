"""Shared fixtures. Every test runs with a temporary HOME, XDG dirs and no CCLENS_* / CLAUDE_* env,
so nothing reads or writes the developer's real files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    for key in list(os.environ):
        if key.startswith(("CCLENS_", "CLAUDE_", "OTEL_", "ANTHROPIC_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "wh.duckdb"


@pytest.fixture
def warehouse(db_path):
    from cclens.warehouse import open_warehouse

    wh = open_warehouse(db_path)
    yield wh
    wh.close()


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def copy_fixture(name: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / name, dest)
    return dest
