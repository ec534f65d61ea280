"""Tables of the Anthropic reporting API sources (component ``anthropic``).

Landing: ``landing_anthropic_page`` keeps every distinct page each API returned (URL, query — never
a key —, the cursor sent, request-id, when, SHA-256 and length of the body); the body itself is in
``landing_anthropic_body``, zlib-compressed in 16 KB pieces, once per distinct body
(:func:`cclens.sources.sync.landing_body` gives the exact bytes back; see migrations v2 and v3). A re-fetch that returns an identical page is
not stored twice; a revised page is stored again, so every version the API ever served is kept.

Model (all days are UTC days, all amounts in the API's units, named so):

- ``cc_actor_day``   Claude Code Analytics: one row per actor x UTC day x is_remote x terminal_type
                     (sessions, lines, commits, PRs; identities: email or API key name).
- ``cc_tool_action`` the ``tool_actions`` map of the same rows, one row per tool (unknown tools kept).
- ``cc_daily``       the ``model_breakdown``: actor x day x model: tokens and estimated cost in cents.
- ``usage_bucket``   Usage API: one row per time bucket x group combination (null = not grouped, or
                     the default workspace / Workbench, as the API says).
- ``cost_day``       Cost API: one row per UTC day x group combination; ``amount_cents`` parsed from
                     the API's decimal string, ``amount_raw`` kept as sent.
- ``engagement_day`` Enterprise Analytics ``/users``: one row per user x UTC day; headline metrics as
                     columns (the whole record stays in landing).
- ``engagement_summary_day`` Enterprise Analytics ``/summaries``: one row per UTC day.

The sync engine replaces a unit (a day, or a range of buckets) of model rows in the same transaction
as it lands the pages and moves the source's cursor, so a re-fetch never double counts. No primary
keys: DuckDB's ART indexes would cost memory for nothing, since writes are delete-range + insert.

``anthropic_identity`` (view) lists every identity these sources saw (email, account id, API key
name / id) with the days it was seen, for the people model to link.
"""

from ..migrations import register

register("anthropic", [
    """
    CREATE TABLE IF NOT EXISTS landing_anthropic_page (
        source        VARCHAR NOT NULL,     -- claude_code_analytics | usage | cost | enterprise_analytics
        unit          VARCHAR NOT NULL,     -- the day asked for, or the bucket range <start>/<end>
        url           VARCHAR NOT NULL,     -- base URL + path, no query
        params        JSON NOT NULL,        -- [[name, value], ...] as sent (no credentials)
        page_cursor   VARCHAR,              -- the `page` sent; NULL for page 1
        page_index    INTEGER NOT NULL,
        next_page     VARCHAR,
        request_id    VARCHAR,
        payload_hash  VARCHAR NOT NULL,     -- sha256 of payload
        payload       VARCHAR NOT NULL,     -- the response body, exactly as received
        fetched_at    TIMESTAMPTZ NOT NULL,
        run_id        VARCHAR
    );
    CREATE TABLE IF NOT EXISTS cc_actor_day (
        day                 DATE NOT NULL,      -- UTC day
        actor_type          VARCHAR NOT NULL,   -- user | api_key
        actor_id            VARCHAR NOT NULL,   -- email address or API key name
        email               VARCHAR,
        api_key_name        VARCHAR,
        is_remote           BOOLEAN NOT NULL,
        terminal_type       VARCHAR NOT NULL,
        organization_id     VARCHAR,
        customer_type       VARCHAR,
        subscription_type   VARCHAR,
        num_sessions        BIGINT NOT NULL,
        lines_added         BIGINT NOT NULL,
        lines_removed       BIGINT NOT NULL,
        commits             BIGINT NOT NULL,
        pull_requests       BIGINT NOT NULL,
        records             INTEGER NOT NULL,   -- API records merged into this row (normally 1)
        fetched_at          TIMESTAMPTZ NOT NULL,
        run_id              VARCHAR
    );
    CREATE TABLE IF NOT EXISTS cc_tool_action (
        day            DATE NOT NULL,
        actor_type     VARCHAR NOT NULL,
        actor_id       VARCHAR NOT NULL,
        is_remote      BOOLEAN NOT NULL,
        terminal_type  VARCHAR NOT NULL,
        tool           VARCHAR NOT NULL,     -- as the API names it (edit_tool, write_tool, …)
        accepted       BIGINT NOT NULL,
        rejected       BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS cc_daily (
        day                    DATE NOT NULL,
        actor_type             VARCHAR NOT NULL,
        actor_id               VARCHAR NOT NULL,
        email                  VARCHAR,
        api_key_name           VARCHAR,
        is_remote              BOOLEAN NOT NULL,
        terminal_type          VARCHAR NOT NULL,
        model                  VARCHAR NOT NULL,
        input_tokens           BIGINT NOT NULL,
        output_tokens          BIGINT NOT NULL,
        cache_read_tokens      BIGINT NOT NULL,
        cache_creation_tokens  BIGINT NOT NULL,
        estimated_cost_cents   DECIMAL(20, 6) NOT NULL,   -- minor units (US cents) as the API sends
        currency               VARCHAR,
        fetched_at             TIMESTAMPTZ NOT NULL,
        run_id                 VARCHAR
    );
    CREATE TABLE IF NOT EXISTS usage_bucket (
        bucket_start              TIMESTAMPTZ NOT NULL,
        bucket_end                TIMESTAMPTZ NOT NULL,
        bucket_width              VARCHAR NOT NULL,   -- 1m | 1h | 1d
        grouping                  VARCHAR NOT NULL,   -- the group_by[] sent, comma-joined
        api_key_id                VARCHAR,
        workspace_id              VARCHAR,
        model                     VARCHAR,
        service_tier              VARCHAR,
        context_window            VARCHAR,
        inference_geo             VARCHAR,
        account_id                VARCHAR,
        service_account_id        VARCHAR,
        speed                     VARCHAR,
        uncached_input_tokens     BIGINT NOT NULL,
        cache_creation_5m_tokens  BIGINT NOT NULL,
        cache_creation_1h_tokens  BIGINT NOT NULL,
        cache_read_tokens         BIGINT NOT NULL,
        output_tokens             BIGINT NOT NULL,
        web_search_requests       BIGINT NOT NULL,
        fetched_at                TIMESTAMPTZ NOT NULL,
        run_id                    VARCHAR
    );
    CREATE TABLE IF NOT EXISTS cost_day (
        day             DATE NOT NULL,
        grouping        VARCHAR NOT NULL,
        workspace_id    VARCHAR,
        description     VARCHAR,
        cost_type       VARCHAR,
        model           VARCHAR,
        service_tier    VARCHAR,
        context_window  VARCHAR,
        token_type      VARCHAR,
        inference_geo   VARCHAR,
        currency        VARCHAR,
        amount_cents    DECIMAL(38, 12) NOT NULL,   -- lowest currency unit (cents), parsed exactly
        amount_raw      VARCHAR NOT NULL,           -- the decimal string as sent
        fetched_at      TIMESTAMPTZ NOT NULL,
        run_id          VARCHAR
    );
    CREATE TABLE IF NOT EXISTS engagement_day (
        day                          DATE NOT NULL,
        user_id                      VARCHAR,      -- Anthropic user id (user_…)
        email                        VARCHAR,
        chat_message_count           BIGINT,
        chat_conversation_count      BIGINT,
        chat_thinking_message_count  BIGINT,
        chat_artifacts_created_count BIGINT,
        chat_projects_created_count  BIGINT,
        cc_commit_count              BIGINT,
        cc_pull_request_count        BIGINT,
        cc_lines_added               BIGINT,
        cc_lines_removed             BIGINT,
        cc_session_count             BIGINT,
        cc_tool_accepted             BIGINT,
        cc_tool_rejected             BIGINT,
        web_search_count             BIGINT,
        cowork_message_count         BIGINT,
        design_message_count         BIGINT,
        office_message_count         BIGINT,
        science_message_count        BIGINT,
        last_activity_date           DATE,
        record                       JSON NOT NULL,   -- the API record, whole
        fetched_at                   TIMESTAMPTZ NOT NULL,
        run_id                       VARCHAR
    );
    CREATE TABLE IF NOT EXISTS engagement_summary_day (
        day                         DATE NOT NULL,
        daily_active_user_count     BIGINT,
        weekly_active_user_count    BIGINT,
        monthly_active_user_count   BIGINT,
        assigned_seat_count         BIGINT,
        pending_invite_count        BIGINT,
        daily_adoption_rate         DOUBLE,
        weekly_adoption_rate        DOUBLE,
        monthly_adoption_rate       DOUBLE,
        record                      JSON NOT NULL,
        fetched_at                  TIMESTAMPTZ NOT NULL,
        run_id                      VARCHAR
    );
    CREATE OR REPLACE VIEW anthropic_identity AS
    SELECT 'claude_code_analytics' AS source, email, NULL::VARCHAR AS account_id,
           api_key_name, NULL::VARCHAR AS api_key_id, min(day) AS first_day, max(day) AS last_day
      FROM cc_actor_day GROUP BY ALL
    UNION ALL
    SELECT 'usage', NULL, account_id, NULL, api_key_id, min(bucket_start)::DATE, max(bucket_start)::DATE
      FROM usage_bucket WHERE account_id IS NOT NULL OR api_key_id IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT 'enterprise_analytics', email, user_id, NULL, NULL, min(day), max(day)
      FROM engagement_day WHERE email IS NOT NULL OR user_id IS NOT NULL GROUP BY ALL;
    """,
    # v2: (1) the whole /users record is already in landing, byte for byte; a second copy per row doubled
    # the warehouse and the memory of a sync. Re-model from landing_anthropic_page when a metric is added.
    # (2) landing keeps each body zlib-compressed (exact bytes: zlib.decompress(payload_zlib)): pages are
    # 1-3 MB of JSON, and checkpointing strings that size cost DuckDB ~200 MB of memory; compressed
    # they are ~16x smaller on disk and in memory.
    """
    DROP VIEW IF EXISTS anthropic_identity;
    ALTER TABLE engagement_day DROP COLUMN record;
    ALTER TABLE landing_anthropic_page DROP COLUMN payload;
    ALTER TABLE landing_anthropic_page ADD COLUMN payload_zlib BLOB;
    ALTER TABLE landing_anthropic_page ADD COLUMN payload_bytes BIGINT;
    CREATE OR REPLACE VIEW anthropic_identity AS
    SELECT 'claude_code_analytics' AS source, email, NULL::VARCHAR AS account_id,
           api_key_name, NULL::VARCHAR AS api_key_id, min(day) AS first_day, max(day) AS last_day
      FROM cc_actor_day GROUP BY ALL
    UNION ALL
    SELECT 'usage', NULL, account_id, NULL, api_key_id, min(bucket_start)::DATE, max(bucket_start)::DATE
      FROM usage_bucket WHERE account_id IS NOT NULL OR api_key_id IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT 'enterprise_analytics', email, user_id, NULL, NULL, min(day), max(day)
      FROM engagement_day WHERE email IS NOT NULL OR user_id IS NOT NULL GROUP BY ALL;
    """,
    # v3: bodies move to landing_anthropic_body, in 16 KB pieces of the zlib stream, stored once per
    # distinct body. DuckDB 2.0's checkpoint needs memory in proportion to the large values of a row
    # group: 100-200 KB blobs made a year of landing need >100 MB at every checkpoint (and fail
    # under a tight memory_limit); 16 KB pieces do not.
    """
    ALTER TABLE landing_anthropic_page DROP COLUMN payload_zlib;
    CREATE TABLE IF NOT EXISTS landing_anthropic_body (
        payload_hash  VARCHAR NOT NULL,   -- sha256 of the body (= landing_anthropic_page.payload_hash)
        seq           INTEGER NOT NULL,   -- piece order
        chunk         BLOB NOT NULL       -- a piece of zlib.compress(body); in seq order = the whole stream
    );
    """,
])
