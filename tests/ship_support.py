"""Helpers for shipping tests: run ``cclens ship``, and compare a warehouse with a local ingest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cclens.ship import state_path


def ship_cmd(server: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cclens.cli", "ship", "--server", server, *extra]


def run_ship_once(server: str, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(ship_cmd(server, "--once", *extra), capture_output=True, text=True, timeout=timeout)


def ship_state(server: str) -> dict[str, Any]:
    path = state_path(server)
    return json.loads(path.read_text()) if path.exists() else {}


def shipped_all(server: str, files: list[Path]) -> bool:
    """True when the ship state covers every complete line of ``files``."""
    cursors = ship_state(server).get("cursors", {})
    for f in files:
        data = f.read_bytes()
        complete = data.rfind(b"\n") + 1
        c = cursors.get(str(f.resolve()))
        if c is None or c["offset"] != complete or c["file_id"] != f"{os.stat(f).st_dev}:{os.stat(f).st_ino}":
            return False
    return True


def snapshot(wh, *, strict: bool = True) -> dict[str, Any]:
    """The warehouse contents a transcript ingest produces, minus what differs between any two runs
    (run ids and the times things were written). ``strict`` also compares where each line was first
    seen (generation, byte offset) and the file cursors."""
    def rows(sql: str) -> list[tuple]:
        return [tuple(r.values()) for r in wh.query(sql)]

    landing_cols = "line_key, host, path, record_type, session_id, line_uuid, ts, raw::VARCHAR"
    if strict:
        landing_cols += ", generation, byte_offset, byte_length"
    out = {
        "landing": rows(f"SELECT {landing_cols} FROM landing_transcript_line ORDER BY line_key"),
        # ts and origin_* of a request are left out: the transcript source takes them from the first
        # batch that saw the request, so they depend on batch boundaries even for two local ingests
        # (a streaming snapshot line in one batch, the final line in the next). Reported upstream.
        "api_request": rows("SELECT * EXCLUDE (updated_at, ts, origin_path, origin_offset) FROM api_request "
                            "ORDER BY request_key"),
        "session": rows("SELECT * EXCLUDE (updated_at) FROM session ORDER BY session_id, host"),
        "prompt": rows("SELECT * FROM prompt ORDER BY ALL"),
        "tool_use": rows("SELECT * FROM tool_use ORDER BY ALL"),
        "quarantine": rows("SELECT origin, byte_offset, reason, raw, host FROM quarantine "
                           "WHERE source = 'transcripts' ORDER BY ALL"),
    }
    if strict:
        out["files"] = rows("SELECT host, path, file_id, head_hash, generation, size, byte_offset, lines "
                            "FROM transcript_file ORDER BY host, path")
    return out


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert len(a[key]) == len(b[key]), f"{key}: {len(a[key])} rows shipped vs {len(b[key])} ingested locally"
        diff = [(x, y) for x, y in zip(a[key], b[key]) if x != y]
        assert not diff, f"{key} differs in {len(diff)} row(s); first: shipped {diff[0][0]} vs local {diff[0][1]}"
