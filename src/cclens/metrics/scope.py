"""Limiting reads to a set of teams (viewer tokens created with ``--team``).

::

    from cclens.metrics.scope import restrict_to_teams, session_visible
    filters = restrict_to_teams("tokens", {"model": ["claude-opus-4-8"]}, teams=("platform",))
    # {"model": [...], "team": ["platform"]}: compute() then counts people only on their days in platform
    session_visible(reader, "0b1c…", teams=("platform",))   # True when every person-day of it is in platform

The team filter of the catalog honours membership dates, so a limited reader sees a person's figures
only for the days that person was in one of its teams. Metrics without a team dimension (organisation-wide
ones such as ``billed_cost``) are refused, as is asking for a team outside the scope. Source coverage and
freshness (which sources reported, when, how many rows) are organisation-level metadata and stay visible.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterable, Mapping, Sequence

from ..errors import AccessDeniedError
from .catalog import get
from .facts import Ctx, Facts, bind


def restrict_to_teams(name: str, filters: Mapping[str, Sequence[str]] | None,
                      teams: Iterable[str] | None) -> dict[str, list[str]]:
    """``filters`` for metric ``name`` with the ``team`` filter narrowed to ``teams`` (unchanged when
    ``teams`` is empty). Raises :class:`AccessDeniedError` for a team outside ``teams`` or a metric
    that cannot be limited to teams."""
    out = {k: list(v) for k, v in (filters or {}).items() if v}
    scope = sorted(set(teams or ()))
    if not scope:
        return out
    metric = get(name)
    if "team" not in metric.dims:
        raise AccessDeniedError(f"{name} is organisation-wide (it has no team dimension), and this token is limited "
                                f"to teams {', '.join(scope)}; ask for a metric that can be grouped by team")
    asked = out.get("team")
    if asked:
        outside = sorted(set(asked) - set(scope))
        if outside:
            raise AccessDeniedError(f"this token is limited to teams {', '.join(scope)}; team "
                                    f"{', '.join(outside)} is outside it (leave the team filter out, or use "
                                    f"some of {', '.join(scope)})")
        out["team"] = sorted(set(asked))
    else:
        out["team"] = scope
    return out


def session_visible(reader: Any, session_id: str, teams: Iterable[str] | None) -> bool:
    """True when ``teams`` is empty, or when the session's requests all belong to people who were in one
    of ``teams`` on the day they made them. A session no source ties to a person is not visible to a
    team-limited reader."""
    scope = sorted(set(teams or ()))
    if not scope:
        return True
    span = reader.query("SELECT min(ts) AS lo, max(ts) AS hi FROM api_request WHERE session_id = ?", [session_id])
    if not span or span[0]["lo"] is None:
        return False
    lo, hi = span[0]["lo"], span[0]["hi"]
    facts = Facts(Ctx(tz="UTC", since=lo.date() - timedelta(days=1), until=hi.date() + timedelta(days=1)))
    ev = facts.ev(False)
    sql = (f"{facts.sql_with()}SELECT count(*) AS n, bool_and(m.person_id IS NOT NULL) AS ok FROM "
           f"(SELECT DISTINCT person, day FROM {ev} WHERE session_id = $sid) e "
           "LEFT JOIN (SELECT DISTINCT person_id, valid_from, valid_to FROM membership "
           "           WHERE team_id IN (SELECT unnest($teams))) m "
           "ON m.person_id = e.person AND e.day >= m.valid_from AND (m.valid_to IS NULL OR e.day <= m.valid_to)")
    sql, params = bind(sql, {**facts.ctx.params(), "sid": session_id, "teams": scope})
    row = reader.query(sql, params)[0]
    return bool(row["n"]) and bool(row["ok"])
