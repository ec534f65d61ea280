"""Pre-warming the dashboard's page cache after new data, so the first viewer after a change gets a ready page.

The page cache (:class:`cclens.server.dashboard.PageCache`) is keyed by the writer's commit count: any
commit makes every page cold again. :class:`Warmer` remembers the pages viewed recently (at most
:data:`PAGES`, viewed within :data:`MAX_AGE` seconds) and, once the writer's commit count has changed and then
stayed unchanged for :data:`QUIET` seconds (the metric rollups refresh a couple of seconds after other
commits, which is itself a commit), re-renders them one after another on a background thread, at most
once every :data:`MIN_INTERVAL` seconds. A render stores the page under the commit count read before it
started, exactly as a viewer's request would; if a new commit arrives meanwhile the round stops (its
pages would already be stale).

Cost and limits: one cold render per remembered page per round (about 0.1–0.3 s each on the demo
organisation), only after data settles. Under continuous ingestion (OTel from many laptops every few
seconds) the writer is never quiet for long, so no round runs and viewers get cold pages as before: the
warmer helps small or quiet installations, nights, and the minutes after an hourly API sync.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

log = logging.getLogger("cclens.server.dashboard")

QUIET = 5.0          # seconds without a commit before a round
MIN_INTERVAL = 30.0  # seconds between the starts of two rounds
PAGES = 8            # pages remembered (the most recently viewed distinct URLs)
MAX_AGE = 3600.0     # a page not viewed for this long is not re-rendered


class Warmer:
    """Re-renders recently viewed dashboard pages after the data changed and settled (see module doc)."""

    def __init__(self, app: Any, *, enabled: bool = True, quiet: float = QUIET, min_interval: float = MIN_INTERVAL,
                 pages: int = PAGES, max_age: float = MAX_AGE, poll: float = 0.5):
        self.app = app
        self.enabled = enabled
        self.quiet, self.min_interval, self.pages, self.max_age, self.poll = quiet, min_interval, pages, max_age, poll
        self._recent: OrderedDict[tuple, tuple[tuple, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.rendered = 0
        self.last_error: str | None = None

    def viewed(self, recipe: tuple) -> None:
        """Remember a page a viewer asked for: ``(path, params, builder, args, server_url)``."""
        path, params, builder, args, url = recipe
        key = (path, tuple(sorted(params.items())), args)
        with self._lock:
            self._recent[key] = (recipe, time.monotonic())
            self._recent.move_to_end(key)
            while len(self._recent) > self.pages:
                self._recent.popitem(last=False)

    def health(self) -> dict[str, Any]:
        """For ``/healthz``: whether it runs, rounds done, pages rendered, pages remembered, last error."""
        cache = getattr(self.app.state, "dashboard_cache", None)
        return {"prerender": self.enabled, "rounds": self.rounds, "rendered": self.rendered,
                "remembered": len(self._recent), "last_error": self.last_error,
                "cache_hits": getattr(cache, "hits", None), "cache_misses": getattr(cache, "misses", None)}

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="cclens-dashboard-warm", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def _loop(self) -> None:
        writer = self.app.state.writer
        seen, changed_at, warmed, last_round = writer.commits, None, writer.commits, -self.min_interval
        while not self._stop.wait(self.poll):
            commits, now = writer.commits, time.monotonic()
            if commits != seen:
                seen, changed_at = commits, now
                continue
            if (commits == warmed or changed_at is None or now - changed_at < self.quiet
                    or now - last_round < self.min_interval):
                continue
            warmed, last_round = commits, now
            self.warm_once(commits)

    def warm_once(self, commits: int | None = None) -> int:
        """Render every remembered page now (stopping if the data changes meanwhile); returns how many."""
        from .dashboard import render

        writer, cache = self.app.state.writer, self.app.state.dashboard_cache
        commits = writer.commits if commits is None else commits
        now = time.monotonic()
        with self._lock:
            recipes = [r for r, at in reversed(self._recent.values()) if now - at <= self.max_age]
        done = 0
        for recipe in recipes:
            if self._stop.is_set() or writer.commits != commits:
                break
            try:
                key, resp = render(self.app, *recipe)
            except Exception as exc:  # noqa: BLE001 - a page that fails now fails for its viewer too
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("pre-rendering %s failed: %s", recipe[0], self.last_error)
                continue
            if key[-1] == commits:
                cache.put(key, resp)
                done += 1
        self.rounds += 1
        self.rendered += done
        return done
