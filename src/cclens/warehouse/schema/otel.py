"""Landing and model tables of the OpenTelemetry source (``cclens serve`` OTLP receiver).

Landing: ``landing_otlp_request`` keeps every accepted request's payload with receiver, request id
and origin; ``otlp_duplicate`` records requests recognised as retries (same body) and not stored again.
Model: ``otel_event`` (one row per log record = Claude Code event, unknown events included),
``otel_point`` (metric datapoints; sums as deltas), ``otel_span`` (traces), ``otel_resource``.
Typed views (``otel_tool_result`` …) read ``otel_event`` defensively (numbers and booleans arrive as
strings or numbers). ``api_request``, ``prompt`` and ``tool_use`` (shared model) are upserted by
:mod:`cclens.model.otel`.
"""

from ..migrations import register

_EVENT_VIEWS = """
CREATE OR REPLACE MACRO cc_query_source_class(qs) AS
    CASE WHEN qs IS NULL THEN NULL
         WHEN qs IN ('main', 'subagent', 'auxiliary') THEN qs
         WHEN qs IN ('repl_main_thread', 'sdk') OR qs LIKE 'repl_main_thread%' THEN 'main'
         WHEN qs LIKE 'agent:%' OR qs = 'agent' THEN 'subagent'
         ELSE 'auxiliary' END;
CREATE OR REPLACE MACRO cc_normalize_model(m) AS regexp_replace(m, '\\[[0-9A-Za-z_]+\\]$', '');
CREATE OR REPLACE VIEW otel_api_request_event AS
SELECT request_id AS otlp_request_id, record_index, ts, session_id, prompt_id, user_id, sequence,
       attributes->>'request_id' AS request_id,
       cc_normalize_model(attributes->>'model') AS model, attributes->>'model' AS model_raw,
       TRY_CAST(attributes->>'input_tokens' AS BIGINT) AS input_tokens,
       TRY_CAST(attributes->>'output_tokens' AS BIGINT) AS output_tokens,
       TRY_CAST(attributes->>'cache_read_tokens' AS BIGINT) AS cache_read_tokens,
       TRY_CAST(attributes->>'cache_creation_tokens' AS BIGINT) AS cache_creation_tokens,
       TRY_CAST(attributes->>'cost_usd' AS DOUBLE) AS cost_usd,
       TRY_CAST(attributes->>'duration_ms' AS BIGINT) AS duration_ms,
       attributes->>'query_source' AS query_source,
       cc_query_source_class(attributes->>'query_source') AS query_source_class,
       attributes->>'speed' AS speed, attributes->>'effort' AS effort, attributes->>'agent.name' AS agent_name
FROM otel_event WHERE event_name = 'api_request';
CREATE OR REPLACE VIEW otel_user_prompt AS
SELECT request_id AS otlp_request_id, record_index, ts, session_id, prompt_id, user_id,
       TRY_CAST(attributes->>'prompt_length' AS BIGINT) AS prompt_length,
       attributes->>'command_name' AS command_name, attributes->>'command_source' AS command_source
FROM otel_event WHERE event_name = 'user_prompt';
CREATE OR REPLACE VIEW otel_tool_decision AS
SELECT request_id AS otlp_request_id, record_index, ts, session_id, prompt_id, user_id,
       attributes->>'tool_use_id' AS tool_use_id, attributes->>'tool_name' AS tool_name,
       attributes->>'decision' AS decision, attributes->>'source' AS decision_source,
       attributes->>'tool_source' AS tool_source
FROM otel_event WHERE event_name = 'tool_decision';
CREATE OR REPLACE VIEW otel_tool_result AS
SELECT request_id AS otlp_request_id, record_index, ts, session_id, prompt_id, user_id,
       attributes->>'tool_use_id' AS tool_use_id, attributes->>'tool_name' AS tool_name,
       lower(attributes->>'success') = 'true' AS success,
       TRY_CAST(attributes->>'duration_ms' AS BIGINT) AS duration_ms,
       attributes->>'error_type' AS error_type, attributes->>'decision_type' AS decision_type,
       attributes->>'decision_source' AS decision_source,
       TRY_CAST(attributes->>'tool_input_size_bytes' AS BIGINT) AS tool_input_size_bytes,
       TRY_CAST(attributes->>'tool_result_size_bytes' AS BIGINT) AS tool_result_size_bytes,
       attributes->>'mcp_server_scope' AS mcp_server_scope
FROM otel_event WHERE event_name = 'tool_result';
CREATE OR REPLACE VIEW otel_api_error AS
SELECT request_id AS otlp_request_id, record_index, ts, session_id, prompt_id, user_id,
       attributes->>'request_id' AS request_id,
       cc_normalize_model(attributes->>'model') AS model, attributes->>'error' AS error,
       TRY_CAST(attributes->>'status_code' AS INTEGER) AS status_code,
       TRY_CAST(attributes->>'duration_ms' AS BIGINT) AS duration_ms,
       TRY_CAST(attributes->>'attempt' AS INTEGER) AS attempt,
       attributes->>'query_source' AS query_source, event_name
FROM otel_event WHERE event_name IN ('api_error', 'api_retries_exhausted', 'api_refusal');
CREATE OR REPLACE VIEW otel_subagent AS
SELECT request_id AS otlp_request_id, record_index, ts, session_id, prompt_id, user_id,
       attributes->>'agent_type' AS agent_type, attributes->>'agent.source' AS agent_source,
       lower(attributes->>'is_built_in') = 'true' AS is_built_in,
       lower(attributes->>'is_async') = 'true' AS is_async,
       TRY_CAST(attributes->>'total_tokens' AS BIGINT) AS total_tokens,
       TRY_CAST(attributes->>'total_tool_uses' AS BIGINT) AS total_tool_uses,
       TRY_CAST(attributes->>'duration_ms' AS BIGINT) AS duration_ms,
       cc_normalize_model(attributes->>'model') AS model, attributes->>'model' AS model_raw
FROM otel_event WHERE event_name = 'subagent_completed';
CREATE OR REPLACE VIEW otel_hook_execution AS
SELECT request_id AS otlp_request_id, record_index, ts, session_id, prompt_id, user_id,
       CASE event_name WHEN 'hook_execution_start' THEN 'start' ELSE 'complete' END AS phase,
       attributes->>'hook_event' AS hook_event, attributes->>'hook_name' AS hook_name,
       TRY_CAST(attributes->>'num_hooks' AS INTEGER) AS num_hooks,
       TRY_CAST(attributes->>'num_success' AS INTEGER) AS num_success,
       TRY_CAST(attributes->>'num_blocking' AS INTEGER) AS num_blocking,
       TRY_CAST(attributes->>'num_non_blocking_error' AS INTEGER) AS num_non_blocking_error,
       TRY_CAST(attributes->>'num_cancelled' AS INTEGER) AS num_cancelled,
       TRY_CAST(attributes->>'total_duration_ms' AS BIGINT) AS total_duration_ms,
       attributes->>'hook_source' AS hook_source
FROM otel_event WHERE event_name IN ('hook_execution_start', 'hook_execution_complete');
CREATE OR REPLACE VIEW otel_session AS
WITH ev AS (
    SELECT session_id, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS events,
           count(*) FILTER (WHERE event_name = 'api_request') AS api_requests,
           count(*) FILTER (WHERE event_name = 'user_prompt') AS prompts,
           any_value(user_id) AS user_id, any_value(user_email) AS user_email,
           any_value(account_uuid) AS account_uuid, any_value(organization_id) AS organization_id
    FROM otel_event WHERE session_id IS NOT NULL GROUP BY session_id),
pt AS (
    SELECT session_id, min(ts) AS first_ts, max(ts) AS last_ts, any_value(user_id) AS user_id,
           max(attributes->>'start_type') FILTER (WHERE metric_name = 'claude_code.session.count') AS start_type
    FROM otel_point WHERE session_id IS NOT NULL GROUP BY session_id)
SELECT coalesce(ev.session_id, pt.session_id) AS session_id,
       least(ev.first_ts, pt.first_ts) AS first_ts, greatest(ev.last_ts, pt.last_ts) AS last_ts,
       coalesce(ev.events, 0) AS events, coalesce(ev.api_requests, 0) AS api_requests,
       coalesce(ev.prompts, 0) AS prompts, coalesce(ev.user_id, pt.user_id) AS user_id,
       ev.user_email, ev.account_uuid, ev.organization_id, pt.start_type,
       -- the throwaway id a `--continue` run starts under: session.count{start_type=continue} and
       -- start-up hooks only, never an api_request or prompt (docs/sources/otel.md)
       (pt.start_type = 'continue' AND coalesce(ev.api_requests, 0) = 0 AND coalesce(ev.prompts, 0) = 0)
           AS transient
FROM ev FULL OUTER JOIN pt ON ev.session_id = pt.session_id;
CREATE OR REPLACE VIEW otel_continue_link AS
SELECT t.session_id AS transient_session_id, t.user_id, t.first_ts,
       (SELECT e.session_id FROM otel_event e
         WHERE e.user_id = t.user_id AND e.session_id <> t.session_id
           AND e.ts >= t.first_ts AND e.ts <= t.last_ts + INTERVAL 10 MINUTE
           AND e.event_name IN ('user_prompt', 'api_request')
         ORDER BY e.ts LIMIT 1) AS resumed_session_id
FROM otel_session t WHERE t.transient;
"""

_SESSION_VIEWS_V3 = """
CREATE OR REPLACE VIEW otel_session AS
WITH ev AS (
    SELECT session_id, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS events,
           count(*) FILTER (WHERE event_name = 'api_request') AS api_requests,
           count(*) FILTER (WHERE event_name = 'user_prompt') AS prompts,
           any_value(user_id) AS user_id, any_value(user_email) AS user_email,
           any_value(account_uuid) AS account_uuid, any_value(organization_id) AS organization_id
    FROM otel_event WHERE session_id IS NOT NULL GROUP BY session_id),
pt AS (
    SELECT session_id, min(coalesce(start_ts, ts)) AS first_ts, max(ts) AS last_ts, any_value(user_id) AS user_id,
           max(attributes->>'start_type') FILTER (WHERE metric_name = 'claude_code.session.count') AS start_type
    FROM otel_point WHERE session_id IS NOT NULL GROUP BY session_id)
SELECT coalesce(ev.session_id, pt.session_id) AS session_id,
       least(ev.first_ts, pt.first_ts) AS first_ts, greatest(ev.last_ts, pt.last_ts) AS last_ts,
       coalesce(ev.events, 0) AS events, coalesce(ev.api_requests, 0) AS api_requests,
       coalesce(ev.prompts, 0) AS prompts, coalesce(ev.user_id, pt.user_id) AS user_id,
       ev.user_email, ev.account_uuid, ev.organization_id, pt.start_type,
       (pt.start_type = 'continue' AND coalesce(ev.api_requests, 0) = 0 AND coalesce(ev.prompts, 0) = 0)
           AS transient
FROM ev FULL OUTER JOIN pt ON ev.session_id = pt.session_id;
CREATE OR REPLACE VIEW otel_continue_link AS
SELECT t.session_id AS transient_session_id, t.user_id, t.first_ts,
       (SELECT e.session_id FROM otel_event e
         WHERE e.user_id = t.user_id AND e.session_id <> t.session_id
           AND e.ts >= t.first_ts - INTERVAL 5 SECOND AND e.ts <= t.last_ts + INTERVAL 10 MINUTE
           AND e.event_name IN ('user_prompt', 'api_request')
         ORDER BY (SELECT min(p.ts) FROM otel_event p WHERE p.session_id = e.session_id) >= t.first_ts,
                  e.ts
         LIMIT 1) AS resumed_session_id
FROM otel_session t WHERE t.transient;
"""

register("otel", [
    """
    CREATE TABLE IF NOT EXISTS landing_otlp_request (
        request_id      VARCHAR PRIMARY KEY,   -- assigned on receipt (uuid); in logs and the spool
        receiver        VARCHAR NOT NULL,      -- http | grpc
        signal          VARCHAR NOT NULL,      -- logs | metrics | traces
        received_at     TIMESTAMPTZ NOT NULL,
        content_type    VARCHAR,
        content_encoding VARCHAR,
        user_agent      VARCHAR,
        peer            VARCHAR,
        token_id        VARCHAR,
        body_sha256     VARCHAR NOT NULL,      -- of the decoded body: a retried request has the same
        payload         BLOB,                  -- the body as received (decompressed), or redacted protobuf
        payload_format  VARCHAR,               -- protobuf | json
        redacted        BOOLEAN NOT NULL DEFAULT false,
        record_count    INTEGER,
        rejected_count  INTEGER,
        spool_segment   BIGINT,
        spool_offset    BIGINT,
        ingested_at     TIMESTAMPTZ NOT NULL
    );
    CREATE UNIQUE INDEX IF NOT EXISTS landing_otlp_request_body ON landing_otlp_request (body_sha256);
    CREATE TABLE IF NOT EXISTS otlp_duplicate (
        request_id      VARCHAR NOT NULL,
        body_sha256     VARCHAR NOT NULL,
        receiver        VARCHAR,
        signal          VARCHAR,
        received_at     TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS spool_position (
        spool           VARCHAR PRIMARY KEY,
        segment         BIGINT NOT NULL,
        byte_offset     BIGINT NOT NULL,
        updated_at      TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS otel_resource (
        resource_hash   VARCHAR PRIMARY KEY,
        service_name    VARCHAR,
        service_version VARCHAR,
        host_name       VARCHAR,
        os_type         VARCHAR,
        attributes      JSON,
        first_seen      TIMESTAMPTZ
    );
    CREATE TABLE IF NOT EXISTS otel_event (
        request_id      VARCHAR NOT NULL,      -- landing_otlp_request.request_id
        record_index    INTEGER NOT NULL,      -- position of the record in that request
        event_name      VARCHAR,               -- event.name, else the body without 'claude_code.'
        ts              TIMESTAMPTZ,
        observed_ts     TIMESTAMPTZ,
        session_id      VARCHAR,
        prompt_id       VARCHAR,
        user_id         VARCHAR,
        user_email      VARCHAR,
        account_uuid    VARCHAR,
        organization_id VARCHAR,
        sequence        BIGINT,
        severity_number INTEGER,
        severity_text   VARCHAR,
        body            VARCHAR,
        trace_id        VARCHAR,
        span_id         VARCHAR,
        scope_name      VARCHAR,
        resource_hash   VARCHAR,
        attributes      JSON                   -- every other attribute; content redacted unless capture_content
    );
    CREATE TABLE IF NOT EXISTS otel_point (
        request_id      VARCHAR NOT NULL,
        metric_name     VARCHAR NOT NULL,
        unit            VARCHAR,
        kind            VARCHAR,               -- sum | gauge | histogram | exponential_histogram | summary
        temporality     VARCHAR,               -- delta | cumulative | unspecified
        is_monotonic    BOOLEAN,
        start_ts        TIMESTAMPTZ,
        ts              TIMESTAMPTZ,
        value           DOUBLE,                -- sums: the delta for this window; gauges: the value
        value_raw       DOUBLE,                -- as sent (a running total for cumulative sums)
        is_reset        BOOLEAN,               -- cumulative series restarted (new start time or decrease)
        series_key      VARCHAR,
        session_id      VARCHAR,
        user_id         VARCHAR,
        model           VARCHAR,               -- normalised: '[1m]' suffix removed
        model_raw       VARCHAR,
        type            VARCHAR,               -- the 'type' attribute (input/output/cacheRead/…)
        query_source    VARCHAR,               -- as sent: main | subagent | auxiliary
        resource_hash   VARCHAR,
        scope_name      VARCHAR,
        attributes      JSON,
        data            JSON                   -- histogram/summary buckets
    );
    CREATE TABLE IF NOT EXISTS otel_series_state (
        series_key      VARCHAR PRIMARY KEY,
        start_ns        BIGINT,
        last_ns         BIGINT,
        last_value      DOUBLE
    );
    CREATE TABLE IF NOT EXISTS otel_span (
        request_id      VARCHAR NOT NULL,
        trace_id        VARCHAR,
        span_id         VARCHAR,
        parent_span_id  VARCHAR,
        name            VARCHAR,
        kind            INTEGER,
        start_ts        TIMESTAMPTZ,
        end_ts          TIMESTAMPTZ,
        duration_ms     DOUBLE,
        status_code     INTEGER,
        status_message  VARCHAR,
        session_id      VARCHAR,
        scope_name      VARCHAR,
        resource_hash   VARCHAR,
        attributes      JSON,
        events          JSON
    );
    """ + _EVENT_VIEWS,
    # v2: payloads are stored deflated; attributes promoted to otel_event columns leave its JSON
    "ALTER TABLE landing_otlp_request ADD COLUMN IF NOT EXISTS payload_encoding VARCHAR",
    # v3: a session seen through metrics starts at the points' start time (a point's time is when it was
    # exported, after the events it counts); --continue links prefer the session that already existed.
    _SESSION_VIEWS_V3,
])
