"""``cclens report html``: the overview as one self-contained HTML file (charts and ECharts inlined), for a
weekly or monthly email; ``--pdf`` prints it with headless Chromium when one is installed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import typer

from .context import state
from .output import SINCE_OPTION, TZ_OPTION, UNTIL_OPTION
from .report import report_app

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """A Chromium-like browser that can print to PDF, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def write_pdf(html: Path, pdf: Path, browser: str) -> None:
    from ..errors import CclensError

    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
               "--virtual-time-budget=5000", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", html.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, timeout=120)
    if proc.returncode != 0 or not pdf.exists():
        raise CclensError(f"{browser} could not print {html} to PDF (exit {proc.returncode}); the HTML report is "
                          "written, open it in a browser and print it instead")


@report_app.command("html")
def report_html(
    ctx: typer.Context,
    out: Path = typer.Option(Path("cclens-report.html"), "--out", "-o", help="The HTML file to write."),
    since: Optional[str] = SINCE_OPTION, until: Optional[str] = UNTIL_OPTION, tz: Optional[str] = TZ_OPTION,
    team: Optional[str] = typer.Option(None, "--team", help="Only this team (its id in the people file)."),
    pdf: bool = typer.Option(False, "--pdf", help="Also write a PDF beside it (needs Chromium)."),
) -> None:
    """The dashboard's overview (KPIs with trends, charts, the model table, provenance) as one HTML file that
    works offline and in an email attachment. Example: cclens report html --since 2026-11-01 --out nov.html"""
    from ..server import dashboard, dashboard_pages
    from ..server.dashboard_model import Filters
    from ..timeutil import check_tz

    st = state(ctx)
    settings = st.settings
    zone = check_tz(tz, settings.tz)
    f = Filters.parse({"since": since or "", "until": until or "", "tz": zone, "team": team or ""}, zone)
    if f.problems:
        from ..errors import ConfigError

        raise ConfigError("; ".join(f.problems))
    with st.reader() as wh:
        page = dashboard.build(wh, settings, f, dashboard_pages.overview)
        teams = wh.query("SELECT team_id AS key, coalesce(name, team_id) AS name FROM team ORDER BY 2")
    page.title = f"Claude Code report, {f.since} to {f.until}" + (f" — team {team}" if team else "")
    html = dashboard.render_page(page, f, inline=True, teams=teams)
    out.write_text(html, encoding="utf-8")
    typer.echo(f"wrote {out} ({len(html) // 1024} KiB, self-contained)")
    if pdf:
        browser = find_browser()
        if browser is None:
            from ..errors import ConfigError

            raise ConfigError("--pdf needs Chromium (apt-get install chromium); the HTML report is written")
        target = out.with_suffix(".pdf")
        write_pdf(out, target, browser)
        typer.echo(f"wrote {target}")
