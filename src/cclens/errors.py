"""The cclens exception tree.

Every error cclens raises on purpose derives from :class:`CclensError`. The CLI turns any of them into
one line on stderr and a non-zero exit; a traceback means a bug.

::

    CclensError                      base; ``exit_code`` says how the CLI exits
    ├── ConfigError                  a setting is missing or invalid (file, key, what to do)
    ├── WarehouseError               the warehouse file cannot be opened, migrated or queried
    │   └── WarehouseLockedError     another process (usually ``cclens serve``) holds the file
    ├── SourceError                  a source cannot be read (path or URL, and why)
    │   ├── SourceAuthError          credentials rejected (names the setting to check)
    │   └── SourceUnavailableError   the remote end is down, rate-limited or timed out
    ├── ServerError                  talking to a running ``cclens serve`` failed
    ├── QueryError                   a report or SQL query cannot be run as asked
    ├── AccessDeniedError            the caller's role or team scope does not allow the read
    └── PricingError                 a price table cannot be read
"""

from __future__ import annotations


class CclensError(Exception):
    """Base of every deliberate cclens error. ``str(err)`` is a complete, user-facing sentence."""

    exit_code = 1


class ConfigError(CclensError):
    """A setting is missing or invalid."""

    exit_code = 2


class WarehouseError(CclensError):
    """The warehouse cannot be opened, migrated or queried."""


class WarehouseLockedError(WarehouseError):
    """Another process holds the DuckDB file (DuckDB allows one writer per file)."""


class SourceError(CclensError):
    """A source cannot be read."""


class SourceAuthError(SourceError):
    """A source rejected our credentials."""


class SourceUnavailableError(SourceError):
    """A source is down, rate-limited past our patience, or timed out."""


class ServerError(CclensError):
    """A running ``cclens serve`` could not be reached or refused the request."""


class QueryError(CclensError):
    """A report or query cannot be run as asked (bad option, rejected SQL, unknown metric)."""


class AccessDeniedError(CclensError):
    """The caller's role or team scope does not allow this read (the message says what would)."""


class PricingError(CclensError):
    """A price table cannot be read or is malformed."""
