"""Run one `cclens ...` command with timers around its steps; print them as JSON (milliseconds).

    .venv/bin/python bench/_transcripts_phases.py --db WH report daily -f json

Used by bench/transcripts.py. The command runs the real CLI code (cclens.cli.main); only the steps
below are wrapped, so the total is the same process a user runs plus a few microseconds:
start-up (interpreter, imports, argument parsing: the total minus the steps), open (open the warehouse
file, check its schema), walk+stat (find every transcript and its size; a report does it on a thread
while the warehouse opens, so the step is only what it still waits for afterwards, and the walk's own
time is reported beside), plan (compare with the stored
cursors), load (read and ingest new lines, with the rest of the ingest: numpy/pyarrow imports, the
run record), query (the report itself), close.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time

START = time.perf_counter()
spent: dict[str, float] = {}


def wrap(owner, name: str, label: str) -> None:
    """Time every call of ``owner.name`` under ``label`` (nested timed calls are not double counted)."""
    func = getattr(owner, name, None)
    if func is None:  # the code moved: that step is simply not reported
        return

    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - t

    setattr(owner, name, timed)


def main() -> None:
    from cclens import cli
    from cclens.cli import context
    from cclens.metrics import usage
    from cclens.sources.transcripts import ingest
    from cclens.warehouse import duckdb_backend

    from cclens.sources.transcripts import files

    wrap(context.AppState, "open_warehouse", "open")
    wrap(ingest, "scan", "walk+stat")  # when plan() walks itself
    # the report walks on a thread while the warehouse opens: report how long the walk took there, and
    # (as a step) only how long the report then still waited for it
    background = files.scan_in_background

    def timed_background(*args, **kwargs):
        t = time.perf_counter()
        result = background(*args, **kwargs)

        def waited():
            w = time.perf_counter()
            try:
                return result()
            finally:
                spent["walk+stat wait"] = spent.get("walk+stat wait", 0.0) + time.perf_counter() - w
                spent["walk+stat on its thread"] = spent.get("walk+stat on its thread", 0.0) + w - t

        return waited

    files.scan_in_background = timed_background
    wrap(ingest, "_stored_sizes", "plan")
    wrap(ingest, "load_cursors", "plan")
    wrap(ingest, "ingest_paths", "ingest")  # walk+stat and plan, then load: the rest of it
    for name in ("period_report", "session_report", "project_report", "model_report"):
        wrap(usage, name, "query")
    wrap(duckdb_backend.DuckDBWarehouse, "close", "close")
    with contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(sys.argv[1:])
    total = time.perf_counter() - START
    if rc:
        raise SystemExit(rc)
    if "ingest" in spent:
        spent["load"] = max(0.0, spent.pop("ingest") - spent.get("walk+stat", 0.0) - spent.get("plan", 0.0)
                            - spent.get("walk+stat wait", 0.0))
    beside = spent.pop("walk+stat on its thread", None)  # overlapped: not a step of its own
    out = {k: v * 1000 for k, v in spent.items()}
    out["start-up"] = (total - sum(spent.values())) * 1000
    if beside is not None:
        out["walk+stat on its thread"] = beside * 1000  # includes the time it ran beside the open
    out["total"] = total * 1000
    print(json.dumps(out))


if __name__ == "__main__":
    main()
