"""Rollups the metric catalog reads instead of the raw event tables (see :mod:`cclens.metrics.rollup`).

* ``rollup_request``: ``api_request`` summed per 15-minute UTC bucket (``q`` = epoch seconds // 900) ×
  session × raw identity (host, lower(email), account, user id) × model × project × source flags ×
  (fast, long-context) — the two request-level facts pricing needs, so cost stays exact.
* ``rollup_point``: the OTel metric points the catalog reads, summed per bucket × user × metric ×
  type × model × edit tool × decision.
* ``rollup_dirty``: (UTC day, source) pairs written since the last refresh; ingest paths add one row
  per touched day in their own transaction, the refresh recomputes exactly those days.
* ``rollup_state``: one row once the rollups have been built (before that, the catalog reads raw).
"""

from ..migrations import register

register("rollup", [
    """
    CREATE TABLE IF NOT EXISTS rollup_request (
        q                     BIGINT NOT NULL,
        session_id            VARCHAR,
        host                  VARCHAR,
        email                 VARCHAR,
        account_uuid          VARCHAR,
        user_id               VARCHAR,
        model                 VARCHAR,
        project               VARCHAR,
        bt                    BOOLEAN,
        bo                    BOOLEAN,
        fast                  BOOLEAN,
        long_ctx              BOOLEAN,      -- input + cache tokens > 200,000 (the priced threshold)
        requests              BIGINT,
        input_tokens          HUGEINT,
        output_tokens         HUGEINT,
        cache_creation_tokens HUGEINT,
        cache_read_tokens     HUGEINT,
        cache_write_5m_tokens HUGEINT,
        cache_write_1h_tokens HUGEINT
    );
    CREATE TABLE IF NOT EXISTS rollup_point (
        q            BIGINT NOT NULL,
        user_id      VARCHAR,
        metric_name  VARCHAR,
        type         VARCHAR,
        model        VARCHAR,
        tool         VARCHAR,
        decision     VARCHAR,
        value        DOUBLE
    );
    CREATE TABLE IF NOT EXISTS rollup_dirty (
        day  DATE NOT NULL,       -- UTC day
        src  VARCHAR NOT NULL     -- 'api_request' | 'otel_point'
    );
    CREATE TABLE IF NOT EXISTS rollup_state (
        name      VARCHAR NOT NULL,
        built_at  TIMESTAMPTZ NOT NULL,
        refreshed_at TIMESTAMPTZ
    );
    """,
])
