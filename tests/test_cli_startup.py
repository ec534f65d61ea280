"""CLI start-up: a report loads only what it needs, and the lazy loading changes nothing users see.

The time itself is measured by bench/transcripts.py; these tests check what makes it short (which
modules a run imports) and that --help, errors and every command still behave as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_fixture

HEAVY = ("typer", "pydantic", "rich", "pyarrow", "numpy", "cclens.metrics.catalog", "cclens.metrics.rollup", "fastapi")


def _run_in_child(args: list[str], tmp_path: Path, modules: tuple[str, ...] = HEAVY) -> tuple[int, dict, str]:
    """Run ``cclens.cli.main(args)`` in a fresh interpreter; return (exit code, which of ``modules`` it
    imported, stdout)."""
    code = ("import sys, json\nfrom cclens.cli import main\nrc = main(%r)\n"
            "sys.stdout.flush()\nsys.stderr.write('\\nMODULES ' + json.dumps({m: m in sys.modules for m in %r}))\n"
            "sys.exit(rc)\n" % (args, modules))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(),
                          cwd=tmp_path, timeout=120)
    modules = json.loads(proc.stderr.rsplit("MODULES ", 1)[1])
    return proc.returncode, modules, proc.stdout


def test_report_daily_json_imports_nothing_heavy(tmp_path, isolated_env):
    copy_fixture("transcript_main_session.jsonl", isolated_env / ".claude" / "projects" / "p" / "s.jsonl")
    db = str(tmp_path / "wh.duckdb")
    rc, _, _ = _run_in_child(["--db", db, "ingest", "transcripts", "-q"], tmp_path)
    assert rc == 0
    rc, modules, out = _run_in_child(["--db", db, "report", "daily", "--tz", "UTC", "-f", "json"], tmp_path)
    assert rc == 0
    rows = json.loads(out)
    assert sum(r["input_tokens"] for r in rows) == 175  # the report itself is unchanged
    assert {m for m, loaded in modules.items() if loaded} == set()


def test_help_lists_every_command(tmp_path):
    from cclens.cli import get_app, register_commands

    register_commands()  # every module of COMMAND_MODULES: what --help must list
    app = get_app()
    names = [c.name or c.callback.__name__ for c in app.registered_commands if not c.hidden]
    names += [g.name for g in app.registered_groups]
    assert {"ingest", "report", "serve", "sync", "metrics", "query", "setup", "prices", "people"} <= set(names)
    proc = subprocess.run([sys.executable, "-m", "cclens.cli", "--help"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0
    for command in names:
        assert f" {command} " in proc.stdout, command
    proc = subprocess.run([sys.executable, "-m", "cclens.cli", "report", "--help"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0
    for command in ("daily", "sessions", "reconcile", "html", "delivery"):
        assert f" {command} " in proc.stdout, command


def test_modules_for_picks_light_commands_only():
    from cclens.cli import _modules_for

    assert _modules_for(["report", "daily", "-f", "json"]) == ["report"]
    assert _modules_for(["--db", "x.duckdb", "report", "weekly"]) == ["report"]
    assert _modules_for(["--db=x.duckdb", "ingest", "transcripts", "a.jsonl"]) == ["ingest"]
    assert _modules_for(["report", "reconcile"]) is None  # defined in another module
    assert _modules_for(["report", "tokens"]) is None      # a hidden catalog alias
    assert _modules_for(["report"]) is None
    assert _modules_for(["--help"]) is None
    assert _modules_for(["--version"]) is None
    assert _modules_for([]) is None


def test_lazy_commands_then_all_in_one_process(db_path, capsys):
    from cclens.cli import main

    assert main(["--db", str(db_path), "report", "daily", "-f", "json", "--no-refresh"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    # a command from another module, after a light run in the same process
    assert main(["--db", str(db_path), "report", "reconcile", "-f", "json"]) == 0
    assert "rows" in json.loads(capsys.readouterr().out)
    assert main(["--db", str(db_path), "metrics", "-f", "json"]) == 0
    assert any(m["name"] == "active_people" for m in json.loads(capsys.readouterr().out))


@pytest.mark.parametrize("args, needle", [
    (["report", "daily", "-f", "xml"], "'xml' is not one of"),
    (["report", "daily", "--since", "yesterday-ish"], "--since"),
    (["report", "daily", "--bogus"], "No such option"),
])
def test_bad_values_are_one_message(db_path, capsys, args, needle):
    from cclens.cli import main

    rc = main(["--db", str(db_path), *args])
    err = capsys.readouterr().err
    assert rc != 0
    assert needle in err
    assert "Traceback" not in err


def test_plain_coercion_matches_typer():
    """The plain converter gives what Typer's own (pydantic) coercion gives, for every simple case."""
    from typer._click import Context
    from typer._coercion import build_runtime_param
    from typer.main import get_command

    from cclens.cli import app, register_commands
    from cclens.cli._coercion import _PlainRuntimeParam, lighten

    register_commands()
    command = lighten(get_command(app))
    seen = 0
    stack = [command]
    while stack:
        cmd = stack.pop()
        stack.extend((getattr(cmd, "commands", None) or {}).values())
        for param in cmd.params:
            plain = getattr(param, "_runtime_param", None)
            if not isinstance(plain, _PlainRuntimeParam):
                continue
            real = build_runtime_param(param.type_descriptor)
            ctx = Context(cmd)
            for value in ("json", "table", "12", "-3", "x.duckdb", "2026-01-02", None, param.default):
                try:
                    expected = real.coerce(value, param=param, ctx=ctx)
                except Exception as exc:  # noqa: BLE001 - the plain one must fail the same way
                    expected = type(exc)
                try:
                    got = plain.coerce(value, param=param, ctx=ctx)
                except Exception as exc:  # noqa: BLE001
                    got = type(exc)
                assert got == expected and type(got) is type(expected), (cmd.name, param.name, value)
                seen += 1
    assert seen > 100


FAST_LINES = [
    ["report", "daily"],
    ["--db", "x.duckdb", "report", "weekly", "-f", "json", "--tz", "Europe/Paris"],
    ["--db=x.duckdb", "--server", "http://127.0.0.1:9", "report", "monthly", "--since=2026-01-01", "--until",
     "20260201", "-fcsv", "-b", "--no-refresh", "--source", "otel", "--project", "/p"],
    ["report", "daily", "-f", "json", "-f", "csv", "--refresh", "--no-refresh", "--breakdown", "--tz=UTC"],
    ["--server=http://127.0.0.1:9", "--db", "y.duckdb", "report", "daily", "--format=table", "--project="],
    ["report", "daily", "--tz", "--format"],  # a value that looks like an option is still the value
]
TYPER_LINES = [
    ["report", "daily", "-h"], ["report", "daily", "--help"], ["report", "daily", "-f", "xml"],
    ["report", "daily", "--format", "JSON"], ["report", "daily", "--bogus"], ["report", "daily", "extra"],
    ["report", "daily", "--tz"], ["report", "daily", "-bf", "json"], ["report", "daily", "--breakdown=1"],
    ["report", "sessions"], ["report"], ["--version"], ["-h"], ["--db"], ["report", "--help", "daily"],
    ["report", "daily", "--db", "x"], ["report", "daily", "--"],
]


@pytest.mark.parametrize("args", FAST_LINES)
def test_light_path_calls_the_report_exactly_as_typer_does(args, monkeypatch):
    """Every line the light parser takes reaches the report with the arguments Typer would give it."""
    from cclens.cli import fast, main, usage_report

    calls = []
    # the light path also hands over the walk it started early: compare everything else
    monkeypatch.setattr(usage_report, "period", lambda st, *rest: calls.append((st.db, st.server, *rest[:9])))
    assert fast.parse(args) is not None
    assert main(args) == 0
    monkeypatch.setattr(fast, "run", lambda _args: False)  # the same line through Typer
    assert main(args) == 0
    assert len(calls) == 2 and calls[0] == calls[1]
    assert [type(v) for v in calls[0]] == [type(v) for v in calls[1]]


@pytest.mark.parametrize("args", TYPER_LINES)
def test_other_lines_go_to_typer(args):
    from cclens.cli import fast

    assert fast.parse(args) is None


def test_light_path_errors_are_one_line(tmp_path, capsys):
    from cclens.cli import main

    rc = main(["--db", str(tmp_path / "wh.duckdb"), "report", "daily", "--tz", "Mars/Olympus", "--no-refresh"])
    err = capsys.readouterr().err
    assert rc != 0 and err.startswith("error: ") and err.count("\n") == 1 and "Mars/Olympus" in err


def test_report_picks_up_new_lines_while_the_walk_runs_beside_the_open(tmp_path, isolated_env, capsys):
    """The light path walks the folders on a thread while the warehouse opens; new lines still count."""
    from cclens.cli import main

    projects = isolated_env / ".claude" / "projects"
    copy_fixture("transcript_main_session.jsonl", projects / "p" / "s.jsonl")
    db = str(tmp_path / "wh.duckdb")
    assert main(["--db", db, "report", "daily", "--tz", "UTC", "-f", "json"]) == 0
    first = sum(r["input_tokens"] for r in json.loads(capsys.readouterr().out))
    assert first == 175
    copy_fixture("transcript_main_session.jsonl", projects / "q" / "other.jsonl")  # same lines: counted once
    data = (projects / "p" / "s.jsonl").read_text().replace('"requestId": "req_', '"requestId": "req_x')
    data = data.replace("3649b710-", "9999b710-").replace('"id": "msg_', '"id": "msg_x')  # another session
    (projects / "q" / "new.jsonl").write_text(data)  # new requests: counted again
    assert main(["--db", db, "report", "daily", "--tz", "UTC", "-f", "json"]) == 0
    assert sum(r["input_tokens"] for r in json.loads(capsys.readouterr().out)) == 2 * first


def test_background_scan_hands_back_errors(monkeypatch):
    from cclens.sources.transcripts import files

    monkeypatch.setattr(files, "scan", lambda *a, **k: (_ for _ in ()).throw(PermissionError("no")))
    result = files.scan_in_background([])
    with pytest.raises(PermissionError):
        result()


def test_reports_through_a_server_equal_the_file_and_skip_arrow(tmp_path, isolated_env):
    """Through `cclens serve` the usage reports read its JSON answers (no pyarrow, no HTTP client to
    import) and print exactly what the file gives."""
    from serve_support import ServeProcess

    projects = isolated_env / ".claude" / "projects"
    copy_fixture("transcript_main_session.jsonl", projects / "p" / "s.jsonl")
    db = tmp_path / "wh.duckdb"
    lines = [["report", "daily", "--tz", "UTC", "-f", "json"], ["report", "weekly", "--since", "2026-11-01", "-f", "json"],
             ["report", "sessions", "-f", "json"], ["report", "projects", "-f", "json"],
             ["report", "models", "-f", "json"], ["report", "daily", "-b", "-f", "csv"]]
    direct = []
    for args in lines:
        rc, _, out = _run_in_child(["--db", str(db), *args], tmp_path)
        assert rc == 0
        direct.append(out)
    with ServeProcess(db, env={"CCLENS_SERVER_WATCH_TRANSCRIPTS": "false"}, grpc=False):
        for args, expected in zip(lines, direct):
            rc, modules, out = _run_in_child(["--db", str(db), *args], tmp_path,
                                             ("cclens.client", "pyarrow", "httpx2"))
            assert rc == 0
            assert out == expected, args
            assert modules == {"cclens.client": True, "pyarrow": False, "httpx2": False}, args


def test_ingest_transcripts_imports_nothing_heavy(tmp_path, isolated_env):
    """`cclens ingest transcripts` with nothing new: no Typer, no pydantic, and no Rich unless a bar can
    be drawn (stderr is a pipe here, with and without -q); the summary is Rich's text all the same."""
    db = str(tmp_path / "wh.duckdb")
    light = ("typer", "pydantic", "rich", "click")
    for extra in (["-q"], []):
        rc, modules, _ = _run_in_child(["--db", db, "ingest", "transcripts", *extra], tmp_path, light)
        assert rc == 0
        assert {m for m, loaded in modules.items() if loaded} == set(), extra
    copy_fixture("transcript_main_session.jsonl", isolated_env / ".claude" / "projects" / "p" / "s.jsonl")
    env = {**os.environ, "COLUMNS": "60"}
    proc = subprocess.run([sys.executable, "-m", "cclens.cli", "--db", db, "ingest", "transcripts"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import io

    from rich.console import Console

    rich = Console(file=io.StringIO(), width=60)  # what the Rich console printed (after the bar's blank line)
    rich.print("files 1 · bytes 14,006 · lines 19 · new lines 19 · new requests 3 · updated requests 0 · "
               "quarantined 0")
    assert proc.stderr == "\n" + rich.file.getvalue()
    assert proc.stderr.count("\n") == 3  # wrapped at 60 columns, as Rich wraps


INGEST_FAST_LINES = [
    ["ingest", "transcripts"],
    ["ingest", "transcripts", "-q"],
    ["--db", "x.duckdb", "ingest", "transcripts", "a.jsonl", "-q", "sub/dir", "--quiet"],
    ["--db=x.duckdb", "ingest", "transcripts", "--quiet", "./b c.jsonl", "a.jsonl", "a.jsonl"],
    ["--server", "http://127.0.0.1:9", "ingest", "transcripts", "a.jsonl"],  # through a server: ship()
    ["--server=http://127.0.0.1:9", "--db", "y.duckdb", "ingest", "transcripts", "-q"],
]
INGEST_TYPER_LINES = [
    ["ingest", "transcripts", "--help"], ["ingest", "transcripts", "-h"], ["ingest", "transcripts", "--bogus"],
    ["ingest", "transcripts", "--", "-x.jsonl"], ["ingest", "transcripts", "-qq"], ["ingest", "transcripts", ""],
    ["ingest", "transcripts", "--quiet=1"], ["ingest", "transcripts", "-"], ["ingest"], ["ingest", "otel"],
    ["ingest", "transcripts", "a.jsonl", "--db", "x"], ["--db", "ingest", "transcripts"],
]


@pytest.mark.parametrize("args", INGEST_FAST_LINES)
def test_light_ingest_calls_the_library_exactly_as_typer_does(args, monkeypatch, capsys, tmp_path):
    """Every ingest line the light parser takes reaches ingest_paths (or ship, through a server) with the
    arguments the Typer command gives it, and prints the same."""
    monkeypatch.chdir(tmp_path)  # the paths named exist (a missing one is refused before the library)
    for name in ("a.jsonl", "b c.jsonl"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub" / "dir").mkdir(parents=True)
    import cclens.ship
    import cclens.sources.transcripts as transcripts
    from cclens.cli import fast, main
    from cclens.ship import ShipStats
    from cclens.sources.transcripts import IngestStats

    calls = []

    def ingest_paths(wh, paths, **kwargs):
        ahead = kwargs.pop("ahead", None)  # a read ahead for a new warehouse file: the first call's only
        if ahead is not None:
            ahead.close()
        calls.append(("ingest_paths", wh.path, paths, kwargs))
        return IngestStats(files=2, bytes=12345, lines=7, new_lines=3, errors=["/x/y.jsonl: Permission denied"])

    def ship(*args, **kwargs):
        calls.append(("ship", args, kwargs))
        return ShipStats()

    monkeypatch.setattr(transcripts, "ingest_paths", ingest_paths)
    monkeypatch.setattr(cclens.ship, "ship", ship)
    assert fast.parse_ingest(args) is not None
    assert main(args) == 0
    light = capsys.readouterr()
    monkeypatch.setattr(fast, "run", lambda _args: False)  # the same line through Typer
    assert main(args) == 0
    typer_out = capsys.readouterr()
    assert len(calls) == 2 and calls[0] == calls[1]
    assert calls[0][0] == ("ship" if "http://127.0.0.1:9" in " ".join(args) else "ingest_paths")
    assert [type(v) for v in calls[0][2]] == [type(v) for v in calls[1][2]]
    assert (light.out, light.err) == (typer_out.out, typer_out.err)
    assert light.err.count("files 2 · bytes 12,345") == 1 or "through cclens serve" in light.err


@pytest.mark.parametrize("args", INGEST_TYPER_LINES)
def test_other_ingest_lines_go_to_typer(args):
    from cclens.cli import fast

    assert fast.parse_ingest(args) is None


def test_light_ingest_errors_are_one_line(tmp_path, capsys):
    from cclens.cli import main

    (tmp_path / "not-a-dir").write_text("")
    rc = main(["--db", str(tmp_path / "not-a-dir" / "wh.duckdb"), "ingest", "transcripts", "-q"])
    err = capsys.readouterr().err
    assert rc != 0 and err.startswith("error: ") and err.count("\n") == 1 and "not-a-dir" in err


def test_settings_load_without_socket_or_tomllib(tmp_path):
    """Loading the settings imports neither socket.py nor tomllib when there is no file to read, and the
    default host is still socket.gethostname(); with a file, it is read as before."""
    code = ("import sys, json\nfrom cclens.config import load_settings\ns = load_settings()\n"
            "loaded = {m: m in sys.modules for m in ('socket', 'tomllib')}\nimport socket\n"
            "print(json.dumps([loaded, s.host == socket.gethostname(), str(s.db)]))\n")
    env = {k: v for k, v in os.environ.items() if k != "CCLENS_CONFIG"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=60)
    loaded, same_host, _ = json.loads(proc.stdout)
    assert loaded == {"socket": False, "tomllib": False} and same_host
    (tmp_path / "cclens.toml").write_text('db = "/x/from-toml.duckdb"\n')
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=60)
    loaded, same_host, db = json.loads(proc.stdout)
    assert loaded["tomllib"] and same_host and db == "/x/from-toml.duckdb"
