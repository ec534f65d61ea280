"""Time zones and day ranges for reports. Everything is stored in UTC; reports pick a zone."""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import QueryError


def local_tz_name() -> str:
    """The IANA name of this machine's zone (``TZ``, ``/etc/timezone``, ``/etc/localtime``), or ``UTC``."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if name:
            try:
                ZoneInfo(name)
                return name
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return "UTC"


def check_tz(name: str | None, default: str | None = None) -> str:
    """A valid IANA zone name from ``name`` (or ``default``, or the local zone); QueryError otherwise."""
    name = name or default or local_tz_name()
    if name.upper() == "UTC":
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise QueryError(f"unknown time zone {name!r}; use an IANA name such as Europe/Paris, or UTC") from None
    return name


def parse_day(value: str | date | None, option: str) -> date | None:
    """A day from ``YYYY-MM-DD`` or ``YYYYMMDD`` (None passes through); QueryError names the option."""
    if value is None or isinstance(value, date):
        return value
    text = value.strip()
    if re.fullmatch(r"\d{8}", text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise QueryError(f"{option} {value!r} is not a day; use YYYY-MM-DD or YYYYMMDD") from None


def parse_days(since: str | date | None, until: str | date | None, *, prefix: str = "--"
               ) -> tuple[date | None, date | None]:
    """``(since, until)`` as days (:func:`parse_day`, options named ``{prefix}since``/``{prefix}until``);
    QueryError when since is after until (an empty range is a mistake, not "no data")."""
    first, last = parse_day(since, f"{prefix}since"), parse_day(until, f"{prefix}until")
    if first is not None and last is not None and first > last:
        raise QueryError(f"{prefix}since {first} is after {prefix}until {last}")
    return first, last


def utc_now() -> datetime:
    from datetime import timezone

    return datetime.now(timezone.utc)
