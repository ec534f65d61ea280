"""Tables of the people model (component ``identity``): person, alias, team, membership.

* ``person``      one row per known human (or service account someone chose to name).
* ``alias``       an identity a source reports (kind, value) → the person it belongs to. Kinds are listed
                  in :data:`cclens.model.identity.ALIAS_KINDS`; values are normalised (emails lowercased).
                  ``origin`` says who made the link: ``import`` (a people file), ``link`` (by hand).
* ``team``        teams, optionally nested (``parent_id``).
* ``membership``  person × team with the days it holds: ``valid_from`` and ``valid_to`` are inclusive
                  days; ``valid_to`` NULL means "still". A person who moves team has two rows.

No primary keys on purpose: the tables are small and written by delete + insert in one transaction
(DuckDB's index checks reject a delete and re-insert of one key in the same transaction).
Identities seen in the sources but not linked are not stored here: they are derived at read time
(:func:`cclens.model.identity.unlinked`).
"""

from ..migrations import register

register("identity", [
    """
    CREATE TABLE IF NOT EXISTS person (
        person_id    VARCHAR NOT NULL,
        name         VARCHAR,
        manager_id   VARCHAR,
        origin       VARCHAR NOT NULL,      -- import | link
        updated_at   TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS alias (
        kind         VARCHAR NOT NULL,      -- email | anthropic_account | otel_user_id | otel_account_uuid |
        value        VARCHAR NOT NULL,      -- api_key_name | api_key_id | host | git_email | github_login | jira_id
        person_id    VARCHAR NOT NULL,
        origin       VARCHAR NOT NULL,      -- import | link
        updated_at   TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS team (
        team_id      VARCHAR NOT NULL,
        name         VARCHAR,
        parent_id    VARCHAR,
        updated_at   TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS membership (
        person_id    VARCHAR NOT NULL,
        team_id      VARCHAR NOT NULL,
        valid_from   DATE NOT NULL,         -- first day in the team (inclusive)
        valid_to     DATE,                  -- last day in the team (inclusive); NULL = still
        origin       VARCHAR NOT NULL,
        updated_at   TIMESTAMPTZ NOT NULL
    );
    """,
])
