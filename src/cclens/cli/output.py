"""Output options shared by every report command: ``--format table|json|csv``, ``--since``,
``--until``, ``--tz``; and the renderers that print a list of rows in each format (in
:mod:`cclens.cli.render`, re-exported here)."""

from __future__ import annotations

import typer

from .render import OutputFormat, iter_or_empty, render  # noqa: F401  (the shared names of this module)

FORMAT_OPTION = typer.Option(OutputFormat.table, "--format", "-f", help="table, json or csv.")
SINCE_OPTION = typer.Option(None, "--since", help="First day (YYYY-MM-DD or YYYYMMDD), in --tz.")
UNTIL_OPTION = typer.Option(None, "--until", help="Last day, inclusive (YYYY-MM-DD or YYYYMMDD), in --tz.")
TZ_OPTION = typer.Option(None, "--tz", help="IANA time zone for days (default: local; UTC accepted).")
