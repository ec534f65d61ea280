"""The GitHub source (REST v3, token auth): repositories, pull requests with reviews and commits,
Actions workflow runs, deployments with their statuses, and teams with their members.

::

    results = sync_github(settings, wh)       # github_orgs and github_repos
    results = sync_github(settings, wh, repos=["acme/api"], since=date(2026, 1, 1))

What it promises:

- **Scope.** Every repository of ``github_orgs`` (not archived) and every ``github_repos`` entry;
  the teams of each organisation with their members (``github_team``, ``github_team_member``).
- **Pull requests, incrementally by ``updated``.** Listed newest-updated first and read until one is
  older than the cursor (minus a minute), so each run reads only what changed. For each changed pull
  request its reviews and commits are read too; the timeline columns (opened, first commit, first
  review by someone else, first approval, merged or closed) are derived from them.
- **Conditional requests.** Listings and per-PR reads carry the ETag of the last answer; a 304
  (which GitHub does not count against the rate limit) means "unchanged" and the stored rows stay.
  ETags are stored in the same transaction as the data they vouch for.
- **Actions runs** created since the last run minus three days (runs finish late) and
  **deployments** created since the last run minus seven days, each with its latest status,
  its first success and whether any status failed.
- **Limits.** Paging by ``Link``; the rate-limit headers, secondary limits (403/429 with
  ``retry-after``) and 5xx are handled by :class:`cclens.sources._rest.RestClient`.
- **Landing.** Every page is kept in ``landing_eng_page`` (URL without credentials, body, ETag).
- **Writes** happen per batch of pull requests, each in one transaction with its pages and
  validators; the cursor moves only after every batch of the run is stored, so a crash re-reads
  (cheaply, thanks to the ETags) but never skips.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import pyarrow as pa

from ..errors import ConfigError, SourceError
from ._eng import (TS, EngSyncResult, Submit, direct_submit, land_pages, load_cursor, load_validators,
                   new_run_id, replace_rows, save_state, save_validators)
from ._rest import ApiRefusedError, Page, RestClient, parse_time
from .git import repo_id_for

UTC = timezone.utc
DEFAULT_BACKFILL = timedelta(days=180)
PR_BATCH = 50
PER_PAGE = 100
OVERLAP = timedelta(minutes=1)
RUN_WINDOW = timedelta(days=3)
DEPLOY_WINDOW = timedelta(days=7)
API_VERSION = "2022-11-28"
_LIST = pa.list_(pa.string())
_INTS = pa.list_(pa.int32())


def github_host(api_url: str) -> str:
    """The web host a GitHub API URL serves: ``api.github.com`` → ``github.com``, a GitHub Enterprise
    ``https://ghe.example.com/api/v3`` → ``ghe.example.com``, anything else its host[:port]."""
    parts = urlsplit(api_url)
    host = (parts.hostname or "").lower()
    if host == "api.github.com":
        return "github.com"
    if parts.port and parts.scheme in ("http", "https"):
        host = f"{host}:{parts.port}"
    return host


def make_client(settings: Any, *, transport: Any = None, sleep: Callable[[float], None] = time.sleep,
                clock: Callable[[], float] = time.time) -> RestClient:
    token = settings.github_token.get_secret_value() if settings.github_token else ""
    if not token:
        raise ConfigError("github: no token configured; set github_token in cclens.toml or CCLENS_GITHUB_TOKEN "
                          "(a token with read access to the repositories, and read:org for teams)")
    return RestClient(settings.github_api_url, source="github",
                      headers={"authorization": f"Bearer {token}", "accept": "application/vnd.github+json",
                               "x-github-api-version": API_VERSION},
                      secrets=[token], transport=transport, sleep=sleep, clock=clock,
                      max_wait=3660,  # the primary limit resets hourly: waiting it out beats failing
                      credential_hint="check github_token (CCLENS_GITHUB_TOKEN): it needs read access to "
                                      "the repositories, and read:org for teams")


def sync_github(settings: Any, wh: Any, *, repos: Iterable[str] | None = None, orgs: Iterable[str] | None = None,
                since: date | None = None, now: datetime | None = None, submit: Submit | None = None,
                transport: Any = None, sleep: Callable[[float], None] = time.sleep,
                clock: Callable[[], float] = time.time) -> list[EngSyncResult]:
    """Sync organisations and repositories from GitHub; one result per organisation and repository.

    A failing repository is reported (and recorded in ``source_state``) without stopping the others;
    a rejected token stops the run (every other call would be rejected too).
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    submit = submit or direct_submit(wh)
    org_list = list(orgs if orgs is not None else settings.github_orgs or [])
    repo_list = list(repos if repos is not None else settings.github_repos or [])
    if not org_list and not repo_list:
        raise ConfigError("github: nothing to sync; set github_orgs and/or github_repos (owner/name) "
                          "in cclens.toml or CCLENS_GITHUB_ORGS / CCLENS_GITHUB_REPOS")
    client = make_client(settings, transport=transport, sleep=sleep, clock=clock)
    client.validators = load_validators(wh, client.base_url)
    host = github_host(settings.github_api_url)
    start = _start(settings, since, now)
    results: list[EngSyncResult] = []
    try:
        todo: list[dict[str, Any]] = []
        for org in org_list:
            result = EngSyncResult("github", f"org:{org}")
            results.append(result)
            try:
                todo += _sync_org(client, wh, submit, org, host, now, result)
            except SourceError as exc:
                _fail(submit, result, f"github:org:{org}", exc, now)
                if _fatal(exc):
                    raise
        seen = {r["full_name"].lower() for r in todo}
        for full_name in repo_list:
            if full_name.lower() in seen:
                continue
            todo.append({"full_name": full_name, "explicit": True})
        for repo in todo:
            result = EngSyncResult("github", repo["full_name"])
            results.append(result)
            try:
                _sync_repo(client, wh, submit, repo, host, start, since, now, result)
            except SourceError as exc:
                _fail(submit, result, f"github:{repo_id_for(host, repo['full_name'])}", exc, now)
                if _fatal(exc):
                    raise
        submit(lambda w: refresh_github_identities(w))
    except ConfigError:
        raise
    except SourceError as exc:
        # a rejected token: stop here, but say so in the results rather than as a traceback
        if not results or results[-1].error != str(exc):
            results.append(EngSyncResult("github", "run", status="error", error=str(exc)))
    finally:
        client.close()
    return results


def _fatal(exc: SourceError) -> bool:
    from ..errors import SourceAuthError

    return isinstance(exc, SourceAuthError) and "401" in str(exc)


def _fail(submit: Submit, result: EngSyncResult, state_key: str, exc: Exception, now: datetime) -> None:
    result.status = "error"
    result.error = str(exc)
    submit(lambda w: save_state(w, state_key, None, now, 0, str(exc)))


def _start(settings: Any, since: date | None, now: datetime) -> datetime:
    if since is not None:
        return datetime(since.year, since.month, since.day, tzinfo=UTC)
    first = getattr(settings, "engineering_sync_start", None)
    if first:
        return datetime(first.year, first.month, first.day, tzinfo=UTC)
    return now - DEFAULT_BACKFILL


class _Stats:
    """Per-scope request counters from a shared client."""

    def __init__(self, client: RestClient, result: EngSyncResult):
        self.client, self.result = client, result
        self.base = (client.requests_sent, client.not_modified, client.retries, client.waited_s)

    def done(self) -> None:
        c, b = self.client, self.base
        self.result.requests += c.requests_sent - b[0]
        self.result.not_modified += c.not_modified - b[1]
        self.result.retries += c.retries - b[2]
        self.result.waited_s += c.waited_s - b[3]
        self.base = (c.requests_sent, c.not_modified, c.retries, c.waited_s)


# -- organisations: repositories and teams --------------------------------------------------------------
def _repo_row(data: dict[str, Any], host: str, now: datetime) -> dict[str, Any]:
    full = data.get("full_name") or ""
    return {"repo_id": repo_id_for(host, full), "host": host, "full_name": full, "name": data.get("name"),
            "default_branch": data.get("default_branch"), "github_id": data.get("id"),
            "private": data.get("private"), "archived": data.get("archived"),
            "created_at": parse_time(data.get("created_at")), "pushed_at": parse_time(data.get("pushed_at")),
            "updated_at": parse_time(data.get("updated_at")), "github_synced_at": now}


def _upsert_repository(wh: Any, row: dict[str, Any]) -> None:
    """Insert or update the GitHub columns of a repository row (the git source owns the others)."""
    cols = ["host", "full_name", "name", "default_branch", "github_id", "private", "archived", "created_at",
            "pushed_at", "updated_at", "github_synced_at"]
    if wh.scalar("SELECT count(*) FROM repository WHERE repo_id = ?", [row["repo_id"]]):
        wh.execute("UPDATE repository SET " + ", ".join(f"{c} = ?" for c in cols) + " WHERE repo_id = ?",
                   [row[c] for c in cols] + [row["repo_id"]])
    else:
        wh.execute(f"INSERT INTO repository (repo_id, {', '.join(cols)}) VALUES ({', '.join('?' * (len(cols) + 1))})",
                   [row["repo_id"]] + [row[c] for c in cols])


def _sync_org(client: RestClient, wh: Any, submit: Submit, org: str, host: str, now: datetime,
              result: EngSyncResult) -> list[dict[str, Any]]:
    stats = _Stats(client, result)
    run_id = new_run_id()
    pages: list[Page] = []
    repos: list[dict[str, Any]] = []
    for page in client.link_pages(f"/orgs/{org}/repos", {"type": "all", "per_page": PER_PAGE}):
        pages.append(page)
        repos += [r for r in page.data or [] if isinstance(r, dict)]
    teams: list[dict[str, Any]] = []
    members: list[dict[str, Any]] = []
    try:
        for page in client.link_pages(f"/orgs/{org}/teams", {"per_page": PER_PAGE}):
            pages.append(page)
            teams += [t for t in page.data or [] if isinstance(t, dict)]
        for team in teams:
            for page in client.link_pages(f"/orgs/{org}/teams/{team['slug']}/members", {"per_page": PER_PAGE}):
                pages.append(page)
                members += [{"org": org, "team_slug": team["slug"], "login": m.get("login"), "role": None,
                             "synced_at": now} for m in page.data or [] if isinstance(m, dict) and m.get("login")]
    except SourceError as exc:
        if "403" not in str(exc) and "404" not in str(exc):
            raise
        result.notes.append(f"github: teams of {org} not readable ({exc}); the token needs read:org")
        teams, members = [], None  # type: ignore[assignment]
    rows = [_repo_row(r, host, now) for r in repos]
    team_rows = [{"org": org, "slug": t["slug"], "name": t.get("name"),
                  "parent_slug": (t.get("parent") or {}).get("slug"), "synced_at": now} for t in teams]
    validators = client.commit_validators()

    def write(w: Any) -> None:
        for row in rows:
            _upsert_repository(w, row)
        if members is not None:
            w.execute("DELETE FROM github_team WHERE org = ?", [org])
            w.execute("DELETE FROM github_team_member WHERE org = ?", [org])
            replace_rows(w, "github_team", team_rows, ["org", "slug"], {"synced_at": TS}, delete_keys=[])
            replace_rows(w, "github_team_member", members, ["org", "team_slug", "login"], {"synced_at": TS},
                         delete_keys=[])
        land_pages(w, "github", pages, run_id, client.scrub)
        save_validators(w, validators, now)
        save_state(w, f"github:org:{org}", {"repos": len(rows), "teams": len(team_rows)}, now, len(rows))
    submit(write)
    result.add("repositories", len(rows))
    result.add("teams", len(team_rows))
    result.add("team_members", len(members or []))
    stats.done()
    return [{"full_name": r["full_name"], "explicit": False} for r in repos if not r.get("archived")]


# -- one repository -----------------------------------------------------------------------------------
def _sync_repo(client: RestClient, wh: Any, submit: Submit, repo: dict[str, Any], host: str, start: datetime,
               since: date | None, now: datetime, result: EngSyncResult) -> None:
    full_name = repo["full_name"]
    repo_id = repo_id_for(host, full_name)
    state_key = f"github:{repo_id}"
    stats = _Stats(client, result)
    cursor = {} if since is not None else load_cursor(wh, state_key)
    run_id = new_run_id()
    if repo.get("explicit"):
        try:
            page = client.get(f"/repos/{full_name}")
        except ApiRefusedError as exc:
            if exc.status == 404:
                raise SourceError(f"github: repository {full_name} not found, or the token cannot see it; "
                                  "check github_repos and the token's access") from None
            raise
        row = _repo_row(page.data, host, now)
        submit(lambda w: (_upsert_repository(w, row), land_pages(w, "github", [page], run_id, client.scrub)))
    pulls_since = _cursor_time(cursor.get("pulls_updated"), start) - OVERLAP
    newest = _sync_pulls(client, submit, full_name, repo_id, pulls_since, now, run_id, result)
    runs_from = min(_cursor_time(cursor.get("synced_at"), start) - RUN_WINDOW, now) if cursor else start
    _sync_runs(client, submit, full_name, repo_id, runs_from, now, run_id, result)
    deploys_from = _cursor_time(cursor.get("synced_at"), start) - DEPLOY_WINDOW if cursor else start
    _sync_deployments(client, submit, full_name, repo_id, deploys_from, now, run_id, result)
    new_cursor = {"pulls_updated": (newest or _cursor_time(cursor.get("pulls_updated"), None) or start).isoformat(),
                  "synced_at": now.isoformat()}
    validators = client.commit_validators()
    total = sum(result.counts.values())
    submit(lambda w: (save_validators(w, validators, now), save_state(w, state_key, new_cursor, now, total)))
    stats.done()


def _cursor_time(value: Any, default: datetime | None) -> datetime | None:
    return parse_time(value) or default


# -- pull requests ------------------------------------------------------------------------------------
def _pr_row(pr: dict[str, Any], repo_id: str, now: datetime) -> dict[str, Any]:
    number = int(pr["number"])
    return {"pr_id": f"{repo_id}#{number}", "repo_id": repo_id, "number": number, "github_id": pr.get("id"),
            "title": pr.get("title"), "state": pr.get("state"), "draft": pr.get("draft"),
            "author_login": (pr.get("user") or {}).get("login"), "head_ref": (pr.get("head") or {}).get("ref"),
            "head_sha": (pr.get("head") or {}).get("sha"), "base_ref": (pr.get("base") or {}).get("ref"),
            "labels": [lb.get("name") for lb in pr.get("labels") or [] if isinstance(lb, dict)],
            "created_at": parse_time(pr.get("created_at")), "updated_at": parse_time(pr.get("updated_at")),
            "closed_at": parse_time(pr.get("closed_at")), "merged_at": parse_time(pr.get("merged_at")),
            "merge_commit_sha": pr.get("merge_commit_sha") if pr.get("merged_at") else None, "synced_at": now}


def _sync_pulls(client: RestClient, submit: Submit, full_name: str, repo_id: str, since: datetime,
                now: datetime, run_id: str, result: EngSyncResult) -> datetime | None:
    """Read pull requests updated since ``since`` (with reviews and commits); returns the newest
    ``updated_at`` seen (None when nothing changed)."""
    newest: datetime | None = None
    batch: list[tuple[dict[str, Any], list[Page]]] = []
    done = False
    listing_pages: list[Page] = []
    for page in client.link_pages(f"/repos/{full_name}/pulls",
                                  {"state": "all", "sort": "updated", "direction": "desc", "per_page": PER_PAGE},
                                  conditional=True):
        listing_pages.append(page)
        if page.not_modified:
            result.notes.append(f"github: {full_name}: no pull request changed (304)")
            break
        for pr in page.data or []:
            updated = parse_time(pr.get("updated_at"))
            if updated is None or updated < since:
                done = True
                break
            newest = max(newest, updated) if newest else updated
            batch.append(_read_pr(client, full_name, repo_id, pr, now))
            if len(batch) >= PR_BATCH:
                _write_prs(client, submit, repo_id, batch, listing_pages, now, run_id, result)
                batch, listing_pages = [], []
        if done:
            break
    _write_prs(client, submit, repo_id, batch, listing_pages, now, run_id, result)
    return newest


def _read_pr(client: RestClient, full_name: str, repo_id: str, pr: dict[str, Any], now: datetime
             ) -> tuple[dict[str, Any], list[Page]]:
    row = _pr_row(pr, repo_id, now)
    pages: list[Page] = []
    reviews: list[dict[str, Any]] | None = []
    for page in client.link_pages(f"/repos/{full_name}/pulls/{row['number']}/reviews", {"per_page": PER_PAGE},
                                  conditional=True):
        pages.append(page)
        if page.not_modified:
            reviews = None
            break
        reviews += [{"pr_id": row["pr_id"], "review_id": rv.get("id"), "reviewer_login": (rv.get("user") or {}).get("login"),
                     "state": rv.get("state"), "submitted_at": parse_time(rv.get("submitted_at")),
                     "commit_sha": rv.get("commit_id")} for rv in page.data or [] if isinstance(rv, dict)]
    commits: list[dict[str, Any]] | None = []
    for page in client.link_pages(f"/repos/{full_name}/pulls/{row['number']}/commits", {"per_page": PER_PAGE},
                                  conditional=True):
        pages.append(page)
        if page.not_modified:
            commits = None
            break
        for c in page.data or []:
            if not isinstance(c, dict):
                continue
            info = c.get("commit") or {}
            commits.append({"pr_id": row["pr_id"], "repo_id": repo_id, "number": row["number"], "sha": c.get("sha"),
                            "author_login": (c.get("author") or {}).get("login"),
                            "author_email": ((info.get("author") or {}).get("email") or "").lower() or None,
                            "author_ts": parse_time((info.get("author") or {}).get("date")),
                            "committer_ts": parse_time((info.get("committer") or {}).get("date")),
                            "message": info.get("message")})
    return {"pr": row, "reviews": reviews, "commits": commits}, pages


def _write_prs(client: RestClient, submit: Submit, repo_id: str, batch: list[tuple[dict[str, Any], list[Page]]],
               listing: list[Page], now: datetime, run_id: str, result: EngSyncResult) -> None:
    if not batch and not listing:
        return
    prs = [b[0]["pr"] for b in batch]
    reviews = [rv for b in batch if b[0]["reviews"] is not None for rv in b[0]["reviews"]]
    review_keys = [(b[0]["pr"]["pr_id"],) for b in batch if b[0]["reviews"] is not None]
    commits = [c for b in batch if b[0]["commits"] is not None for c in b[0]["commits"]]
    commit_keys = [(b[0]["pr"]["pr_id"],) for b in batch if b[0]["commits"] is not None]
    pages = listing + [p for b in batch for p in b[1]]
    # The listing's own validators wait until every changed pull request is stored (see _sync_repo):
    # a 304 on it means "nothing changed", which must not become true halfway through a run.
    validators = client.commit_validators(exclude=[u for u in client.new_validators if "/pulls?" in u])

    def write(w: Any) -> None:
        replace_rows(w, "pull_request", prs, ["pr_id"], {"labels": _LIST, "created_at": TS, "updated_at": TS,
                                                          "closed_at": TS, "merged_at": TS, "synced_at": TS})
        replace_rows(w, "review", reviews, ["pr_id"], {"review_id": pa.int64(), "submitted_at": TS},
                     delete_keys=review_keys)
        replace_rows(w, "pr_commit", commits, ["pr_id"], {"number": pa.int32(), "author_ts": TS, "committer_ts": TS},
                     delete_keys=commit_keys)
        if prs:
            derive_pr_timeline(w, [p["pr_id"] for p in prs])
        land_pages(w, "github", pages, run_id, client.scrub)
        save_validators(w, validators, now)
    submit(write)
    result.add("pull_requests", len(prs))
    result.add("reviews", len(reviews))
    result.add("pr_commits", len(commits))


def derive_pr_timeline(wh: Any, pr_ids: list[str]) -> None:
    """Fill the timeline columns of pull requests from their commits and reviews."""
    wh.register("_eng_pr_ids", pa.table({"pr_id": pa.array(pr_ids, pa.string())}))
    try:
        wh.execute("""
            UPDATE pull_request p SET
                first_commit_at = c.first_commit_at, commits = coalesce(c.n, 0),
                first_review_at = r.first_review_at, first_approval_at = r.first_approval_at,
                approvals = coalesce(r.approvals, 0), reviews = coalesce(r.n, 0)
            FROM (SELECT id.pr_id FROM _eng_pr_ids id) ids
            LEFT JOIN (SELECT pr_id, min(author_ts) AS first_commit_at, count(*) AS n FROM pr_commit
                       GROUP BY pr_id) c ON c.pr_id = ids.pr_id
            LEFT JOIN (SELECT rv.pr_id,
                              min(rv.submitted_at) FILTER (WHERE rv.reviewer_login IS DISTINCT FROM pr.author_login
                                                           AND rv.state <> 'PENDING') AS first_review_at,
                              min(rv.submitted_at) FILTER (WHERE rv.state = 'APPROVED') AS first_approval_at,
                              count(DISTINCT rv.reviewer_login) FILTER (WHERE rv.state = 'APPROVED') AS approvals,
                              count(*) FILTER (WHERE rv.state <> 'PENDING') AS n
                       FROM review rv JOIN pull_request pr USING (pr_id) GROUP BY rv.pr_id) r ON r.pr_id = ids.pr_id
            WHERE p.pr_id = ids.pr_id
        """)
    finally:
        wh.unregister("_eng_pr_ids")


# -- Actions runs -------------------------------------------------------------------------------------
def _sync_runs(client: RestClient, submit: Submit, full_name: str, repo_id: str, since: datetime, now: datetime,
               run_id: str, result: EngSyncResult) -> None:
    rows: list[dict[str, Any]] = []
    pages: list[Page] = []
    for page in client.link_pages(f"/repos/{full_name}/actions/runs",
                                  {"per_page": PER_PAGE, "created": f">={since:%Y-%m-%dT%H:%M:%SZ}"}):
        pages.append(page)
        for run in (page.data or {}).get("workflow_runs") or []:
            if not isinstance(run, dict):
                continue
            rows.append({"run_id": str(run.get("id")), "provider": "github_actions", "repo_id": repo_id,
                         "workflow_id": run.get("workflow_id"), "workflow_name": run.get("name"),
                         "event": run.get("event"), "status": run.get("status"), "conclusion": run.get("conclusion"),
                         "head_sha": run.get("head_sha"), "head_branch": run.get("head_branch"),
                         "run_attempt": run.get("run_attempt"),
                         "pr_numbers": [p.get("number") for p in run.get("pull_requests") or [] if isinstance(p, dict)],
                         "actor_login": (run.get("actor") or {}).get("login"),
                         "created_at": parse_time(run.get("created_at")),
                         "started_at": parse_time(run.get("run_started_at")),
                         "updated_at": parse_time(run.get("updated_at"))})
    validators = client.commit_validators()
    submit(lambda w: (replace_rows(w, "ci_run", rows, ["run_id"], {"workflow_id": pa.int64(), "run_attempt": pa.int32(),
                                                                    "pr_numbers": _INTS, "created_at": TS,
                                                                    "started_at": TS, "updated_at": TS}),
                      land_pages(w, "github", pages, run_id, client.scrub), save_validators(w, validators, now)))
    result.add("ci_runs", len(rows))


# -- deployments --------------------------------------------------------------------------------------
def _sync_deployments(client: RestClient, submit: Submit, full_name: str, repo_id: str, since: datetime,
                      now: datetime, run_id: str, result: EngSyncResult) -> None:
    rows: list[dict[str, Any]] = []
    pages: list[Page] = []
    unchanged: list[str] = []
    stop = False
    for page in client.link_pages(f"/repos/{full_name}/deployments", {"per_page": PER_PAGE}):
        pages.append(page)
        for dep in page.data or []:
            if not isinstance(dep, dict):
                continue
            created = parse_time(dep.get("created_at"))
            if created is not None and created < since:
                stop = True
                break
            dep_id = str(dep.get("id"))
            row = {"deployment_id": dep_id, "provider": "github", "repo_id": repo_id,
                   "environment": dep.get("environment"), "sha": dep.get("sha"), "ref": dep.get("ref"),
                   "task": dep.get("task"), "creator_login": (dep.get("creator") or {}).get("login"),
                   "created_at": created, "updated_at": parse_time(dep.get("updated_at")),
                   "status": None, "status_at": None, "succeeded_at": None, "failed": None}
            statuses: list[dict[str, Any]] = []
            for spage in client.link_pages(f"/repos/{full_name}/deployments/{dep_id}/statuses",
                                           {"per_page": PER_PAGE}, conditional=True):
                pages.append(spage)
                if spage.not_modified:
                    statuses = None  # type: ignore[assignment]
                    break
                statuses += [s for s in spage.data or [] if isinstance(s, dict)]
            if statuses is None:
                unchanged.append(dep_id)
            else:
                _apply_statuses(row, statuses)
            rows.append(row)
        if stop:
            break
    validators = client.commit_validators()

    def write(w: Any) -> None:
        if unchanged:  # statuses not modified: keep what is stored
            kept = {r["deployment_id"]: r for r in w.query(
                f"SELECT deployment_id, status, status_at, succeeded_at, failed FROM deployment WHERE deployment_id IN "
                f"({', '.join('?' * len(unchanged))})", unchanged)}
            for row in rows:
                if row["deployment_id"] in kept:
                    row.update({k: v for k, v in kept[row["deployment_id"]].items() if k != "deployment_id"})
        replace_rows(w, "deployment", rows, ["deployment_id"], {"created_at": TS, "updated_at": TS, "status_at": TS,
                                                                 "succeeded_at": TS, "failed": pa.bool_()})
        land_pages(w, "github", pages, run_id, client.scrub)
        save_validators(w, validators, now)
    submit(write)
    result.add("deployments", len(rows))


def _apply_statuses(row: dict[str, Any], statuses: list[dict[str, Any]]) -> None:
    dated = sorted(((parse_time(s.get("created_at")), s.get("state")) for s in statuses),
                   key=lambda x: (x[0] is None, x[0]))
    if not dated:
        return
    latest = dated[-1]
    row["status"], row["status_at"] = latest[1], latest[0]
    successes = [t for t, st in dated if st == "success" and t is not None]
    row["succeeded_at"] = min(successes) if successes else None
    row["failed"] = any(st in ("failure", "error") for _, st in dated)


# -- identities ---------------------------------------------------------------------------------------
def refresh_github_identities(wh: Any) -> None:
    """Rebuild the ``github`` identities: every login seen, with each email its commits carry."""
    wh.execute("DELETE FROM eng_identity WHERE system = 'github'")
    wh.execute("""
        INSERT INTO eng_identity (system, identity, display_name, email, first_seen, last_seen)
        WITH seen AS (
            SELECT author_login AS login, NULL AS email, created_at AS ts FROM pull_request
            UNION ALL SELECT reviewer_login, NULL, submitted_at FROM review
            UNION ALL SELECT login, NULL, synced_at FROM github_team_member
            UNION ALL SELECT author_login, author_email, author_ts FROM pr_commit
            UNION ALL SELECT actor_login, NULL, created_at FROM ci_run
            UNION ALL SELECT creator_login, NULL, created_at FROM deployment)
        SELECT 'github', login, NULL, email, min(ts), max(ts) FROM (
            SELECT login, email, ts FROM seen WHERE login IS NOT NULL AND email IS NOT NULL
            UNION ALL
            SELECT login, NULL, ts FROM seen s WHERE login IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM pr_commit c WHERE c.author_login = s.login AND c.author_email IS NOT NULL))
        GROUP BY login, email
    """)
