"""``cclens report html``: one self-contained file (no external script, style or font), the overview's
figures, and a PDF when Chromium is there."""

from __future__ import annotations

import re
import shutil

import pytest
from dashboard_support import SINCE, UNTIL, build


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    return build(tmp_path_factory.mktemp("report"))


def test_report_html_is_self_contained(demo_db, tmp_path):
    from cclens.cli import main

    out = tmp_path / "report.html"
    assert main(["--db", str(demo_db), "report", "html", "--since", SINCE, "--until", UNTIL, "--tz", "UTC",
                 "--out", str(out)]) == 0
    html = out.read_text()
    assert "<script src=" not in html and 'rel="stylesheet"' not in html and "/dashboard/static" not in html
    assert "echarts" in html and 'data-kpi="estimated_cost"' in html and 'id="provenance"' in html
    values = dict(re.findall(r'data-kpi="([^"]+)" data-value="([^"]*)"', html))
    assert values["tokens"] and float(values["tokens"]) > 0


def test_report_rejects_a_bad_range(demo_db, tmp_path):
    from cclens.cli import main

    assert main(["--db", str(demo_db), "report", "html", "--since", "nope", "--out", str(tmp_path / "x.html")]) != 0


@pytest.mark.skipif(not shutil.which("chromium"), reason="no chromium to print with")
def test_report_pdf(demo_db, tmp_path):
    from cclens.cli import main

    out = tmp_path / "report.html"
    assert main(["--db", str(demo_db), "report", "html", "--since", SINCE, "--until", UNTIL, "--tz", "UTC",
                 "--out", str(out), "--pdf"]) == 0
    pdf = tmp_path / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
