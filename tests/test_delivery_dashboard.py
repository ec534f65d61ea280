"""The dashboard's Delivery page over a real server: the hand-built organisation of test_lineage, its
figures equal to cclens.metrics.delivery's, CSV per table, and the empty state."""

from __future__ import annotations

import csv
import io

import httpx2 as httpx

from cclens.config import Settings
from cclens.metrics import delivery
from cclens.server.app import create_app
from serve_support import ThreadServer
from test_lineage import PRICES, org  # noqa: F401 - the fixture

RANGE = "since=2026-03-02&until=2026-03-08&tz=UTC"


def test_delivery_page_shows_the_delivery_figures(org, warehouse, db_path):  # noqa: F811
    app = create_app(Settings(db=db_path, server_watch_transcripts=False), warehouse, grpc_port=0)
    with ThreadServer(app) as server:
        page = httpx.get(f"{server.url}/delivery?{RANGE}", timeout=60)
        assert page.status_code == 200, page.text[:500]
        html = page.text
        assert ">Delivery<" in html and 'id="provenance"' in html
        assert "github.com/acme/app#1" in html and "PROJ-1" in html
        assert 'href="/delivery?' in httpx.get(f"{server.url}/?{RANGE}", timeout=60).text  # in the navigation
        prs = httpx.get(f"{server.url}/delivery?{RANGE}&format=csv&table=prs", timeout=60)
        assert prs.status_code == 200
        rows = list(csv.DictReader(io.StringIO(prs.text)))
    from datetime import date

    expected = delivery.pull_requests(warehouse, PRICES, since=date(2026, 3, 2), until=date(2026, 3, 8))
    assert [r["pr_id"] for r in rows] == [r["pr_id"] for r in expected]
    assert [r["assisted_by"] for r in rows] == ["exact", "inferred", ""]
    assert float(rows[0]["cost_usd"]) == expected[0]["cost_usd"]


def test_delivery_page_on_an_empty_warehouse_says_what_to_run(warehouse, db_path):
    app = create_app(Settings(db=db_path, server_watch_transcripts=False), warehouse, grpc_port=0)
    with ThreadServer(app) as server:
        r = httpx.get(f"{server.url}/delivery", timeout=60)
    assert r.status_code == 200 and "cclens sync-eng" in r.text and 'data-empty="git"' in r.text
