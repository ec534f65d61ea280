"""The file walk and plan that every report runs: same files as ``os.walk``, only changed files planned."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cclens.sources.transcripts import ingest_paths, plan
from cclens.sources.transcripts.files import discover_paths, scan

LINE = b'{"type":"user","sessionId":"s1","uuid":"u%d","timestamp":"2026-01-01T00:00:00Z","message":{"role":"user","content":"hi"}}\n'


def _tree(root: Path) -> dict[str, Path]:
    """A transcript tree with every kind of entry the walk must get right."""
    (root / "proj" / "sess" / "subagents").mkdir(parents=True)
    elsewhere = root.parent / "elsewhere"
    (elsewhere / "deep").mkdir(parents=True)
    files = {
        "main": root / "proj" / "a.jsonl",
        "sub": root / "proj" / "sess" / "subagents" / "agent-1.jsonl",
        "top": root / "top.jsonl",
        "outside": elsewhere / "deep" / "x.jsonl",
    }
    for i, f in enumerate(files.values()):
        f.write_bytes(LINE % i)
    (root / "proj" / "notes.txt").write_text("not a transcript")
    (root / "proj" / "dir.jsonl").mkdir()                       # a folder with the suffix: not a file
    (root / "proj" / "linked.jsonl").symlink_to(files["outside"])  # a symlinked file: taken
    (root / "proj" / "linkdir").symlink_to(elsewhere)           # a symlinked folder: not entered
    (root / "proj" / "broken.jsonl").symlink_to(root / "gone.jsonl")  # cannot be stat-ed: an error
    return files


def _os_walk(root: Path) -> set[str]:
    found = set()
    for dirpath, _dirs, names in os.walk(root.resolve()):
        found.update(os.path.join(dirpath, n) for n in names if n.endswith(".jsonl"))
    return found


def test_scan_finds_what_os_walk_finds_with_sizes(tmp_path):
    root = tmp_path / "projects"
    files = _tree(root)
    found = scan([root], include_defaults=False)
    assert set(found) == _os_walk(root)
    assert discover_paths([root], include_defaults=False) == sorted(_os_walk(root))
    base = str(root.resolve())
    assert found[f"{base}/proj/a.jsonl"] == files["main"].stat().st_size
    assert found[f"{base}/proj/linked.jsonl"] == files["outside"].stat().st_size
    assert isinstance(found[f"{base}/proj/broken.jsonl"], OSError)
    assert not any("linkdir" in p or p.endswith("dir.jsonl") for p in found)


def test_plan_lists_only_changed_files_and_reports_unreadable_ones(warehouse, tmp_path):
    root = tmp_path / "projects"
    files = _tree(root)
    stats = ingest_paths(warehouse, [root], host="h", include_defaults=False)
    assert len(stats.errors) == 1 and "broken.jsonl" in stats.errors[0]
    todo, pending, errors = plan(warehouse, [root], host="h", include_defaults=False)
    assert (todo, pending) == ([], 0)
    assert len(errors) == 1 and "broken.jsonl" in errors[0]

    with open(files["sub"], "ab") as fh:  # an append changes the file, not its folder
        fh.write(LINE % 9)
    with open(files["main"], "ab") as fh:  # a partial line: planned, read, and left for later
        fh.write(b'{"type":"user"')
    todo, pending, _ = plan(warehouse, [root], host="h", include_defaults=False)
    assert [str(p) for p, _ in todo] == sorted([str(files["main"].resolve()), str(files["sub"].resolve())])
    assert all(c is not None and c.offset > 0 for _, c in todo)
    assert pending == len(LINE % 9) + len(b'{"type":"user"')

    (root / "proj" / "new.jsonl").write_bytes(LINE % 7)  # a new file has no cursor yet
    todo, _, _ = plan(warehouse, [root], host="h", include_defaults=False)
    assert (Path(str((root / "proj" / "new.jsonl").resolve())), None) in todo


def test_a_place_that_cannot_be_looked_into_is_an_error_not_a_crash(warehouse, tmp_path, monkeypatch):
    """A named folder we may not read is reported (one line in the summary); a default root is skipped."""
    import pathlib

    forbidden = tmp_path / "forbidden"
    forbidden.mkdir()
    real_is_file = pathlib.Path.is_file

    def is_file(self):
        if self == forbidden or self.name == "projects":
            raise PermissionError(13, "Permission denied")
        return real_is_file(self)

    monkeypatch.setattr(pathlib.Path, "is_file", is_file)
    found = scan([forbidden])  # the default roots are all called "projects": skipped silently
    assert list(found) == [str(forbidden)] and isinstance(found[str(forbidden)], PermissionError)
    assert discover_paths([forbidden]) == []
    stats = ingest_paths(warehouse, [forbidden], host="h", include_defaults=False)
    assert stats.errors == [f"{forbidden}: Permission denied"]


def test_a_file_name_that_is_not_utf8_is_ingested_once_under_an_escaped_name(warehouse, tmp_path):
    # Linux file names are bytes: Python hands such a name over with lone surrogates, which neither
    # DuckDB nor JSON nor a terminal accept. It used to end the whole ingest with a traceback.
    root = tmp_path / "projects"
    (root / "proj").mkdir(parents=True)
    odd = os.fsdecode(bytes(root / "proj") + b"/caf\xe9-\xff.jsonl")
    Path(odd).write_bytes(LINE % 1 + LINE % 2)
    (root / "proj" / "plain.jsonl").write_bytes(LINE % 3)
    unreadable = os.fsdecode(bytes(root / "proj") + b"/locked-\xfe.jsonl")
    Path(unreadable).symlink_to(root / "missing.jsonl")  # found by the walk, cannot be read: an error

    stats = ingest_paths(warehouse, [root], host="h", include_defaults=False)
    assert (stats.files, stats.new_lines) == (2, 3)
    shown = str(root / "proj") + "/caf\\xe9-\\xff.jsonl"
    rows = warehouse.query("SELECT path, byte_offset, size FROM transcript_file WHERE path LIKE '%caf%'")
    assert rows == [{"path": shown, "byte_offset": 2 * len(LINE % 1), "size": 2 * len(LINE % 1)}]
    assert warehouse.scalar("SELECT count(*) FROM landing_transcript_line WHERE path = ?", [shown]) == 2
    assert stats.errors == [str(root / "proj") + "/locked-\\xfe.jsonl: No such file or directory"]
    "".join(stats.errors).encode("utf-8")  # printable as it is (a lone surrogate raises here)

    todo, pending, _ = plan(warehouse, [root], host="h", include_defaults=False)
    assert (todo, pending) == ([], 0)  # the stored cursor is found again under the same name
    with open(odd, "ab") as fh:
        fh.write(LINE % 4)
    again = ingest_paths(warehouse, [root], host="h", include_defaults=False)
    assert (again.files, again.new_lines) == (1, 1)
    assert warehouse.scalar("SELECT count(*) FROM landing_transcript_line WHERE path = ?", [shown]) == 3


def test_a_fifo_or_a_device_named_jsonl_is_reported_and_never_blocks_the_ingest(warehouse, tmp_path):
    import threading

    from cclens.sources.transcripts import read_new

    root = tmp_path / "projects"
    (root / "proj").mkdir(parents=True)
    os.mkfifo(root / "proj" / "pipe.jsonl")  # opening it to read would wait for a writer forever
    (root / "proj" / "zero.jsonl").symlink_to("/dev/zero")
    (root / "proj" / "ok.jsonl").write_bytes(LINE % 1)
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(
        stats=ingest_paths(warehouse, [root], host="h", include_defaults=False)), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the ingest blocked"
    stats = result["stats"]
    assert (stats.files, stats.new_lines) == (1, 1)
    assert sorted(stats.errors) == [f"{root}/proj/pipe.jsonl: not a regular file",
                                    f"{root}/proj/zero.jsonl: not a regular file"]
    with pytest.raises(OSError, match="not a regular file"):  # read directly (the shipper does): refused
        read_new(root / "proj" / "pipe.jsonl", None)


def test_a_configured_place_that_does_not_exist_is_reported_a_default_root_is_not(isolated_env, warehouse, tmp_path):
    stats = ingest_paths(warehouse, [tmp_path / "unmounted-backup"], host="h", include_defaults=True)
    assert stats.errors == [f"{tmp_path / 'unmounted-backup'}: no such file or folder"]
