"""A small hand-built organisation with data in every source, for the metric catalog tests.

People file (``PEOPLE_TOML``): ann (platform until 2026-03-15, then web), bob (web), cat (platform),
dan (web), eve (platform, never active). Sources, all in March 2026 (UTC):

* ann  — transcripts (host ann-laptop) + OTel (email, user.id uid-ann) + Claude Code Analytics +
         Enterprise Analytics; active 03-02 (platform) and 03-20 (web).
* bob  — only Claude Code Analytics (+ Enterprise Analytics) by email.
* cat  — only transcripts (host cat-desktop), two sessions; and hooks from cat-desktop.
* dan  — Bedrock-style: OTel with user.id only (uid-dan), no API rows.
* uid-zed — an OTel install nobody linked.
* ci-bot — an API-key actor in Claude Code Analytics.
* gus@acme.test — Enterprise Analytics chat only (no Claude Code activity), not in the people file.
* Cost API (two groupings of the same day, must not be added), Usage API (one bucket).

Every expected value in tests/test_metrics_golden.py is worked out by hand from these rows.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

PEOPLE_TOML = """
[[team]]
id = "platform"
name = "Platform"

[[team]]
id = "web"
name = "Web"

[[person]]
id = "ann"
name = "Ann"
emails = ["Ann@Acme.test"]
aliases = { host = ["ann-laptop"] }
[[person.memberships]]
team = "platform"
to = "2026-03-15"
[[person.memberships]]
team = "web"
from = "2026-03-16"

[[person]]
id = "bob"
name = "Bob"
emails = ["bob@acme.test"]
team = "web"

[[person]]
id = "cat"
name = "Cat"
emails = ["cat@acme.test"]
team = "platform"
aliases = { host = "cat-desktop" }

[[person]]
id = "dan"
name = "Dan"
team = "web"
aliases = { otel_user_id = ["uid-dan"] }

[[person]]
id = "eve"
name = "Eve"
emails = ["eve@acme.test"]
team = "platform"
manager = "ann@acme.test"
"""

NOW = datetime(2026, 4, 1, tzinfo=timezone.utc)
OPUS, SONNET = "claude-opus-4-8", "claude-sonnet-4-5"


def ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


# request_key, session, ts, model, in, out, cache_creation, cache_read, host, email, user_id, project, from_t, from_o
REQUESTS = [
    ("r1", "A1", "2026-03-02T10:00:00Z", OPUS, 1000, 200, 0, 0, "ann-laptop", "ann@acme.test", "uid-ann", "/repo/a", True, True),
    ("r2", "A1", "2026-03-02T10:05:00Z", OPUS, 500, 100, 0, 0, "ann-laptop", None, None, "/repo/a", True, False),
    ("r3", "A2", "2026-03-20T09:00:00Z", SONNET, 2000, 400, 0, 1000, None, "ann@acme.test", "uid-ann", "/repo/b", False, True),
    ("r4", "C1", "2026-03-03T12:00:00Z", SONNET, 300, 50, 0, 0, "cat-desktop", None, None, "/repo/c", True, False),
    ("r5", "C2", "2026-03-10T08:00:00Z", SONNET, 100, 20, 0, 0, "cat-desktop", None, None, "/repo/c", True, False),
    ("r6", "D1", "2026-03-05T15:00:00Z", SONNET, 400, 80, 0, 0, None, None, "uid-dan", "/repo/d", False, True),
    ("r7", "Z1", "2026-03-06T03:00:00Z", OPUS, 10, 10, 0, 0, None, None, "uid-zed", None, False, True),
]

# user_id, ts, metric, attributes, value
POINTS = [
    ("uid-ann", "2026-03-02T10:01:00Z", "claude_code.lines_of_code.count", {"type": "added"}, 50),
    ("uid-ann", "2026-03-02T10:01:00Z", "claude_code.lines_of_code.count", {"type": "removed"}, 10),
    ("uid-ann", "2026-03-02T10:01:00Z", "claude_code.code_edit_tool.decision", {"tool_name": "Edit", "decision": "accept"}, 3),
    ("uid-ann", "2026-03-02T10:01:00Z", "claude_code.code_edit_tool.decision", {"tool_name": "Edit", "decision": "reject"}, 1),
    ("uid-ann", "2026-03-02T10:01:00Z", "claude_code.active_time.total", {"type": "cli"}, 1800),
    ("uid-ann", "2026-03-02T10:01:00Z", "claude_code.commit.count", {}, 1),
    ("uid-dan", "2026-03-05T15:01:00Z", "claude_code.lines_of_code.count", {"type": "added"}, 20),
    ("uid-dan", "2026-03-05T15:01:00Z", "claude_code.code_edit_tool.decision", {"tool_name": "Write", "decision": "accept"}, 2),
    ("uid-dan", "2026-03-05T15:01:00Z", "claude_code.active_time.total", {"type": "user"}, 900),
    ("uid-dan", "2026-03-05T15:01:00Z", "claude_code.pull_request.count", {}, 1),
]

# day, actor_type, actor_id, is_remote, sessions, added, removed, commits, prs
ACTOR_DAYS = [
    ("2026-03-02", "user", "ann@acme.test", False, 1, 40, 12, 1, 0),
    ("2026-03-02", "user", "ann@acme.test", True, 0, 20, 0, 0, 0),
    ("2026-03-20", "user", "ann@acme.test", False, 1, 30, 5, 0, 1),
    ("2026-03-09", "user", "bob@acme.test", False, 2, 100, 40, 2, 1),
    ("2026-03-23", "user", "bob@acme.test", False, 1, 10, 0, 0, 0),
    ("2026-03-12", "api_key", "ci-bot", False, 3, 500, 100, 5, 2),
]
# day, actor_type, actor_id, model, in, out, cache_read, cache_creation, cents
CC_DAILY = [
    ("2026-03-02", "user", "ann@acme.test", OPUS, 1500, 300, 0, 0, 250),
    ("2026-03-20", "user", "ann@acme.test", SONNET, 2000, 400, 1000, 0, 120),
    ("2026-03-09", "user", "bob@acme.test", SONNET, 5000, 1000, 0, 0, 300),
    ("2026-03-23", "user", "bob@acme.test", OPUS, 1000, 100, 0, 0, 200),
    ("2026-03-12", "api_key", "ci-bot", SONNET, 10000, 2000, 0, 0, 900),
]
# day, actor_type, actor_id, tool, accepted, rejected
TOOL_ACTIONS = [
    ("2026-03-02", "user", "ann@acme.test", "edit_tool", 5, 1),
    ("2026-03-02", "user", "ann@acme.test", "write_tool", 2, 0),
    ("2026-03-09", "user", "bob@acme.test", "edit_tool", 10, 2),
    ("2026-03-12", "api_key", "ci-bot", "write_tool", 4, 0),
]
# day, user_id, email, chat messages, conversations, cc sessions, cc lines added, edit accepted/rejected
ENGAGEMENT = [
    ("2026-03-09", "user_bob", "bob@acme.test", 12, 3, 2, 100, (9, 2)),
    ("2026-03-20", "user_ann", "ann@acme.test", 4, 1, 1, 30, (4, 0)),
    ("2026-03-10", "user_gus", "gus@acme.test", 5, 2, 0, 0, None),
]


def build_org(wh, tmp_path: Path) -> None:
    """Load the people file and every source's rows into ``wh``."""
    from cclens.model.identity import import_people

    people = tmp_path / "people.toml"
    people.write_text(PEOPLE_TOML)
    import_people(wh, people)
    with wh.transaction():
        for (key, sess, t, model, i, o, cc, cr, host, email, uid, project, ft, fo) in REQUESTS:
            wh.execute("""INSERT INTO api_request (request_key, request_id, session_id, ts, model, input_tokens,
                              output_tokens, cache_creation_tokens, cache_read_tokens, host, user_email, user_id,
                              project, from_transcripts, from_otel)
                          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                       [key, key, sess, ts(t), model, i, o, cc, cr, host, email, uid, project, ft, fo])
        for n, (uid, t, metric, attrs, value) in enumerate(POINTS):
            wh.execute("""INSERT INTO otel_point (request_id, metric_name, kind, temporality, ts, value, user_id,
                              type, attributes) VALUES (?, ?, 'sum', 'delta', ?, ?, ?, ?, ?)""",
                       [f"otlp-{n}", metric, ts(t), value, uid, attrs.get("type"), json.dumps(attrs)])
        for (d, at, aid, remote, s, la, lr, c, pr) in ACTOR_DAYS:
            wh.execute("""INSERT INTO cc_actor_day (day, actor_type, actor_id, email, api_key_name, is_remote,
                              terminal_type, num_sessions, lines_added, lines_removed, commits, pull_requests,
                              records, fetched_at) VALUES (?, ?, ?, ?, ?, ?, 'vscode', ?, ?, ?, ?, ?, 1, ?)""",
                       [d, at, aid, aid if at == "user" else None, aid if at == "api_key" else None, remote,
                        s, la, lr, c, pr, NOW])
        for (d, at, aid, model, i, o, cr, cc, cents) in CC_DAILY:
            wh.execute("""INSERT INTO cc_daily (day, actor_type, actor_id, email, api_key_name, is_remote,
                              terminal_type, model, input_tokens, output_tokens, cache_read_tokens,
                              cache_creation_tokens, estimated_cost_cents, currency, fetched_at)
                          VALUES (?, ?, ?, ?, ?, false, 'vscode', ?, ?, ?, ?, ?, ?, 'USD', ?)""",
                       [d, at, aid, aid if at == "user" else None, aid if at == "api_key" else None,
                        model, i, o, cr, cc, cents, NOW])
        for (d, at, aid, tool, acc, rej) in TOOL_ACTIONS:
            wh.execute("""INSERT INTO cc_tool_action VALUES (?, ?, ?, false, 'vscode', ?, ?, ?)""",
                       [d, at, aid, tool, acc, rej])
        for (d, uid, email, msgs, convs, sess, la, edits) in ENGAGEMENT:
            wh.execute("""INSERT INTO engagement_day (day, user_id, email, chat_message_count, chat_conversation_count,
                              cc_session_count, cc_lines_added, cc_lines_removed, cc_commit_count,
                              cc_pull_request_count, cc_tool_accepted, cc_tool_rejected, fetched_at)
                          VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?)""",
                       [d, uid, email, msgs, convs, sess, la, edits[0] if edits else 0, edits[1] if edits else 0, NOW])
        for (d, grouping, model, cost_type, cents) in [
                ("2026-03-02", "description", OPUS, "tokens", "300"),
                ("2026-03-02", "description", None, "code_execution", "50"),
                ("2026-03-02", "", None, None, "350"),
                ("2026-03-09", "description", SONNET, "tokens", "400")]:
            wh.execute("""INSERT INTO cost_day (day, grouping, model, cost_type, currency, amount_cents, amount_raw,
                              fetched_at) VALUES (?, ?, ?, ?, 'USD', ?, ?, ?)""",
                       [d, grouping, model, cost_type, cents, cents, NOW])
        wh.execute("""INSERT INTO usage_bucket (bucket_start, bucket_end, bucket_width, grouping, model,
                          uncached_input_tokens, cache_creation_5m_tokens, cache_creation_1h_tokens, cache_read_tokens,
                          output_tokens, web_search_requests, fetched_at)
                      VALUES (?, ?, '1d', 'model', ?, 1600, 0, 0, 0, 320, 0, ?)""",
                   [ts("2026-03-02T00:00:00Z"), ts("2026-03-03T00:00:00Z"), OPUS, NOW])
        wh.execute("""INSERT INTO landing_hook_event (event_id, seq, event_name, session_id, ts, received_at, via, host)
                      VALUES ('h1', 1, 'SessionStart', 'C1', ?, ?, 'command', 'cat-desktop')""",
                   [ts("2026-03-03T11:59:00Z"), ts("2026-03-03T11:59:01Z")])


MARCH = {"since": date(2026, 3, 1), "until": date(2026, 3, 31), "tz": "UTC"}


def groupings(dims):
    """The groupings a path-equivalence test runs for a metric with ``dims``: none, each dimension alone,
    and team x week and person x day where the metric has them."""
    dims = list(dims)
    yield ()
    for d in dims:
        yield (d,)
    if "team" in dims and "week" in dims:
        yield ("team", "week")
    if "person" in dims and "day" in dims:
        yield ("person", "day")
