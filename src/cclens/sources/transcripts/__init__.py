"""The transcript source: ``~/.claude/projects/**.jsonl`` written by Claude Code.

Library interface (used by ``cclens ingest transcripts``, ``cclens ship`` and the server)::

    files = discover(extra_paths)                       # every transcript incl. subagents
    chunk, cursor = read_new(path, cursor)              # only complete lines not yet ingested
    stats = ingest_chunks(wh, [chunk], host=h, cursors=[cursor])   # idempotent, one transaction
    stats = ingest_paths(wh, paths, host=h)             # all of the above, batched

Facts about the format: docs/sources/transcripts.md.
"""

from .files import Chunk, FileCursor, default_roots, discover, read_new
from .ingest import ingest_paths, load_cursors, plan, refresh
from .stats import IngestStats


def ingest_chunks(*args, **kwargs):
    """See :func:`cclens.sources.transcripts.load.ingest_chunks` (imported lazily: it needs pyarrow)."""
    from .load import ingest_chunks as _ingest_chunks

    return _ingest_chunks(*args, **kwargs)

__all__ = ["Chunk", "FileCursor", "IngestStats", "default_roots", "discover", "ingest_chunks", "ingest_paths",
           "load_cursors", "plan", "read_new", "refresh"]
