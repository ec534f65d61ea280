"""The audit log: every read of data through a surface is recorded (table ``audit_log``).

::

    from cclens.audit import AuditEntry, record
    record(wh, AuditEntry(principal="ab12cd34", role="viewer", surface="mcp-http",
                          action="tools/call get_metric", arguments={"name": "tokens"}, rows=3, ok=True))

Inside ``cclens serve`` write through the writer (``await writer.run(lambda wh: record(wh, entry))``);
elsewhere on a warehouse opened for writing. :func:`recent` reads it back. Arguments are stored as the
caller sent them; surfaces must never put a token or a secret in them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any


@dataclass
class AuditEntry:
    """One audited action. ``rows`` is how many rows the answer held (None when not a row set)."""

    principal: str
    role: str
    surface: str
    action: str
    arguments: dict[str, Any] = field(default_factory=dict)
    rows: int | None = None
    ok: bool = True
    error: str | None = None
    duration_ms: float | None = None
    ts: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ts"] = self.ts.isoformat()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "AuditEntry":
        d = dict(d)
        ts = d.pop("ts", None)
        entry = cls(**d)
        if ts:
            entry.ts = datetime.fromisoformat(ts)
        return entry


def _default(v: Any) -> Any:
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, (set, tuple)):
        return list(v)
    return str(v)


def record(wh: Any, entry: AuditEntry) -> str:
    """Append ``entry`` to ``audit_log`` on ``wh`` (a warehouse open for writing); returns its id."""
    audit_id = uuid.uuid4().hex
    error = entry.error[:2000] if entry.error else None
    wh.execute("INSERT INTO audit_log (audit_id, ts, principal, role, surface, action, arguments, rows, ok, error, "
               "duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               [audit_id, entry.ts, entry.principal, entry.role, entry.surface, entry.action,
                json.dumps(entry.arguments, default=_default), entry.rows, entry.ok, error, entry.duration_ms])
    return audit_id


def recent(wh: Any, *, limit: int = 100, surface: str | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` audit rows (``arguments`` decoded), newest first."""
    where, params = ("WHERE surface = ?", [surface]) if surface else ("", [])
    rows = wh.query(f"SELECT * FROM audit_log {where} ORDER BY ts DESC LIMIT {int(limit)}", params)
    for r in rows:
        if isinstance(r.get("arguments"), str):
            r["arguments"] = json.loads(r["arguments"])
    return rows
