"""Governance tables of ``cclens serve`` (component ``server_audit``, applied after ``server``).

* ``audit_log``  one row per read of data through a surface that records reads (the MCP server today;
                 :func:`cclens.audit.record` is the one function every surface calls): when, who
                 (``principal``: token id, ``anonymous``, ``local`` or ``local:<os user>``), with which
                 ``role``, through which ``surface`` (``mcp-http``, ``mcp-stdio``, …), the ``action``
                 (``tools/call get_metric``, ``resources/read``, …) and its ``arguments`` (JSON, as the
                 caller sent them), how many ``rows`` it returned, whether it succeeded and the error
                 message if not. Append-only; never holds a token or a secret.
* ``api_token.teams``  the teams a ``viewer`` token is limited to (NULL or empty: every team).
"""

from ..migrations import register

register("server_audit", [
    """
    CREATE TABLE IF NOT EXISTS audit_log (
        audit_id     VARCHAR NOT NULL,
        ts           TIMESTAMPTZ NOT NULL,
        principal    VARCHAR NOT NULL,
        role         VARCHAR NOT NULL,
        surface      VARCHAR NOT NULL,      -- mcp-http | mcp-stdio | …
        action       VARCHAR NOT NULL,      -- e.g. "tools/call get_metric"
        arguments    JSON,
        rows         BIGINT,
        ok           BOOLEAN NOT NULL,
        error        VARCHAR,
        duration_ms  DOUBLE
    );
    ALTER TABLE api_token ADD COLUMN IF NOT EXISTS teams VARCHAR[];
    """,
])
