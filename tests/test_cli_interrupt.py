"""Ctrl-C, kill -9 and unexpected errors at the command line: one line, the right exit code, nothing
lost and nothing counted twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cclens.synth.transcripts import generate


def _cli(env: dict[str, str], *args: str) -> list[str]:
    return [sys.executable, "-m", "cclens.cli", *args]


def _report(env: dict[str, str], db: Path) -> str:
    out = subprocess.run(_cli(env, "--db", str(db), "report", "daily", "--tz", "UTC", "-f", "json"),
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[dict[str, str], str]:
    """A 40 MB corpus (an ingest of a few seconds at most) and the report of one clean ingest of it."""
    tmp = tmp_path_factory.mktemp("interrupt")
    projects = tmp / "claude" / "projects"
    generate(projects, target_bytes=40_000_000, seed=3, days=10, projects=4)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCLENS_", "CLAUDE_", "OTEL_", "ANTHROPIC_"))}
    env.update(HOME=str(tmp / "home"), CLAUDE_CONFIG_DIR=str(projects.parent), TZ="UTC")
    clean = tmp / "clean.duckdb"
    whole = subprocess.run(_cli(env, "--db", str(clean), "ingest", "transcripts", "-q"), env=env,
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    return env, _report(env, clean)


def _started(proc: subprocess.Popen, db: Path) -> None:
    """Wait until the warehouse file appears (Python has started and cclens has begun)."""
    deadline = time.monotonic() + 60
    while not db.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def test_ctrl_c_during_an_ingest_is_one_line_and_the_next_run_completes_it(corpus, tmp_path):
    env, expected = corpus

    interrupted = 0
    # Points in the run after the warehouse file appears (Python has started; a Ctrl-C while the
    # interpreter itself imports is Python's to report): opening, loading, committing, closing.
    for delay in (0.0, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9, 1.2):
        db = tmp_path / f"cut-{delay}.duckdb"
        proc = subprocess.Popen(_cli(env, "--db", str(db), "ingest", "transcripts", "-q"), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _started(proc, db)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
        assert "Traceback" not in err, err
        if proc.returncode == 130:
            interrupted += 1
            assert err.strip().splitlines()[-1] == "interrupted", err
        else:
            assert proc.returncode == 0, err  # it had finished before the signal came
        assert _report(env, db) == expected  # the report's own refresh ingests what the cut left
    assert interrupted, "no run was interrupted while it worked; the corpus is too small for this machine"


def test_kill_9_during_an_ingest_loses_nothing_and_counts_nothing_twice(corpus, tmp_path):
    env, expected = corpus
    killed = 0
    for delay in (0.0, 0.15, 0.3, 0.5, 0.7, 0.9, 1.2):
        db = tmp_path / f"killed-{delay}.duckdb"
        proc = subprocess.Popen(_cli(env, "--db", str(db), "ingest", "transcripts", "-q"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _started(proc, db)
        time.sleep(delay)
        proc.kill()
        killed += proc.wait(timeout=60) == -signal.SIGKILL
        assert _report(env, db) == expected  # DuckDB replays its log; the refresh reads the rest
    assert killed, "no run was killed while it worked; the corpus is too small for this machine"


def test_an_unexpected_error_is_one_line_with_exit_code_70(monkeypatch, capsys):
    from cclens import cli
    from cclens.cli import fast

    def broken(args):
        raise ValueError("something\nnobody expected")

    monkeypatch.setattr(fast, "run", broken)
    monkeypatch.delenv("CCLENS_DEBUG", raising=False)
    assert cli.main(["report", "daily"]) == 70
    err = capsys.readouterr().err
    assert err == ("error: internal error (ValueError: something nobody expected); this is a bug in cclens, "
                   "please report it; CCLENS_DEBUG=1 shows the traceback\n")
    monkeypatch.setenv("CCLENS_DEBUG", "1")
    with pytest.raises(ValueError):
        cli.main(["report", "daily"])


def test_a_ctrl_c_after_the_run_is_over_does_not_change_its_exit():
    """Once main() returned, the run is over: a SIGINT while the interpreter shuts down (here from an
    atexit hook) leaves the exit code as main() said, with nothing on stderr."""
    code = ("import atexit, os, signal\nimport cclens.cli as cli\ncli.main = lambda: 3\n"
            "atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))\ncli.script()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stderr) == (3, "")


def test_a_ctrl_c_caught_inside_code_run_by_exec_still_exits_130(tmp_path):
    """A Ctrl-C that lands while exec() runs a string (dataclasses make their methods so, as modules
    import) is caught and said like any other, but CPython remembers it and at exit kills the process
    by SIGINT when it ran as ``python -m`` (exit -2 instead of 130; seen in
    test_ctrl_c_during_an_ingest_… about once in twenty runs). The run must end with 130 and its line."""
    code = ("import os, signal, sys\nimport cclens.cli as cli\n"
            "def main():\n"
            "    try:\n"
            "        exec('import os, signal\\nos.kill(os.getpid(), signal.SIGINT)\\nfor _ in range(10**6): pass')\n"
            "    except KeyboardInterrupt:\n"
            "        sys.stderr.write('interrupted\\n')\n"
            "        return 130\n"
            "    return 0\n"
            "cli.main = main\ncli.script()\n")
    (tmp_path / "interrupted_in_exec.py").write_text(code)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    out = subprocess.run([sys.executable, "-m", "interrupted_in_exec"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert (out.returncode, out.stderr) == (130, "interrupted\n")


def test_ctrl_c_while_duckdb_reads_a_registered_objects_schema_is_an_interrupt(warehouse):
    """Registering an Arrow object makes DuckDB read its schema, calling into Python; a Ctrl-C there
    comes back as DuckDB's own error quoting KeyboardInterrupt, and must be an interrupt (exit 130),
    not an internal error."""
    from cclens.sources.transcripts.scan import scan
    from cclens.warehouse import arrow_streams

    table = scan([b"{}\n"]).lines
    arrow_streams.enable(table)

    class Interrupted:
        num_rows = 1

        def __arrow_c_stream__(self, requested_schema=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        warehouse.register("_interrupted", Interrupted())
    warehouse.register("_fine", table)  # and the connection still works
    assert warehouse.scalar("SELECT count(*) FROM _fine") == 1
