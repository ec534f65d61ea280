"""People, their identities in every source, and teams over time.

Every source names people differently: an email (Claude Code Analytics, Enterprise Analytics, OTel
``user.email``), an Anthropic account id (``user_…``), the OTel install id ``user.id`` and
``user.account_uuid``, an API key name, the host a transcript came from, later a git email, a GitHub
login, a Jira id. An **alias** ``(kind, value)`` links one of them to a **person**.

How a source row becomes a person (:func:`person_key_sql`, used by every metric):

1. Its identities are tried in a fixed priority (email, Anthropic account, OTel account uuid, OTel
   user id, API key, host). The first one with an alias gives the person.
2. Otherwise, an email *is* the person (``email:ann@example.com``): exact email matches link across
   sources automatically, with no people file at all.
3. Otherwise the row belongs to its unlinked identity (``otel_user_id:d160…``, ``host:ci-7``): counted,
   listed by :func:`unlinked`, never dropped.

Identities seen together in one record (an OTel event carrying ``user.id`` and ``user.email``; the
transcript and the OTel events of one session) are resolved together by the metric SQL, so linking
the email is enough. Unlinked API keys are actors, not people: they count in tokens and cost but not
in "active people".

Teams come from the people file; a membership has inclusive ``valid_from``/``valid_to`` days, so a
person who moved team mid-month counts in each team for their own days.
"""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConfigError, QueryError

ALIAS_KINDS = ("email", "anthropic_account", "otel_account_uuid", "otel_user_id", "api_key_name",
               "api_key_id", "host", "git_email", "github_login", "jira_id")
# kinds whose values are compared case-insensitively
_LOWER_KINDS = {"email", "git_email", "github_login"}
# kinds that name an actor but not a person: not counted as "active people" unless linked
ACTOR_KINDS = ("api_key_name", "api_key_id")
EPOCH = date(1970, 1, 1)


def normalise(kind: str, value: Any) -> str:
    """The stored form of an alias value (emails lowercased, whitespace trimmed)."""
    if kind not in ALIAS_KINDS:
        raise QueryError(f"unknown alias kind {kind!r}; use one of {', '.join(ALIAS_KINDS)}")
    text = str(value).strip()
    if not text:
        raise QueryError(f"an alias of kind {kind!r} needs a value")
    return text.lower() if kind in _LOWER_KINDS else text


def parse_alias(text: str) -> tuple[str, str]:
    """``kind:value`` → ``(kind, value)``; a bare address containing ``@`` is an email."""
    kind, sep, value = text.partition(":")
    if not sep or kind not in ALIAS_KINDS:
        if "@" in text and ":" not in text:
            return "email", normalise("email", text)
        raise QueryError(f"alias {text!r} is not KIND:VALUE; KIND is one of {', '.join(ALIAS_KINDS)}")
    return kind, normalise(kind, value)


# -- the row → person mapping used by every metric ----------------------------------------------

def person_key_sql(candidates: Iterable[tuple[str, str]], prefix: str = "al") -> tuple[str, str]:
    """SQL mapping one row's identities to a person key.

    ``candidates`` is ``[(kind, sql_expression), …]`` in priority order (expressions already
    normalised, NULL when absent). Returns ``(joins, expression)``: LEFT JOINs on ``alias`` to append
    after the row's FROM, and the expression giving the person key — the linked ``person_id``, else
    ``kind:value`` of the first identity present (an email is then the person itself).
    """
    cands = list(candidates)
    joins = []
    linked = []
    for i, (kind, expr) in enumerate(cands):
        if kind not in ALIAS_KINDS:
            raise QueryError(f"unknown alias kind {kind!r}")
        a = f"{prefix}{i}"
        joins.append(f"LEFT JOIN alias {a} ON {a}.kind = '{kind}' AND {a}.value = {expr}")
        linked.append(f"{a}.person_id")
    implicit = [f"'{kind}:' || {expr}" for kind, expr in cands]
    return "\n".join(joins), "coalesce(" + ", ".join(linked + implicit) + ")"


def is_person_sql(person_expr: str) -> str:
    """SQL true when a person key names a person (not an unlinked API key)."""
    return " AND ".join(f"{person_expr} NOT LIKE '{k}:%'" for k in ACTOR_KINDS)


def person_of(wh: Any, kind: str, value: Any) -> str:
    """The person key an identity resolves to (linked person, else ``kind:value``)."""
    v = normalise(kind, value)
    pid = wh.scalar("SELECT person_id FROM alias WHERE kind = ? AND value = ?", [kind, v])
    return pid or f"{kind}:{v}"


# -- identities seen in the sources --------------------------------------------------------------

# One row per (source, kind, value) with the days it was seen and an email seen on the same record
# (a hint for linking). Sources: transcripts, otel, hooks, claude_code_analytics, enterprise_analytics,
# usage_api.
OBSERVED_SQL = """
WITH obs AS (
    SELECT 'otel' AS source, k.kind, k.value, min(ts)::DATE AS first_day, max(ts)::DATE AS last_day,
           any_value(lower(user_email)) AS hint_email
    FROM (SELECT ts, user_email, user_id, account_uuid FROM otel_event
          WHERE user_id IS NOT NULL OR user_email IS NOT NULL OR account_uuid IS NOT NULL) e,
         LATERAL (VALUES ('email', lower(e.user_email)), ('otel_account_uuid', e.account_uuid),
                         ('otel_user_id', e.user_id)) k(kind, value)
    WHERE k.value IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT 'otel', 'otel_user_id', user_id, min(ts)::DATE, max(ts)::DATE, NULL
    FROM otel_point WHERE user_id IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT CASE WHEN r.from_transcripts THEN 'transcripts' ELSE 'otel' END, k.kind, k.value,
           min(r.ts)::DATE, max(r.ts)::DATE, any_value(lower(r.user_email))
    FROM api_request r,
         LATERAL (VALUES ('email', lower(r.user_email)), ('otel_account_uuid', r.account_uuid),
                         ('otel_user_id', r.user_id), ('host', r.host)) k(kind, value)
    WHERE k.value IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT 'hooks', 'host', host, min(ts)::DATE, max(ts)::DATE, NULL
    FROM landing_hook_event WHERE host IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT 'claude_code_analytics', CASE WHEN actor_type = 'api_key' THEN 'api_key_name' ELSE 'email' END,
           CASE WHEN actor_type = 'api_key' THEN actor_id ELSE lower(actor_id) END, min(day), max(day), NULL
    FROM cc_actor_day GROUP BY ALL
    UNION ALL
    SELECT 'enterprise_analytics', k.kind, k.value, min(day), max(day), any_value(lower(email))
    FROM engagement_day, LATERAL (VALUES ('email', lower(email)), ('anthropic_account', user_id)) k(kind, value)
    WHERE k.value IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT 'usage_api', k.kind, k.value, min(bucket_start)::DATE, max(bucket_start)::DATE, NULL
    FROM usage_bucket, LATERAL (VALUES ('anthropic_account', account_id), ('api_key_id', api_key_id)) k(kind, value)
    WHERE k.value IS NOT NULL GROUP BY ALL
)
SELECT kind, value, list_sort(list(DISTINCT source)) AS sources, min(first_day) AS first_day,
       max(last_day) AS last_day, any_value(hint_email) FILTER (WHERE hint_email <> value) AS seen_with_email
FROM obs GROUP BY kind, value
"""


def observed(wh: Any) -> list[dict[str, Any]]:
    """Every identity any source reported: kind, value, sources, first/last day, an email seen with it."""
    return wh.query(OBSERVED_SQL + " ORDER BY kind, value")


def unlinked(wh: Any) -> list[dict[str, Any]]:
    """Identities seen in some source that no alias links to a person, with where and when they were
    seen and, when an email was seen on the same records, the person it suggests."""
    return wh.query(f"""
        WITH o AS ({OBSERVED_SQL})
        SELECT o.kind, o.value, o.sources, o.first_day, o.last_day, o.seen_with_email,
               coalesce(s.person_id, CASE WHEN o.seen_with_email IS NOT NULL
                                          THEN 'email:' || o.seen_with_email END) AS suggested_person,
               CASE WHEN o.kind = 'email' THEN 'counted as its own person (email not in the people file)'
                    WHEN o.seen_with_email IS NOT NULL
                         THEN 'rows that carry the email count for ' || coalesce(s.person_id, 'email:' || o.seen_with_email)
                    WHEN o.kind IN ('api_key_name', 'api_key_id') THEN 'counted as an actor, not a person'
                    ELSE 'counted as its own person' END AS counted_as
        FROM o
        LEFT JOIN alias a ON a.kind = o.kind AND a.value = o.value
        LEFT JOIN alias s ON s.kind = 'email' AND s.value = o.seen_with_email
        WHERE a.person_id IS NULL
        ORDER BY o.kind, o.value""")


def people(wh: Any, on: date | None = None) -> list[dict[str, Any]]:
    """Known people with their aliases and their team on day ``on`` (default: today)."""
    on = on or date.today()
    return wh.query("""
        SELECT p.person_id, p.name, p.manager_id,
               (SELECT list(m.team_id ORDER BY m.team_id) FROM membership m WHERE m.person_id = p.person_id
                  AND m.valid_from <= ? AND (m.valid_to IS NULL OR m.valid_to >= ?)) AS teams,
               (SELECT list(a.kind || ':' || a.value ORDER BY a.kind, a.value) FROM alias a
                 WHERE a.person_id = p.person_id) AS aliases
        FROM person p ORDER BY p.person_id""", [on, on])


# -- writes ----------------------------------------------------------------------------------------

def link(wh: Any, alias: str | tuple[str, str], person: str, *, name: str | None = None) -> dict[str, Any]:
    """Link ``alias`` (``kind:value`` or a tuple) to ``person`` (a person id, or an email already
    linked to one). A person id not seen before is created. An alias linked elsewhere is moved."""
    kind, value = parse_alias(alias) if isinstance(alias, str) else (alias[0], normalise(*alias))
    person = person.strip()
    if not person:
        raise QueryError("`people link` needs a person id")
    now = datetime.now(timezone.utc)
    with wh.transaction():
        pid = wh.scalar("SELECT person_id FROM person WHERE person_id = ?", [person])
        if pid is None and "@" in person:
            pid = wh.scalar("SELECT person_id FROM alias WHERE kind = 'email' AND value = ?", [person.lower()])
        created = pid is None
        if created:
            pid = person
            wh.execute("INSERT INTO person VALUES (?, ?, NULL, 'link', ?)", [pid, name or pid, now])
            if "@" in pid:
                wh.execute("DELETE FROM alias WHERE kind = 'email' AND value = ?", [pid.lower()])
                wh.execute("INSERT INTO alias VALUES ('email', ?, ?, 'link', ?)", [pid.lower(), pid, now])
        previous = wh.scalar("SELECT person_id FROM alias WHERE kind = ? AND value = ?", [kind, value])
        wh.execute("DELETE FROM alias WHERE kind = ? AND value = ?", [kind, value])
        wh.execute("INSERT INTO alias VALUES (?, ?, ?, 'link', ?)", [kind, value, pid, now])
    return {"alias": f"{kind}:{value}", "person_id": pid, "created_person": created,
            "previous_person": previous if previous != pid else None}


def unlink(wh: Any, alias: str) -> bool:
    """Remove one alias; True when it existed."""
    kind, value = parse_alias(alias)
    with wh.transaction():
        found = wh.scalar("SELECT count(*) FROM alias WHERE kind = ? AND value = ?", [kind, value])
        wh.execute("DELETE FROM alias WHERE kind = ? AND value = ?", [kind, value])
    return bool(found)


@dataclass
class _Person:
    person_id: str
    name: str | None = None
    manager: str | None = None
    aliases: set[tuple[str, str]] = field(default_factory=set)
    memberships: list[tuple[str, date, date | None]] = field(default_factory=list)


@dataclass
class PeopleFile:
    """A parsed people file: persons (aliases, memberships, manager) and teams."""

    people: dict[str, _Person]
    teams: dict[str, tuple[str | None, str | None]]  # team_id -> (name, parent)


def _day(value: Any, where: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a day (YYYY-MM-DD)") from None


def _list(value: Any, sep: str = ";") -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(sep) if v.strip()]


def _add_person(out: dict[str, _Person], rec: dict[str, Any], where: str) -> None:
    emails = [e.lower() for e in _list(rec.get("emails") or rec.get("email"))]
    pid = str(rec.get("id") or rec.get("person") or (emails[0] if emails else "")).strip()
    if not pid:
        raise ConfigError(f"{where}: a person needs an id (`person`/`id`) or an email")
    p = out.setdefault(pid, _Person(pid))
    p.name = rec.get("name") or p.name
    p.manager = rec.get("manager") or p.manager
    for e in emails:
        p.aliases.add(("email", normalise("email", e)))
    aliases = rec.get("aliases")
    if isinstance(aliases, dict):
        items = [(k, v) for k, vs in aliases.items() for v in _list(vs)]
    else:
        items = []
        for text in _list(aliases):
            kind, sep, value = text.partition(":")
            if not sep:
                raise ConfigError(f"{where}: alias {text!r} is not KIND:VALUE")
            items.append((kind.strip(), value))
    for kind, value in items:
        if kind not in ALIAS_KINDS:
            raise ConfigError(f"{where}: unknown alias kind {kind!r}; use one of {', '.join(ALIAS_KINDS)}")
        p.aliases.add((kind, normalise(kind, value)))
    for m in rec.get("memberships") or rec.get("teams") or []:
        if not isinstance(m, dict) or not m.get("team"):
            raise ConfigError(f"{where}: each membership needs a `team` (and optional `from`, `to`)")
        p.memberships.append((str(m["team"]), _day(m.get("from"), where) or EPOCH, _day(m.get("to"), where)))
    if rec.get("team"):
        start = _day(rec.get("team_from"), where)
        if start is None:
            ends = [t for _, _, t in p.memberships if t is not None]
            start = max(ends) + timedelta(days=1) if ends else EPOCH
        p.memberships.append((str(rec["team"]), start, _day(rec.get("team_to"), where)))


def parse_people_file(path: Path) -> PeopleFile:
    """Read a people file (``.toml`` or ``.csv``; format in docs/people.md). ConfigError on bad input."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read people file {path}: {exc}") from None
    people: dict[str, _Person] = {}
    teams: dict[str, tuple[str | None, str | None]] = {}
    if path.suffix.lower() == ".toml":
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"people file {path} is not valid TOML: {exc}") from None
        for i, t in enumerate(doc.get("team", []) or []):
            if not isinstance(t, dict) or not t.get("id"):
                raise ConfigError(f"{path}: [[team]] #{i + 1} needs an `id`")
            teams[str(t["id"])] = (t.get("name"), t.get("parent"))
        for i, rec in enumerate(doc.get("person", []) or []):
            if not isinstance(rec, dict):
                raise ConfigError(f"{path}: [[person]] #{i + 1} is not a table")
            _add_person(people, rec, f"{path} [[person]] #{i + 1}")
    elif path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not ({"person", "emails", "email"} & set(reader.fieldnames)):
            raise ConfigError(f"{path}: the CSV header needs `person` or `emails` (and optionally name, "
                              "aliases, team, team_from, team_to, manager)")
        for n, row in enumerate(reader, start=2):
            rec = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}
            _add_person(people, rec, f"{path} line {n}")
    else:
        raise ConfigError(f"people file {path} must end in .toml or .csv")
    seen: dict[tuple[str, str], str] = {}
    for p in people.values():
        for a in p.aliases:
            if seen.setdefault(a, p.person_id) != p.person_id:
                raise ConfigError(f"{path}: alias {a[0]}:{a[1]} is given to both {seen[a]} and {p.person_id}")
        for team, _, _ in p.memberships:
            teams.setdefault(team, (None, None))
    emails = {v: pid for (k, v), pid in seen.items() if k == "email"}
    for p in people.values():  # a manager may be given by email
        if p.manager and p.manager not in people and p.manager.lower() in emails:
            p.manager = emails[p.manager.lower()]
    return PeopleFile(people, teams)


def import_people(wh: Any, path: Path) -> dict[str, int]:
    """Load a people file: upsert its people, teams, aliases and memberships in one transaction.

    The file is the truth for the people it names: their imported aliases and memberships are
    replaced; aliases linked by hand (``people link``) to other identities are kept. An alias the file
    gives to someone else is moved. Returns counts.
    """
    doc = parse_people_file(path)
    now = datetime.now(timezone.utc)
    ids = list(doc.people)
    with wh.transaction():
        for team_id, (name, parent) in doc.teams.items():
            old = wh.query("SELECT name, parent_id FROM team WHERE team_id = ?", [team_id])
            if old and name is None and parent is None:
                continue  # a team only referenced by a membership keeps what it had
            wh.execute("DELETE FROM team WHERE team_id = ?", [team_id])
            wh.execute("INSERT INTO team VALUES (?, ?, ?, ?)", [team_id, name or team_id, parent, now])
        if ids:
            wh.execute("DELETE FROM person WHERE list_contains(?, person_id)", [ids])
            wh.execute("DELETE FROM alias WHERE origin = 'import' AND list_contains(?, person_id)", [ids])
            wh.execute("DELETE FROM membership WHERE list_contains(?, person_id)", [ids])
        n_alias = n_member = 0
        for p in doc.people.values():
            wh.execute("INSERT INTO person VALUES (?, ?, ?, 'import', ?)", [p.person_id, p.name or p.person_id,
                                                                           p.manager, now])
            for kind, value in sorted(p.aliases):
                wh.execute("DELETE FROM alias WHERE kind = ? AND value = ?", [kind, value])
                wh.execute("INSERT INTO alias VALUES (?, ?, ?, 'import', ?)", [kind, value, p.person_id, now])
                n_alias += 1
            for team, start, end in p.memberships:
                if end is not None and end < start:
                    raise ConfigError(f"{path}: membership of {p.person_id} in {team} ends ({end}) before it "
                                      f"starts ({start})")
                wh.execute("INSERT INTO membership VALUES (?, ?, ?, ?, 'import', ?)", [p.person_id, team, start,
                                                                                       end, now])
                n_member += 1
    return {"people": len(ids), "aliases": n_alias, "teams": len(doc.teams), "memberships": n_member}
