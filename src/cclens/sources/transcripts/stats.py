"""What an ingest did."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IngestStats:
    """What one ingest did. ``quarantined`` lines are stored with their reason, never dropped."""

    files: int = 0
    bytes: int = 0
    lines: int = 0
    new_lines: int = 0
    new_requests: int = 0
    updated_requests: int = 0
    quarantined: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: "IngestStats") -> None:
        for name in ("files", "bytes", "lines", "new_lines", "new_requests", "updated_requests", "quarantined"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)
