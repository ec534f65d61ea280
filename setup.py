"""Build of the one C extension, the transcript line scanner (metadata is in pyproject.toml).

The extension is compiled with a hash of its sources, so a test can tell a stale build (sources
edited without reinstalling) from the current one: ``make`` reinstalls when they change.
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

NATIVE = Path("src/cclens/sources/transcripts/native")


def source_hash() -> str:
    """sha256 over the scanner's C sources and headers, in name order (also computed by the tests)."""
    h = hashlib.sha256()
    for f in sorted(NATIVE.glob("*.[ch]")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


setup(
    ext_modules=[
        Extension(
            "cclens.sources.transcripts._native",
            sources=sorted(str(p) for p in NATIVE.glob("*.c")),
            depends=sorted(str(p) for p in NATIVE.glob("*.h")),
            define_macros=[("CCLENS_SOURCE_HASH", f'"{source_hash()}"')],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers", "-Wno-cast-function-type"],
        )
    ],
)
