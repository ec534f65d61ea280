"""One settings object for cclens.

Precedence (highest first): explicit overrides (CLI options) > ``CCLENS_*`` environment variables >
the TOML file > defaults. The TOML file is ``$CCLENS_CONFIG`` if set, else ``./cclens.toml``, else
``$XDG_CONFIG_HOME/cclens/cclens.toml`` (``~/.config/cclens/cclens.toml``). Tables in the TOML file are
flattened with ``_``: ``[anthropic] admin_key = "…"`` is the setting ``anthropic_admin_key``, the same as
the environment variable ``CCLENS_ANTHROPIC_ADMIN_KEY``. Secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

import os
import socket
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import ConfigError


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


_DICT_SETTINGS = {"price_overrides"}


class _TomlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings]):
        super().__init__(settings_cls)
        self.path = config_file()
        self.data: dict[str, Any] = {}
        if self.path:
            try:
                self.data = _flatten(tomllib.loads(self.path.read_text()))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read config file {self.path}: {exc}") from None
            unknown = set(self.data) - set(settings_cls.model_fields)
            if unknown:
                raise ConfigError(
                    f"unknown setting(s) in {self.path}: {', '.join(sorted(unknown))}; "
                    "see docs/configuration.md for the list"
                )

    def get_field_value(self, field, field_name):  # pragma: no cover - unused by __call__
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


class Settings(BaseSettings):
    """Every cclens setting. Documented in ``docs/configuration.md``."""

    model_config = SettingsConfigDict(env_prefix="CCLENS_", extra="ignore")

    # Warehouse
    db: Path = Field(default_factory=lambda: data_dir() / "cclens.duckdb")
    host: str = Field(default_factory=socket.gethostname)  # the name this machine's data is labelled with

    # Transcripts
    transcript_paths: list[Path] = Field(default_factory=list)  # extra dirs/files to ingest
    capture_content: bool = False  # keep prompt/response/tool content in landing (off by default)

    # Pricing
    price_table: Path | None = None  # a LiteLLM-format JSON file replacing the bundled table
    price_overrides: dict[str, dict[str, float]] = Field(default_factory=dict)

    # Reports
    tz: str | None = None  # default report time zone; None = the machine's local zone

    # Server (cclens serve) and clients of it
    server_host: str = "127.0.0.1"
    server_port: int = 8765
    server_grpc_port: int = 4317
    server_url: str | None = None  # a running server for CLI commands to go through
    server_token: SecretStr | None = None
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
    github_token: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    jira_url: str | None = None
    jira_email: str | None = None
    jira_api_token: SecretStr | None = None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings, env_settings, _TomlSource(settings_cls))


def load_settings(**overrides: Any) -> Settings:
    """Build the settings; ``overrides`` (from CLI options) win over everything. Raises ConfigError."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
