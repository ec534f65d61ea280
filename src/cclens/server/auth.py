"""Ingest and API tokens.

A token is ``ccl_<token_id>_<secret>``; only its SHA-256 is stored (table ``api_token``), so a
leaked warehouse does not leak tokens. Tokens are high-entropy random strings, so a fast hash is
enough (no password stretching needed). Clients send ``Authorization: Bearer <token>`` (OTLP:
``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>``; gRPC: metadata ``authorization``).

Policy: when the server listens on anything but loopback, or ``--require-auth`` is given, every
ingest request needs a valid token. On loopback an anonymous request is accepted. A token that is
present but wrong or revoked is always refused, so a misconfigured client is noticed.

A ``viewer`` token can be limited to teams (``cclens token create --role viewer --team platform``;
column ``api_token.teams``): the metric endpoints and the MCP server then answer for those teams only,
and read endpoints that cannot be limited to teams refuse it (403). Tokens without teams are unchanged.

``serve`` also mints a *local* token at start and writes it (mode 0600) into the discovery file next
to the warehouse; the CLI of the same user uses it to query through the server.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from fastapi import HTTPException, Request

from ..errors import ConfigError

ROLES = ("ingest", "viewer", "analyst", "admin")


@dataclass(frozen=True)
class Principal:
    """Who made a request: ``token_id`` (None when anonymous), ``role``, and the ``teams`` a viewer
    token is limited to (empty: not limited)."""

    token_id: str | None
    role: str
    teams: tuple[str, ...] = ()


ANONYMOUS = Principal(None, "anonymous")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(wh: Any, role: str, name: str | None = None,
                 teams: Iterable[str] | None = None) -> tuple[str, str]:
    """Store a new token of ``role`` in ``wh``; returns ``(token_id, token)``. The token is shown once.
    ``teams`` limits a ``viewer`` token to those teams (ids from the people file)."""
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    scope = sorted({t.strip() for t in teams or () if t and t.strip()})
    if scope:
        if role != "viewer":
            raise ConfigError(f"only viewer tokens can be limited to teams (a {role} token reads everything); "
                              "use --role viewer")
        known = {r["team_id"] for r in wh.query("SELECT team_id FROM team")}
        unknown = [t for t in scope if t not in known]
        if unknown:
            raise ConfigError(f"unknown team {', '.join(unknown)}; known teams: {', '.join(sorted(known)) or 'none'} "
                              "(import a people file first: cclens people import people.toml)")
    token_id = secrets.token_hex(4)
    token = f"ccl_{token_id}_{secrets.token_urlsafe(32)}"
    wh.execute(
        "INSERT INTO api_token (token_id, name, role, token_sha256, created_at, teams) VALUES (?, ?, ?, ?, ?, ?)",
        [token_id, name, role, hash_token(token), datetime.now(timezone.utc), scope or None],
    )
    return token_id, token


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Authenticator:
    """Checks bearer tokens against ``api_token`` (cached) and the server's local token."""

    def __init__(self, lookup: Callable[[str], tuple[Any, ...] | None], *, require: bool,
                 local_token: str | None = None):
        self._lookup = lookup  # sha256 -> (token_id, role[, teams]) of a live token, or None
        self.require = require
        self._local_hash = hash_token(local_token) if local_token else None
        self._cache: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def remember(self, token: str, token_id: str, role: str, teams: Iterable[str] = ()) -> None:
        with self._lock:
            self._cache[hash_token(token)] = Principal(token_id, role, tuple(sorted(teams)))

    def forget_all(self) -> None:
        with self._lock:
            self._cache.clear()

    def principal(self, authorization: str | None) -> Principal | None:
        """The principal of an ``Authorization`` header value; ANONYMOUS when absent; None if invalid."""
        if not authorization:
            return ANONYMOUS
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = hash_token(token.strip())
        if self._local_hash and hmac.compare_digest(digest, self._local_hash):
            return Principal("local", "local")
        with self._lock:
            hit = self._cache.get(digest)
        if hit:
            return hit
        found = self._lookup(digest)
        if not found:
            return None
        p = Principal(*found)
        with self._lock:
            self._cache[digest] = p
        return p

    def check(self, authorization: str | None, roles: Iterable[str], *,
              allow_anonymous: bool = True) -> tuple[Principal | None, str | None]:
        """``(principal, None)`` when allowed, else ``(None, reason)``."""
        p = self.principal(authorization)
        if p is None:
            return None, "the bearer token is not valid (unknown or revoked)"
        if p is ANONYMOUS:
            if allow_anonymous and not self.require:
                return p, None
            return None, "a bearer token is required (create one with `cclens token create --role ingest`)"
        if p.role not in roles:
            return None, f"a token of role {p.role!r} may not use this endpoint"
        return p, None


def authenticate_http(request: Request, roles: Iterable[str], *, allow_anonymous: bool = True) -> Principal:
    """FastAPI helper: the request's principal, or raise 401/403."""
    auth: Authenticator = request.app.state.authenticator
    p, reason = auth.check(request.headers.get("authorization"), roles, allow_anonymous=allow_anonymous)
    if p is None:
        status = 403 if reason and "may not use" in reason else 401
        raise HTTPException(status, detail=reason, headers={"WWW-Authenticate": "Bearer"})
    return p


def db_lookup(reader_factory: Callable[[], Any]) -> Callable[[str], tuple[str, str, tuple[str, ...]] | None]:
    """A lookup function reading ``api_token`` through a fresh read cursor each time."""

    def lookup(digest: str) -> tuple[str, str, tuple[str, ...]] | None:
        cur = reader_factory()
        try:
            rows = cur.query("SELECT token_id, role, teams FROM api_token WHERE token_sha256 = ? "
                             "AND revoked_at IS NULL", [digest])
        finally:
            cur.close()
        return (rows[0]["token_id"], rows[0]["role"], tuple(sorted(rows[0]["teams"] or ()))) if rows else None

    return lookup
