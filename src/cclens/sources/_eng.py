"""Warehouse plumbing shared by the GitHub and Jira sources: cursors, landing pages, HTTP validators,
row replacement by natural key, and the per-source result."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

import orjson
import pyarrow as pa

from ._rest import Page, RestClient, Validator, body_hash

UTC = timezone.utc
Submit = Callable[[Callable[[Any], Any]], Any]


def direct_submit(wh: Any) -> Submit:
    """Run each write in one transaction on ``wh`` (``cclens serve`` passes its writer instead)."""
    def submit(fn: Callable[[Any], Any]) -> Any:
        with wh.transaction():
            return fn(wh)
    return submit


@dataclass
class EngSyncResult:
    """What one scope (a repository, an organisation, a Jira query) of a sync did."""

    source: str
    scope: str
    status: str = "ok"      # ok | skipped | error
    counts: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    not_modified: int = 0
    retries: int = 0
    waited_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "scope": self.scope, "status": self.status, **self.counts,
                "requests": self.requests, "not_modified": self.not_modified, "retries": self.retries,
                "waited_s": round(self.waited_s, 1), "notes": self.notes, "error": self.error}


def load_cursor(wh: Any, source: str) -> dict[str, Any]:
    rows = wh.query("SELECT cursor FROM source_state WHERE source = ?", [source])
    if not rows or not rows[0]["cursor"]:
        return {}
    value = rows[0]["cursor"]
    return orjson.loads(value) if isinstance(value, (str, bytes)) else dict(value)


def save_state(wh: Any, source: str, cursor: dict[str, Any] | None, now: datetime, rows: int,
               error: str | None = None) -> None:
    """Record a run: the new cursor (None keeps the old one), success time or the error."""
    old = wh.query("SELECT cursor, last_success FROM source_state WHERE source = ?", [source])
    wh.execute("DELETE FROM source_state WHERE source = ?", [source])
    keep = orjson.dumps(cursor).decode() if cursor is not None else (old[0]["cursor"] if old else None)
    wh.execute("INSERT INTO source_state (source, cursor, last_success, last_attempt, last_rows, last_error) "
               "VALUES (?, ?, ?, ?, ?, ?)",
               [source, keep, now if error is None else (old[0]["last_success"] if old else None), now, rows, error])


def load_validators(wh: Any, prefix: str) -> dict[str, Validator]:
    return {r["url"]: Validator(r["etag"], r["last_modified"]) for r in wh.query(
        "SELECT url, etag, last_modified FROM http_validator WHERE starts_with(url, ?)", [prefix])}


def save_validators(wh: Any, validators: dict[str, Validator], now: datetime) -> None:
    if not validators:
        return
    urls = list(validators)
    wh.register("_eng_validators", pa.table({
        "url": pa.array(urls, pa.string()),
        "etag": pa.array([validators[u].etag for u in urls], pa.string()),
        "last_modified": pa.array([validators[u].last_modified for u in urls], pa.string())}))
    try:
        wh.execute("DELETE FROM http_validator WHERE url IN (SELECT url FROM _eng_validators)")
        wh.execute("INSERT INTO http_validator SELECT url, etag, last_modified, ? FROM _eng_validators", [now])
    finally:
        wh.unregister("_eng_validators")


def land_pages(wh: Any, source: str, pages: Iterable[Page], run_id: str, scrub: Callable[[str], str]) -> int:
    """Keep each page as received (a 304 is recorded without a body)."""
    n = 0
    for page in pages:
        text = page.body.decode("utf-8", "replace") if page.body else None
        wh.execute("INSERT INTO landing_eng_page (source, url, status, etag, payload_hash, payload, fetched_at, run_id) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [source, scrub(page.url), page.status, page.etag, body_hash(page.body) if page.body else None,
                    text, page.fetched_at, run_id])
        n += 1
    return n


def replace_rows(wh: Any, table: str, rows: Sequence[dict[str, Any]], key: Sequence[str],
                 types: dict[str, pa.DataType] | None = None, *, delete_keys: Sequence[tuple] | None = None) -> int:
    """Delete the rows of ``table`` whose ``key`` columns match ``delete_keys`` (default: those of
    ``rows``), then insert ``rows``. One Arrow registration, two statements."""
    keys = list(delete_keys) if delete_keys is not None else list(dict.fromkeys(tuple(r[k] for k in key) for r in rows))
    if keys:
        kt = pa.table({k: pa.array([v[i] for v in keys], (types or {}).get(k, pa.string()))
                       for i, k in enumerate(key)})
        wh.register("_eng_keys", kt)
        try:
            cond = " AND ".join(f"t.{k} = k.{k}" for k in key)
            wh.execute(f"DELETE FROM {table} t WHERE EXISTS (SELECT 1 FROM _eng_keys k WHERE {cond})")
        finally:
            wh.unregister("_eng_keys")
    if not rows:
        return 0
    cols = list(rows[0])
    data = pa.table({c: pa.array([r.get(c) for r in rows], (types or {}).get(c)) for c in cols})
    wh.register("_eng_rows", data)
    try:
        names = ", ".join(cols)
        wh.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _eng_rows")
    finally:
        wh.unregister("_eng_rows")
    return len(rows)


def new_run_id() -> str:
    return uuid.uuid4().hex


def finish_result(result: EngSyncResult, client: RestClient) -> None:
    result.requests = client.requests_sent
    result.not_modified = client.not_modified
    result.retries = client.retries
    result.waited_s = client.waited_s


TS = pa.timestamp("us", tz="UTC")
