"""Landing and cursor tables of the transcript source (``~/.claude/projects/**.jsonl``)."""

from ..migrations import register


def _recompress(wh, table: str, column: str, method: str) -> None:
    """Rebuild ``table`` with ``column`` stored under compression ``method`` (DuckDB has no ALTER for
    it): the columns, types and NOT NULLs are read from the live table, so nothing is restated."""
    cols = wh.query("""SELECT column_name, data_type, is_nullable FROM duckdb_columns()
                       WHERE schema_name = 'main' AND table_name = ? ORDER BY column_index""", [table])
    defs = ", ".join(f'"{c["column_name"]}" {c["data_type"]}' + ("" if c["is_nullable"] else " NOT NULL")
                     + (f" USING COMPRESSION {method}" if c["column_name"] == column else "") for c in cols)
    wh.execute(f"CREATE TABLE {table}_rebuilt ({defs})")
    wh.execute(f"INSERT INTO {table}_rebuilt SELECT * FROM {table}")
    wh.execute(f"DROP TABLE {table}")
    wh.execute(f"ALTER TABLE {table}_rebuilt RENAME TO {table}")

# Since v3 the landing copy lives in ``landing_transcript_line_stored`` with the columns reads filter
# or join on, and ``landing_transcript_line`` is a view adding the fields that only restate the copy,
# read from it as the scanner reads them (docs/sources/transcripts.md): text for a string, a number or
# a boolean, NULL for null or a container. Storing them cost a third of a cold ingest's landing writes
# (and DuckDB computes VIRTUAL columns on insert, so those were no cheaper).
def _text(path: str) -> str:
    return (f"CASE WHEN json_type(raw, '{path}') IN ('VARCHAR', 'BIGINT', 'UBIGINT', 'DOUBLE', 'BOOLEAN') "
            f"THEN json_extract_string(raw, '{path}') END")


LANDING_STORED = ("line_key, host, path, generation, byte_offset, byte_length, record_type, session_id, ts, raw, "
                  "run_id, ingested_at")

# line_key is stored uncompressed: its values are unique, so DuckDB's dictionary/FSST analysis of them
# at every row-group flush bought ~20 % of the column's size for ~0.1 s of a 500 MB cold ingest's
# critical path (docs/benchmarks.md). Warehouses made before this keep the default compression for
# it: a physical detail, the same rows and values.
_LANDING_V3 = """
CREATE TABLE landing_transcript_line_stored (
    line_key      VARCHAR NOT NULL USING COMPRESSION uncompressed,  -- sessionId:uuid, or sessionId:h:<md5>
    host          VARCHAR NOT NULL,
    path          VARCHAR NOT NULL,
    generation    INTEGER NOT NULL,
    byte_offset   BIGINT NOT NULL,
    byte_length   INTEGER NOT NULL,
    record_type   VARCHAR,            -- top-level "type"
    session_id    VARCHAR,
    ts            TIMESTAMPTZ,
    raw           JSON USING COMPRESSION zstd,  -- the line; content fields removed unless capture_content
    run_id        VARCHAR,
    ingested_at   TIMESTAMPTZ NOT NULL
)"""

_LANDING_VIEW = f"""
CREATE OR REPLACE VIEW landing_transcript_line AS
SELECT line_key, host, path, generation, byte_offset, byte_length, record_type,
       coalesce({_text('$.attachment.type')}, {_text('$.subtype')}, {_text('$.operation')}) AS subtype,
       session_id, {_text('$.uuid')} AS line_uuid, ts, {_text('$.agentId')} AS agent_id,
       CASE WHEN json_type(raw, '$.isSidechain') = 'BOOLEAN' THEN json_extract(raw, '$.isSidechain')::BOOLEAN END
         AS is_sidechain,
       {_text('$.cwd')} AS cwd, {_text('$.gitBranch')} AS git_branch, {_text('$.version')} AS version,
       {_text('$.entrypoint')} AS entrypoint, {_text('$.promptId')} AS prompt_id, raw, run_id, ingested_at
FROM landing_transcript_line_stored"""


def _landing_v3(wh) -> None:
    """Move the landing rows to the slim table (stored columns by name) and put the view in place."""
    wh.execute(_LANDING_V3)
    wh.execute(f"INSERT INTO landing_transcript_line_stored ({LANDING_STORED}) "
               f"SELECT {LANDING_STORED} FROM landing_transcript_line")
    wh.execute("DROP TABLE landing_transcript_line")
    wh.execute(_LANDING_VIEW)


def _session_state_v4(wh) -> None:
    """Fill ``session``'s ranking timestamps, ``session_agent`` and ``session_prompt`` (model v3) from
    the landed lines, as the sessions' rebuild computed them from those lines until then."""
    if not wh.scalar("SELECT count(*) FROM (SELECT 1 FROM session LIMIT 1)"):
        return  # a new warehouse, or nothing ingested yet
    wh.execute("""
    UPDATE session s SET cwd_ts = a.cwd_ts, branch_ts = a.branch_ts, entrypoint_ts = a.entrypoint_ts
    FROM (SELECT session_id, min(ts) FILTER (WHERE cwd IS NOT NULL) AS cwd_ts,
                 max(ts) FILTER (WHERE git_branch IS NOT NULL) AS branch_ts,
                 min(ts) FILTER (WHERE entrypoint IS NOT NULL) AS entrypoint_ts
          FROM landing_transcript_line WHERE session_id IS NOT NULL GROUP BY session_id) a
    WHERE a.session_id = s.session_id""")
    wh.execute("""
    INSERT INTO session_agent SELECT DISTINCT session_id, agent_id FROM landing_transcript_line
    WHERE session_id IS NOT NULL AND agent_id IS NOT NULL""")
    wh.execute("""
    INSERT INTO session_prompt SELECT DISTINCT session_id, prompt_id FROM landing_transcript_line
    WHERE session_id IS NOT NULL AND record_type = 'user' AND prompt_id IS NOT NULL""")


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
    lambda wh: _recompress(wh, "landing_transcript_line", "raw", "zstd"),
    # v3: the slim table and the view (see _LANDING_V3). Same columns to read, same values, same rows.
    _landing_v3,
    # v4: the session merge state (model v3) of the sessions landed so far, read from their lines once.
    _session_state_v4,
])
