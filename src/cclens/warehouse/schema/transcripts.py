"""Landing and cursor tables of the transcript source (``~/.claude/projects/**.jsonl``)."""

from ..migrations import register

register("transcripts", [
    """
    CREATE TABLE IF NOT EXISTS transcript_file (
        host          VARCHAR NOT NULL,
        path          VARCHAR NOT NULL,
        file_id       VARCHAR,            -- device:inode when known; a change means the file was replaced
        head_hash     VARCHAR,            -- hash of the first line; a change means rewritten
        generation    INTEGER NOT NULL,   -- bumped each time the file is re-read from offset 0
        size          BIGINT NOT NULL,    -- size when last read
        byte_offset   BIGINT NOT NULL,    -- everything before this offset has been ingested
        mtime         DOUBLE,
        lines         BIGINT NOT NULL DEFAULT 0,
        updated_at    TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (host, path)
    );
    CREATE TABLE IF NOT EXISTS landing_transcript_line (
        line_key      VARCHAR NOT NULL,   -- sessionId:uuid, or sessionId:h:<hash of line> when no uuid
        host          VARCHAR NOT NULL,
        path          VARCHAR NOT NULL,
        generation    INTEGER NOT NULL,
        byte_offset   BIGINT NOT NULL,
        byte_length   INTEGER NOT NULL,
        record_type   VARCHAR,            -- top-level "type"
        subtype       VARCHAR,            -- attachment.type, system subtype, queue operation
        session_id    VARCHAR,
        line_uuid     VARCHAR,
        ts            TIMESTAMPTZ,
        agent_id      VARCHAR,
        is_sidechain  BOOLEAN,
        cwd           VARCHAR,
        git_branch    VARCHAR,
        version       VARCHAR,
        entrypoint    VARCHAR,
        prompt_id     VARCHAR,
        raw           JSON,               -- the line; content fields removed unless capture_content
        run_id        VARCHAR,
        ingested_at   TIMESTAMPTZ NOT NULL
    );
    """,
    # v2: the landing copy (``raw``, ~70 % of the table) is stored zstd-compressed: a third of the
    # file size of the default string compression and half its commit CPU on a cold ingest
    # (docs/benchmarks.md, Transcripts). Same columns, same rows.
    """
    CREATE TABLE landing_transcript_line_v2 (
        line_key      VARCHAR NOT NULL,
        host          VARCHAR NOT NULL,
        path          VARCHAR NOT NULL,
        generation    INTEGER NOT NULL,
        byte_offset   BIGINT NOT NULL,
        byte_length   INTEGER NOT NULL,
        record_type   VARCHAR,
        subtype       VARCHAR,
        session_id    VARCHAR,
        line_uuid     VARCHAR,
        ts            TIMESTAMPTZ,
        agent_id      VARCHAR,
        is_sidechain  BOOLEAN,
        cwd           VARCHAR,
        git_branch    VARCHAR,
        version       VARCHAR,
        entrypoint    VARCHAR,
        prompt_id     VARCHAR,
        raw           JSON USING COMPRESSION zstd,
        run_id        VARCHAR,
        ingested_at   TIMESTAMPTZ NOT NULL
    );
    INSERT INTO landing_transcript_line_v2 SELECT * FROM landing_transcript_line;
    DROP TABLE landing_transcript_line;
    ALTER TABLE landing_transcript_line_v2 RENAME TO landing_transcript_line;
    """,
])
