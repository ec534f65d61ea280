"""A synthetic engineering organisation that uses Claude Code: people, teams, and every session they run.

``build_org(seed, people, days, now)`` returns an :class:`Org`: teams in several time zones, people with
different adoption curves (champions, early adopters, steady, late, dabblers, never), a Bedrock-only
team (OTel and transcripts, never the Anthropic APIs), API-key actors (CI bots, seen only by the
Anthropic APIs), and the roll-out of each collection path (OpenTelemetry from a date, transcript
shipping and hooks for some people). ``org.sessions`` holds every session, with prompts, API requests
(main thread, subagents, auxiliary), tool uses, edits, commits and PRs — the one truth that
:mod:`cclens.synth.org_emit` writes out as transcripts, OTLP and hook calls, and
:mod:`cclens.synth.org_api` serves as the Anthropic reporting APIs. Everything is a pure function of
the arguments.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc
ORG_ID = "4d3c2b1a-0000-4000-8000-00000000demo"
CC_VERSIONS = ("2.1.190", "2.1.194", "2.1.197")

# family -> model id, as first-party and as Bedrock names them
MODELS = {"opus": "claude-opus-4-8", "sonnet": "claude-sonnet-4-5-20250929", "haiku": "claude-haiku-4-5-20251001"}
BEDROCK = {"opus": "us.anthropic.claude-opus-4-8-v1:0", "sonnet": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
           "haiku": "us.anthropic.claude-haiku-4-5-20251001-v1:0"}
TOOLS = (("Read", 26), ("Edit", 24), ("Bash", 20), ("Grep", 10), ("Write", 8), ("Glob", 6), ("MultiEdit", 3),
         ("WebFetch", 2), ("NotebookEdit", 1))
EDIT_TOOLS = {"Edit": "edit_tool", "MultiEdit": "multi_edit_tool", "Write": "write_tool",
              "NotebookEdit": "notebook_edit_tool"}
LANGUAGES = {"platform": "Go", "payments": "Java", "mobile": "Kotlin", "data": "Python", "web": "TypeScript",
             "ml": "Python", "devex": "Python"}

FIRST = ("Ada Alan Amara Ana Ben Bo Carla Chen Dana Diego Eli Emma Farah Felix Gina Hana Ivan Ines Jon Julia Kai Kemal "
         "Lena Leo Maya Marco Nia Noah Olga Omar Pia Priya Quinn Raj Rosa Sam Sara Tao Tess Uma Victor Wen Yara Zoe "
         "Aiko Bruno Cleo Dev Esme Femi Goran Hugo Iris Jasper Kira Luis Mira Nils Oona Paulo").split()
LAST = ("Abe Berg Costa Dubois Evans Fischer Garcia Haas Ito Jensen Kowalski Lind Moreau Nakamura Okafor Patel Quist "
        "Rossi Santos Tanaka Ueda Varga Weber Xu Yilmaz Zhou Brandt Coelho Duarte Ekström Fontaine Gupta Horvat "
        "Ibarra Janssen Kim").split()


@dataclass(frozen=True)
class Team:
    key: str
    name: str
    tz: str
    repos: tuple[str, ...]
    mix: tuple[tuple[str, float], ...]  # (model family, weight)
    bedrock: bool = False
    hooks: bool = False          # the team piloted hooks (from ``hooks_from``)
    ships: float = 0.2           # share of the team that ships transcripts


TEAMS = (
    Team("platform", "Platform", "Europe/Berlin", ("infra/terraform", "platform/gateway", "platform/scheduler"),
         (("opus", 5), ("sonnet", 4), ("haiku", 1)), hooks=True, ships=0.8),
    Team("payments", "Payments", "America/New_York", ("payments/ledger", "payments/checkout-api"),
         (("sonnet", 7), ("opus", 2), ("haiku", 1))),
    Team("mobile", "Mobile", "America/Los_Angeles", ("mobile/android-app", "mobile/ios-app"),
         (("sonnet", 6), ("haiku", 3), ("opus", 1)), hooks=True, ships=0.3),
    Team("web", "Web", "Europe/Berlin", ("web/storefront", "web/design-system"),
         (("sonnet", 6), ("opus", 3), ("haiku", 1)), ships=0.25),
    Team("data", "Data", "Europe/London", ("data/pipelines", "data/warehouse-models"),
         (("sonnet", 5), ("opus", 4), ("haiku", 1)), ships=0.2),
    Team("ml", "ML Research", "America/New_York", ("ml/training", "ml/eval-harness"),
         (("sonnet", 6), ("opus", 3), ("haiku", 1)), bedrock=True, ships=0.5),
)

# archetype -> (share, start as a fraction of the period (lo, hi), ramp days, intensity)
ARCHETYPES = (("champion", 0.10, (0.0, 0.02), 3, 0.92), ("early", 0.25, (0.0, 0.12), 10, 0.72),
              ("steady", 0.33, (0.1, 0.45), 18, 0.55), ("late", 0.20, (0.5, 0.8), 10, 0.5),
              ("dabbler", 0.08, (0.0, 0.7), 5, 0.14), ("never", 0.04, (2.0, 2.0), 1, 0.0))


@dataclass
class Person:
    key: str
    name: str
    email: str
    team: str
    tz: str
    host: str
    user_id: str          # OTel user.id: a hash of the install
    account_uuid: str
    account_id: str       # Anthropic user id (user_…), as the Usage and Enterprise APIs name the account
    bedrock: bool
    archetype: str
    start: int            # first day (offset) with any chance of use
    ramp: int
    intensity: float
    otel_from: int | None   # day offset from which telemetry is on (managed settings roll-out)
    ships: bool             # transcripts shipped to cclens (cclens ship)
    hooks_from: int | None
    terminal: str
    manager: str | None = None


@dataclass
class ApiKeyActor:
    name: str
    api_key_id: str
    per_day: float        # expected sessions per weekday


@dataclass
class Request:
    request_id: str
    message_id: str
    ts: datetime
    model: str
    input: int
    output: int
    cache_read: int
    cache_5m: int
    cache_1h: int
    duration_ms: int
    query_source: str      # sdk/repl_main_thread, agent:builtin:…, generate_session_title
    prompt_id: str | None
    agent_id: str | None = None

    @property
    def cache_creation(self) -> int:
        return self.cache_5m + self.cache_1h


@dataclass
class ToolUse:
    tool_use_id: str
    name: str
    ts: datetime
    result_ts: datetime
    success: bool
    decision: str            # accept | reject
    request_id: str
    prompt_id: str
    agent_id: str | None = None
    lines_added: int = 0
    lines_removed: int = 0
    commit: bool = False
    pull_request: bool = False


@dataclass
class Prompt:
    prompt_id: str
    ts: datetime
    length: int
    end: datetime | None = None


@dataclass
class Subagent:
    agent_id: str
    agent_type: str
    start: datetime
    end: datetime
    parent_tool_use_id: str
    prompt_id: str


@dataclass
class Session:
    session_id: str
    person: Person
    start: datetime
    end: datetime
    cwd: str
    branch: str
    version: str
    entrypoint: str
    prompts: list[Prompt] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    tools: list[ToolUse] = field(default_factory=list)
    subagents: list[Subagent] = field(default_factory=list)

    @property
    def day(self) -> date:
        return self.start.date()


@dataclass
class Org:
    seed: int
    start: date              # first day (UTC)
    days: int
    now: datetime
    teams: tuple[Team, ...]
    people: list[Person]
    api_keys: list[ApiKeyActor]
    sessions: list[Session]

    def team(self, key: str) -> Team:
        return next(t for t in self.teams if t.key == key)

    def day(self, offset: int) -> date:
        return self.start + timedelta(days=offset)

    def otel_on(self, s: Session) -> bool:
        p = s.person
        return p.otel_from is not None and (s.day - self.start).days >= p.otel_from

    def hooks_on(self, s: Session) -> bool:
        p = s.person
        return p.hooks_from is not None and (s.day - self.start).days >= p.hooks_from


def _hex(rng: random.Random, n: int) -> str:
    return "%0*x" % (n, rng.getrandbits(4 * n))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def build_org(seed: int = 42, people: int = 60, days: int = 90, now: datetime | None = None) -> Org:
    """The organisation and all its sessions for the ``days`` days ending at ``now`` (default: now)."""
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    start = now.date() - timedelta(days=days - 1)
    rng = random.Random(f"org|{seed}")
    staff = _people(rng, people, days)
    keys = [ApiKeyActor(name, f"apikey_{_hex(rng, 24)}", per_day)
            for name, per_day in (("ci-release-bot", 3.0), ("ci-review-bot", 6.0), ("nightly-refactor", 1.0))]
    org = Org(seed, start, days, now, TEAMS, staff, keys, [])
    for p in staff:
        org.sessions.extend(_person_sessions(org, p))
    org.sessions.sort(key=lambda s: s.start)
    return org


def _people(rng: random.Random, n: int, days: int) -> list[Person]:
    out: list[Person] = []
    names: set[str] = set()
    weights = [a[1] for a in ARCHETYPES]
    for i in range(n):
        team = TEAMS[i % len(TEAMS)] if i < len(TEAMS) * 2 else rng.choices(TEAMS, (5, 4, 3, 4, 3, 2))[0]
        while True:
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            if name not in names:
                names.add(name)
                break
        first, last = name.lower().split(" ")
        arch = ARCHETYPES[0] if i < 2 else ARCHETYPES[-1] if i == n - 1 and n >= 10 else rng.choices(ARCHETYPES, weights)[0]
        lo, hi = arch[2]
        start = int(days * (lo + (hi - lo) * rng.random()))
        host = f"{first}-{'mbp' if rng.random() < 0.7 else 'linux'}-{_hex(rng, 3)}"
        otel_from = None
        if team.bedrock:
            otel_from = 0                     # their platform set telemetry up from the start
        elif rng.random() > 0.06:             # a few laptops never got the managed settings
            otel_from = min(days - 1, max(0, days // 6 + rng.randint(-2, 4)))
        hooks_from = max(0, days // 2 + rng.randint(-3, 3)) if team.hooks and rng.random() < 0.8 else None
        ships = rng.random() < team.ships
        if i == 0:  # the platform lead who set cclens up: every source from day one
            otel_from, hooks_from, ships = 0, 0, True
        out.append(Person(
            key=f"{first}.{last}", name=name, email=f"{first}.{last}@acme.example".replace("ö", "o"),
            team=team.key, tz=team.tz, host=host,
            user_id=hashlib.sha256(f"{seed_of(rng)}|{i}".encode()).hexdigest(),
            account_uuid=_uuid(rng), account_id=f"user_{_hex(rng, 20)}", bedrock=team.bedrock,
            archetype=arch[0], start=start, ramp=arch[3], intensity=arch[4] * (0.8 + 0.4 * rng.random()),
            otel_from=otel_from, ships=ships, hooks_from=hooks_from,
            terminal=rng.choice(("vscode", "iTerm.app", "tmux", "cursor", "Apple_Terminal"))))
    for team in TEAMS:  # the first member of each team is its manager
        members = [p for p in out if p.team == team.key]
        for p in members[1:]:
            p.manager = members[0].email
    return out


def seed_of(rng: random.Random) -> int:
    return rng.getrandbits(32)


def _active(rng: random.Random, p: Person, offset: int, day: date) -> bool:
    if offset < p.start or p.intensity <= 0:
        return False
    prob = p.intensity * min(1.0, (offset - p.start + 1) / p.ramp)
    if day.weekday() >= 5:
        prob *= 0.08
    return rng.random() < prob


def _person_sessions(org: Org, p: Person) -> list[Session]:
    rng = random.Random(f"sessions|{org.seed}|{p.key}")
    team = org.team(p.team)
    zone = ZoneInfo(p.tz)
    holiday = rng.randrange(org.days) if rng.random() < 0.5 else -100
    out: list[Session] = []
    for offset in range(org.days):
        day = org.day(offset)
        if holiday <= offset < holiday + 5 or not _active(rng, p, offset, day):
            continue
        n = 1 + (rng.random() < p.intensity) + (rng.random() < p.intensity * 0.6)
        hours = sorted(rng.sample((9, 10, 11, 13, 14, 15, 16, 17), n))
        for hour in hours:
            local = datetime.combine(day, dtime(hour, rng.randrange(60), rng.randrange(60)), tzinfo=zone)
            begin = local.astimezone(UTC)
            if begin >= org.now - timedelta(minutes=30):
                continue
            out.append(_session(rng, org, p, team, begin))
    return out


def _family(rng: random.Random, team: Team, offset_share: float) -> str:
    fams, weights = zip(*team.mix)
    # opus use grows over the period (a new model became the default for some)
    weights = [w * (1 + offset_share) if f == "opus" else w for f, w in zip(fams, weights)]
    return rng.choices(fams, weights)[0]


def _model(p: Person, family: str) -> str:
    return BEDROCK[family] if p.bedrock else MODELS[family]


def _session(rng: random.Random, org: Org, p: Person, team: Team, begin: datetime) -> Session:
    share = (begin.date() - org.start).days / max(1, org.days)
    fam = _family(rng, team, share)
    s = Session(session_id=_uuid(rng), person=p, start=begin, end=begin,
                cwd=f"/home/{p.key.split('.')[0]}/src/{rng.choice(team.repos)}",
                branch=rng.choice(("main", f"feat/{_hex(rng, 4)}", f"fix/{_hex(rng, 4)}")),
                version=CC_VERSIONS[min(len(CC_VERSIONS) - 1, int(share * len(CC_VERSIONS)))],
                entrypoint="claude-vscode" if p.terminal in ("vscode", "cursor") else "cli")
    t = begin + timedelta(seconds=rng.randint(2, 9))
    # Claude Code names the session with a small model first (an auxiliary request)
    s.requests.append(_request(rng, t, _model(p, "haiku"), "generate_session_title", None, small=True))
    for _ in range(rng.randint(1, 2 + int(5 * p.intensity))):
        t += timedelta(seconds=rng.randint(20, 600))
        prompt = Prompt(_uuid(rng), t, rng.randint(12, 900))
        s.prompts.append(prompt)
        for step in range(rng.randint(1, 6)):
            t += timedelta(milliseconds=rng.randint(800, 9000))
            req = _request(rng, t, _model(p, fam), "repl_main_thread", prompt.prompt_id)
            s.requests.append(req)
            t += timedelta(milliseconds=req.duration_ms)
            if step and rng.random() < 0.25:
                break
            tool = _tool(rng, t, req, prompt)
            s.tools.append(tool)
            if tool.name in ("Read", "Grep") and rng.random() < 0.07:
                t = _subagent(rng, s, p, t, req, prompt)
            t = tool.result_ts
        t += timedelta(milliseconds=rng.randint(800, 6000))
        final = _request(rng, t, _model(p, fam), "repl_main_thread", prompt.prompt_id)
        s.requests.append(final)
        t += timedelta(milliseconds=final.duration_ms)
        prompt.end = t
    s.end = t + timedelta(seconds=rng.randint(5, 120))
    return s


def _request(rng: random.Random, t: datetime, model: str, qs: str, prompt_id: str | None, *,
             small: bool = False, agent_id: str | None = None) -> Request:
    if small:
        inp, out, read, c5, c1 = rng.randint(300, 900), rng.randint(8, 30), 0, 0, 0
    else:
        inp, out = rng.randint(3, 400), rng.randint(40, 2800)
        read = rng.randint(8_000, 160_000)
        c5 = rng.randint(0, 12_000)
        c1 = rng.randint(0, 6_000) if rng.random() < 0.1 else 0
    return Request(f"req_011{_hex(rng, 21)}", f"msg_01{_hex(rng, 22)}", t, model, inp, out, read, c5, c1,
                   rng.randint(900, 14_000) if not small else rng.randint(300, 900), qs, prompt_id, agent_id)


def _tool(rng: random.Random, t: datetime, req: Request, prompt: Prompt, agent_id: str | None = None) -> ToolUse:
    names, weights = zip(*TOOLS)
    name = rng.choices(names, weights)[0]
    accepted = rng.random() < (0.9 if name in EDIT_TOOLS else 0.99)
    tool = ToolUse(f"toolu_01{_hex(rng, 22)}", name, t, t + timedelta(milliseconds=rng.randint(15, 4000)),
                   success=accepted and rng.random() > 0.04, decision="accept" if accepted else "reject",
                   request_id=req.request_id, prompt_id=prompt.prompt_id, agent_id=agent_id)
    if name in EDIT_TOOLS and accepted:
        tool.lines_added = rng.randint(1, 60 if name != "Write" else 220)
        tool.lines_removed = rng.randint(0, 25) if name != "Write" else 0
    if name == "Bash" and accepted and agent_id is None:
        tool.commit = rng.random() < 0.12
        tool.pull_request = tool.commit and rng.random() < 0.25
    return tool


def _subagent(rng: random.Random, s: Session, p: Person, t: datetime, parent: Request, prompt: Prompt) -> datetime:
    agent_type = rng.choice(("general-purpose", "Explore", "code-reviewer"))
    task = ToolUse(f"toolu_01{_hex(rng, 22)}", "Task", t, t, True, "accept", parent.request_id, prompt.prompt_id)
    agent = Subagent(f"a{_hex(rng, 16)}", agent_type, t, t, task.tool_use_id, prompt.prompt_id)
    for _ in range(rng.randint(2, 4)):
        t += timedelta(milliseconds=rng.randint(500, 3000))
        req = _request(rng, t, _model(p, rng.choice(("haiku", "sonnet"))), f"agent:builtin:{agent_type}",
                       prompt.prompt_id, agent_id=agent.agent_id)
        s.requests.append(req)
        t += timedelta(milliseconds=req.duration_ms)
        tool = _tool(rng, t, req, prompt, agent.agent_id)
        tool.name = rng.choice(("Read", "Grep", "Glob"))
        tool.lines_added = tool.lines_removed = 0
        s.tools.append(tool)
        t = tool.result_ts
    agent.end = task.result_ts = t
    s.tools.append(task)
    s.subagents.append(agent)
    return t
