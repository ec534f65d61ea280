"""Delivery metrics: pull requests, deployments and commits, split by whether Claude Code helped, with
what the Claude Code sessions behind them cost. Built on :mod:`cclens.model.lineage`.

Definitions (docs/lineage.md has the long form):

- A commit is **attributed** to Claude Code when a session links to it exactly, or by inference with
  confidence >= :data:`cclens.model.lineage.ATTRIBUTION_THRESHOLD`.
- A pull request is **Claude-assisted** when one of its commits is attributed, or carries Claude
  Code's own trailer (``Co-Authored-By: Claude``) or marker ("Generated with Claude Code");
  ``assisted_by`` says which (exact, inferred, trailer). A deployment is assisted when it shipped an
  assisted pull request.
- **Cost** of a session is its requests priced with the caller's table (the one formula,
  :func:`cclens.model.pricing.priced_requests_cte`). A session's cost is shared equally by the
  commits attributed to it; a pull request costs the sum over its commits; a ticket the sum over the
  distinct commits of its pull requests and of the commits naming it. Session cost that reaches no
  commit is reported as unattributed, never spread.
- PR **cycle time** is first commit (author time) → merge; **review lag** is opened → first review
  by someone else; **lead time for changes** is first commit → the deployment that shipped it
  (exact, or the first successful production deployment after the merge); **deploy frequency**
  counts successful production deployments; **change failure rate** is deployments with a failure
  or error status / deployments with any outcome.

Every function takes ``prices`` (:func:`cclens.model.pricing.effective_table`) and a day range in
``tz``, and runs one read-only SELECT (works through ``cclens serve``). The same fact SQL backs the
catalog metrics registered at the end of this module.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from ..model.identity import person_key_sql
from ..model.lineage import ATTRIBUTION_THRESHOLD, PRODUCTION_ENV
from ..model.pricing import PriceTable
from .facts import Ctx, Facts, bind, register_source

SEGMENTS = ("assisted", "not_assisted", "all")


def _srcs(*names: str) -> str:
    """The SQL ``srcs`` bitmask of a fact row fed by ``names`` (bits allocated by the catalog)."""
    return str(sum(register_source(n) for n in names))


# -- fact CTEs (added to a catalog Facts builder) -----------------------------------------------------
def _lineage_ctes(facts: Facts) -> None:
    """Session cost, per-commit attributed cost, per-PR assistance (no range: whole history)."""
    facts.priced = True
    facts._add("dl_session_cost", """
    SELECT session_id, sum(cost_usd) AS cost_usd, bool_or(cost_usd IS NULL) AS unpriced
    FROM api_request_cost WHERE session_id IS NOT NULL GROUP BY session_id""")
    facts._add("dl_attr", f"""
    SELECT from_id AS session_id, to_id AS sha, method, confidence FROM lineage_link
    WHERE kind = 'session_commit' AND (method = 'exact' OR confidence >= {ATTRIBUTION_THRESHOLD})""")
    facts._add("dl_commit_cost", """
    SELECT a.sha, sum(sc.cost_usd / n.n) AS cost_usd, bool_or(sc.unpriced) AS unpriced,
           list(DISTINCT a.session_id ORDER BY a.session_id) AS sessions,
           max(CASE WHEN a.method = 'exact' THEN 2 ELSE 1 END) AS strength
    FROM dl_attr a JOIN (SELECT session_id, count(DISTINCT sha) AS n FROM dl_attr GROUP BY session_id) n USING (session_id)
    LEFT JOIN dl_session_cost sc USING (session_id)
    GROUP BY a.sha""")
    facts._add("dl_pr_commits", """
    SELECT DISTINCT to_id AS pr_id, from_id AS sha FROM lineage_link WHERE kind = 'commit_pr'""")
    facts._add("dl_trailer", """
    SELECT DISTINCT sha FROM commit WHERE claude_coauthor OR claude_marker
    UNION SELECT DISTINCT sha FROM pr_commit WHERE regexp_matches(coalesce(message, ''),
        '(?i)co-authored-by:[^\\n]*\\bclaude\\b|generated with \\[?claude code')""")
    facts._add("dl_pr_assist", """
    SELECT pc.pr_id, max(cc.strength) AS strength, bool_or(t.sha IS NOT NULL) AS trailer,
           sum(cc.cost_usd) AS cost_usd, bool_or(cc.unpriced) AS unpriced,
           list_distinct(flatten(list(cc.sessions) FILTER (WHERE cc.sessions IS NOT NULL))) AS sessions,
           count(cc.sha) AS attributed_commits
    FROM dl_pr_commits pc LEFT JOIN dl_commit_cost cc USING (sha) LEFT JOIN dl_trailer t USING (sha)
    GROUP BY pc.pr_id""")


def _pr_family(facts: Facts) -> str:
    _lineage_ctes(facts)
    joins, person = person_key_sql([("github_login", "lower(p.author_login)"), ("git_email", "le.email"),
                                    ("email", "le.email")], prefix="dpa")
    facts._add("dl_login_email", """
    SELECT lower(author_login) AS login, min(author_email) AS email FROM pr_commit
    WHERE author_login IS NOT NULL AND author_email IS NOT NULL AND author_email NOT LIKE '%noreply%'
    GROUP BY 1""")
    return facts._add("f_delivery_pr", f"""
    SELECT timezone($tz, p.merged_at)::DATE AS day, {person} AS person, {_srcs('github')} AS srcs, 3 AS tier,
           p.pr_id, p.repo_id, p.number, p.title, p.author_login, p.created_at, p.merged_at, p.first_commit_at,
           p.first_review_at,
           coalesce(a.strength, 0) > 0 OR coalesce(a.trailer, false) AS assisted,
           CASE WHEN a.strength = 2 THEN 'exact' WHEN a.strength = 1 THEN 'inferred'
                WHEN a.trailer THEN 'trailer' END AS assisted_by,
           coalesce(a.attributed_commits, 0) AS attributed_commits, coalesce(a.sessions, []) AS sessions,
           a.cost_usd, coalesce(a.unpriced, false) AS unpriced, dep.deployed_at, i.issues,
           epoch(p.merged_at - p.first_commit_at) / 3600.0 AS cycle_time_h,
           epoch(p.first_review_at - p.created_at) / 3600.0 AS review_lag_h,
           epoch(dep.deployed_at - p.first_commit_at) / 3600.0 AS lead_time_h
    FROM pull_request p
    LEFT JOIN dl_pr_assist a USING (pr_id)
    LEFT JOIN (SELECT l.from_id AS pr_id, min(coalesce(d.succeeded_at, d.created_at)) AS deployed_at
               FROM lineage_link l JOIN deployment d ON d.deployment_id = l.to_id
               WHERE l.kind = 'pr_deployment' AND NOT coalesce(d.failed, false) GROUP BY 1) dep USING (pr_id)
    LEFT JOIN (SELECT from_id AS pr_id, list(DISTINCT to_id ORDER BY to_id) AS issues FROM lineage_link
               WHERE kind = 'pr_issue' GROUP BY 1) i USING (pr_id)
    LEFT JOIN dl_login_email le ON le.login = lower(p.author_login)
    {joins}
    WHERE p.merged_at >= $lo AND p.merged_at < $hi""")


def _deploy_family(facts: Facts) -> str:
    _lineage_ctes(facts)
    return facts._add("f_delivery_deploy", f"""
    SELECT timezone($tz, d.created_at)::DATE AS day, NULL::VARCHAR AS person, {_srcs('github')} AS srcs, 3 AS tier,
           d.deployment_id, d.repo_id, d.environment, d.status, d.failed, d.succeeded_at IS NOT NULL AS succeeded,
           d.failed IS NOT NULL AS has_outcome,
           coalesce((SELECT bool_or(coalesce(a.strength, 0) > 0 OR coalesce(a.trailer, false))
                     FROM lineage_link l JOIN dl_pr_assist a ON a.pr_id = l.from_id
                     WHERE l.kind = 'pr_deployment' AND l.to_id = d.deployment_id), false) AS assisted
    FROM deployment d
    WHERE ({PRODUCTION_ENV}) AND d.created_at >= $lo AND d.created_at < $hi""")


def _commit_family(facts: Facts) -> str:
    _lineage_ctes(facts)
    joins, person = person_key_sql([("git_email", "c.author_email"), ("email", "c.author_email")], prefix="dca")
    return facts._add("f_delivery_commit", f"""
    SELECT timezone($tz, c.author_ts)::DATE AS day, {person} AS person, {_srcs('git')} AS srcs, 3 AS tier,
           c.sha, c.repo_id, c.lines_added, c.lines_deleted, cc.sha IS NOT NULL AS attributed,
           CASE cc.strength WHEN 2 THEN 'exact' WHEN 1 THEN 'inferred' END AS attributed_by, cc.cost_usd,
           c.claude_coauthor OR c.claude_marker AS trailer
    FROM (SELECT * FROM commit WHERE reachable AND NOT is_merge AND author_ts >= $lo AND author_ts < $hi
          QUALIFY row_number() OVER (PARTITION BY sha ORDER BY repo_id) = 1) c
    LEFT JOIN dl_commit_cost cc USING (sha)
    {joins}""")


_FAMILIES = {"delivery_pr": _pr_family, "delivery_deploy": _deploy_family, "delivery_commit": _commit_family}


def _query(wh: Any, family: str, select: str, prices: PriceTable, since: date, until: date, tz: str
           ) -> list[dict[str, Any]]:
    """Run ``select`` (over ``f``, the family's rows) in one read-only statement."""
    models = [r["model"] for r in wh.query("SELECT DISTINCT model FROM api_request WHERE model IS NOT NULL")]
    ctx = Ctx(tz=tz, since=since, until=until, prices=prices, models=models)
    facts = Facts(ctx)
    name = _FAMILIES[family](facts)
    sql, params = bind(facts.sql_with() + select.replace("{f}", name), ctx.params())
    return wh.query(sql, params)


def _range(since: date | None, until: date | None, days: int = 90) -> tuple[date, date]:
    until = until or date.today()
    return since or until - timedelta(days=days - 1), until


# -- reports ------------------------------------------------------------------------------------------
def pull_requests(wh: Any, prices: PriceTable, *, since: date | None = None, until: date | None = None,
                  tz: str = "UTC") -> list[dict[str, Any]]:
    """One row per pull request merged in the range: assistance, sessions, cost, the timeline."""
    since, until = _range(since, until)
    return _query(wh, "delivery_pr", """
        SELECT pr_id, repo_id, number, title, author_login, person, assisted, assisted_by, attributed_commits,
               len(sessions) AS sessions, round(cost_usd, 6) AS cost_usd, unpriced, issues,
               first_commit_at, created_at, first_review_at, merged_at, deployed_at,
               round(cycle_time_h, 3) AS cycle_time_h, round(review_lag_h, 3) AS review_lag_h,
               round(lead_time_h, 3) AS lead_time_h
        FROM {f} ORDER BY merged_at, pr_id""", prices, since, until, tz)


def summary(wh: Any, prices: PriceTable, *, since: date | None = None, until: date | None = None,
            tz: str = "UTC") -> list[dict[str, Any]]:
    """Delivery figures for assisted, not assisted and all work in the range (one row each)."""
    since, until = _range(since, until)
    weeks = ((until - since).days + 1) / 7.0
    prs = _query(wh, "delivery_pr", f"""
        SELECT seg AS segment, count(*) AS merged_prs, round(count(*) / {weeks}, 3) AS merged_prs_per_week,
               round(median(cycle_time_h), 3) AS cycle_time_median_h,
               round(quantile_cont(cycle_time_h, 0.75), 3) AS cycle_time_p75_h,
               round(median(review_lag_h), 3) AS review_lag_median_h,
               count(review_lag_h) AS reviewed_prs,
               round(median(lead_time_h), 3) AS lead_time_median_h, count(lead_time_h) AS deployed_prs,
               round(sum(cost_usd), 6) AS claude_cost_usd,
               round(sum(cost_usd) / nullif(count(*), 0), 6) AS cost_per_merged_pr_usd
        FROM (SELECT *, CASE WHEN assisted THEN 'assisted' ELSE 'not_assisted' END AS seg FROM {{f}}
              UNION ALL SELECT *, 'all' FROM {{f}})
        GROUP BY seg""", prices, since, until, tz)
    deploys = _query(wh, "delivery_deploy", f"""
        SELECT seg AS segment, count(*) FILTER (WHERE succeeded) AS deployments,
               round(count(*) FILTER (WHERE succeeded) / {weeks}, 3) AS deployments_per_week,
               count(*) FILTER (WHERE failed) AS failed_deployments,
               round(count(*) FILTER (WHERE failed)::DOUBLE / nullif(count(*) FILTER (WHERE has_outcome), 0), 4)
                   AS change_failure_rate
        FROM (SELECT *, CASE WHEN assisted THEN 'assisted' ELSE 'not_assisted' END AS seg FROM {{f}}
              UNION ALL SELECT *, 'all' FROM {{f}})
        GROUP BY seg""", prices, since, until, tz)
    commits = _query(wh, "delivery_commit", """
        SELECT count(*) AS commits, count(*) FILTER (WHERE attributed) AS attributed_commits,
               sum(coalesce(lines_added, 0)) AS lines_added,
               sum(coalesce(lines_added, 0)) FILTER (WHERE attributed) AS attributed_lines_added
        FROM {f}""", prices, since, until, tz)[0]
    columns = ["segment", "merged_prs", "merged_prs_per_week", "cycle_time_median_h", "cycle_time_p75_h",
               "review_lag_median_h", "reviewed_prs", "lead_time_median_h", "deployed_prs", "claude_cost_usd",
               "cost_per_merged_pr_usd", "deployments", "deployments_per_week", "failed_deployments",
               "change_failure_rate", "commits", "attributed_commit_share", "attributed_line_share"]
    counts = {"merged_prs", "reviewed_prs", "deployed_prs", "deployments", "failed_deployments"}
    by_seg = {s: {c: (0 if c in counts else None) for c in columns} | {"segment": s} for s in SEGMENTS}
    for r in prs + deploys:
        by_seg[r["segment"]].update(r)
    out = [by_seg[s] for s in SEGMENTS]
    total = out[-1]
    total["commits"] = commits["commits"]
    total["attributed_commit_share"] = (round(commits["attributed_commits"] / commits["commits"], 4)
                                        if commits["commits"] else None)
    total["attributed_line_share"] = (round((commits["attributed_lines_added"] or 0) / commits["lines_added"], 4)
                                      if commits["lines_added"] else None)
    return out


def commit_attribution(wh: Any, prices: PriceTable, *, since: date | None = None, until: date | None = None,
                       tz: str = "UTC") -> list[dict[str, Any]]:
    """Per repository: commits and lines, and the share attributable to Claude Code sessions."""
    since, until = _range(since, until)
    return _query(wh, "delivery_commit", """
        SELECT repo_id, count(*) AS commits, count(*) FILTER (WHERE attributed) AS attributed_commits,
               count(*) FILTER (WHERE attributed_by = 'exact') AS exact_commits,
               count(*) FILTER (WHERE trailer) AS trailer_commits,
               round(count(*) FILTER (WHERE attributed)::DOUBLE / count(*), 4) AS attributed_commit_share,
               sum(coalesce(lines_added, 0)) AS lines_added,
               sum(coalesce(lines_added, 0)) FILTER (WHERE attributed) AS attributed_lines_added,
               round(sum(coalesce(lines_added, 0)) FILTER (WHERE attributed)::DOUBLE
                     / nullif(sum(coalesce(lines_added, 0)), 0), 4) AS attributed_line_share,
               round(sum(cost_usd), 6) AS claude_cost_usd
        FROM {f} GROUP BY repo_id ORDER BY repo_id""", prices, since, until, tz)


def tickets(wh: Any, prices: PriceTable, *, since: date | None = None, until: date | None = None,
            tz: str = "UTC") -> list[dict[str, Any]]:
    """Per ticket touched by a pull request merged in the range: its pull requests, sessions and cost
    (each commit counted once, whether it reached the ticket through a PR or its own message)."""
    since, until = _range(since, until)
    return _query(wh, "delivery_pr", """
        SELECT t.issue_key, i.summary, i.issue_type, i.status, i.assignee_name,
               (SELECT list(DISTINCT from_id ORDER BY from_id) FROM lineage_link
                 WHERE kind = 'pr_issue' AND to_id = t.issue_key) AS pull_requests,
               (SELECT count(DISTINCT s.session_id) FROM (
                    SELECT pc.sha FROM lineage_link l JOIN dl_pr_commits pc ON pc.pr_id = l.from_id
                    WHERE l.kind = 'pr_issue' AND l.to_id = t.issue_key
                    UNION SELECT from_id FROM lineage_link WHERE kind = 'commit_issue' AND to_id = t.issue_key) x
                  JOIN dl_attr s USING (sha)) AS sessions,
               (SELECT round(sum(cc.cost_usd), 6) FROM (
                    SELECT pc.sha FROM lineage_link l JOIN dl_pr_commits pc ON pc.pr_id = l.from_id
                    WHERE l.kind = 'pr_issue' AND l.to_id = t.issue_key
                    UNION SELECT from_id FROM lineage_link WHERE kind = 'commit_issue' AND to_id = t.issue_key) x
                  JOIN dl_commit_cost cc USING (sha)) AS cost_usd,
               i.created_at, i.first_in_progress_at, i.resolved_at
        FROM (SELECT DISTINCT unnest(issues) AS issue_key FROM {f} WHERE issues IS NOT NULL) t
        LEFT JOIN issue i USING (issue_key) ORDER BY t.issue_key""", prices, since, until, tz)


def unattributed_cost(wh: Any, prices: PriceTable, *, since: date | None = None, until: date | None = None,
                      tz: str = "UTC") -> dict[str, Any]:
    """Claude Code cost in the range, and how much of it reached a commit (by session)."""
    since, until = _range(since, until)
    rows = _query(wh, "delivery_commit", """
        SELECT round(sum(sc.cost_usd), 6) AS session_cost_usd,
               round(sum(sc.cost_usd) FILTER (WHERE sc.session_id IN (SELECT session_id FROM dl_attr)), 6)
                   AS linked_cost_usd,
               count(*) AS sessions, count(*) FILTER (WHERE sc.session_id IN (SELECT session_id FROM dl_attr))
                   AS linked_sessions
        FROM dl_session_cost sc
        WHERE sc.session_id IN (SELECT session_id FROM api_request WHERE ts >= $lo AND ts < $hi)""",
                  prices, since, until, tz)
    return rows[0]


# -- the catalog ------------------------------------------------------------------------------------
def _catalog_metrics() -> list[Any]:
    from .catalog import TIME_DIMS, Metric

    pr_dims = TIME_DIMS + ("person", "team")
    split = lambda expr: (("assisted", expr.replace("{w}", "f.assisted")),  # noqa: E731
                          ("not_assisted", expr.replace("{w}", "NOT f.assisted")))
    common = dict(precedence=False, group="delivery")
    return [
        Metric("merged_pull_requests", "Pull requests merged (PR throughput), with how many were Claude-assisted "
               "(a commit attributed to a Claude Code session, or Claude Code's trailer).", "pull requests",
               "pull request", ("github", "git", "lineage"), pr_dims, family="delivery_pr", value="count(*)",
               extra=split("count(*) FILTER (WHERE {w})"), **common),
        Metric("pr_cycle_time", "Median hours from a pull request's first commit to its merge; split by "
               "Claude assistance.", "hours", "pull request", ("github", "lineage"), pr_dims, family="delivery_pr",
               value="median(f.cycle_time_h)", extra=split("median(f.cycle_time_h) FILTER (WHERE {w})"), **common),
        Metric("pr_review_lag", "Median hours from opening a pull request to its first review by someone else; "
               "split by Claude assistance.", "hours", "pull request", ("github", "lineage"), pr_dims,
               family="delivery_pr", value="median(f.review_lag_h)",
               extra=split("median(f.review_lag_h) FILTER (WHERE {w})"), **common),
        Metric("lead_time_for_changes", "Median hours from first commit to the production deployment that shipped "
               "the pull request; split by Claude assistance.", "hours", "pull request", ("github", "lineage"),
               pr_dims, family="delivery_pr", value="median(f.lead_time_h)",
               extra=split("median(f.lead_time_h) FILTER (WHERE {w})"), **common),
        Metric("cost_per_merged_pr", "Claude Code cost of the sessions behind merged pull requests, per merged "
               "pull request (assisted: per assisted PR).", "USD per pull request", "pull request",
               ("github", "lineage", "transcripts", "otel"), pr_dims, family="delivery_pr",
               value="sum(f.cost_usd) / count(*)",
               extra=(("assisted", "sum(f.cost_usd) FILTER (WHERE f.assisted) / nullif(count(*) FILTER (WHERE f.assisted), 0)"),
                      ("claude_cost_usd", "sum(f.cost_usd)")), **common),
        Metric("deployments", "Successful production deployments (deploy frequency); split by whether they "
               "shipped a Claude-assisted pull request.", "deployments", "deployment", ("github", "lineage"),
               TIME_DIMS, family="delivery_deploy", value="count(*) FILTER (WHERE f.succeeded)",
               extra=split("count(*) FILTER (WHERE f.succeeded AND {w})"), **common),
        Metric("change_failure_rate", "Production deployments with a failure or error status / deployments with "
               "an outcome.", "ratio", "deployment", ("github", "lineage"), TIME_DIMS, family="delivery_deploy",
               value="count(*) FILTER (WHERE f.failed)::DOUBLE / nullif(count(*) FILTER (WHERE f.has_outcome), 0)",
               extra=split("count(*) FILTER (WHERE f.failed AND {w})::DOUBLE / "
                           "nullif(count(*) FILTER (WHERE f.has_outcome AND {w}), 0)"), **common),
        Metric("attributed_commit_share", "Share of commits (reachable, not merges) attributed to Claude Code "
               "sessions by lineage.", "ratio", "commit", ("git", "lineage"), pr_dims, family="delivery_commit",
               value="count(*) FILTER (WHERE f.attributed)::DOUBLE / count(*)",
               extra=(("attributed_commits", "count(*) FILTER (WHERE f.attributed)"), ("commits", "count(*)")),
               **common),
        Metric("attributed_line_share", "Share of lines added in commits attributed to Claude Code sessions.",
               "ratio", "commit", ("git", "lineage"), pr_dims, family="delivery_commit",
               value="sum(coalesce(f.lines_added, 0)) FILTER (WHERE f.attributed)::DOUBLE "
                     "/ nullif(sum(coalesce(f.lines_added, 0)), 0)",
               extra=(("attributed_lines", "sum(coalesce(f.lines_added, 0)) FILTER (WHERE f.attributed)"),
                      ("lines_added", "sum(coalesce(f.lines_added, 0))")), **common),
    ]


def register_catalog_metrics() -> list[str]:
    """Register the delivery metrics and their fact families with the catalog (which imports this
    module through ``catalog.METRIC_MODULES``); returns their names."""
    from . import catalog

    names = []
    for metric in _catalog_metrics():
        catalog.register(metric, family=_FAMILIES[metric.family])
        names.append(metric.name)
    return names


register_catalog_metrics()
