"""Landing and model tables of the hooks source (Claude Code HTTP hooks and the ``cclens hook`` shim).

``landing_hook_event`` keeps every hook call that arrived, one row each, in arrival order (``seq``),
with the event time (``ts``: the server's clock, corrected for how long a spooled event waited on the
client). ``event_id`` is the shim's own id for command hooks (so a re-sent spool is stored once) and a
fresh id for HTTP hooks (Claude Code does not retry them). The ``hook_*`` tables are the model built
from it, incrementally and independent of arrival order. Prompts also land in the shared ``prompt``
table and tool calls in ``tool_use`` (``source = 'hooks'``).
"""

from ..migrations import register

register("hooks", [
    """
    CREATE SEQUENCE IF NOT EXISTS hook_event_seq;
    CREATE TABLE IF NOT EXISTS landing_hook_event (
        event_id      VARCHAR PRIMARY KEY,
        seq           BIGINT NOT NULL,      -- arrival order at this server
        event_name    VARCHAR NOT NULL,     -- hook_event_name as sent (unknown names kept)
        session_id    VARCHAR,
        prompt_id     VARCHAR,
        tool_use_id   VARCHAR,
        tool_name     VARCHAR,
        agent_id      VARCHAR,
        agent_type    VARCHAR,
        ts            TIMESTAMPTZ NOT NULL, -- when the event happened (see module doc)
        received_at   TIMESTAMPTZ NOT NULL,
        via           VARCHAR NOT NULL,     -- 'http' (HTTP hook) or 'command' (cclens hook shim)
        host          VARCHAR,              -- sent by the shim; NULL for HTTP hooks
        remote_addr   VARCHAR,
        raw           JSON,                 -- the payload; content fields removed unless capture_content
        omitted       VARCHAR[],            -- names of the content fields removed
        content_length INTEGER              -- length of the event's text (prompt, summary, delta …)
    );
    CREATE TABLE IF NOT EXISTS hook_session (
        session_id          VARCHAR PRIMARY KEY,
        host                VARCHAR,
        cwd                 VARCHAR,
        cwd_at              TIMESTAMPTZ,
        transcript_path     VARCHAR,
        permission_mode     VARCHAR,         -- the latest one seen
        permission_mode_at  TIMESTAMPTZ,
        model               VARCHAR,         -- SessionStart's optional model
        agent_type          VARCHAR,         -- SessionStart's agent_type (--agent)
        started_at          TIMESTAMPTZ,     -- the earliest SessionStart
        start_source        VARCHAR,         -- its source: startup / resume / clear / compact / fork
        start_count         INTEGER NOT NULL DEFAULT 0,
        ended_at            TIMESTAMPTZ,     -- the latest SessionEnd
        end_reason          VARCHAR,
        end_count           INTEGER NOT NULL DEFAULT 0,
        first_event_at      TIMESTAMPTZ,
        last_event_at       TIMESTAMPTZ,
        event_count         INTEGER NOT NULL DEFAULT 0,
        prompt_count        INTEGER NOT NULL DEFAULT 0,
        tool_use_count      INTEGER NOT NULL DEFAULT 0,
        subagent_count      INTEGER NOT NULL DEFAULT 0,
        compaction_count    INTEGER NOT NULL DEFAULT 0,
        notification_count  INTEGER NOT NULL DEFAULT 0,
        stop_failure_count  INTEGER NOT NULL DEFAULT 0,
        updated_at          TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS hook_tool_use (
        tool_use_id       VARCHAR PRIMARY KEY,
        session_id        VARCHAR,
        prompt_id         VARCHAR,
        agent_id          VARCHAR,          -- set when a subagent made the call
        agent_type        VARCHAR,
        tool_name         VARCHAR,
        permission_mode   VARCHAR,
        started_at        TIMESTAMPTZ,      -- PreToolUse
        finished_at       TIMESTAMPTZ,      -- PostToolUse / PostToolUseFailure / PermissionDenied
        batch_at          TIMESTAMPTZ,      -- PostToolBatch that reported it
        status            VARCHAR NOT NULL, -- running / success / failure / interrupted / denied / no_result
        duration_ms       BIGINT,           -- Claude Code's duration_ms, else finished_at - started_at
        reported_duration_ms BIGINT,
        error             VARCHAR,          -- failure text, only with capture_content
        updated_at        TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS hook_subagent (
        agent_id              VARCHAR PRIMARY KEY,
        session_id            VARCHAR,
        agent_type            VARCHAR,
        parent_tool_use_id    VARCHAR,      -- the Agent/Task tool call that spawned it, when unambiguous
        started_at            TIMESTAMPTZ,
        stopped_at            TIMESTAMPTZ,
        duration_ms           BIGINT,
        agent_transcript_path VARCHAR,
        tool_use_count        INTEGER NOT NULL DEFAULT 0,
        updated_at            TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS hook_compaction (
        compaction_id     VARCHAR PRIMARY KEY,   -- event_id of its PreCompact (or PostCompact if alone)
        session_id        VARCHAR,
        trigger           VARCHAR,               -- manual / auto
        started_at        TIMESTAMPTZ,
        finished_at       TIMESTAMPTZ,
        duration_ms       BIGINT,
        summary_length    INTEGER,
        updated_at        TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS hook_notification (
        event_id          VARCHAR PRIMARY KEY,
        session_id        VARCHAR,
        ts                TIMESTAMPTZ,
        notification_type VARCHAR,
        title             VARCHAR,
        message           VARCHAR
    );
    """,
])
