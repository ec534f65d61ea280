"""The machine a benchmark ran on, for the tables in docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
from datetime import datetime, timezone


def machine() -> dict[str, str]:
    """CPU model and count, memory, OS, Python and DuckDB versions, and the date."""
    cpu = "unknown"
    try:
        m = re.search(r"model name\s*:\s*(.+)", open("/proc/cpuinfo").read())
        cpu = m.group(1).strip() if m else platform.processor() or "unknown"
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass
    try:
        import duckdb

        duck = duckdb.__version__
    except ImportError:  # pragma: no cover
        duck = "n/a"
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": mem, "os": platform.platform(),
            "python": platform.python_version(), "duckdb": duck,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def machine_line() -> str:
    m = machine()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{m['cores']} cores ({m['cpu']}), {m['memory']} RAM, {m['os']}, Python {m['python']}, "
            f"DuckDB {m['duckdb']}, {m['date']}, load average {load} at the end")


def write_section(path: str, name: str, body: str) -> None:
    """Replace (or append) the ``## name`` section of a markdown file, leaving the others alone."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\nRecorded by `make bench`.\n"
    header = f"## {name}\n"
    start = text.find(header)
    section = header + "\n" + body.strip() + "\n\n"
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(header))
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    with open(path, "w") as fh:
        fh.write(text.rstrip() + "\n")
