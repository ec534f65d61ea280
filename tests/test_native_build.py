"""The C scanner as built: present, built from the sources in the tree, and leaving nothing behind."""

from __future__ import annotations

import gc
import hashlib
from pathlib import Path

import pytest

from cclens.sources.transcripts import ingest_paths
from cclens.sources.transcripts.scan import native_available

NATIVE = Path(__file__).parents[1] / "src" / "cclens" / "sources" / "transcripts" / "native"
FIXTURE = Path(__file__).parent / "fixtures" / "transcript_main_session.jsonl"


def source_hash() -> str:
    """What setup.py compiles into the extension (setup.source_hash)."""
    h = hashlib.sha256()
    for f in sorted(NATIVE.glob("*.[ch]")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def test_the_c_scanner_is_built_from_the_sources_in_the_tree():
    """An editable install does not rebuild the extension when its sources change (make does): a
    stale build would test old code. `make venv` (or `pip install -e .`) rebuilds it."""
    assert native_available(), "the C scanner is not built: pip install -e . needs a C compiler"
    from cclens.sources.transcripts import _native

    assert _native.SOURCE_HASH == source_hash(), "stale build of native/: run make venv"


@pytest.mark.skipif(not native_available(), reason="the C scanner is not built")
def test_an_ingest_holds_no_scan_after_it_returns(warehouse, tmp_path):
    from cclens.sources.transcripts import _native
    from cclens.synth.transcripts import generate

    generate(tmp_path / "projects", target_bytes=300_000, seed=3, days=2)
    gc.collect()
    before = _native.scans_alive()
    stats = ingest_paths(warehouse, [tmp_path / "projects", FIXTURE], host="h", include_defaults=False,
                         batch_bytes=60_000)
    gc.collect()
    assert stats.new_lines > 100 and _native.scans_alive() == before
