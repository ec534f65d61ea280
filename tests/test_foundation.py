"""Config, errors and the warehouse protocol."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cclens.config import load_settings
from cclens.errors import ConfigError, WarehouseLockedError
from cclens.warehouse import open_warehouse


def test_settings_precedence(tmp_path, monkeypatch):
    (tmp_path / "cclens.toml").write_text('db = "/from/toml.duckdb"\n[anthropic]\nadmin_key = "sk-toml"\n')
    s = load_settings()
    assert str(s.db) == "/from/toml.duckdb"
    assert s.anthropic_admin_key.get_secret_value() == "sk-toml"
    assert "sk-toml" not in repr(s)
    monkeypatch.setenv("CCLENS_DB", "/from/env.duckdb")
    assert str(load_settings().db) == "/from/env.duckdb"
    assert str(load_settings(db="/from/cli.duckdb").db) == "/from/cli.duckdb"


def test_unknown_toml_key_is_a_clear_error(tmp_path):
    (tmp_path / "cclens.toml").write_text("nonsense = 1\n")
    with pytest.raises(ConfigError, match="unknown setting.*nonsense"):
        load_settings()


def test_invalid_value_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CCLENS_SERVER_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="server_port"):
        load_settings()


def test_migrations_apply_once(db_path):
    wh = open_warehouse(db_path)
    first = wh.query("SELECT component, version FROM schema_migrations ORDER BY 1, 2")
    assert ("core", 1) in {(r["component"], r["version"]) for r in first}
    wh.close()
    wh = open_warehouse(db_path)
    assert wh.migrate() == []
    wh.close()


def test_transaction_rolls_back(warehouse):
    warehouse.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(RuntimeError):
        with warehouse.transaction():
            warehouse.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError("boom")
    assert warehouse.scalar("SELECT count(*) FROM t") == 0


def test_second_process_gets_a_locked_error(db_path):
    wh = open_warehouse(db_path)
    try:
        code = (
            "from cclens.warehouse import open_warehouse\n"
            "from cclens.errors import WarehouseLockedError\n"
            f"try:\n    open_warehouse({str(db_path)!r})\n"
            "except WarehouseLockedError as e:\n    print('LOCKED', e)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.stdout.startswith("LOCKED"), out.stderr
        assert "cclens serve" in out.stdout
    finally:
        wh.close()


def test_cli_errors_are_one_line(tmp_path, monkeypatch):
    (tmp_path / "cclens.toml").write_text("nonsense = 1\n")
    out = subprocess.run([sys.executable, "-m", "cclens.cli", "report", "daily"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("error:") and "nonsense" in out.stderr


@pytest.mark.parametrize("args", [["report", "daily", "--no-such-option"], ["report", "daily", "--tz"],
                                  ["no-such-command"], ["metric", "x", "--by"]])
def test_usage_errors_are_one_message_without_traceback(args):
    out = subprocess.run([sys.executable, "-m", "cclens.cli", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "Error:" in out.stderr


def test_a_path_named_to_ingest_that_does_not_exist_is_an_error(isolated_env, tmp_path):
    (tmp_path / "real").mkdir()
    out = subprocess.run([sys.executable, "-m", "cclens.cli", "--db", str(tmp_path / "wh.duckdb"), "ingest",
                          "transcripts", str(tmp_path / "real"), str(tmp_path / "typo")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == f"error: no such file or folder: {tmp_path / 'typo'}"
    assert not (tmp_path / "wh.duckdb").exists()  # refused before anything was done


@pytest.mark.parametrize("args", [["report", "daily"], ["report", "sessions"], ["metric", "tokens"]])
def test_since_after_until_is_an_error_not_an_empty_report(isolated_env, tmp_path, args):
    out = subprocess.run([sys.executable, "-m", "cclens.cli", "--db", str(tmp_path / "wh.duckdb"), *args,
                          "--since", "2026-12-01", "--until", "20261101"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip() == "error: --since 2026-12-01 is after --until 2026-11-01"


def test_parse_days_accepts_one_day_and_open_ends():
    from datetime import date

    from cclens.timeutil import parse_days

    assert parse_days("2026-12-01", "2026-12-01") == (date(2026, 12, 1), date(2026, 12, 1))
    assert parse_days(None, "2026-12-01") == (None, date(2026, 12, 1))
    assert parse_days("2026-12-01", None) == (date(2026, 12, 1), None)


def test_a_full_disk_is_one_line_that_says_what_to_do(warehouse):
    """DuckDB wraps "No space left on device" in lines of its own (a fatal error, the checkpoint that
    failed); the error names the cause and what to do, on one line."""
    import _duckdb

    from cclens.errors import WarehouseError

    wrapped = ('FATAL Error: Failed: database has been invalidated because of a previous fatal error.\n'
               'Original error: "Failed to create checkpoint because of error: Could not write file '
               '"/x/wh.duckdb": No space left on device"')
    with pytest.raises(WarehouseError) as err:
        with warehouse._errors():
            raise _duckdb.FatalException(wrapped)
    text = str(err.value)
    assert "\n" not in text and text.startswith("no space left on the disk holding warehouse ")
    assert "free some and run the command again" in text and text.endswith('No space left on device"]')
    with pytest.raises(WarehouseError, match="^warehouse .*: Binder Error"):  # other errors as before
        with warehouse._errors():
            raise _duckdb.BinderException("Binder Error: no such column")
