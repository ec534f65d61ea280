"""A small client for Anthropic's reporting APIs, on httpx2.

What it does, and nothing more::

    client = ApiClient(base_url, key, source="usage", key_setting="anthropic_admin_key")
    for page in client.pages("/v1/organizations/usage_report/messages",
                             {"starting_at": "...", "group_by": ["model", "workspace_id"]}):
        page.data["data"]          # parsed JSON; page.body is the exact bytes received

- Sends ``x-api-key``, ``anthropic-version: 2023-06-01`` and ``User-Agent: cclens/<version>``.
- Encodes list parameters in bracket format, repeated: ``group_by[]=a&group_by[]=b``.
- Follows cursor paging: sends ``page=<next_page>`` until ``has_more`` is false (or, for APIs that
  have no ``has_more``, until ``next_page`` is null). A 410 (cursor expired) restarts from page 1 once.
- Retries 429 honouring ``retry-after`` (seconds or an HTTP date), and 5xx/529 and transport errors
  with exponential backoff; gives up after ``max_retries`` with :class:`SourceUnavailableError`.
- Optional client-side rate limit (token bucket), for APIs with a published per-org limit.
- Raises typed errors carrying the ``request-id``: :class:`SourceAuthError` (key rejected; names the
  setting to check), :class:`SourceUnavailableError`, :class:`SourceError` (anything else).

The key is only ever placed in a request header. Error messages are built from the status, the error
type and the server's message with the key scrubbed out; nothing logs headers.

Seams for tests: ``transport`` (any httpx2 transport), ``sleep`` and ``clock``.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping, Sequence

import httpx2
import orjson

from .. import __version__
from ..errors import SourceAuthError, SourceError, SourceUnavailableError

log = logging.getLogger(__name__)

ANTHROPIC_VERSION = "2023-06-01"
USER_AGENT = f"cclens/{__version__}"
RETRY_STATUSES = frozenset({500, 502, 503, 504, 529})


class CursorExpiredError(SourceError):
    """The API said a page cursor is no longer valid (HTTP 410); paging must restart from page 1."""


class ApiRequestError(SourceError):
    """The API refused a request (a 4xx other than auth, 410 and 429). Carries what the API said,
    so a source can act on a documented refusal (``status``, ``error_type``, ``api_message``)."""

    def __init__(self, message: str, *, status: int, error_type: str | None, api_message: str,
                 request_id: str | None):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.api_message = api_message
        self.request_id = request_id


def encode_params(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Query parameters as a list of pairs: lists become repeated ``name[]`` pairs, None is dropped,
    booleans are ``true``/``false``. Order is kept, so the same dict always gives the same URL."""
    out: list[tuple[str, str]] = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            out.extend((f"{name}[]", _scalar(v)) for v in value)
        else:
            out.append((name, _scalar(value)))
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Page:
    """One page as received: the exact ``body`` and where it came from. ``data`` parses the body on
    each access (not kept: a unit's pages can be large, and only the bytes are needed for landing)."""

    url: str                     # base URL + path, no query string (and never a key)
    params: list[tuple[str, str]]  # the query sent, including ``page`` when not the first page
    page_cursor: str | None      # the cursor sent (None for page 1)
    page_index: int              # 0 for page 1
    request_id: str | None
    body: bytes
    next_page: str | None        # the cursor the page gave (None at the end)
    has_more: bool | None        # the page's ``has_more`` (None when the API has no such field)
    fetched_at: datetime

    @property
    def data(self) -> dict[str, Any]:
        return orjson.loads(self.body)

    @property
    def records(self) -> list[Any]:
        value = self.data.get("data")
        return value if isinstance(value, list) else []


@dataclass
class RateLimiter:
    """A token bucket: ``per_minute`` requests a minute, bursts up to ``burst``."""

    per_minute: float
    burst: float | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _tokens: float | None = field(default=None, repr=False)
    _at: float = field(default=0.0, repr=False)

    def acquire(self) -> None:
        capacity = self.burst or self.per_minute
        now = self.clock()
        if self._tokens is None:
            self._tokens, self._at = capacity, now
        rate = self.per_minute / 60.0
        self._tokens = min(capacity, self._tokens + (now - self._at) * rate)
        self._at = now
        if self._tokens < 1:
            wait = (1 - self._tokens) / rate
            self.sleep(wait)
            self._tokens, self._at = 1.0, self._at + wait
        self._tokens -= 1


class ApiClient:
    """One API key talking to one Anthropic API on behalf of one cclens source.

    ``source`` and ``key_setting`` only shape error messages ("claude_code_analytics: … check
    anthropic_admin_key"). ``auth_statuses`` are the HTTP statuses meaning "this key is not accepted"
    (the Enterprise engagement endpoints answer 404 for a bad key).
    """

    def __init__(self, base_url: str, key: str, *, source: str, key_setting: str,
                 key_hint: str = "", auth_statuses: Sequence[int] = (401, 403),
                 transport: httpx2.BaseTransport | None = None, timeout: float = 60.0,
                 max_retries: int = 6, backoff_base: float = 1.0, backoff_max: float = 60.0,
                 max_retry_after: float = 300.0, rate_limiter: RateLimiter | None = None,
                 sleep: Callable[[float], None] = time.sleep, extra_headers: Mapping[str, str] | None = None):
        if not key:
            raise SourceAuthError(f"{source}: no API key is configured; set {key_setting}")
        self.base_url = base_url.rstrip("/")
        self.source = source
        self.key_setting = key_setting
        self.key_hint = key_hint
        self.auth_statuses = frozenset(auth_statuses)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.rate_limiter = rate_limiter
        self.sleep = sleep
        self.requests_sent = 0
        self.retries = 0
        self._key = key
        headers = {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION, "user-agent": USER_AGENT,
                   "accept": "application/json", **(extra_headers or {})}
        self._http = httpx2.Client(base_url=self.base_url, headers=headers, transport=transport,
                                   timeout=httpx2.Timeout(timeout, connect=min(timeout, 15.0)),
                                   follow_redirects=False, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- paging ---------------------------------------------------------------------------------
    def fetch_all(self, path: str, params: Mapping[str, Any], *, has_more_field: bool = True) -> list[Page]:
        """Every page of one query, in order (see :meth:`pages`). A 410 (page cursor no longer valid)
        throws the pages read so far away and starts again from page 1, once."""
        try:
            return list(self.pages(path, params, has_more_field=has_more_field))
        except CursorExpiredError:
            log.info("%s: page cursor expired on %s; restarting from page 1", self.source, path)
            return list(self.pages(path, params, has_more_field=has_more_field))

    def pages(self, path: str, params: Mapping[str, Any], *, has_more_field: bool = True) -> Iterator[Page]:
        """Every page of one query, lazily. With ``has_more_field`` (most APIs) paging stops when
        ``has_more`` is false; without it (Enterprise Analytics), when ``next_page`` is null."""
        return self._pages_once(path, params, has_more_field)

    def _pages_once(self, path: str, params: Mapping[str, Any], has_more_field: bool) -> Iterator[Page]:
        cursor: str | None = None
        index = 0
        seen: set[str] = set()
        while True:
            page = self.get(path, params, page=cursor, page_index=index)
            yield page
            more = bool(page.has_more) if has_more_field else page.next_page is not None
            if not more:
                return
            cursor = page.next_page
            if cursor is None or cursor in seen:
                raise SourceError(
                    f"{self.source}: {page.url} said has_more but gave "
                    f"{'no next_page' if cursor is None else 'a next_page it already gave'} "
                    f"(request-id {page.request_id}); the API misbehaved, try again later")
            seen.add(cursor)
            index += 1

    # -- one request ----------------------------------------------------------------------------
    def get(self, path: str, params: Mapping[str, Any], *, page: str | None = None,
            page_index: int = 0) -> Page:
        """GET one page, retrying what is retryable; returns it parsed, or raises a SourceError."""
        query = encode_params(params)
        if page is not None:
            query.append(("page", page))
        url = f"{self.base_url}{path}"
        attempt = 0
        while True:
            if self.rate_limiter is not None:
                self.rate_limiter.acquire()
            self.requests_sent += 1
            try:
                response = self._http.get(path, params=query)
            except httpx2.TransportError as exc:
                if attempt >= self.max_retries:
                    raise SourceUnavailableError(
                        f"{self.source}: cannot reach {url} after {attempt + 1} attempts "
                        f"({type(exc).__name__}); check anthropic_base_url and the network, "
                        "then try again") from None
                self._wait(self._backoff(attempt), f"{type(exc).__name__}")
                attempt += 1
                continue
            status = response.status_code
            if status == 200:
                return self._page(response, url, query, page, page_index)
            request_id = response.headers.get("request-id")
            if status == 429 or status in RETRY_STATUSES:
                if attempt >= self.max_retries:
                    raise SourceUnavailableError(
                        f"{self.source}: {url} still answered {self._describe(response)} after "
                        f"{attempt + 1} attempts; the API is rate-limiting or unavailable, "
                        "try again later")
                delay = self._retry_after(response) if status == 429 else None
                self._wait(delay if delay is not None else self._backoff(attempt), f"HTTP {status}")
                attempt += 1
                continue
            self._raise(response, url, request_id)

    def _page(self, response: httpx2.Response, url: str, query: list[tuple[str, str]],
              cursor: str | None, index: int) -> Page:
        body = response.content
        request_id = response.headers.get("request-id")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise SourceError(f"{self.source}: {url} returned a body that is not a JSON object "
                              f"(request-id {request_id}); the API misbehaved, try again later")
        next_page = data.get("next_page")
        has_more = data.get("has_more")
        return Page(url=url, params=query, page_cursor=cursor, page_index=index, request_id=request_id,
                    body=body, next_page=next_page if isinstance(next_page, str) and next_page else None,
                    has_more=has_more if isinstance(has_more, bool) else None,
                    fetched_at=datetime.now(timezone.utc))

    def _raise(self, response: httpx2.Response, url: str, request_id: str | None) -> None:
        status = response.status_code
        what = self._describe(response)
        if status in self.auth_statuses:
            hint = f" ({self.key_hint})" if self.key_hint else ""
            raise SourceAuthError(
                f"{self.source}: the Anthropic API rejected the key in {self.key_setting} "
                f"({what}); check {self.key_setting} (env CCLENS_{self.key_setting.upper()}){hint}")
        if status == 410:
            raise CursorExpiredError(f"{self.source}: {url}: {what}")
        kind, message, _ = self._error_body(response)
        raise ApiRequestError(f"{self.source}: {url} refused the request ({what}); "
                              "this is likely a cclens bug or an API change, please report it",
                              status=status, error_type=kind, api_message=message,
                              request_id=request_id)

    def _error_body(self, response: httpx2.Response) -> tuple[str | None, str, str | None]:
        """(error type, scrubbed message, request-id) from the platform error envelope."""
        kind, message = None, ""
        request_id = response.headers.get("request-id")
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict):
                kind = err.get("type") if isinstance(err.get("type"), str) else None
                message = self.scrub(str(err.get("message") or ""))
            request_id = request_id or body.get("request_id")
        return kind, message, request_id

    def _describe(self, response: httpx2.Response) -> str:
        """``HTTP 400 invalid_request_error: <message>, request-id req_…`` with the key scrubbed."""
        kind, message, request_id = self._error_body(response)
        text = f"HTTP {response.status_code}" + (f" {kind}" if kind else "")
        if message:
            text += f": {message[:300]}"
        return text + f", request-id {request_id or 'none'}"

    def scrub(self, text: str) -> str:
        """``text`` with the API key (and anything shaped like an Anthropic key) removed."""
        if self._key:
            text = text.replace(self._key, "[key]")
        return _KEY_RE.sub("[key]", text)

    # -- waiting ---------------------------------------------------------------------------------
    def _retry_after(self, response: httpx2.Response) -> float | None:
        raw = response.headers.get("retry-after")
        if not raw:
            return None
        try:
            seconds = float(raw)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            seconds = (when - datetime.now(timezone.utc)).total_seconds()
        return min(max(seconds, 0.0), self.max_retry_after)

    def _backoff(self, attempt: int) -> float:
        # Full jitter keeps many clients from retrying in lockstep.
        return min(self.backoff_max, self.backoff_base * (2 ** attempt)) * (0.5 + random.random() / 2)

    def _wait(self, seconds: float, why: str) -> None:
        self.retries += 1
        log.info("%s: %s; retrying in %.1fs", self.source, why, seconds)
        self.sleep(seconds)


_KEY_RE = re.compile(r"sk-ant-[A-Za-z0-9_\-]{6,}")
