"""The Jira Cloud source (REST v3, email + API token): issues with their status transitions.

::

    result = sync_jira(settings, wh)                           # jira_jql, incrementally
    result = sync_jira(settings, wh, since=date(2026, 1, 1))   # re-read everything updated since

What it promises:

- **The current search API.** ``GET /rest/api/3/search/jql`` paged with ``nextPageToken`` until
  ``isLast`` (a token seen twice is an error, never a loop), with ``expand=changelog``. When an issue's
  changelog is longer than what the search embeds, the rest is read from
  ``/rest/api/3/issue/{key}/changelog`` (``startAt`` paging).
- **What is kept per issue**: key, project, summary, type, status and its category, priority,
  assignee and reporter (account ids), sprints (the Sprint custom field, found through
  ``/rest/api/3/field``), labels, parent, created/updated/resolved, the first time it entered an
  "in progress" status; and every status transition (``issue_transition``) with who made it.
- **Incremental by ``updated``.** The query is ``(<jira_jql>) AND updated >= "<cursor − 1 day>"
  ORDER BY updated ASC``. JQL dates are read in the account's own time zone, which the API does not
  tell us; the day of overlap covers any zone, and re-reading an issue replaces it, never doubles it.
  Changing ``jira_jql`` starts over. JQL must be bounded, so the first run starts at
  ``engineering_sync_start`` (default 180 days ago).
- **Limits.** 429 and 503 with ``Retry-After`` are waited out, 5xx retried (see
  :mod:`cclens.sources._rest`); a page's issues, transitions, landing copy and the moved cursor are
  written in one transaction, so a crash re-reads at most one page.

Jira account ids, names and (when the account may see them) emails land in ``eng_identity``
(system ``jira``) for the people model.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

import pyarrow as pa

from ..errors import ConfigError, SourceError
from ._eng import (TS, EngSyncResult, Submit, direct_submit, finish_result, land_pages, load_cursor,
                   new_run_id, replace_rows, save_state)
from ._rest import Page, RestClient, parse_time

UTC = timezone.utc
SOURCE_KEY = "jira"
DEFAULT_BACKFILL = timedelta(days=180)
OVERLAP = timedelta(days=1)
PAGE_SIZE = 100
SPRINT_SCHEMA = "com.pyxis.greenhopper.jira:gh-sprint"
BASE_FIELDS = ("summary", "status", "issuetype", "priority", "assignee", "reporter", "labels", "created",
               "updated", "resolutiondate", "parent", "project")
_LIST = pa.list_(pa.string())
_LEGACY_SPRINT_RE = re.compile(r"name=([^,\]]+)")


def make_client(settings: Any, *, transport: Any = None, sleep: Callable[[float], None] = time.sleep,
                clock: Callable[[], float] = time.time) -> RestClient:
    token = settings.jira_api_token.get_secret_value() if settings.jira_api_token else ""
    missing = [n for n, v in (("jira_url", settings.jira_url), ("jira_email", settings.jira_email),
                              ("jira_api_token", token)) if not v]
    if missing:
        raise ConfigError(f"jira: {', '.join(missing)} not configured; set them in cclens.toml or as "
                          f"{', '.join('CCLENS_' + m.upper() for m in missing)} (an Atlassian account email "
                          "and an API token from id.atlassian.com)")
    basic = base64.b64encode(f"{settings.jira_email}:{token}".encode()).decode()
    return RestClient(settings.jira_url, source="jira", headers={"authorization": f"Basic {basic}"},
                      secrets=[token, basic], transport=transport, sleep=sleep, clock=clock,
                      credential_hint="check jira_email and jira_api_token (CCLENS_JIRA_EMAIL, CCLENS_JIRA_API_TOKEN)")


def build_jql(base: str | None, since: datetime) -> str:
    """The bounded, ordered query of one run."""
    bound = f'updated >= "{since:%Y/%m/%d %H:%M}"'
    where = f"({base}) AND {bound}" if base and base.strip() else bound
    return f"{where} ORDER BY updated ASC"


def sync_jira(settings: Any, wh: Any, *, since: date | None = None, now: datetime | None = None,
              submit: Submit | None = None, transport: Any = None, sleep: Callable[[float], None] = time.sleep,
              clock: Callable[[], float] = time.time) -> list[EngSyncResult]:
    """Sync the issues matching ``jira_jql`` (see the module doc); one result."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    submit = submit or direct_submit(wh)
    client = make_client(settings, transport=transport, sleep=sleep, clock=clock)
    base = settings.jira_jql
    result = EngSyncResult("jira", base or "all projects")
    try:
        _sync(client, wh, submit, base, since, now, result, settings)
    except SourceError as exc:
        result.status = "error"
        result.error = str(exc)
        submit(lambda w: save_state(w, SOURCE_KEY, None, now, 0, str(exc)))
    finally:
        finish_result(result, client)
        client.close()
    return [result]


def _sync(client: RestClient, wh: Any, submit: Submit, base: str | None, since: date | None, now: datetime,
          result: EngSyncResult, settings: Any) -> None:
    tag = hashlib.sha256((base or "").encode()).hexdigest()[:16]
    cursor = load_cursor(wh, SOURCE_KEY)
    if cursor.get("jql") != tag or since is not None:
        cursor = {}
    if since is not None:
        start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    elif cursor.get("updated"):
        start = parse_time(cursor["updated"]) - OVERLAP
    else:
        first = getattr(settings, "engineering_sync_start", None)
        start = datetime(first.year, first.month, first.day, tzinfo=UTC) if first else now - DEFAULT_BACKFILL
    run_id = new_run_id()
    sprint_field = _sprint_field(client)
    categories = _status_categories(client)
    fields = ",".join(BASE_FIELDS + ((sprint_field,) if sprint_field else ()))
    jql = build_jql(base, start)
    newest = parse_time(cursor.get("updated"))
    token: str | None = None
    seen: set[str] = set()
    while True:
        params = {"jql": jql, "maxResults": PAGE_SIZE, "fields": fields, "expand": "changelog",
                  "nextPageToken": token}
        page = client.get("/rest/api/3/search/jql", params)
        data = page.data if isinstance(page.data, dict) else {}
        pages = [page]
        issues, transitions, people = [], [], {}
        for raw in data.get("issues") or []:
            if not isinstance(raw, dict) or not raw.get("key"):
                continue
            histories, extra = _histories(client, raw)
            pages += extra
            row, trans = _issue_rows(raw, histories, sprint_field, categories, now, people)
            issues.append(row)
            transitions += trans
            if row["updated_at"] and (newest is None or row["updated_at"] > newest):
                newest = row["updated_at"]
        token = data.get("nextPageToken") or None
        last = bool(data.get("isLast")) or not token
        new_cursor = {"jql": tag, "updated": newest.isoformat() if newest else cursor.get("updated"),
                      "sprint_field": sprint_field}

        def write(w: Any, issues=issues, transitions=transitions, people=people, pages=pages,
                  new_cursor=new_cursor) -> None:
            replace_rows(w, "issue", issues, ["issue_key"], _ISSUE_TYPES)
            replace_rows(w, "issue_transition", transitions, ["issue_key"], {"ts": TS},
                         delete_keys=[(i["issue_key"],) for i in issues])
            _upsert_people(w, people)
            land_pages(w, "jira", pages, run_id, client.scrub)
            save_state(w, SOURCE_KEY, new_cursor, now, len(issues))
        submit(write)
        result.add("issues", len(issues))
        result.add("transitions", len(transitions))
        result.add("pages", 1)
        if last:
            break
        if token in seen:
            raise SourceError(f"jira: the search gave a nextPageToken it already gave ({client.scrub(page.url)}); "
                              "the API misbehaved, try again later")
        seen.add(token)


_ISSUE_TYPES = {"sprints": _LIST, "labels": _LIST, "created_at": TS, "updated_at": TS, "resolved_at": TS,
                "first_in_progress_at": TS, "synced_at": TS}


def _sprint_field(client: RestClient) -> str | None:
    page = client.get("/rest/api/3/field")
    for f in page.data or []:
        if isinstance(f, dict) and (f.get("schema") or {}).get("custom") == SPRINT_SCHEMA:
            return f.get("id")
    return None


def _status_categories(client: RestClient) -> dict[str, str]:
    """Status name (lower case) → category key (new | indeterminate | done)."""
    page = client.get("/rest/api/3/status")
    out = {}
    for s in page.data or []:
        if isinstance(s, dict) and s.get("name"):
            out[str(s["name"]).lower()] = ((s.get("statusCategory") or {}).get("key") or "").lower()
    return out


def _histories(client: RestClient, raw: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Page]]:
    """Every changelog entry of an issue: the embedded ones, or all of them read separately when the
    search embedded only part."""
    log = raw.get("changelog") or {}
    histories = [h for h in log.get("histories") or [] if isinstance(h, dict)]
    total = log.get("total")
    if not isinstance(total, int) or total <= len(histories):
        return histories, []
    pages: list[Page] = []
    out: list[dict[str, Any]] = []
    start = 0
    while True:
        page = client.get(f"/rest/api/3/issue/{raw['key']}/changelog", {"startAt": start, "maxResults": PAGE_SIZE})
        pages.append(page)
        values = [h for h in (page.data or {}).get("values") or [] if isinstance(h, dict)]
        out += values
        start += len(values)
        if (page.data or {}).get("isLast", True) or not values or start >= (page.data or {}).get("total", 0):
            break
    return out, pages


def _account(person: Any, people: dict[str, dict[str, Any]], ts: datetime | None) -> str | None:
    if not isinstance(person, dict) or not person.get("accountId"):
        return None
    aid = person["accountId"]
    seen = people.setdefault(aid, {"display_name": None, "email": None, "first": ts, "last": ts})
    seen["display_name"] = person.get("displayName") or seen["display_name"]
    seen["email"] = (person.get("emailAddress") or "").lower() or seen["email"]
    if ts is not None:
        seen["first"] = min(seen["first"] or ts, ts)
        seen["last"] = max(seen["last"] or ts, ts)
    return aid


def _sprints(value: Any) -> list[str]:
    out = []
    for s in value or []:
        if isinstance(s, dict) and s.get("name"):
            out.append(str(s["name"]))
        elif isinstance(s, str):  # the legacy "…Sprint@1a2b[id=1,name=Sprint 1,…]" form
            m = _LEGACY_SPRINT_RE.search(s)
            if m:
                out.append(m.group(1))
    return out


def _issue_rows(raw: dict[str, Any], histories: list[dict[str, Any]], sprint_field: str | None,
                categories: dict[str, str], now: datetime, people: dict[str, dict[str, Any]]
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    f = raw.get("fields") or {}
    key = raw["key"]
    created, updated = parse_time(f.get("created")), parse_time(f.get("updated"))
    status = f.get("status") or {}
    transitions = []
    for h in histories:
        ts = parse_time(h.get("created"))
        author = _account(h.get("author"), people, ts)
        for item in h.get("items") or []:
            if isinstance(item, dict) and (item.get("fieldId") == "status" or item.get("field") == "status"):
                transitions.append({"issue_key": key, "history_id": str(h.get("id")), "ts": ts,
                                    "from_status": item.get("fromString"), "to_status": item.get("toString"),
                                    "author_id": author})
    started = [t["ts"] for t in transitions
               if t["ts"] and categories.get(str(t["to_status"] or "").lower()) == "indeterminate"]
    row = {"issue_key": key, "provider": "jira", "issue_id": str(raw.get("id")) if raw.get("id") else None,
           "project_key": (f.get("project") or {}).get("key") or key.rsplit("-", 1)[0],
           "summary": f.get("summary"), "issue_type": (f.get("issuetype") or {}).get("name"),
           "status": status.get("name"),
           "status_category": ((status.get("statusCategory") or {}).get("key") or
                               categories.get(str(status.get("name") or "").lower())),
           "priority": (f.get("priority") or {}).get("name"),
           "assignee_id": _account(f.get("assignee"), people, updated),
           "assignee_name": (f.get("assignee") or {}).get("displayName"),
           "reporter_id": _account(f.get("reporter"), people, created),
           "sprints": _sprints(f.get(sprint_field)) if sprint_field else [],
           "labels": [str(x) for x in f.get("labels") or []],
           "parent_key": (f.get("parent") or {}).get("key"),
           "created_at": created, "updated_at": updated, "resolved_at": parse_time(f.get("resolutiondate")),
           "first_in_progress_at": min(started) if started else None, "synced_at": now}
    return row, transitions


def _upsert_people(wh: Any, people: dict[str, dict[str, Any]]) -> None:
    for aid, p in people.items():
        old = wh.query("SELECT display_name, email, first_seen, last_seen FROM eng_identity "
                       "WHERE system = 'jira' AND identity = ?", [aid])
        wh.execute("DELETE FROM eng_identity WHERE system = 'jira' AND identity = ?", [aid])
        o = old[0] if old else {}
        first = min([t for t in (p["first"], o.get("first_seen")) if t is not None], default=None)
        last = max([t for t in (p["last"], o.get("last_seen")) if t is not None], default=None)
        wh.execute("INSERT INTO eng_identity VALUES ('jira', ?, ?, ?, ?, ?)",
                   [aid, p["display_name"] or o.get("display_name"), p["email"] or o.get("email"), first, last])
