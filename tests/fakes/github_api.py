"""A fake of the GitHub REST API (v3) for the parts cclens reads, served on a real loopback port.

It implements the documented protocol (docs.github.com/rest, "Using pagination", "Rate limits",
"Best practices: conditional requests"):

- Auth: ``Authorization: Bearer <token>`` or ``token <token>``; anything else is 401
  ``{"message": "Bad credentials"}``. A repository the token may not see is 404 ``Not Found``.
- Paging: ``per_page`` (default 30, max 100) and ``page``; a ``Link`` header with ``next``, ``last``,
  ``first`` and ``prev`` as GitHub sends them.
- Conditional requests: every 200 carries a weak ``ETag`` of its body; ``If-None-Match`` with the
  current ETag answers 304 without a body, and (as on GitHub) does not count against the limit.
- Rate limit: ``x-ratelimit-limit/-remaining/-used/-reset/-resource`` on every answer; when the hourly
  budget is spent, 403 ``API rate limit exceeded`` with ``x-ratelimit-remaining: 0`` until ``reset``.
  Time is the fake's own :attr:`clock` (epoch seconds), advanced by :meth:`sleep`, so a client given
  ``sleep=fake.sleep, clock=fake.now_ts`` waits without waiting.
- Injection (:meth:`fail`): a secondary rate limit (403 or 429 with ``retry-after``, or 403 with only
  the "secondary rate limit" message), 5xx, or any status, on matching paths, after N good requests.
- Endpoints: ``/repos/{o}/{r}``, ``/orgs/{org}/repos``, ``/orgs/{org}/teams``,
  ``/orgs/{org}/teams/{slug}/members``, ``/repos/{o}/{r}/pulls`` (``state``, ``sort`` created|updated,
  ``direction``), ``…/pulls/{n}/reviews``, ``…/pulls/{n}/commits``, ``…/actions/runs`` (``created``
  ``>=`` filter, ``{"total_count", "workflow_runs"}``), ``…/deployments``,
  ``…/deployments/{id}/statuses``.

Data is built with :meth:`add_repo`, :meth:`add_pull`, :meth:`add_run`, :meth:`add_deployment`,
:meth:`add_team`, or generated with :meth:`generate` (a pure function of the seed).

Use::

    gh = FakeGitHub(now=datetime(2026, 6, 1, tzinfo=UTC))
    gh.generate(seed=1, org="acme", repos=3, pulls=120)
    with gh.serve() as url:          # CCLENS_GITHUB_API_URL=url, CCLENS_GITHUB_TOKEN=gh.TOKEN
        ...
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode

import orjson

from fakes._faults import FaultRule, next_fault
from fakes.anthropic_api import serve_asgi

UTC = timezone.utc
WINDOW = 3600


def iso(ts: datetime | None) -> str | None:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else None


@dataclass
class Pull:
    number: int
    title: str
    user: str
    head_ref: str
    head_sha: str
    base_ref: str
    created_at: datetime
    updated_at: datetime
    state: str = "open"
    closed_at: datetime | None = None
    merged_at: datetime | None = None
    merge_commit_sha: str | None = None
    draft: bool = False
    labels: list[str] = field(default_factory=list)
    commits: list[dict[str, Any]] = field(default_factory=list)   # {sha, login, email, name, date, message}
    reviews: list[dict[str, Any]] = field(default_factory=list)   # {id, login, state, submitted_at, commit_id}


class FakeGitHub:
    TOKEN = "ghp_FAKEfakeFAKEfake0123456789"

    def __init__(self, *, now: datetime = datetime(2026, 6, 1, tzinfo=UTC), rate_limit: int = 5000):
        self.clock = now.timestamp()
        self.rate_limit = rate_limit
        self.window_start = self.clock
        self.used = 0
        self.repos: dict[str, dict[str, Any]] = {}
        self.orgs: dict[str, dict[str, Any]] = {}
        self.rules: list[FaultRule] = []
        self.log: list[tuple[str, int]] = []   # (path?query, status)
        self._lock = threading.Lock()
        self._ids = 1000

    # -- time -------------------------------------------------------------------------------------
    def now_ts(self) -> float:
        return self.clock

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.clock += max(seconds, 0.0)

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock, UTC)

    # -- data -------------------------------------------------------------------------------------
    def _id(self) -> int:
        self._ids += 1
        return self._ids

    def add_org(self, org: str) -> dict[str, Any]:
        return self.orgs.setdefault(org, {"repos": [], "teams": {}})

    def add_repo(self, full_name: str, *, org: str | None = None, archived: bool = False,
                 default_branch: str = "main") -> dict[str, Any]:
        owner, name = full_name.split("/")
        repo = {"meta": {"id": self._id(), "name": name, "full_name": full_name, "private": True,
                         "archived": archived, "default_branch": default_branch,
                         "owner": {"login": owner}, "created_at": "2025-01-01T00:00:00Z",
                         "pushed_at": iso(self.now), "updated_at": iso(self.now)},
                "pulls": {}, "runs": [], "deployments": [], "statuses": {}}
        self.repos[full_name.lower()] = repo
        if org:
            self.add_org(org)["repos"].append(full_name)
        return repo

    def add_team(self, org: str, slug: str, members: list[str], *, parent: str | None = None) -> None:
        self.add_org(org)["teams"][slug] = {"id": self._id(), "slug": slug, "name": slug.title(),
                                            "parent": {"slug": parent} if parent else None, "members": members}

    def add_pull(self, full_name: str, pull: Pull) -> Pull:
        self.repos[full_name.lower()]["pulls"][pull.number] = pull
        return pull

    def pull(self, full_name: str, number: int) -> Pull:
        return self.repos[full_name.lower()]["pulls"][number]

    def add_review(self, full_name: str, number: int, login: str, state: str, at: datetime) -> None:
        pr = self.pull(full_name, number)
        pr.reviews.append({"id": self._id(), "login": login, "state": state, "submitted_at": at,
                           "commit_id": pr.head_sha})
        pr.updated_at = max(pr.updated_at, at)

    def add_run(self, full_name: str, *, head_sha: str, branch: str, created_at: datetime, conclusion: str = "success",
                status: str = "completed", name: str = "CI", event: str = "pull_request",
                pr_numbers: list[int] | None = None) -> dict[str, Any]:
        run = {"id": self._id(), "name": name, "workflow_id": 77, "event": event, "status": status,
               "conclusion": conclusion if status == "completed" else None, "head_sha": head_sha,
               "head_branch": branch, "run_attempt": 1,
               "pull_requests": [{"number": n} for n in pr_numbers or []], "actor": {"login": "ci-bot"},
               "created_at": iso(created_at), "run_started_at": iso(created_at + timedelta(seconds=5)),
               "updated_at": iso(created_at + timedelta(minutes=4))}
        self.repos[full_name.lower()]["runs"].append(run)
        return run

    def add_deployment(self, full_name: str, *, sha: str, created_at: datetime, environment: str = "production",
                       statuses: list[tuple[str, datetime]] = ()) -> dict[str, Any]:
        dep = {"id": self._id(), "sha": sha, "ref": "main", "task": "deploy", "environment": environment,
               "creator": {"login": "deployer"}, "created_at": iso(created_at), "updated_at": iso(created_at),
               "payload": {}}
        repo = self.repos[full_name.lower()]
        repo["deployments"].append(dep)
        repo["statuses"][dep["id"]] = []
        for state, at in statuses:
            self.add_deployment_status(full_name, dep["id"], state, at)
        return dep

    def add_deployment_status(self, full_name: str, dep_id: int, state: str, at: datetime) -> None:
        self.repos[full_name.lower()]["statuses"][dep_id].append(
            {"id": self._id(), "state": state, "created_at": iso(at), "environment": "production"})

    def generate(self, *, seed: int = 1, org: str = "acme", repos: int = 3, pulls: int = 40, people: int = 8,
                 start: datetime | None = None) -> None:
        """A deterministic organisation: repositories with pull requests (reviews, commits), CI runs,
        deployments with successes and failures, and two teams."""
        rnd = random.Random(seed)
        logins = [f"dev{i}" for i in range(people)]
        start = start or self.now - timedelta(days=60)
        self.add_team(org, "platform", logins[: people // 2])
        self.add_team(org, "product", logins[people // 2:], parent="platform")
        for r in range(repos):
            full = f"{org}/repo{r}"
            self.add_repo(full, org=org)
            for n in range(1, pulls + 1):
                created = start + timedelta(hours=rnd.randint(0, 24 * 55))
                author = rnd.choice(logins)
                sha = hashlib.sha1(f"{full}-{n}".encode()).hexdigest()
                commits = []
                for k in range(rnd.randint(1, 4)):
                    csha = hashlib.sha1(f"{full}-{n}-{k}".encode()).hexdigest()
                    commits.append({"sha": csha, "login": author, "email": f"{author}@example.com",
                                    "name": author.title(), "date": created - timedelta(hours=rnd.randint(1, 48)),
                                    "message": f"PROJ-{n}: change {k}"})
                pr = Pull(number=n, title=f"PROJ-{n} do thing {n}", user=author, head_ref=f"feature/PROJ-{n}",
                          head_sha=commits[-1]["sha"], base_ref="main", created_at=created, updated_at=created,
                          labels=rnd.sample(["bug", "feature", "chore"], rnd.randint(0, 2)), commits=commits)
                self.add_pull(full, pr)
                t = created
                for _ in range(rnd.randint(0, 3)):
                    t += timedelta(hours=rnd.randint(1, 20))
                    self.add_review(full, n, rnd.choice([x for x in logins if x != author]),
                                    rnd.choice(["APPROVED", "COMMENTED", "CHANGES_REQUESTED"]), t)
                roll = rnd.random()
                if roll < 0.7:
                    t += timedelta(hours=rnd.randint(1, 30))
                    pr.state, pr.closed_at, pr.merged_at, pr.merge_commit_sha = "closed", t, t, sha
                    dep_at = t + timedelta(minutes=rnd.randint(5, 300))
                    fail = rnd.random() < 0.2
                    self.add_deployment(full, sha=sha, created_at=dep_at, statuses=[
                        ("in_progress", dep_at), ("failure" if fail else "success", dep_at + timedelta(minutes=3))])
                elif roll < 0.8:
                    t += timedelta(hours=2)
                    pr.state, pr.closed_at = "closed", t
                pr.updated_at = max(pr.updated_at, t)
                self.add_run(full, head_sha=pr.head_sha, branch=pr.head_ref, created_at=created + timedelta(minutes=2),
                             conclusion=rnd.choice(["success", "success", "failure"]), pr_numbers=[n])

    # -- injection --------------------------------------------------------------------------------
    def fail(self, status: int, *, count: int = 1, after: int = 0, path: str | None = None,
             retry_after: float | None = None, message: str | None = None) -> None:
        """Answer ``count`` requests (matching ``path`` as a substring, after ``after`` good ones) with
        ``status``. 403/429 default to GitHub's secondary-limit message."""
        default = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
                   if status in (403, 429) else "Server Error")
        self.rules.append(FaultRule(status, count, after, path, retry_after, message or default))

    # -- serving ----------------------------------------------------------------------------------
    def serve(self, host: str = "127.0.0.1", port: int = 0):
        """Serve on a real loopback port; a context yielding the base URL."""
        return serve_asgi(self.asgi, host, port)

    async def asgi(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode()))
        host = headers.get("host", "127.0.0.1")
        status, body, extra = self.handle(scope["method"], path, query, headers, f"http://{host}")
        out = [(b"content-type", b"application/json; charset=utf-8")]
        out += [(k.encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    def _limit_headers(self) -> dict[str, str]:
        if self.clock >= self.window_start + WINDOW:
            self.window_start, self.used = self.clock, 0
        return {"x-ratelimit-limit": str(self.rate_limit), "x-ratelimit-remaining": str(max(self.rate_limit - self.used, 0)),
                "x-ratelimit-used": str(self.used), "x-ratelimit-reset": str(int(self.window_start + WINDOW)),
                "x-ratelimit-resource": "core"}

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], base: str
               ) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            full = path + ("?" + urlencode(query) if query else "")
            status, body, extra = self._handle(method, path, query, headers, base)
            self.log.append((full, status))
            return status, body, extra

    def _handle(self, method, path, query, headers, base):
        auth = headers.get("authorization", "")
        if auth not in (f"Bearer {self.TOKEN}", f"token {self.TOKEN}"):
            return 401, orjson.dumps({"message": "Bad credentials",
                                      "documentation_url": "https://docs.github.com/rest"}), {}
        limit = self._limit_headers()
        rule = next_fault(self.rules, path)
        if rule is not None:
            extra = dict(limit)
            if rule.retry_after is not None:
                extra["retry-after"] = str(int(rule.retry_after))
            return rule.status, orjson.dumps({"message": rule.message,
                                              "documentation_url": "https://docs.github.com/rest"}), extra
        if self.used >= self.rate_limit:
            return 403, orjson.dumps({"message": "API rate limit exceeded for user ID 1.",
                                      "documentation_url": "https://docs.github.com/rest/rate-limit"}), limit
        if method != "GET":
            return 404, orjson.dumps({"message": "Not Found"}), limit
        data = self._route(path, query)
        if data is None:
            self.used += 1
            return 404, orjson.dumps({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}), \
                self._limit_headers()
        items, wrap = data
        link = ""
        if isinstance(items, list):
            per_page = min(max(int(query.get("per_page", 30) or 30), 1), 100)
            page = max(int(query.get("page", 1) or 1), 1)
            last = max((len(items) + per_page - 1) // per_page, 1)
            link = self._link(base, path, query, page, last)
            items = items[(page - 1) * per_page: page * per_page]
        payload = wrap(items) if wrap else items
        body = orjson.dumps(payload)
        etag = 'W/"' + hashlib.sha256(body).hexdigest()[:40] + '"'
        if headers.get("if-none-match") == etag:
            return 304, b"", {**limit, "etag": etag}  # not counted, as on GitHub
        self.used += 1
        extra = {**self._limit_headers(), "etag": etag}
        if link:
            extra["link"] = link
        return 200, body, extra

    def _link(self, base: str, path: str, query: dict[str, str], page: int, last: int) -> str:
        def url(p: int) -> str:
            return f"{base}{path}?{urlencode({**query, 'page': p})}"
        parts = []
        if page < last:
            parts += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
        if page > 1:
            parts += [f'<{url(1)}>; rel="first"', f'<{url(page - 1)}>; rel="prev"']
        return ", ".join(parts)

    def _route(self, path: str, query: dict[str, str]) -> tuple[Any, Callable | None] | None:
        m = re.fullmatch(r"/orgs/([^/]+)/(repos|teams)", path)
        if m:
            org = self.orgs.get(m.group(1))
            if org is None:
                return None
            if m.group(2) == "repos":
                return [self.repos[r.lower()]["meta"] for r in org["repos"]], None
            return [{k: v for k, v in t.items() if k != "members"} for t in org["teams"].values()], None
        m = re.fullmatch(r"/orgs/([^/]+)/teams/([^/]+)/members", path)
        if m:
            team = (self.orgs.get(m.group(1)) or {"teams": {}})["teams"].get(m.group(2))
            return ([{"login": x, "id": abs(hash(x)) % 10**6, "type": "User"} for x in team["members"]], None) \
                if team else None
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", path)
        if not m:
            return None
        repo = self.repos.get(m.group(1).lower())
        rest = m.group(2) or ""
        if repo is None:
            return None
        if rest == "":
            return repo["meta"], None
        if rest == "/pulls":
            pulls = list(repo["pulls"].values())
            state = query.get("state", "open")
            if state != "all":
                pulls = [p for p in pulls if p.state == state]
            key = (lambda p: p.updated_at) if query.get("sort") == "updated" else (lambda p: p.created_at)
            pulls.sort(key=lambda p: (key(p), p.number), reverse=query.get("direction", "desc") == "desc")
            return [self._pull_json(m.group(1), p) for p in pulls], None
        m2 = re.fullmatch(r"/pulls/(\d+)/(reviews|commits)", rest)
        if m2:
            pr = repo["pulls"].get(int(m2.group(1)))
            if pr is None:
                return None
            if m2.group(2) == "reviews":
                return [{"id": r["id"], "user": {"login": r["login"]}, "state": r["state"],
                         "submitted_at": iso(r["submitted_at"]), "commit_id": r["commit_id"], "body": ""}
                        for r in pr.reviews], None
            return [{"sha": c["sha"], "author": {"login": c["login"]} if c.get("login") else None,
                     "commit": {"author": {"name": c["name"], "email": c["email"], "date": iso(c["date"])},
                                "committer": {"name": c["name"], "email": c["email"], "date": iso(c["date"])},
                                "message": c["message"]}} for c in pr.commits], None
        if rest == "/actions/runs":
            runs = sorted(repo["runs"], key=lambda r: (r["created_at"], r["id"]), reverse=True)
            created = query.get("created", "")
            if created.startswith(">="):
                bound = created[2:]
                bound = bound if "T" in bound else bound + "T00:00:00Z"
                runs = [r for r in runs if r["created_at"] >= bound]
            return runs, (lambda items, n=len(runs): {"total_count": n, "workflow_runs": items})
        if rest == "/deployments":
            return sorted(repo["deployments"], key=lambda d: d["id"], reverse=True), None
        m2 = re.fullmatch(r"/deployments/(\d+)/statuses", rest)
        if m2:
            statuses = repo["statuses"].get(int(m2.group(1)))
            return (sorted(statuses, key=lambda s: s["id"], reverse=True), None) if statuses is not None else None
        return None

    def _pull_json(self, full_name: str, p: Pull) -> dict[str, Any]:
        return {"id": p.number * 7919, "number": p.number, "title": p.title, "state": p.state, "draft": p.draft,
                "user": {"login": p.user}, "labels": [{"name": x} for x in p.labels],
                "head": {"ref": p.head_ref, "sha": p.head_sha}, "base": {"ref": p.base_ref},
                "created_at": iso(p.created_at), "updated_at": iso(p.updated_at), "closed_at": iso(p.closed_at),
                "merged_at": iso(p.merged_at), "merge_commit_sha": p.merge_commit_sha,
                "html_url": f"https://github.example/{full_name}/pull/{p.number}"}
