"""The dashboard over a real server and warehouse (the demo organisation): every page, filters in the URL,
CSV per table, provenance, empty states, and figures equal to the metrics catalog's for the same filters."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import httpx2 as httpx
import pytest
from dashboard_support import PAGES, RANGE, SINCE, UNTIL, app_for, build
from serve_support import ThreadServer


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = build(tmp_path_factory.mktemp("dash"))
    app, wh = app_for(db)
    with ThreadServer(app) as server:
        yield server.url, db, wh
    wh.close()


def _get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=60)


def _kpis(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-kpi="([^"]+)" data-value="([^"]*)"', html))


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_provenance(served, path):
    url, _, _ = served
    r = _get(f"{url}{path}?{RANGE}")
    assert r.status_code == 200, r.text[:500]
    assert "text/html" in r.headers["content-type"]
    assert 'id="provenance"' in r.text and "sources:" in r.text  # every page says where its figures come from
    assert "/dashboard/static/echarts.min.js" in r.text and "http://" not in r.text.split("<main>")[0].replace(
        'href="http', "")  # nothing from elsewhere in the head: works offline
    for chart in re.findall(r'data-spec="(spec-[^"]+)"', r.text):
        assert f'id="{chart}"' in r.text


def test_static_files_are_served(served):
    url, _, _ = served
    for name in ("echarts.min.js", "dashboard.js", "dashboard.css", "echarts.LICENSE.txt"):
        assert _get(f"{url}/dashboard/static/{name}").status_code == 200


def test_filters_are_in_the_url_and_change_the_figures(served):
    url, _, _ = served
    whole = _kpis(_get(f"{url}/?{RANGE}").text)
    one_day = _kpis(_get(f"{url}/?since={UNTIL}&until={UNTIL}&tz=UTC").text)
    assert whole["tokens"] and one_day["tokens"]
    assert float(one_day["tokens"]) < float(whole["tokens"])
    page = _get(f"{url}/adoption?{RANGE}").text
    assert f'href="/?since={SINCE}&amp;until={UNTIL}&amp;tz=UTC"' in page  # navigation keeps the filters
    team = _get(f"{url}/?{RANGE}&team=platform").text
    assert _kpis(team)["tokens"] and float(_kpis(team)["tokens"]) < float(whole["tokens"])


def test_figures_equal_the_metrics_catalog(served):
    """Each overview KPI is the catalog's value for the same range, zone and team (what GET
    /api/v1/metrics/{name} returns when that endpoint is present)."""
    from cclens.metrics.catalog import compute
    from cclens.model.pricing import bundled_table

    url, _, wh = served
    for team in (None, "platform"):
        html = _get(f"{url}/?{RANGE}" + (f"&team={team}" if team else "")).text
        shown = _kpis(html)
        for name in ("active_people", "sessions", "lines_added", "commits", "pull_requests", "tokens",
                     "estimated_cost", "billed_cost"):
            api = _get(f"{url}/api/v1/metrics/{name}?since={SINCE}&until={UNTIL}&tz=UTC"
                       + (f"&team={team}" if team and name != "billed_cost" else ""))
            if api.status_code == 200 and isinstance(api.json(), dict) and "rows" in api.json():
                rows = api.json()["rows"]
            else:
                cur = wh.cursor()
                try:
                    filters = {"team": [team]} if team and name != "billed_cost" else None
                    rows = compute(cur, name, since=date.fromisoformat(SINCE), until=date.fromisoformat(UNTIL),
                                   tz="UTC", filters=filters, prices=bundled_table(), coverage=False).rows
                finally:
                    cur.close()
            expected = rows[0]["value"] if rows else None
            got = shown[name]
            if expected is None:
                assert got == "", name
            else:
                assert float(got) == pytest.approx(expected, abs=0.006), (name, team)


def test_csv_download_is_the_table(served):
    url, _, _ = served
    html = _get(f"{url}/people?{RANGE}").text
    table = re.search(r'<table class="data" data-table="people">(.*?)</table>', html, re.S).group(1)
    body_rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    cells = [re.findall(r'data-v="([^"]*)"', row) for row in body_rows]
    href = re.search(r'<a class="csv" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    r = _get(f"{url}/people{href}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    got = list(csv.reader(io.StringIO(r.text)))
    assert got[0][0] == "label" and len(got) - 1 == len(cells) > 3
    for shown, row in zip(cells, got[1:]):
        for a, b in zip(shown, row):
            try:
                assert float(a or 0) == pytest.approx(float(b or 0), rel=1e-9, abs=1e-9)
            except ValueError:
                assert a.replace("&amp;", "&") == b


def test_unknown_csv_table_is_a_clear_404(served):
    url, _, _ = served
    r = _get(f"{url}/people?{RANGE}&format=csv&table=nope")
    assert r.status_code == 404 and "no table 'nope'" in r.text


def test_session_page_shows_each_source(served):
    url, _, wh = served
    sid = wh.scalar("""SELECT a.session_id FROM api_request a JOIN landing_hook_event h USING (session_id)
                       WHERE a.from_transcripts AND a.from_otel GROUP BY 1 ORDER BY count(*) DESC LIMIT 1""")
    assert sid, "the demo has a session seen by transcripts, OTel and hooks"
    html = _get(f"{url}/sessions/{sid}?{RANGE}").text
    for source in ("transcripts", "hooks", "otel"):
        col = re.search(rf'<div class="col" data-source="{source}">(.*?)</div>', html, re.S).group(1)
        assert col.count("<li") > 0, source
    assert _get(f"{url}/sessions/not-a-session?{RANGE}").status_code == 200


def test_bad_filters_are_explained_not_fatal(served):
    url, _, _ = served
    r = _get(f"{url}/?since=yesterday&tz=Mars/Base")
    assert r.status_code == 200
    assert "unknown time zone" in r.text and "not a date" in r.text


def test_empty_warehouse_names_the_sources_to_set_up(tmp_path):
    from cclens.config import Settings
    from cclens.server.app import create_app
    from cclens.warehouse import open_warehouse

    db = tmp_path / "empty.duckdb"
    wh = open_warehouse(db)
    try:
        app = create_app(Settings(db=db, server_watch_transcripts=False), wh, grpc_port=0)
        with ThreadServer(app) as server:
            for path in PAGES:
                r = _get(f"{server.url}{path}")
                assert r.status_code == 200, (path, r.text[:300])
            html = _get(f"{server.url}/").text
            assert 'data-empty="otel"' in html and "cclens setup claude-code --server" in html
            assert 'data-empty="claude_code_analytics"' in html
            sources = _get(f"{server.url}/sources").text
            assert "not configured" in sources and "CCLENS_ANTHROPIC_ADMIN_KEY" in sources
    finally:
        wh.close()
