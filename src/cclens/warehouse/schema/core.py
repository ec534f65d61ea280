"""Core tables shared by every source: file cursors, quarantine, ingest runs, source state, prices."""

from ..migrations import register

register("core", [
    """
    CREATE TABLE IF NOT EXISTS ingest_run (
        run_id       VARCHAR PRIMARY KEY,
        source       VARCHAR NOT NULL,
        host         VARCHAR,
        started_at   TIMESTAMPTZ NOT NULL,
        finished_at  TIMESTAMPTZ,
        stats        JSON
    );
    CREATE TABLE IF NOT EXISTS quarantine (
        source       VARCHAR NOT NULL,   -- e.g. 'transcripts', 'otlp', 'hooks'
        origin       VARCHAR NOT NULL,   -- file path, URL + page, or receiver + request id
        byte_offset  BIGINT,             -- where in the origin, when it is a file
        reason       VARCHAR NOT NULL,
        raw          VARCHAR,            -- the offending bytes (decoded with replacement), capped
        host         VARCHAR,
        run_id       VARCHAR,
        received_at  TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE IF NOT EXISTS source_state (
        source         VARCHAR PRIMARY KEY,
        cursor         JSON,
        last_success   TIMESTAMPTZ,
        last_attempt   TIMESTAMPTZ,
        last_rows      BIGINT,
        last_error     VARCHAR
    );
    """,
])
