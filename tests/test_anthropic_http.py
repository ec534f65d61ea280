"""The Anthropic API client layer (cclens.sources._http) against in-process transports: headers,
bracket params, cursor paging, retries (429 + retry-after, 5xx backoff, transport errors), typed
errors carrying the request-id, and keys never leaking into messages."""

from __future__ import annotations

import httpx2
import orjson
import pytest

from cclens import __version__
from cclens.errors import SourceAuthError, SourceError, SourceUnavailableError
from cclens.sources._http import ApiClient, ApiRequestError, RateLimiter, encode_params

KEY = "sk-ant-admin01-secret-test-key-1234"


def _json(status: int, body: dict, headers: dict | None = None) -> httpx2.Response:
    return httpx2.Response(status, content=orjson.dumps(body),
                           headers={"request-id": "req_test123", "content-type": "application/json",
                                    **(headers or {})})


def _error(status: int, kind: str, message: str, headers: dict | None = None) -> httpx2.Response:
    return _json(status, {"type": "error", "error": {"type": kind, "message": message},
                          "request_id": "req_test123"}, headers)


def _client(handler, sleeps: list[float] | None = None, **kw) -> ApiClient:
    sleeps = sleeps if sleeps is not None else []
    return ApiClient("http://api.test", KEY, source="usage", key_setting="anthropic_admin_key",
                     transport=httpx2.MockTransport(handler), sleep=sleeps.append, **kw)


def test_encode_params_uses_repeated_brackets_and_drops_none():
    assert encode_params({"group_by": ["model", "workspace_id"], "limit": 5, "x": None, "flag": True}) == [
        ("group_by[]", "model"), ("group_by[]", "workspace_id"), ("limit", "5"), ("flag", "true")]


def test_headers_brackets_and_paging():
    seen = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        page = request.url.params.get("page")
        if page is None:
            return _json(200, {"data": [1, 2], "has_more": True, "next_page": "page_A"})
        if page == "page_A":
            return _json(200, {"data": [3], "has_more": True, "next_page": "page_B"})
        return _json(200, {"data": [], "has_more": False, "next_page": None})

    with _client(handler) as client:
        pages = client.fetch_all("/v1/x", {"group_by": ["model", "workspace_id"], "limit": 2})
    assert [p.records for p in pages] == [[1, 2], [3], []]
    assert [p.page_cursor for p in pages] == [None, "page_A", "page_B"]
    first = seen[0]
    assert first.headers["x-api-key"] == KEY
    assert first.headers["anthropic-version"] == "2023-06-01"
    assert first.headers["user-agent"] == f"cclens/{__version__}"
    assert first.url.params.get_list("group_by[]") == ["model", "workspace_id"]
    assert pages[0].request_id == "req_test123"
    assert KEY not in repr(pages[0].params) and KEY not in pages[0].url


def test_next_page_only_paging_for_apis_without_has_more():
    def handler(request):
        if request.url.params.get("page") is None:
            return _json(200, {"data": [1], "next_page": "page_2"})
        return _json(200, {"data": [2], "next_page": None})

    with _client(handler) as client:
        pages = client.fetch_all("/v1/organizations/analytics/users", {"date": "2026-03-01"},
                                 has_more_field=False)
    assert [p.records for p in pages] == [[1], [2]]


def test_429_honours_retry_after_then_succeeds():
    calls = []
    sleeps: list[float] = []

    def handler(request):
        calls.append(1)
        if len(calls) < 3:
            return _error(429, "rate_limit_error", "slow down", {"retry-after": "7"})
        return _json(200, {"data": [], "has_more": False, "next_page": None})

    with _client(handler, sleeps) as client:
        client.fetch_all("/v1/x", {})
    assert sleeps == [7.0, 7.0]


def test_5xx_backs_off_exponentially_and_gives_up_with_request_id():
    sleeps: list[float] = []

    def handler(request):
        return _error(529, "overloaded_error", "Overloaded")

    with _client(handler, sleeps, max_retries=3, backoff_base=1.0) as client:
        with pytest.raises(SourceUnavailableError) as info:
            client.get("/v1/x", {})
    assert len(sleeps) == 3
    assert all(lo <= s <= hi for s, (lo, hi) in zip(sleeps, [(0.5, 1), (1, 2), (2, 4)]))
    assert "req_test123" in str(info.value) and "529" in str(info.value) and "usage" in str(info.value)


def test_transport_errors_are_retried():
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            raise httpx2.ConnectError("refused", request=request)
        return _json(200, {"data": [], "has_more": False, "next_page": None})

    with _client(handler) as client:
        assert client.get("/v1/x", {}).records == []
    assert len(calls) == 2


def test_auth_error_names_source_and_setting_and_scrubs_the_key():
    def handler(request):
        return _error(401, "authentication_error", f"invalid x-api-key {request.headers['x-api-key']}")

    with _client(handler) as client:
        with pytest.raises(SourceAuthError) as info:
            client.get("/v1/x", {})
    msg = str(info.value)
    assert msg.startswith("usage:")
    assert "anthropic_admin_key" in msg and "CCLENS_ANTHROPIC_ADMIN_KEY" in msg
    assert "req_test123" in msg and "401" in msg
    assert KEY not in msg and "[key]" in msg


def test_other_4xx_is_a_typed_error_with_the_api_message():
    def handler(request):
        return _error(400, "invalid_request_error", "date must be no later than 2026-06-13")

    with _client(handler) as client:
        with pytest.raises(ApiRequestError) as info:
            client.get("/v1/x", {})
    assert info.value.status == 400 and "2026-06-13" in info.value.api_message
    assert info.value.request_id == "req_test123"


def test_expired_cursor_restarts_from_page_one_once():
    state = {"expired": True}

    def handler(request):
        page = request.url.params.get("page")
        if page is None:
            return _json(200, {"data": [1], "has_more": True, "next_page": "page_x"})
        if state["expired"]:
            state["expired"] = False
            return _error(410, "invalid_request_error", "cursor expired")
        return _json(200, {"data": [2], "has_more": False, "next_page": None})

    with _client(handler) as client:
        pages = client.fetch_all("/v1/x", {})
    assert [p.records for p in pages] == [[1], [2]]


def test_has_more_without_a_cursor_is_an_error_not_a_loop():
    def handler(request):
        return _json(200, {"data": [1], "has_more": True, "next_page": None})

    with _client(handler) as client:
        with pytest.raises(SourceError, match="has_more"):
            client.fetch_all("/v1/x", {})


def test_non_json_body_is_a_source_error():
    with _client(lambda r: httpx2.Response(200, content=b"<html>")) as client:
        with pytest.raises(SourceError, match="not a JSON object"):
            client.get("/v1/x", {})


def test_rate_limiter_spaces_requests_after_the_burst():
    t = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        t[0] += s

    limiter = RateLimiter(60, burst=2, clock=lambda: t[0], sleep=sleep)
    for _ in range(4):
        limiter.acquire()
    assert sleeps == pytest.approx([1.0, 1.0])


def test_missing_key_is_an_auth_error():
    with pytest.raises(SourceAuthError, match="anthropic_admin_key"):
        ApiClient("http://api.test", "", source="usage", key_setting="anthropic_admin_key")
