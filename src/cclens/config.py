"""One settings object for cclens.

Precedence (highest first): explicit overrides (CLI options) > ``CCLENS_*`` environment variables >
the TOML file > defaults. The TOML file is ``$CCLENS_CONFIG`` if set, else ``./cclens.toml``, else
``$XDG_CONFIG_HOME/cclens/cclens.toml`` (``~/.config/cclens/cclens.toml``). Tables in the TOML file are
flattened with ``_``: ``[anthropic] admin_key = "…"`` is the setting ``anthropic_admin_key``, the same as
the environment variable ``CCLENS_ANTHROPIC_ADMIN_KEY``. Secrets are :class:`SecretStr` and never printed.

Settings are a plain dataclass converted from strings by their annotations (bool, int, float, str,
Path, date, SecretStr, list, dict, and ``X | None``): the CLI starts faster without a validation
framework, and every command pays that start-up. Add a setting by adding a typed field below.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

# socket.gethostname is this very function: the C module alone skips socket.py's set-up (~3 ms, paid by
# every command); tomllib (~2.5 ms) is imported only when there is a file to read.
from _socket import gethostname

from .errors import ConfigError


class SecretStr:
    """A secret value: shown as ``'**********'`` in repr/str, read with :meth:`get_secret_value`."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = str(value)

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def data_dir() -> Path:
    """The per-user data directory (``$XDG_DATA_HOME/cclens``, default ``~/.local/share/cclens``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cclens"


def config_file() -> Path | None:
    """The TOML file the settings are read from, or None when there is none."""
    explicit = os.environ.get("CCLENS_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"CCLENS_CONFIG points to {path}, which is not a file")
        return path
    local = Path.cwd() / "cclens.toml"
    if local.is_file():
        return local
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user = Path(base) / "cclens" / "cclens.toml"
    return user if user.is_file() else None


_DICT_SETTINGS = {"price_overrides"}


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        # Only one level of tables is flattened; deeper tables (e.g. price overrides) are values.
        if isinstance(value, dict) and not prefix and key not in _DICT_SETTINGS:
            out.update(_flatten(value, f"{name}_"))
        else:
            out[name] = value
    return out


@dataclass
class Settings:
    """Every cclens setting. Documented in ``docs/configuration.md``."""

    # Warehouse
    db: Path = field(default_factory=lambda: data_dir() / "cclens.duckdb")
    host: str = field(default_factory=gethostname)  # the name this machine's data is labelled with

    # Transcripts
    transcript_paths: list[Path] = field(default_factory=list)  # extra dirs/files to ingest
    capture_content: bool = False  # keep prompt/response/tool content in landing (off by default)

    # Pricing
    price_table: Path | None = None  # a LiteLLM-format JSON file replacing the bundled table
    price_overrides: dict[str, dict[str, float]] = field(default_factory=dict)

    # Reports
    tz: str | None = None  # default report time zone; None = the machine's local zone

    # Server (cclens serve) and clients of it
    server_host: str = "127.0.0.1"
    server_port: int = 8765
    server_grpc_port: int = 4317
    server_url: str | None = None  # a running server for CLI commands to go through
    server_token: SecretStr | None = None
    server_require_auth: bool = False  # require ingest tokens even on loopback (always off loopback)
    server_watch_transcripts: bool | None = None  # serve ingests this machine's transcripts; None = on loopback

    # Anthropic reporting APIs
    anthropic_admin_key: SecretStr | None = None
    anthropic_analytics_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_sync_start: date | None = None  # first backfill starts here (default: 90 days ago)
    anthropic_usage_bucket_width: str = "1h"  # 1m | 1h | 1d
    anthropic_usage_group_by: list[str] | None = None  # None = model, workspace, key, tier, window, geo, account
    anthropic_enterprise_lag_days: int = 1  # latest Enterprise day asked = (now - 10h).date() - this
    anthropic_enterprise_lookback_days: int = 90  # the Enterprise API's rolling window (0 = no limit)

    # Engineering data
    git_repos: list[Path] = field(default_factory=list)  # clones, or folders of clones (two levels deep)
    github_token: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    github_repos: list[str] = field(default_factory=list)  # owner/name
    github_orgs: list[str] = field(default_factory=list)  # every repository and team of these orgs
    jira_url: str | None = None
    jira_email: str | None = None
    jira_api_token: SecretStr | None = None
    jira_jql: str | None = None  # which issues (default: every project the account can see)
    engineering_sync_start: date | None = None  # first GitHub/Jira sync starts here (default: 180 days ago)
    git_sync_interval_s: float = 300.0  # cclens serve pulls git_repos this often (seconds; 0 = not scheduled)
    github_sync_interval_s: float = 900.0  # ... GitHub (seconds; 0 = not scheduled)
    jira_sync_interval_s: float = 900.0  # ... Jira (seconds; 0 = not scheduled)

    def __post_init__(self) -> None:
        # Direct construction (tests, library callers) gets the same conversions as the loader.
        problems = []
        for name, hint in _hints().items():
            value = getattr(self, name)
            if value is None:
                continue
            try:
                setattr(self, name, _convert(name, value, hint))
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        if problems:
            raise ConfigError(f"invalid settings: {'; '.join(problems)}")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _convert(name: str, value: Any, hint: Any) -> Any:
    """Convert ``value`` (from TOML, the environment or a CLI option) to the annotated type ``hint``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value == "" and len(args) < len(typing.get_args(hint))):
            return None
        return _convert(name, value, args[0])
    if value is None:
        raise ValueError("a value is required")
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{value!r} is not a boolean (use true or false)")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not {'an integer' if hint is int else 'a number'}") from None
    if hint is str:
        return str(value)
    if hint is Path:
        return Path(str(value)).expanduser()
    if hint is SecretStr:
        return value if isinstance(value, SecretStr) else SecretStr(str(value))
    if hint is date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"{value!r} is not a date (use YYYY-MM-DD)") from None
    if origin in (list, dict):
        if isinstance(value, str):
            text = value.strip()
            if origin is list and not text.startswith("["):
                value = [v.strip() for v in text.split(",") if v.strip()]
            else:
                try:
                    value = json.loads(text)
                except ValueError:
                    raise ValueError(f"{value!r} is not valid JSON") from None
        if origin is list:
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{value!r} is not a list")
            (item,) = typing.get_args(hint) or (str,)
            return [_convert(name, v, item) for v in value]
        if not isinstance(value, dict):
            raise ValueError(f"{value!r} is not a table")
        return dict(value)
    return value


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(Settings, globalns=vars(sys.modules[__name__]))


def load_settings(**overrides: Any) -> Settings:
    """Build the settings; ``overrides`` (from CLI options) win over everything. Raises ConfigError."""
    hints = _hints()
    values: dict[str, Any] = {}
    path = config_file()
    if path:
        import tomllib

        try:
            data = _flatten(tomllib.loads(path.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        unknown = set(data) - set(hints)
        if unknown:
            raise ConfigError(f"unknown setting(s) in {path}: {', '.join(sorted(unknown))}; "
                              "see docs/configuration.md for the list")
        values.update(data)
    for name in hints:
        env = os.environ.get(f"CCLENS_{name.upper()}")
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    problems = []
    converted: dict[str, Any] = {}
    for name, value in values.items():
        if name not in hints:
            problems.append(f"{name}: unknown setting")
            continue
        try:
            converted[name] = _convert(name, value, hints[name])
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise ConfigError(f"invalid settings: {'; '.join(problems)}")
    return Settings(**converted)  # __post_init__ converts again: idempotent and cheap


def settings_fields() -> list[dataclasses.Field]:
    """The declared settings (for docs and ``cclens doctor``)."""
    return list(dataclasses.fields(Settings))
