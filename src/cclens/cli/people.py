"""``cclens people import|list|unlinked|link|unlink``: who is who across sources (docs/people.md).

Reads go through ``state(ctx).reader()``; writes go to the warehouse file, or through the running
``cclens serve`` (``POST /api/v1/people/import|link``) when it holds the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from . import app
from .context import state
from .output import FORMAT_OPTION, OutputFormat, render

people_app = typer.Typer(help="People, their identities in every source, and teams.", no_args_is_help=True)
app.add_typer(people_app, name="people")


def _write(ctx: typer.Context, local, path: str, body: dict[str, Any]) -> Any:
    """Run ``local(wh)`` on the warehouse file, or POST ``body`` to the running server."""
    from ..client import find_server

    st = state(ctx)
    info = find_server(st.settings) if st.server_maybe_running() else None
    if info is None:
        wh = st.open_warehouse()
        try:
            return local(wh)
        finally:
            wh.close()
    import httpx2 as httpx

    from ..errors import QueryError, ServerError

    headers = {"Authorization": f"Bearer {info.token}"} if info.token else {}
    try:
        r = httpx.post(f"{info.url}{path}", json=body, headers=headers, timeout=120)
    except httpx.HTTPError as exc:
        raise ServerError(f"cannot reach cclens serve at {info.url}: {exc}") from None
    if r.status_code == 400:
        raise QueryError(r.json().get("detail", r.text))
    if r.status_code != 200:
        raise ServerError(f"cclens serve at {info.url} answered {r.status_code}: {r.text[:300]}")
    return r.json()


@people_app.command("import")
def import_cmd(ctx: typer.Context, file: Path = typer.Argument(..., help="people.toml or people.csv",
                                                               exists=True, dir_okay=False)) -> None:
    """Load people, their emails and aliases, teams (with dates) and managers from a TOML or CSV file."""
    from ..model.identity import import_people

    counts = _write(ctx, lambda wh: import_people(wh, file), "/api/v1/people/import",
                    {"filename": file.name, "content": file.read_text()})
    typer.echo(f"imported {counts['people']} people, {counts['aliases']} aliases, {counts['teams']} teams, "
               f"{counts['memberships']} memberships from {file}")


@people_app.command("list")
def list_cmd(ctx: typer.Context, fmt: OutputFormat = FORMAT_OPTION) -> None:
    """Known people with their aliases and current teams."""
    from ..model.identity import people

    with state(ctx).reader() as wh:
        rows = people(wh)
    render(rows, fmt, title="people")


@people_app.command("unlinked")
def unlinked_cmd(ctx: typer.Context, fmt: OutputFormat = FORMAT_OPTION) -> None:
    """Identities seen in some source but not linked to a person: where and when, and a suggestion."""
    from ..model.identity import unlinked

    with state(ctx).reader() as wh:
        rows = unlinked(wh)
    render(rows, fmt, title="unlinked identities",
           footer="link one with `cclens people link KIND:VALUE PERSON`" if rows else None)


@people_app.command("link")
def link_cmd(ctx: typer.Context, alias: str = typer.Argument(..., help="KIND:VALUE, e.g. otel_user_id:d160…, "
                                                             "host:ann-laptop, api_key_name:ci (an address alone is an email)"),
             person: str = typer.Argument(..., help="A person id (created if new) or a linked email."),
             name: Optional[str] = typer.Option(None, "--name", help="Display name when the person is new.")) -> None:
    """Link an identity to a person, so every source's rows with it count for that person."""
    from ..model.identity import link

    res = _write(ctx, lambda wh: link(wh, alias, person, name=name), "/api/v1/people/link",
                 {"alias": alias, "person": person, "name": name})
    msg = f"linked {res['alias']} to {res['person_id']}"
    if res.get("created_person"):
        msg += " (new person)"
    if res.get("previous_person"):
        msg += f" (was {res['previous_person']})"
    typer.echo(msg)
