"""Tables of ``cclens serve`` itself: API tokens (stored hashed)."""

from ..migrations import register

register("server", [
    """
    CREATE TABLE IF NOT EXISTS api_token (
        token_id      VARCHAR PRIMARY KEY,   -- public, short; shown in lists and logs
        name          VARCHAR,
        role          VARCHAR NOT NULL,      -- ingest | viewer | analyst | admin
        token_sha256  VARCHAR NOT NULL UNIQUE,
        created_at    TIMESTAMPTZ NOT NULL,
        revoked_at    TIMESTAMPTZ
    );
    """,
])
