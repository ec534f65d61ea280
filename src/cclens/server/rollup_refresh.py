"""Keeps the metric rollups fresh inside ``cclens serve``: a writer batch source that recomputes the
dirty days (:func:`cclens.metrics.rollup.refresh`) on the writer thread, at most every ``interval``
seconds and only after other commits. The first run builds the rollups if the warehouse has none.
Readers never wait for it: a query reads raw rows for days still dirty."""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

from ..metrics import rollup

log = logging.getLogger("cclens.server.rollup")


class RollupRefresher:
    """A :class:`cclens.server.writer.BatchSource` with one pseudo-item: "refresh now"."""

    name = "rollup-refresh"

    def __init__(self, writer: Any, interval: float = 2.0):
        self.writer = writer
        self.interval = interval
        self.seen_commits = -1        # writer.commits after our last refresh (-1: never ran)
        self.last_run = 0.0
        self.last_result: dict[str, Any] | None = None

    def take(self, limit: int) -> Sequence[Any]:
        if self.writer.commits == self.seen_commits or time.monotonic() - self.last_run < self.interval:
            return []
        return ["refresh"]

    def apply(self, wh: Any, items: Sequence[Any]) -> None:
        self.last_run = time.monotonic()
        self.last_result = rollup.refresh(wh)
        if self.last_result["mode"] != "none":
            log.info("metric rollups refreshed: %s", self.last_result)

    def committed(self, items: Sequence[Any]) -> None:
        self.seen_commits = self.writer.commits

    def quarantine(self, wh: Any, item: Any, reason: str) -> None:
        # nothing to keep: the dirty days stay dirty (queries read them raw) and the next run retries
        log.error("metric rollup refresh failed: %s", reason)

    def pending_count(self) -> int:
        return 0
