"""Rollups the metric catalog reads instead of the raw event tables (see :mod:`cclens.metrics.rollup`).

* ``rollup_request``: ``api_request`` summed per 15-minute UTC bucket (``q`` = epoch seconds // 900) ×
  session × raw identity (host, lower(email), account, user id) × model × project × source flags ×
  (fast, long-context) — the two request-level facts pricing needs, so cost stays exact.
* ``rollup_point``: the OTel metric points the catalog reads, summed per bucket × user × metric ×
  type × model × edit tool × decision.
* ``rollup_dirty``: (UTC day, source) pairs written since the last refresh; ingest paths add one row
  per touched day in their own transaction, the refresh recomputes exactly those days.
* ``rollup_state``: one row once the rollups have been built (before that, the catalog reads raw).

The person-day layer (:mod:`cclens.metrics.person_day`), version 2: one row per UTC day × person (× model
or tool where a family has one) with the person resolved from aliases and the winning source per
person-day already chosen, per fact family (``pd_activity``, ``pd_sessions``, ``pd_tokens``,
``pd_output``, ``pd_tools``, ``pd_active_time``, ``pd_engagement``); ``pd_session_day`` the event
sessions per UTC day (multi-day ones are counted at query time); ``pd_uid_map`` the OTel user id →
email map the layer was built with; ``pd_api_day`` the per-day fingerprint of the daily API tables;
``pd_state`` the alias fingerprint and the build time; ``pd_cov`` the event rows per UTC day and source
(transcripts, OTel requests, OTel points) for source coverage; ``pd_alias`` the aliases it was built with.
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
    """
    CREATE TABLE IF NOT EXISTS pd_activity (day DATE NOT NULL, person VARCHAR, srcs INTEGER);
    CREATE TABLE IF NOT EXISTS pd_sessions (day DATE NOT NULL, person VARCHAR, srcs INTEGER, tier INTEGER,
        sessions BIGINT);
    CREATE TABLE IF NOT EXISTS pd_session_day (day DATE NOT NULL, session_id VARCHAR, person VARCHAR,
        bt BOOLEAN, bo BOOLEAN, multi BOOLEAN);
    CREATE TABLE IF NOT EXISTS pd_tokens (day DATE NOT NULL, person VARCHAR, srcs INTEGER, tier INTEGER,
        model VARCHAR, fast BOOLEAN, long_ctx BOOLEAN, input_tokens HUGEINT, output_tokens HUGEINT,
        cache_read_tokens HUGEINT, cache_creation_tokens HUGEINT, cache_write_5m_tokens HUGEINT,
        cache_write_1h_tokens HUGEINT, api_cost_usd DOUBLE);
    CREATE TABLE IF NOT EXISTS pd_output (day DATE NOT NULL, person VARCHAR, srcs INTEGER, tier INTEGER,
        lines_added DOUBLE, lines_removed DOUBLE, commits DOUBLE, pull_requests DOUBLE);
    CREATE TABLE IF NOT EXISTS pd_tools (day DATE NOT NULL, person VARCHAR, srcs INTEGER, tier INTEGER,
        tool VARCHAR, accepted DOUBLE, rejected DOUBLE);
    CREATE TABLE IF NOT EXISTS pd_active_time (day DATE NOT NULL, person VARCHAR, srcs INTEGER, tier INTEGER,
        seconds DOUBLE);
    CREATE TABLE IF NOT EXISTS pd_engagement (day DATE NOT NULL, person VARCHAR, srcs INTEGER, tier INTEGER,
        chat_messages HUGEINT, chat_conversations HUGEINT, web_searches HUGEINT);
    CREATE TABLE IF NOT EXISTS pd_uid_map (user_id VARCHAR, email VARCHAR, account_uuid VARCHAR);
    CREATE TABLE IF NOT EXISTS pd_api_day (tbl VARCHAR NOT NULL, day DATE NOT NULL, n BIGINT, fetched TIMESTAMPTZ);
    CREATE TABLE IF NOT EXISTS pd_state (key VARCHAR NOT NULL, value VARCHAR);
    """,
    # version 3: event rows per UTC day for source coverage; the layer is rebuilt to fill it
    """
    CREATE TABLE IF NOT EXISTS pd_cov (day DATE NOT NULL, src VARCHAR NOT NULL, n BIGINT);
    DELETE FROM pd_state;
    """,
    # version 4: the aliases the layer was built with (an alias change recomputes only the days it touches)
    """
    CREATE TABLE IF NOT EXISTS pd_alias (kind VARCHAR, value VARCHAR, person_id VARCHAR);
    DELETE FROM pd_state;
    """,
])
