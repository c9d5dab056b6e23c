"""Figure downloads and the HTML report from the compare page, in a real browser against a real server."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect

from tests.browser.test_journeys import post_checkpoint, save_checkpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_figure_downloads_as_svg_and_csv_and_the_page_as_a_report(browser, server, page, tmp_path):
    # Given a checkpoint with half its weights zero, whose layer sparsity the compare page always draws
    resp = post_checkpoint(server, save_checkpoint(tmp_path / "s.pt", seed=3, zero_fraction=0.5), name="half")
    assert resp.status_code == 201, resp.text
    cid = resp.json()["id"]
    page.goto(f"{server}/compare?ids={cid}")
    box = page.locator(".ps-figure", has=page.locator("#fig-sparsity"))
    expect(box.locator(".js-plotly-plot .main-svg").first).to_be_visible()

    # When its SVG button is clicked, then an SVG image downloads
    with page.expect_download() as svg_download:
        box.get_by_role("button", name="SVG").click()
    svg = svg_download.value
    assert svg.suggested_filename == "prunescope-sparsity.svg"
    assert svg.path().read_text(encoding="utf-8").startswith("<svg")

    # When its CSV button is clicked, then the heatmap's cells download as CSV
    with page.expect_download() as csv_download:
        box.get_by_role("button", name="CSV").click()
    table = csv_download.value
    assert table.suggested_filename == "prunescope-sparsity.csv"
    rows = list(csv.DictReader(io.StringIO(table.path().read_text(encoding="utf-8"))))
    assert list(rows[0])[:4] == ["trace", "x", "y", "z"]
    assert all(0.0 <= float(r["z"]) <= 1.0 for r in rows if r["z"])

    # And the report link downloads an HTML file
    with page.expect_download() as report_download:
        page.get_by_role("link", name="Download report (HTML)").click()
    report = report_download.value
    assert report.suggested_filename == f"prunescope-report-{cid}.html"
    assert "half (#" in report.path().read_text(encoding="utf-8")
