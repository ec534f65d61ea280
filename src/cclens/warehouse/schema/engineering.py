"""Engineering data: Git, GitHub, Jira and CI, and the lineage joining them to Claude Code sessions.

Identifiers are chosen so that sources meet without a lookup:

- ``repo_id`` is ``<host>/<owner>/<name>`` in lower case when the repository has a known remote
  (``github.com/acme/api``; a local clone's ``origin`` and the GitHub API give the same id), else
  ``local:<absolute path>``.
- a commit is ``(repo_id, sha)``; lineage refers to it by ``sha`` (forks share SHAs, so a link is
  about the change, wherever it lives).
- a pull request is ``pr_id = <repo_id>#<number>``; an issue is its key (``PROJ-12``); CI runs and
  deployments are the provider's id as text.

Writes are delete-then-insert by natural key inside one transaction per unit (no primary keys:
DuckDB's indexes cost memory and bulk-insert time for nothing here). Identities seen in each system
(git emails, GitHub logins, Jira accounts) are listed in ``eng_identity`` for the people model to link.

``lineage_link`` holds every derived link (session → commit → pull request → issue, → CI run,
→ deployment) with how it was made: ``method`` exact | inferred, a ``confidence`` in [0, 1] and the
``evidence`` (JSON). :mod:`cclens.model.lineage` rebuilds it; see docs/lineage.md.
"""

from ..migrations import register

register("engineering", [
    """
    CREATE TABLE IF NOT EXISTS repository (
        repo_id          VARCHAR NOT NULL,   -- host/owner/name (lower case) or local:<path>
        host             VARCHAR,
        full_name        VARCHAR,            -- owner/name as the host spells it
        name             VARCHAR,
        local_path       VARCHAR,            -- the clone cclens reads (git source)
        remote_url       VARCHAR,            -- origin, credentials removed
        default_branch   VARCHAR,
        github_id        BIGINT,
        private          BOOLEAN,
        archived         BOOLEAN,
        created_at       TIMESTAMPTZ,
        pushed_at        TIMESTAMPTZ,
        updated_at       TIMESTAMPTZ,
        git_synced_at    TIMESTAMPTZ,
        github_synced_at TIMESTAMPTZ
    );
    CREATE TABLE IF NOT EXISTS commit (
        repo_id          VARCHAR NOT NULL,
        sha              VARCHAR NOT NULL,
        parents          VARCHAR[],
        is_merge         BOOLEAN NOT NULL,
        author_name      VARCHAR,
        author_email     VARCHAR,            -- lower case
        author_ts        TIMESTAMPTZ,
        author_tz_min    SMALLINT,           -- the author's UTC offset in minutes
        committer_name   VARCHAR,
        committer_email  VARCHAR,
        committer_ts     TIMESTAMPTZ,
        committer_tz_min SMALLINT,
        subject          VARCHAR,
        message          VARCHAR,            -- the full message (git metadata, not Claude Code content)
        trailers         JSON,               -- [[key, value], ...] from the message's last paragraph
        co_authors       VARCHAR[],          -- Co-authored-by values
        claude_coauthor  BOOLEAN NOT NULL,   -- a Co-authored-by trailer names Claude
        claude_marker    BOOLEAN NOT NULL,   -- "Generated with Claude Code" in the message
        files_changed    INTEGER,            -- NULL for merges (git shows no diff for them)
        lines_added      BIGINT,             -- text files only
        lines_deleted    BIGINT,
        binary_files     INTEGER,
        source_ref       VARCHAR,            -- the ref the commit was first reached from (git log --source)
        reachable        BOOLEAN NOT NULL,   -- false once no ref reaches it (history rewritten, branch gone)
        unreachable_at   TIMESTAMPTZ,
        first_seen_at    TIMESTAMPTZ NOT NULL,
        updated_at       TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS commit_file (
        repo_id          VARCHAR NOT NULL,
        sha              VARCHAR NOT NULL,
        path             VARCHAR NOT NULL,   -- the path after the commit
        old_path         VARCHAR,            -- set for renames and copies
        lines_added      INTEGER,            -- NULL for binary files
        lines_deleted    INTEGER,
        is_binary        BOOLEAN NOT NULL
    );
    CREATE TABLE IF NOT EXISTS pull_request (
        pr_id            VARCHAR NOT NULL,   -- repo_id#number
        repo_id          VARCHAR NOT NULL,
        number           INTEGER NOT NULL,
        github_id        BIGINT,
        title            VARCHAR,
        state            VARCHAR,            -- open | closed
        draft            BOOLEAN,
        author_login     VARCHAR,
        head_ref         VARCHAR,
        head_sha         VARCHAR,
        base_ref         VARCHAR,
        labels           VARCHAR[],
        created_at       TIMESTAMPTZ,        -- opened
        updated_at       TIMESTAMPTZ,
        closed_at        TIMESTAMPTZ,
        merged_at        TIMESTAMPTZ,
        merge_commit_sha VARCHAR,
        first_commit_at  TIMESTAMPTZ,        -- earliest author time of its commits
        first_review_at  TIMESTAMPTZ,        -- earliest submitted review by someone other than the author
        first_approval_at TIMESTAMPTZ,
        approvals        INTEGER,
        reviews          INTEGER,
        commits          INTEGER,
        synced_at        TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS pr_commit (
        pr_id            VARCHAR NOT NULL,
        repo_id          VARCHAR NOT NULL,
        number           INTEGER NOT NULL,
        sha              VARCHAR NOT NULL,
        author_login     VARCHAR,
        author_email     VARCHAR,
        author_ts        TIMESTAMPTZ,
        committer_ts     TIMESTAMPTZ,
        message          VARCHAR
    );
    CREATE TABLE IF NOT EXISTS review (
        pr_id            VARCHAR NOT NULL,
        review_id        BIGINT NOT NULL,
        reviewer_login   VARCHAR,
        state            VARCHAR,            -- APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING
        submitted_at     TIMESTAMPTZ,
        commit_sha       VARCHAR
    );
    CREATE TABLE IF NOT EXISTS ci_run (
        run_id           VARCHAR NOT NULL,
        provider         VARCHAR NOT NULL,   -- github_actions
        repo_id          VARCHAR NOT NULL,
        workflow_id      BIGINT,
        workflow_name    VARCHAR,
        event            VARCHAR,
        status           VARCHAR,            -- queued | in_progress | completed …
        conclusion       VARCHAR,            -- success | failure | cancelled …
        head_sha         VARCHAR,
        head_branch      VARCHAR,
        run_attempt      INTEGER,
        pr_numbers       INTEGER[],
        actor_login      VARCHAR,
        created_at       TIMESTAMPTZ,
        started_at       TIMESTAMPTZ,
        updated_at       TIMESTAMPTZ
    );
    CREATE TABLE IF NOT EXISTS deployment (
        deployment_id    VARCHAR NOT NULL,
        provider         VARCHAR NOT NULL,   -- github
        repo_id          VARCHAR NOT NULL,
        environment      VARCHAR,
        sha              VARCHAR,
        ref              VARCHAR,
        task             VARCHAR,
        creator_login    VARCHAR,
        created_at       TIMESTAMPTZ,
        updated_at       TIMESTAMPTZ,
        status           VARCHAR,            -- latest status: success | failure | error | inactive | in_progress …
        status_at        TIMESTAMPTZ,
        succeeded_at     TIMESTAMPTZ,        -- first success status
        failed           BOOLEAN             -- any failure or error status (NULL: no status yet)
    );
    CREATE TABLE IF NOT EXISTS github_team (
        org              VARCHAR NOT NULL,
        slug             VARCHAR NOT NULL,
        name             VARCHAR,
        parent_slug      VARCHAR,
        synced_at        TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS github_team_member (
        org              VARCHAR NOT NULL,
        team_slug        VARCHAR NOT NULL,
        login            VARCHAR NOT NULL,
        role             VARCHAR,
        synced_at        TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS issue (
        issue_key        VARCHAR NOT NULL,   -- PROJ-12
        provider         VARCHAR NOT NULL,   -- jira
        issue_id         VARCHAR,
        project_key      VARCHAR,
        summary          VARCHAR,
        issue_type       VARCHAR,
        status           VARCHAR,
        status_category  VARCHAR,            -- new | indeterminate | done
        priority         VARCHAR,
        assignee_id      VARCHAR,            -- Jira accountId
        assignee_name    VARCHAR,
        reporter_id      VARCHAR,
        sprints          VARCHAR[],
        labels           VARCHAR[],
        parent_key       VARCHAR,
        created_at       TIMESTAMPTZ,
        updated_at       TIMESTAMPTZ,
        resolved_at      TIMESTAMPTZ,
        first_in_progress_at TIMESTAMPTZ,    -- first transition into an "indeterminate" status
        synced_at        TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS issue_transition (
        issue_key        VARCHAR NOT NULL,
        history_id       VARCHAR NOT NULL,
        ts               TIMESTAMPTZ,
        from_status      VARCHAR,
        to_status        VARCHAR,
        author_id        VARCHAR
    );
    CREATE TABLE IF NOT EXISTS eng_identity (
        system           VARCHAR NOT NULL,   -- git | github | jira
        identity         VARCHAR NOT NULL,   -- email (git), login (github), accountId (jira)
        display_name     VARCHAR,
        email            VARCHAR,
        first_seen       TIMESTAMPTZ,
        last_seen        TIMESTAMPTZ
    );
    CREATE TABLE IF NOT EXISTS landing_eng_page (
        source           VARCHAR NOT NULL,   -- github | jira
        url              VARCHAR NOT NULL,   -- no credentials, query included
        status           INTEGER NOT NULL,   -- 200, or 304 (not modified: no body)
        etag             VARCHAR,
        payload_hash     VARCHAR,
        payload          VARCHAR,            -- the body as received
        fetched_at       TIMESTAMPTZ NOT NULL,
        run_id           VARCHAR
    );
    CREATE TABLE IF NOT EXISTS http_validator (
        url              VARCHAR NOT NULL,   -- the exact URL (query included) an ETag belongs to
        etag             VARCHAR,
        last_modified    VARCHAR,
        updated_at       TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS lineage_link (
        from_type        VARCHAR NOT NULL,   -- session | commit | pull_request | issue
        from_id          VARCHAR NOT NULL,
        to_type          VARCHAR NOT NULL,   -- commit | pull_request | issue | ci_run | deployment
        to_id            VARCHAR NOT NULL,
        kind             VARCHAR NOT NULL,   -- e.g. session_commit, commit_pr, pr_issue
        method           VARCHAR NOT NULL,   -- exact | inferred
        confidence       DOUBLE NOT NULL,
        evidence         JSON,
        built_at         TIMESTAMPTZ NOT NULL
    );
    """,
    # v2: the engineering identities in the shape of the people model's observed identities
    # (source, kind, value, first_day, last_day, hint_email), ready to union into its list
    """
    CREATE OR REPLACE VIEW eng_observed_identity AS
    SELECT system AS source,
           CASE system WHEN 'git' THEN 'git_email' WHEN 'github' THEN 'github_login' ELSE 'jira_id' END AS kind,
           CASE WHEN system IN ('git', 'github') THEN lower(identity) ELSE identity END AS value,
           min(first_seen)::DATE AS first_day, max(last_seen)::DATE AS last_day,
           any_value(lower(email)) FILTER (WHERE email IS NOT NULL) AS hint_email
    FROM eng_identity GROUP BY ALL
    """,
])
