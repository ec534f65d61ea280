"""A small REST client for the engineering sources (GitHub, Jira), on httpx2.

::

    client = RestClient("https://api.github.com", source="github", headers={"authorization": "Bearer …"},
                        secrets=[token], credential_hint="check github_token")
    for page in client.link_pages("/repos/acme/api/pulls", {"state": "all", "per_page": 100}):
        page.data          # parsed JSON (list or object); page.not_modified for a 304

What it promises:

- **Paging by ``Link``** (RFC 8288, GitHub): follows ``rel="next"`` until there is none; a ``next``
  seen twice is an error, never a loop. Token paging (Jira ``nextPageToken``) is done by the caller
  with :meth:`get`.
- **Conditional requests.** With ``conditional=True`` a GET sends ``If-None-Match`` (and
  ``If-Modified-Since``) from the validators known for that exact URL; a 304 comes back as a page
  with ``not_modified`` set and no body. New validators are collected in :attr:`new_validators` and
  only become known (:meth:`commit_validators`) once the caller has stored the data they vouch for.
- **Rate limits.** The primary limit (``x-ratelimit-remaining: 0`` with ``x-ratelimit-reset``) is
  waited out before the next request, and after a 403/429 that says so. Secondary limits (403/429
  with ``retry-after``, or a message saying "secondary rate limit") wait ``retry-after``, else one
  minute doubling. 429 and 503 with ``Retry-After`` (Jira) are honoured the same way. 5xx and
  transport errors retry with jittered exponential backoff. Any single wait longer than ``max_wait``
  seconds, or more than ``max_retries`` attempts, ends with :class:`SourceUnavailableError` saying
  when to try again.
- **Errors** name the source, the URL (without credentials) and what to check; 401 (and 403 that is
  not a rate limit) raise :class:`SourceAuthError`; secrets are scrubbed from every message.

Seams for tests: ``transport`` (any httpx2 transport), ``sleep`` and ``clock`` (epoch seconds).
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence
from urllib.parse import urlencode, urljoin

import httpx2
import orjson

from .. import __version__
from ..errors import SourceAuthError, SourceError, SourceUnavailableError

log = logging.getLogger(__name__)

UTC = timezone.utc
USER_AGENT = f"cclens/{__version__}"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?([^";]+)"?')
_SECONDARY_RE = re.compile(r"secondary rate limit|abuse detection", re.I)


@dataclass(frozen=True)
class Page:
    """One response: parsed ``data`` (None for a 304), headers, and where it came from."""

    url: str                 # full URL with query, no credentials
    status: int
    data: Any
    body: bytes
    headers: Mapping[str, str]
    fetched_at: datetime

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def links(self) -> dict[str, str]:
        return parse_link_header(self.headers.get("link", ""))


def parse_link_header(value: str) -> dict[str, str]:
    """``{rel: url}`` of an RFC 8288 ``Link`` header (the forms GitHub sends)."""
    return {rel: url for url, rel in _LINK_RE.findall(value or "")}


@dataclass
class Validator:
    etag: str | None
    last_modified: str | None


@dataclass
class RestClient:
    """One credential talking to one REST API for one cclens source (see module doc)."""

    base_url: str
    source: str
    headers: Mapping[str, str] = field(default_factory=dict)
    secrets: Sequence[str] = ()
    credential_hint: str = ""
    transport: Any = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    timeout: float = 60.0
    max_retries: int = 8
    max_wait: float = 900.0
    backoff_base: float = 1.0
    backoff_max: float = 120.0
    validators: dict[str, Validator] = field(default_factory=dict)
    new_validators: dict[str, Validator] = field(default_factory=dict)
    requests_sent: int = 0
    retries: int = 0
    not_modified: int = 0
    waited_s: float = 0.0
    _reset_at: float | None = None

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        headers = {"user-agent": USER_AGENT, "accept": "application/json", **self.headers}
        self._http = httpx2.Client(headers=headers, transport=self.transport,
                                   timeout=httpx2.Timeout(self.timeout, connect=min(self.timeout, 15.0)),
                                   follow_redirects=True, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RestClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- URLs and validators -------------------------------------------------------------------------
    def url(self, path_or_url: str, params: Mapping[str, Any] | None = None) -> str:
        """The absolute URL for a path (or a ``next`` link) with ``params`` appended in order."""
        if path_or_url.startswith(("http://", "https://")):
            url = path_or_url
        else:
            url = self.base_url + "/" + path_or_url.lstrip("/")
        query = [(k, _scalar(v)) for k, v in (params or {}).items() if v is not None]
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        return url

    def commit_validators(self, exclude: Iterable[str] = ()) -> dict[str, Validator]:
        """Make the validators collected so far known (except for the URLs in ``exclude``, kept for
        later) and return them for the caller to persist with the data they vouch for."""
        held = set(exclude)
        done = {u: v for u, v in self.new_validators.items() if u not in held}
        self.validators.update(done)
        for u in done:
            del self.new_validators[u]
        return done

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "[secret]")
        return text

    # -- requests ------------------------------------------------------------------------------------
    def link_pages(self, path: str, params: Mapping[str, Any] | None = None, *,
                   conditional: bool = False) -> Iterator[Page]:
        """Every page of a ``Link``-paged listing, lazily. Only the first page is conditional: a 304
        there means the whole listing is unchanged (the caller stops), later pages are plain GETs."""
        url: str | None = self.url(path, params)
        seen: set[str] = set()
        first = True
        while url:
            page = self.get(url, conditional=conditional and first)
            first = False
            yield page
            if page.not_modified:
                return
            nxt = page.links.get("next")
            if nxt is not None:
                nxt = urljoin(page.url, nxt)
                if nxt in seen:
                    raise SourceError(f"{self.source}: {self.scrub(page.url)} gave a next link it already gave; "
                                      "the API misbehaved, try again later")
                seen.add(nxt)
            url = nxt

    def get(self, path_or_url: str, params: Mapping[str, Any] | None = None, *,
            conditional: bool = False, allow: Sequence[int] = ()) -> Page:
        """GET one resource, retrying what is retryable. Statuses in ``allow`` are returned, not raised."""
        url = self.url(path_or_url, params)
        attempt = 0
        secondary_waits = 0
        while True:
            self._respect_reset()
            headers = {}
            known = self.validators.get(url) if conditional else None
            if known:
                if known.etag:
                    headers["if-none-match"] = known.etag
                if known.last_modified:
                    headers["if-modified-since"] = known.last_modified
            self.requests_sent += 1
            try:
                response = self._http.get(url, headers=headers)
            except httpx2.TransportError as exc:
                if attempt >= self.max_retries:
                    raise SourceUnavailableError(
                        f"{self.source}: cannot reach {self.scrub(url)} after {attempt + 1} attempts "
                        f"({type(exc).__name__}); check the URL setting and the network, then try again") from None
                self._wait(self._backoff(attempt), type(exc).__name__, url)
                attempt += 1
                continue
            self._note_rate_limit(response)
            status = response.status_code
            if status in (200, 201) or status in allow:
                return self._page(response, url)
            if status == 304 and known:
                self.not_modified += 1
                return Page(url=url, status=304, data=None, body=b"", headers=response.headers,
                            fetched_at=datetime.now(UTC))
            delay = self._rate_limit_delay(response, secondary_waits)
            if delay is not None:
                if delay > self.max_wait:
                    raise SourceUnavailableError(
                        f"{self.source}: rate limited on {self.scrub(url)} for {delay:.0f} s more "
                        f"(longer than the {self.max_wait:.0f} s cclens waits); run the sync again later")
                secondary_waits += 1
                if attempt >= self.max_retries:
                    raise SourceUnavailableError(
                        f"{self.source}: {self.scrub(url)} is still rate limited after {attempt + 1} attempts; "
                        "run the sync again later")
                self._wait(delay, f"HTTP {status} rate limit", url)
                attempt += 1
                continue
            if status in RETRY_STATUSES or status == 429:
                if attempt >= self.max_retries:
                    raise SourceUnavailableError(
                        f"{self.source}: {self.scrub(url)} still answered HTTP {status} after {attempt + 1} "
                        "attempts; the service is unavailable, try again later")
                self._wait(self._backoff(attempt), f"HTTP {status}", url)
                attempt += 1
                continue
            self._raise(response, url)

    # -- internals -----------------------------------------------------------------------------------
    def _page(self, response: httpx2.Response, url: str) -> Page:
        body = response.content
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            raise SourceError(f"{self.source}: {self.scrub(url)} returned a body that is not JSON "
                              f"(HTTP {response.status_code}); the API misbehaved, try again later") from None
        etag, modified = response.headers.get("etag"), response.headers.get("last-modified")
        if etag or modified:
            self.new_validators[url] = Validator(etag, modified)
        return Page(url=url, status=response.status_code, data=data, body=body, headers=response.headers,
                    fetched_at=datetime.now(UTC))

    def _message(self, response: httpx2.Response) -> str:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return response.text[:200]
        if isinstance(body, dict):
            parts = [body.get("message")] + list(body.get("errorMessages") or [])
            parts += [f"{k}: {v}" for k, v in (body.get("errors") or {}).items()] if isinstance(
                body.get("errors"), dict) else []
            return "; ".join(str(p) for p in parts if p)[:300]
        return ""

    def _note_rate_limit(self, response: httpx2.Response) -> None:
        remaining = response.headers.get("x-ratelimit-remaining")
        reset = _epoch(response.headers.get("x-ratelimit-reset"))
        if remaining is not None and remaining.strip() == "0" and reset is not None:
            self._reset_at = reset
        elif remaining is not None:
            self._reset_at = None

    def _respect_reset(self) -> None:
        if self._reset_at is None:
            return
        delay = self._reset_at - self.clock() + 1
        self._reset_at = None
        if delay > 0:
            if delay > self.max_wait:
                raise SourceUnavailableError(
                    f"{self.source}: the API rate limit is used up for {delay:.0f} s more (longer than the "
                    f"{self.max_wait:.0f} s cclens waits); run the sync again later")
            self._wait(delay, "rate limit used up", self.base_url)

    def _rate_limit_delay(self, response: httpx2.Response, secondary_waits: int) -> float | None:
        """Seconds to wait if ``response`` is a rate-limit refusal, else None."""
        status = response.status_code
        if status not in (403, 429, 503):
            return None
        retry_after = _retry_after(response.headers.get("retry-after"), self.clock())
        if retry_after is not None:
            return retry_after
        if status == 503:
            return None
        if response.headers.get("x-ratelimit-remaining", "").strip() == "0":
            reset = _epoch(response.headers.get("x-ratelimit-reset"))
            if reset is not None:
                self._reset_at = None
                return max(reset - self.clock(), 0) + 1
        if status == 429 or _SECONDARY_RE.search(self._message(response)):
            # GitHub: without retry-after, wait at least a minute, longer on each repeat
            return 60.0 * (2 ** secondary_waits)
        return None

    def _raise(self, response: httpx2.Response, url: str) -> None:
        status = response.status_code
        what = f"HTTP {status}" + (f": {self.scrub(self._message(response))}" if self._message(response) else "")
        if status in (401, 403):
            raise SourceAuthError(f"{self.source}: {self.scrub(url)} refused the credentials ({what}); "
                                  f"{self.credential_hint or 'check the token setting'}")
        raise ApiRefusedError(f"{self.source}: {self.scrub(url)} refused the request ({what})", status=status)

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_base * (2 ** attempt)) * (0.5 + random.random() / 2)

    def _wait(self, seconds: float, why: str, url: str) -> None:
        self.retries += 1
        self.waited_s += seconds
        log.info("%s: %s on %s; waiting %.1fs", self.source, why, self.scrub(url), seconds)
        self.sleep(seconds)


class ApiRefusedError(SourceError):
    """A 4xx other than auth and rate limits (404 for a missing repository, 400 for bad JQL …)."""

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.status = status


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _epoch(value: str | None) -> float | None:
    """Epoch seconds from an integer (GitHub) or an ISO-8601 timestamp (Jira)."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - now, 0.0)


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 timestamp from an API (``2026-03-02T09:00:00Z``, ``…+0000``, ``….123+0100``) in UTC."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).astimezone(UTC)
