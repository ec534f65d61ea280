"""The dashboard in a real browser (Playwright driving Debian's Chromium): every page at desktop and phone
width loads without console errors and draws its charts; filters change the URL and the figures; a CSV
download equals its table; the session page shows all three sources. Screenshots are saved as test
artifacts (``$DASHBOARD_SCREENSHOTS`` or the test's tmp dir); ``DASHBOARD_SCREENSHOTS=docs/screenshots`` refreshes
the README's."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from dashboard_support import PAGES, RANGE, UNTIL, app_for, build
from serve_support import ThreadServer

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/install-deps)")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    db = build(tmp_path_factory.mktemp("browser"))
    app, wh = app_for(db)
    with ThreadServer(app) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield server.url, browser, wh
        browser.close()
    wh.close()


def _page(browser, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900}, accept_downloads=True)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def _shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.mark.parametrize("width", [1280, 390])
def test_every_page_loads_and_draws(site, width, tmp_path):
    url, browser, wh = site
    sid = wh.scalar("""SELECT a.session_id FROM api_request a JOIN landing_hook_event h USING (session_id)
                       WHERE a.from_transcripts AND a.from_otel GROUP BY 1 ORDER BY count(*) DESC LIMIT 1""")
    page, errors = _page(browser, width)
    out = _shots(tmp_path)
    for path in [*PAGES, f"/sessions/{sid}", "/teams/platform"]:
        page.goto(f"{url}{path}?{RANGE}")
        charts = page.locator(".chart[data-spec]")
        for i in range(charts.count()):
            chart = charts.nth(i)
            chart.wait_for(state="attached")
            page.wait_for_function("el => el.getAttribute('data-rendered') === '1'", arg=chart.element_handle())
            assert chart.locator("svg").count() >= 1, f"{path}: chart {i} drew nothing"
        width_px = page.evaluate("document.documentElement.scrollWidth")
        assert width_px <= width + 2, f"{path} overflows the viewport at {width}px ({width_px}px)"
        name = "session" if path.startswith("/sessions/") else path.strip("/").replace("/", "-") or "overview"
        page.screenshot(path=str(out / f"{name}-{width}.png"), full_page=width > 500)
    assert errors == []


def test_filters_change_url_and_figures(site):
    url, browser, _ = site
    page, errors = _page(browser, 1280)
    page.goto(f"{url}/?{RANGE}")
    before = page.locator('[data-kpi="tokens"]').get_attribute("data-value")
    page.fill('input[name="since"]', UNTIL)
    page.click('form.filters button[type="submit"]')
    page.wait_for_url(f"**/?since={UNTIL}*")
    assert f"since={UNTIL}" in page.url and f"until={UNTIL}" in page.url
    after = page.locator('[data-kpi="tokens"]').get_attribute("data-value")
    assert float(after) < float(before)
    page.select_option('select[name="team"]', "platform")
    page.wait_for_url("**team=platform*")
    assert page.locator('select[name="team"]').input_value() == "platform"
    assert errors == []


def test_csv_download_matches_the_table(site):
    url, browser, _ = site
    page, _ = _page(browser, 1280)
    page.goto(f"{url}/people?{RANGE}")
    shown = page.eval_on_selector_all('table[data-table="people"] tbody tr',
                                      "rows => rows.map(r => Array.from(r.cells).map(c => c.getAttribute('data-v')))")
    with page.expect_download() as dl:
        page.click("#people a.csv")
    rows = list(csv.reader(io.StringIO(Path(dl.value.path()).read_text())))
    assert len(rows) - 1 == len(shown) > 3
    for a_row, b_row in zip(shown, rows[1:]):
        for a, b in zip(a_row, b_row):
            try:
                assert float(a or 0) == pytest.approx(float(b or 0), rel=1e-9, abs=1e-9)
            except ValueError:
                assert a == b


def test_session_page_shows_all_three_sources(site):
    url, browser, wh = site
    sid = wh.scalar("""SELECT a.session_id FROM api_request a JOIN landing_hook_event h USING (session_id)
                       WHERE a.from_transcripts AND a.from_otel GROUP BY 1 ORDER BY count(*) DESC LIMIT 1""")
    page, errors = _page(browser, 1280)
    page.goto(f"{url}/sessions/{sid}?{RANGE}")
    for source in ("transcripts", "hooks", "otel"):
        assert page.locator(f'.timeline [data-source="{source}"] li').count() > 0, source
    assert page.locator('[data-kpi="transcripts_requests"]').get_attribute("data-value")
    assert page.locator('[data-kpi="otel_requests"]').get_attribute("data-value")
    assert errors == []
