"""A new warehouse gets its whole schema in one transaction (:meth:`DuckDBWarehouse.migrate`); the
catalog must be exactly the one the migrations give applied one by one, and an older warehouse must
still upgrade to it."""

from __future__ import annotations

from pathlib import Path

import _duckdb as duckdb
import pytest

from cclens.warehouse import DuckDBWarehouse, duckdb_backend, migrations, open_warehouse

# Every catalog function of what the migrations create, without the object ids (they depend on
# creation order and on nothing a user sees). Both files are called wh.duckdb, so database_name agrees.
CATALOG = {
    "tables": "duckdb_tables()",
    "columns": "duckdb_columns()",
    "views": "duckdb_views()",
    "constraints": "duckdb_constraints()",
    "indexes": "duckdb_indexes()",
    "sequences": "duckdb_sequences()",
    "macros": "duckdb_functions() WHERE NOT internal",
}


def catalog(path: Path, skip: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for name, source in CATALOG.items():
            cur = con.execute(f"SELECT * FROM {source}")
            cols = [d[0] for d in cur.description]
            keep = [i for i, c in enumerate(cols) if not c.endswith("oid") and c not in skip]
            rows = [tuple(row[i] for i in keep) for row in cur.fetchall()]
            out[name] = sorted(rows, key=repr)
        out["schema_migrations"] = con.execute(
            "SELECT component, version, typeof(applied_at), applied_at IS NOT NULL FROM schema_migrations "
            "ORDER BY component, version").fetchall()
    finally:
        con.close()
    return out


class Transactions:
    """Counts the transactions migrate() opens (outermost ones)."""

    def __init__(self, monkeypatch):
        self.count = 0
        real = DuckDBWarehouse.transaction

        def counted(wh):
            if not wh._depth:
                self.count += 1
            return real(wh)

        monkeypatch.setattr(DuckDBWarehouse, "transaction", counted)


def step_by_step(path: Path) -> list[tuple[str, int]]:
    """The old way: every migration in its own transaction, one statement at a time (what migrate()
    still does when ``schema_migrations`` exists, here empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute(duckdb_backend._SCHEMA_MIGRATIONS)
    wh = DuckDBWarehouse(con, str(path))
    try:
        return wh.migrate()
    finally:
        wh.close()


def every_migration() -> list[tuple[str, int]]:
    registry = migrations.registered()
    return sorted((c, v) for c, steps in registry.items() for v in range(1, len(steps) + 1))


def test_new_warehouse_in_one_transaction_has_the_step_by_step_catalog(tmp_path, monkeypatch):
    transactions = Transactions(monkeypatch)
    fast = tmp_path / "fast" / "wh.duckdb"
    wh = open_warehouse(fast)
    wh.close()
    assert transactions.count == 1

    transactions.count = 0
    applied = step_by_step(tmp_path / "steps" / "wh.duckdb")
    assert sorted(applied) == every_migration()
    assert transactions.count == len(applied) > 20

    expected = catalog(tmp_path / "steps" / "wh.duckdb")
    got = catalog(fast)
    assert len(expected["tables"]) > 50 and len(expected["views"]) > 5 and expected["macros"]
    assert expected["constraints"] and expected["indexes"] and expected["sequences"]
    for name in expected:
        assert got[name] == expected[name], name
    assert [r[:2] for r in got["schema_migrations"]] == every_migration()


def test_fresh_open_applies_everything_once(tmp_path):
    wh = open_warehouse(tmp_path / "wh.duckdb")
    stamps = wh.query("SELECT component, version, applied_at FROM schema_migrations")
    assert wh.migrate() == []
    wh.close()
    wh = open_warehouse(tmp_path / "wh.duckdb")
    assert wh.migrate() == []
    assert wh.query("SELECT component, version, applied_at FROM schema_migrations") == stamps
    wh.close()


def test_an_older_warehouse_upgrades_to_the_same_catalog(tmp_path, monkeypatch):
    """A warehouse made when every component had only its first migration gets the others one by one
    on open, keeps its rows, and ends with the catalog of a new one."""
    full = migrations.registered()
    monkeypatch.setattr(migrations, "registered", lambda: {c: steps[:1] for c, steps in full.items()})
    old = tmp_path / "old" / "wh.duckdb"
    wh = open_warehouse(old)
    wh.execute("INSERT INTO quarantine (source, origin, reason) VALUES ('transcripts', '/a.jsonl', 'bad json')")
    wh.close()
    monkeypatch.undo()

    wh = open_warehouse(old)
    assert wh.scalar("SELECT count(*) FROM quarantine") == 1
    wh.close()
    new = tmp_path / "new" / "wh.duckdb"
    open_warehouse(new).close()
    # (quarantine has a row in the old one: the tables' estimated sizes differ)
    upgraded, fresh = catalog(old, skip=("estimated_size",)), catalog(new, skip=("estimated_size",))
    assert any(len(steps) > 1 for steps in full.values())  # there were later migrations to apply
    for name in fresh:
        assert upgraded[name] == fresh[name], name


def test_migrate_inside_a_callers_transaction(tmp_path):
    """Inside a transaction migrate() never probes with a failing statement (it would abort it)."""
    wh = open_warehouse(tmp_path / "wh.duckdb", migrate=False)
    try:
        with wh.transaction():
            applied = wh.migrate()
            assert sorted(applied) == every_migration()
            assert wh.migrate() == []
        assert wh.scalar("SELECT count(*) FROM schema_migrations") == len(applied)
    finally:
        wh.close()
    assert catalog(tmp_path / "wh.duckdb") == catalog_of_new(tmp_path / "new")


def catalog_of_new(folder: Path) -> dict[str, list[tuple]]:
    open_warehouse(folder / "wh.duckdb").close()
    return catalog(folder / "wh.duckdb")


def test_a_failing_migration_leaves_a_new_file_without_schema(tmp_path, monkeypatch):
    """All or nothing: a new warehouse whose schema cannot be made is left empty, and the next open
    makes it whole."""
    from cclens.errors import WarehouseError

    full = migrations.registered()
    broken = dict(full, zzz_broken=["CREATE TABLE zzz_ok (x INTEGER);\nCREATE TABLE zzz_bad (x NOSUCHTYPE)"])
    monkeypatch.setattr(migrations, "registered", lambda: broken)
    with pytest.raises(WarehouseError, match="NOSUCHTYPE"):
        open_warehouse(tmp_path / "wh.duckdb")
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchone()[0] == 0
    con.close()
    monkeypatch.undo()
    open_warehouse(tmp_path / "wh.duckdb").close()
    assert catalog(tmp_path / "wh.duckdb") == catalog_of_new(tmp_path / "new")
