"""Ctrl-C and unexpected errors at the command line: one line, the right exit code, nothing lost."""

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


def test_ctrl_c_during_an_ingest_is_one_line_and_the_next_run_completes_it(isolated_env, tmp_path):
    projects = tmp_path / "claude" / "projects"
    generate(projects, target_bytes=40_000_000, seed=3, days=10, projects=4)
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(projects.parent), "TZ": "UTC"}
    clean = tmp_path / "clean.duckdb"
    whole = subprocess.run(_cli(env, "--db", str(clean), "ingest", "transcripts", "-q"), env=env,
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    expected = _report(env, clean)

    interrupted = 0
    for delay in (0.4, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0):  # points in the run: opening, loading, committing
        db = tmp_path / f"cut-{delay}.duckdb"
        proc = subprocess.Popen(_cli(env, "--db", str(db), "ingest", "transcripts", "-q"), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
