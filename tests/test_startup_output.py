"""`cclens ingest transcripts` prints its summary without importing Rich when stderr is not a terminal
(:class:`cclens.cli.fast.PlainStderr`): what it writes must be what Rich writes, byte for byte."""

from __future__ import annotations

import io
import os
import sys

import pytest
from hypothesis import given, settings, strategies as st

from cclens.cli import fast


def rich_print(text: str, width: int) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width)
    console.print(text)
    return console.file.getvalue()


@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet="ab ·,0-", max_size=60), width=st.integers(1, 30))
def test_wrap_is_richs_wrap(text, width):
    assert "".join(line + "\n" for line in fast.wrap(text, width)) == rich_print(text, width)


@pytest.mark.parametrize("width", [1, 7, 40, 80, 200])
def test_summary_lines_wrap_as_rich_wraps_them(width):
    for text in ["files 1,234 · bytes 98,765,432,100 · lines 12 · new lines 0 · new requests 0 · "
                 "updated requests 0 · quarantined 7 · unreadable files 2",
                 "  quarantined lines are kept with their reason: cclens report quarantine",
                 "  unreadable: /home/somebody/.claude/projects/-home-somebody-a-rather-long-project-name/"
                 "0d6b2c1e-aaaa-bbbb-cccc-123456789abc.jsonl: Permission denied", "", "   "]:
        assert "".join(line + "\n" for line in fast.wrap(text, width)) == rich_print(text, width), text


def test_unusual_text_goes_to_rich(capsys, monkeypatch):
    """Markup, emoji codes and other characters are printed by Rich itself (it would change them)."""
    monkeypatch.delenv("COLUMNS", raising=False)
    console = fast.PlainStderr(80)
    for text in ["  unreadable: /p/[bold]x[/bold].jsonl: gone", "  unreadable: /p/:smile:.jsonl: gone",
                 "through cclens serve at http://127.0.0.1:8765: batches 1", "tab\there", "wide 漢字"]:
        console.print(text)
        assert capsys.readouterr().err == rich_print(text, 80)
    assert console._rich is not None
    assert "[bold]" not in rich_print("[bold]x[/bold]", 80)  # the reason: Rich does change them


@pytest.mark.parametrize("env", [
    {}, {"COLUMNS": "50"}, {"COLUMNS": "0"}, {"COLUMNS": "abc"}, {"LINES": "10", "COLUMNS": "33"},
    {"FORCE_COLOR": "1"}, {"FORCE_COLOR": ""}, {"TTY_COMPATIBLE": "0"}, {"TTY_COMPATIBLE": "1"},
    {"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"}, {"TERM": "dumb"}, {"NO_COLOR": "1"},
])
@pytest.mark.parametrize("tty", [False, True])
def test_plain_exactly_when_rich_prints_plain_text(env, tty, monkeypatch):
    """:func:`fast._rich_plain_width` says "plain" only where Rich's console is neither a terminal nor
    interactive, and gives Rich's width there."""
    from rich.console import Console

    for key in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "TERM", "NO_COLOR"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if tty:
        master, slave = os.openpty()
        stream = os.fdopen(slave, "w")
        monkeypatch.setattr(sys, "stderr", stream)
    try:
        width = fast._rich_plain_width()
        console = Console(stderr=True)
        if width is None:
            assert console.is_terminal or console.width == 0
        else:
            assert not console.is_terminal and not console.is_interactive
            assert width == console.width
    finally:
        if tty:
            stream.close()
            os.close(master)
    if tty and not env:
        assert width is None  # a terminal: Rich draws the bar and colours the summary


def _fake_ingest(monkeypatch, stats):
    import cclens.sources.transcripts as transcripts

    def ingest_paths(wh, paths, **kwargs):
        if kwargs["progress"]:
            kwargs["progress"](10, 20)
        return stats

    monkeypatch.setattr(transcripts, "ingest_paths", ingest_paths)


@pytest.mark.parametrize("quiet", [False, True])
@pytest.mark.parametrize("columns", ["80", "23", "200"])
def test_ingest_prints_what_the_rich_console_prints(quiet, columns, tmp_path, monkeypatch, capsys):
    """The whole ingest output (the progress bar's blank line, the summary, the unreadable files, the
    quarantine hint) with the plain console, then with Rich's own console and progress bar."""
    from cclens.cli.context import AppState
    from cclens.sources.transcripts import IngestStats

    monkeypatch.setenv("COLUMNS", columns)
    stats = IngestStats(files=3, bytes=1_234_567, lines=40, new_lines=12, quarantined=2,
                        errors=["/data/[x]/s.jsonl: gone"]  # markup: printed by Rich in both cases
                        + [f"/data/p{i}/s.jsonl: Permission denied" for i in range(25)])
    _fake_ingest(monkeypatch, stats)
    st = AppState(db=tmp_path / "wh.duckdb")
    fast.ingest_transcripts(st, [tmp_path], quiet)
    plain = capsys.readouterr()
    monkeypatch.setattr(fast, "_rich_plain_width", lambda: None)  # as on a terminal: Rich prints everything
    fast.ingest_transcripts(st, [tmp_path], quiet)
    rich = capsys.readouterr()
    assert plain.err == rich.err
    assert plain.err.startswith("files 3" if quiet else "\nfiles 3")
    assert plain.err.count("unreadable: ") == 20 and plain.err.endswith("quarantine\n")


def test_the_blank_line_is_printed_when_the_ingest_fails(tmp_path, monkeypatch, capsys):
    """Rich's progress bar prints its blank line even when the ingest raises: so does the plain one."""
    import cclens.sources.transcripts as transcripts
    from cclens.cli.context import AppState
    from cclens.errors import SourceError

    def ingest_paths(wh, paths, **kwargs):
        raise SourceError("broken")

    monkeypatch.setattr(transcripts, "ingest_paths", ingest_paths)
    st = AppState(db=tmp_path / "wh.duckdb")
    outputs = []
    for plain in (True, False):
        if not plain:
            monkeypatch.setattr(fast, "_rich_plain_width", lambda: None)
        with pytest.raises(SourceError):
            fast.ingest_transcripts(st, [tmp_path], False)
        outputs.append(capsys.readouterr().err)
    assert outputs[0] == outputs[1] == "\n"
