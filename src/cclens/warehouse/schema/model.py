"""Canonical model tables shared by every source.

``api_request`` has one row per Claude API request whatever saw it. ``request_key`` is the API
``request_id`` when known (transcript ``requestId`` = OTel ``request_id``), so each source upserts into
the same row and nothing is counted twice; ``from_*`` flags record which sources saw it. Tokens are
the largest usage any source reported for the request. Cost is not stored: the view
``api_request_cost`` prices each row from ``model_price`` (kept in sync by :mod:`cclens.model.pricing`),
so a price-table refresh re-prices history; a model with no price has ``cost_usd`` NULL (unpriced).
"""

from ..migrations import register


def _cost_view(wh) -> None:
    """The view over model_price; reports use the same COST_SELECT over an inline price CTE."""
    from ...model.pricing import COST_SELECT  # imported when the migration runs, not at every open

    wh.execute("CREATE OR REPLACE VIEW api_request_cost AS " + COST_SELECT)


register("model", [
    """
    CREATE TABLE IF NOT EXISTS api_request (
        request_key              VARCHAR NOT NULL,
        request_id               VARCHAR,
        message_id               VARCHAR,
        session_id               VARCHAR,
        agent_id                 VARCHAR,
        is_sidechain             BOOLEAN,
        ts                       TIMESTAMPTZ,
        model                    VARCHAR,      -- normalised (no [1m] suffix)
        model_raw                VARCHAR,
        input_tokens             BIGINT NOT NULL DEFAULT 0,
        output_tokens            BIGINT NOT NULL DEFAULT 0,
        cache_creation_tokens    BIGINT NOT NULL DEFAULT 0,
        cache_creation_5m_tokens BIGINT,
        cache_creation_1h_tokens BIGINT,
        cache_read_tokens        BIGINT NOT NULL DEFAULT 0,
        speed                    VARCHAR,
        service_tier             VARCHAR,
        host                     VARCHAR,
        cwd                      VARCHAR,
        project                  VARCHAR,
        git_branch               VARCHAR,
        version                  VARCHAR,
        prompt_id                VARCHAR,
        query_source             VARCHAR,
        duration_ms              BIGINT,
        user_id                  VARCHAR,
        user_email               VARCHAR,
        account_uuid             VARCHAR,
        organization_id          VARCHAR,
        otel_cost_usd            DOUBLE,       -- Claude Code's own estimate, as sent in OTel
        from_transcripts         BOOLEAN NOT NULL DEFAULT false,
        from_otel                BOOLEAN NOT NULL DEFAULT false,
        origin_path              VARCHAR,
        origin_offset            BIGINT,
        updated_at               TIMESTAMPTZ
    );
    CREATE TABLE IF NOT EXISTS session (
        session_id        VARCHAR NOT NULL,
        host              VARCHAR,
        first_ts          TIMESTAMPTZ,
        last_ts           TIMESTAMPTZ,
        cwd               VARCHAR,
        project           VARCHAR,
        git_branch        VARCHAR,
        version           VARCHAR,
        entrypoint        VARCHAR,
        transcript_path   VARCHAR,
        subagent_count    INTEGER,
        prompt_count      INTEGER,
        line_count        BIGINT,
        updated_at        TIMESTAMPTZ
    );
    CREATE TABLE IF NOT EXISTS prompt (
        prompt_id     VARCHAR NOT NULL,
        session_id    VARCHAR,
        ts            TIMESTAMPTZ,
        host          VARCHAR,
        length        INTEGER,
        source        VARCHAR NOT NULL,   -- transcripts | otel | hooks
        text          VARCHAR             -- only when content capture is on
    );
    CREATE TABLE IF NOT EXISTS tool_use (
        tool_use_id   VARCHAR NOT NULL,
        session_id    VARCHAR,
        request_key   VARCHAR,
        agent_id      VARCHAR,
        ts            TIMESTAMPTZ,
        tool_name     VARCHAR,
        result_ts     TIMESTAMPTZ,
        is_error      BOOLEAN,
        source        VARCHAR NOT NULL
    );
    CREATE TABLE IF NOT EXISTS model_price (
        model                   VARCHAR NOT NULL,   -- a model name as seen in api_request
        price_key               VARCHAR,            -- the price-table entry it resolved to
        input_per_mtok          DOUBLE,
        output_per_mtok         DOUBLE,
        cache_write_5m_per_mtok DOUBLE,
        cache_write_1h_per_mtok DOUBLE,
        cache_read_per_mtok     DOUBLE,
        long_context_threshold  BIGINT,             -- input+cache tokens above which the whole request
        long_input_per_mtok     DOUBLE,             -- is priced at the long-context rates
        long_output_per_mtok    DOUBLE,
        long_cache_write_5m_per_mtok DOUBLE,
        long_cache_write_1h_per_mtok DOUBLE,
        long_cache_read_per_mtok     DOUBLE,
        fast_multiplier         DOUBLE,
        table_version           VARCHAR
    );
    """,
    _cost_view,
    # v3: what merging new transcript lines into a session needs without reading its landed lines back
    # (sources/transcripts/load.py, _rebuild_sessions): the timestamps that chose its cwd, branch and
    # entrypoint, and its distinct subagents and prompts (subagent_count and prompt_count count them).
    # The transcripts component fills them for sessions that exist (its v4).
    """
    ALTER TABLE session ADD COLUMN cwd_ts TIMESTAMPTZ;          -- of the first line with a cwd
    ALTER TABLE session ADD COLUMN branch_ts TIMESTAMPTZ;       -- of the last line with a git branch
    ALTER TABLE session ADD COLUMN entrypoint_ts TIMESTAMPTZ;   -- of the first line with an entrypoint
    CREATE TABLE IF NOT EXISTS session_agent (
        session_id    VARCHAR NOT NULL,
        agent_id      VARCHAR NOT NULL    -- a subagent that wrote lines of the session
    );
    CREATE TABLE IF NOT EXISTS session_prompt (
        session_id    VARCHAR NOT NULL,
        prompt_id     VARCHAR NOT NULL    -- the promptId of a user line of the session
    );
    """,
])
