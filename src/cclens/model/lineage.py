"""Lineage: which Claude Code session made which commit, which pull request holds it, which ticket
it serves, which CI runs tested it and which deployment shipped it. Every link says how it was made.

::

    stats = rebuild_lineage(wh)       # recompute every link (one transaction; seconds on large data)
    links_of(wh, "session", sid)       # what one session led to
    links_of(wh, "commit", sha, direction="to")

Links (``lineage_link``; ``method`` exact | inferred, ``confidence`` in [0, 1], ``evidence`` JSON):

========================= ========= ===========================================================
kind                       method    how
========================= ========= ===========================================================
session_commit             exact     a Bash tool call of the session committed it: the hook's
                                     ``tool_response.gitOperation.commit.sha`` (or its stdout
                                     ``[branch abc1234] …``), the transcript's
                                     ``toolUseResult.gitOperation``, or OTel ``tool_result``
                                     ``tool_parameters.git_commit_id``; the short SHA resolved to
                                     one commit of a repository (the one under the session's cwd
                                     when several match). Needs content capture (docs/lineage.md).
session_commit             inferred  the commit's time falls inside a Bash tool call of a session
                                     working in that repository (0.85; 0.95 when the session's
                                     OTel ``claude_code.commit.count`` went up then), else inside
                                     the session's active span in that repository (0.35, +0.15
                                     same branch, +0.25 Claude Code trailer, capped at 0.75).
                                     Bash calls whose commit is known exactly are not reused.
commit_pr                  exact     the pull request lists the commit (GitHub PR commits), or
                                     merged it as its merge commit
pr_issue / commit_issue    exact     the issue key (``PROJ-12``, an issue cclens has synced) is in
                                     the branch name or title (1.0) or a commit message (0.9)
commit_ci_run / pr_ci_run  exact     the run's head SHA is the commit / the PR's head; or the run
                                     names the pull request
pr_deployment              exact     the deployment's SHA is the PR's merge commit (or head)
pr_deployment              inferred  the first successful production deployment of the repository
                                     after the merge (0.7)
========================= ========= ===========================================================

A commit is **attributed** to Claude Code when it has an exact session link, or an inferred one with
confidence >= :data:`ATTRIBUTION_THRESHOLD`. The rebuild is deterministic: the same warehouse gives
the same links.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

UTC = timezone.utc
ATTRIBUTION_THRESHOLD = 0.5
KEY_RE = r"[A-Z][A-Z0-9_]{1,9}-[1-9][0-9]{0,6}"
# the commit line git prints: "[main 1a2b3c4] subject", "[main (root-commit) 1a2b3c4] …", "[detached HEAD …]"
_STDOUT_SHA = r"\[[^\]\n]* ([0-9a-f]{7,40})\] "
PRODUCTION_ENV = ("lower(environment) IN ('production', 'prod', 'live') OR lower(environment) LIKE 'prod%' "
                  "OR lower(environment) LIKE '%-production' OR lower(environment) LIKE '%/production'")

# Evidence of a Bash call that committed: (session, short sha, source, tool use, when, cwd).
_EVIDENCE = f"""
    SELECT session_id, lower(coalesce(
               raw->'tool_response'->'gitOperation'->'commit'->>'sha',
               CASE WHEN raw->'tool_input'->>'command' LIKE '%git%'
                    THEN nullif(regexp_extract(raw->'tool_response'->>'stdout', '{_STDOUT_SHA}', 1), '') END)) AS short_sha,
           'hooks' AS source, tool_use_id, ts, raw->>'cwd' AS cwd
    FROM landing_hook_event
    WHERE event_name = 'PostToolUse' AND tool_name = 'Bash' AND session_id IS NOT NULL
      AND json_exists(raw, '$.tool_response')
    UNION ALL
    SELECT session_id, lower(coalesce(
               raw->'toolUseResult'->'gitOperation'->'commit'->>'sha',
               nullif(regexp_extract(raw->'toolUseResult'->>'stdout', '{_STDOUT_SHA}', 1), ''))) AS short_sha,
           'transcripts', raw->'message'->'content'->0->>'tool_use_id', ts, cwd
    FROM landing_transcript_line
    WHERE record_type = 'user' AND session_id IS NOT NULL AND json_exists(raw, '$.toolUseResult')
    UNION ALL
    SELECT session_id, lower(CASE WHEN json_valid(attributes->>'tool_parameters')
                                  THEN json_extract_string(attributes->>'tool_parameters', '$.git_commit_id') END),
           'otel', attributes->>'tool_use_id', ts, NULL
    FROM otel_event
    WHERE event_name = 'tool_result' AND session_id IS NOT NULL
      AND attributes->>'tool_parameters' LIKE '{{%git_commit_id%'
"""

# Where each session worked: its working directory and branch, and when it was active.
_SESSION = """
    SELECT session_id, any_value(cwd) FILTER (WHERE cwd IS NOT NULL) AS cwd,
           any_value(git_branch) FILTER (WHERE git_branch IS NOT NULL AND git_branch <> 'HEAD') AS branch,
           min(first_ts) AS first_ts, max(last_ts) AS last_ts
    FROM (
        SELECT session_id, cwd, git_branch, first_ts, last_ts FROM session
        UNION ALL SELECT session_id, cwd, NULL, first_event_at, last_event_at FROM hook_session
        UNION ALL SELECT session_id, cwd, git_branch, min(ts), max(ts) FROM api_request
                  WHERE session_id IS NOT NULL GROUP BY ALL)
    WHERE session_id IS NOT NULL GROUP BY session_id
"""


def _repo_of_cwd(cwd: str, path: str) -> str:
    """SQL: the working directory ``cwd`` is the clone at ``path`` or inside it."""
    return f"({cwd} = {path} OR starts_with({cwd}, {path} || '/'))"


def rebuild_lineage(wh: Any, *, now: datetime | None = None) -> dict[str, int]:
    """Recompute every link in one transaction; returns the number of links by kind and method."""
    now = now or datetime.now(UTC)
    with wh.transaction():
        wh.execute("DELETE FROM lineage_link")
        for step in (_session_commit_exact, _session_commit_inferred, _commit_pr, _issues, _ci_runs,
                     _deployments):
            step(wh, now)
        rows = wh.query("SELECT kind, method, count(*) AS n FROM lineage_link GROUP BY ALL ORDER BY ALL")
    return {f"{r['kind']}:{r['method']}": int(r["n"]) for r in rows}


def _session_commit_exact(wh: Any, now: datetime) -> None:
    wh.execute(f"""
        INSERT INTO lineage_link
        WITH ev AS (SELECT * FROM ({_EVIDENCE}) WHERE short_sha IS NOT NULL AND length(short_sha) >= 7),
        sess AS ({_SESSION}),
        cand AS (
            SELECT ev.*, c.sha, c.repo_id, r.local_path,
                   CASE WHEN r.local_path IS NOT NULL AND coalesce(ev.cwd, s.cwd) IS NOT NULL
                             AND {_repo_of_cwd('coalesce(ev.cwd, s.cwd)', 'r.local_path')} THEN 1 ELSE 0 END AS in_cwd
            FROM ev JOIN commit c ON left(c.sha, 7) = left(ev.short_sha, 7) AND starts_with(c.sha, ev.short_sha)
            LEFT JOIN repository r ON r.repo_id = c.repo_id
            LEFT JOIN sess s ON s.session_id = ev.session_id),
        -- prefer commits of the repository the session worked in; drop a short SHA that still means
        -- two different commits
        best AS (SELECT * FROM cand QUALIFY in_cwd = max(in_cwd) OVER (PARTITION BY session_id, short_sha)),
        unique_sha AS (SELECT session_id, short_sha FROM best GROUP BY ALL HAVING count(DISTINCT sha) = 1)
        SELECT 'session', b.session_id, 'commit', b.sha, 'session_commit', 'exact', 1.0,
               json_object('sources', list_sort(list(DISTINCT b.source)),
                           'tool_use_ids', list_sort(list(DISTINCT b.tool_use_id) FILTER (WHERE b.tool_use_id IS NOT NULL)),
                           'short_sha', min(b.short_sha), 'repo_ids', list_sort(list(DISTINCT b.repo_id)),
                           'at', min(b.ts)), ?
        FROM best b JOIN unique_sha u USING (session_id, short_sha)
        GROUP BY b.session_id, b.sha
    """, [now])


def _session_commit_inferred(wh: Any, now: datetime) -> None:
    """Commits with no exact link, matched to sessions working in their repository at that time.

    Joins go through time buckets (minutes for tool calls, days for sessions) on the repository, so
    the cost grows with the data, not with commits × sessions.
    """
    wh.execute(f"""
        INSERT INTO lineage_link
        WITH sess AS ({_SESSION}),
        sess_repo AS (SELECT s.*, r.repo_id FROM sess s JOIN repository r
                      ON r.local_path IS NOT NULL AND s.cwd IS NOT NULL AND {_repo_of_cwd('s.cwd', 'r.local_path')}),
        linked AS (SELECT DISTINCT to_id AS sha FROM lineage_link WHERE kind = 'session_commit'),
        c AS (SELECT c.sha, c.repo_id, c.committer_ts, c.claude_coauthor OR c.claude_marker AS claude_trailer,
                     regexp_replace(coalesce(c.source_ref, ''), '^refs/(heads|remotes/[^/]+)/', '') AS branch
              FROM commit c
              WHERE NOT c.is_merge AND c.committer_ts IS NOT NULL
                AND c.repo_id IN (SELECT repo_id FROM sess_repo) AND c.sha NOT IN (SELECT sha FROM linked)),
        -- Bash calls whose commit is known exactly are not used to guess other commits
        exact_tools AS (SELECT DISTINCT unnest(from_json(evidence->'tool_use_ids', '["VARCHAR"]')) AS tool_use_id
                        FROM lineage_link WHERE kind = 'session_commit' AND method = 'exact'),
        bash AS (SELECT tool_use_id, any_value(session_id) AS session_id,
                        date_trunc('second', min(ts)) - INTERVAL 1 SECOND AS lo,
                        max(coalesce(result_ts, ts)) + INTERVAL 1 SECOND AS hi, list_sort(list(DISTINCT source)) AS sources
                 FROM tool_use WHERE tool_name = 'Bash' AND session_id IS NOT NULL
                   AND tool_use_id NOT IN (SELECT tool_use_id FROM exact_tools) GROUP BY tool_use_id),
        bash_min AS (SELECT b.*, s.repo_id, s.branch,
                            unnest(generate_series(date_trunc('minute', b.lo), date_trunc('minute', b.hi),
                                                   INTERVAL 1 MINUTE)) AS minute
                     FROM bash b JOIN sess_repo s USING (session_id)),
        counted AS (SELECT session_id, coalesce(start_ts, ts - INTERVAL 5 MINUTE) AS lo, ts AS hi FROM otel_point
                    WHERE metric_name = 'claude_code.commit.count' AND value > 0 AND session_id IS NOT NULL),
        by_tool AS (
            SELECT DISTINCT c.sha, b.session_id, 'tool_window' AS rule, b.tool_use_id, b.sources,
                   EXISTS (SELECT 1 FROM counted k WHERE k.session_id = b.session_id AND k.hi >= b.lo
                           AND k.lo <= b.hi) AS counted,
                   c.claude_trailer, b.branch = c.branch AS same_branch
            FROM c JOIN bash_min b ON b.repo_id = c.repo_id AND b.minute = date_trunc('minute', c.committer_ts)
            WHERE c.committer_ts BETWEEN b.lo AND b.hi),
        sess_day AS (SELECT s.*, unnest(generate_series(date_trunc('day', s.first_ts),
                                                        date_trunc('day', s.last_ts + INTERVAL 5 MINUTE),
                                                        INTERVAL 1 DAY)) AS day
                     FROM sess_repo s WHERE s.first_ts IS NOT NULL),
        by_session AS (
            SELECT DISTINCT c.sha, s.session_id, 'session_window' AS rule, NULL::VARCHAR AS tool_use_id,
                   []::VARCHAR[] AS sources, false AS counted, c.claude_trailer, s.branch = c.branch AS same_branch
            FROM c JOIN sess_day s ON s.repo_id = c.repo_id AND s.day = date_trunc('day', c.committer_ts)
            WHERE c.committer_ts BETWEEN date_trunc('second', s.first_ts) AND s.last_ts + INTERVAL 5 MINUTE),
        scored AS (
            SELECT *, CASE WHEN rule = 'tool_window' THEN CASE WHEN counted THEN 0.95 ELSE 0.85 END
                           ELSE least(0.75, 0.35 + CASE WHEN coalesce(same_branch, false) THEN 0.15 ELSE 0 END
                                          + CASE WHEN claude_trailer THEN 0.25 ELSE 0 END) END AS confidence
            FROM (SELECT * FROM by_tool UNION ALL SELECT * FROM by_session))
        SELECT 'session', session_id, 'commit', sha, 'session_commit', 'inferred', max(confidence),
               json_object('rule', arg_max(rule, confidence), 'tool_use_id', arg_max(tool_use_id, confidence),
                           'tool_sources', arg_max(sources, confidence),
                           'commit_count_metric', bool_or(counted), 'same_branch', coalesce(bool_or(same_branch), false),
                           'claude_trailer', bool_or(claude_trailer)), ?
        FROM scored GROUP BY session_id, sha
    """, [now])


def _commit_pr(wh: Any, now: datetime) -> None:
    wh.execute("""
        INSERT INTO lineage_link
        SELECT 'commit', sha, 'pull_request', pr_id, 'commit_pr', 'exact', 1.0,
               json_object('how', list_sort(list(DISTINCT how))), ?
        FROM (SELECT sha, pr_id, 'pr_commits' AS how FROM pr_commit
              UNION ALL SELECT merge_commit_sha, pr_id, 'merge_commit' FROM pull_request
              WHERE merge_commit_sha IS NOT NULL)
        GROUP BY sha, pr_id
    """, [now])


def _issues(wh: Any, now: datetime) -> None:
    wh.execute(f"""
        INSERT INTO lineage_link
        WITH known AS (SELECT DISTINCT issue_key FROM issue),
        refs AS (
            SELECT 'pull_request' AS t, pr_id AS id, unnest(regexp_extract_all(coalesce(head_ref, ''), '{KEY_RE}')) AS k,
                   'branch' AS place FROM pull_request
            UNION ALL SELECT 'pull_request', pr_id, unnest(regexp_extract_all(coalesce(title, ''), '{KEY_RE}')), 'title'
            FROM pull_request
            UNION ALL SELECT 'pull_request', pr_id, unnest(regexp_extract_all(coalesce(message, ''), '{KEY_RE}')),
                             'commit_message' FROM pr_commit
            UNION ALL SELECT 'commit', sha, unnest(regexp_extract_all(coalesce(message, ''), '{KEY_RE}')),
                             'commit_message' FROM commit
            UNION ALL SELECT 'commit', sha, unnest(regexp_extract_all(
                          regexp_replace(coalesce(source_ref, ''), '^refs/(heads|remotes/[^/]+|tags)/', ''), '{KEY_RE}')),
                             'branch' FROM commit)
        SELECT t, id, 'issue', k, CASE t WHEN 'commit' THEN 'commit_issue' ELSE 'pr_issue' END, 'exact',
               max(CASE WHEN place = 'commit_message' THEN 0.9 ELSE 1.0 END),
               json_object('found_in', list_sort(list(DISTINCT place))), ?
        FROM refs WHERE k IN (SELECT issue_key FROM known)
        GROUP BY t, id, k
    """, [now])


def _ci_runs(wh: Any, now: datetime) -> None:
    wh.execute("""
        INSERT INTO lineage_link
        SELECT 'commit', head_sha, 'ci_run', run_id, 'commit_ci_run', 'exact', 1.0,
               json_object('workflow', workflow_name, 'conclusion', conclusion), ?
        FROM ci_run WHERE head_sha IS NOT NULL
    """, [now])
    wh.execute("""
        INSERT INTO lineage_link
        SELECT 'pull_request', pr_id, 'ci_run', run_id, 'pr_ci_run', 'exact', 1.0,
               json_object('how', list_sort(list(DISTINCT how))), ?
        FROM (SELECT p.pr_id, r.run_id, 'head_sha' AS how FROM pull_request p
              JOIN ci_run r ON r.repo_id = p.repo_id AND r.head_sha = p.head_sha
              UNION ALL
              SELECT p.pr_id, r.run_id, 'pull_requests'
              FROM (SELECT run_id, repo_id, unnest(pr_numbers) AS number FROM ci_run) r
              JOIN pull_request p ON p.repo_id = r.repo_id AND p.number = r.number)
        GROUP BY pr_id, run_id
    """, [now])


def _deployments(wh: Any, now: datetime) -> None:
    wh.execute(f"""
        INSERT INTO lineage_link
        WITH prod AS (SELECT * FROM deployment WHERE {PRODUCTION_ENV}),
        exact AS (
            SELECT p.pr_id, d.deployment_id, CASE WHEN d.sha = p.merge_commit_sha THEN 'merge_commit' ELSE 'head_sha' END AS how
            FROM pull_request p JOIN prod d ON d.repo_id = p.repo_id
             AND (d.sha = p.merge_commit_sha OR (d.sha = p.head_sha AND p.merged_at IS NOT NULL))),
        after_merge AS (
            SELECT p.pr_id, d.deployment_id
            FROM pull_request p JOIN prod d ON d.repo_id = p.repo_id AND d.created_at >= p.merged_at
                 AND d.succeeded_at IS NOT NULL
            WHERE p.merged_at IS NOT NULL AND p.pr_id NOT IN (SELECT pr_id FROM exact)
            QUALIFY row_number() OVER (PARTITION BY p.pr_id ORDER BY d.created_at, d.deployment_id) = 1)
        SELECT 'pull_request', pr_id, 'deployment', deployment_id, 'pr_deployment', 'exact', 1.0,
               json_object('how', how), ? FROM exact
        UNION ALL
        SELECT 'pull_request', pr_id, 'deployment', deployment_id, 'pr_deployment', 'inferred', 0.7,
               json_object('how', 'first successful production deployment after the merge'), ? FROM after_merge
    """, [now, now])


def links_of(wh: Any, node_type: str, node_id: str, *, direction: str = "from") -> list[dict[str, Any]]:
    """The links leaving (``from``) or reaching (``to``) one node, strongest first."""
    col = "from" if direction == "from" else "to"
    return wh.query(f"SELECT * FROM lineage_link WHERE {col}_type = ? AND {col}_id = ? "
                    "ORDER BY kind, confidence DESC, to_id", [node_type, node_id])


def trace_session(wh: Any, session_id: str) -> list[dict[str, Any]]:
    """Everything one session led to: its commits, their pull requests, tickets, CI runs and deployments."""
    return wh.query("""
        WITH c AS (SELECT to_id AS sha, method, confidence FROM lineage_link
                   WHERE kind = 'session_commit' AND from_id = ?),
        p AS (SELECT DISTINCT l.to_id AS pr_id FROM lineage_link l JOIN c ON l.from_id = c.sha WHERE l.kind = 'commit_pr')
        SELECT 'commit' AS node_type, sha AS node_id, method, confidence FROM c
        UNION ALL SELECT 'pull_request', pr_id, 'exact', 1.0 FROM p
        UNION ALL SELECT l.to_type, l.to_id, l.method, l.confidence FROM lineage_link l JOIN p ON l.from_id = p.pr_id
                  WHERE l.from_type = 'pull_request'
        UNION ALL SELECT l.to_type, l.to_id, l.method, l.confidence FROM lineage_link l JOIN c ON l.from_id = c.sha
                  WHERE l.from_type = 'commit' AND l.kind <> 'commit_pr'
        ORDER BY 1, 2
    """, [session_id])
