"""The compare page's Landscape tab in a real browser, on real landscape results of a dense/pruned pair."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.test_hessian_view import wait_for
from tests.browser.test_journeys import post_checkpoint, save_checkpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def submit(base: str, checkpoint_id: int, dataset_id: int, params: dict) -> dict:
    resp = httpx.post(
        f"{base}/api/jobs",
        json={
            "analysis": "landscape",
            "checkpoint_ids": [checkpoint_id],
            "dataset_id": dataset_id,
            "params": params,
        },
        timeout=30,
    )
    assert resp.status_code == 202, resp.text
    return resp.json()[0]


def test_landscape_tab_shows_a_plane_and_an_interpolation_with_its_barrier(browser, server, page, tmp_path):
    # Given a dense checkpoint with a 2D slice, and its pruned child with one too, interpolated back to it
    ds = httpx.post(f"{server}/api/datasets", json={"builtin": "digits"}, timeout=60)
    assert ds.status_code == 201, ds.text
    dataset = ds.json()["id"]
    dense = post_checkpoint(server, save_checkpoint(tmp_path / "d.pt", seed=3), name="flat dense")
    assert dense.status_code == 201, dense.text
    dense_id = dense.json()["id"]
    child = post_checkpoint(
        server, save_checkpoint(tmp_path / "p.pt", seed=3, zero_fraction=0.5), name="half", parent_id=dense_id
    )
    child_id = child.json()["id"]
    plane = wait_for(
        server, submit(server, dense_id, dataset, {"mode": "2d", "steps": 5, "max_samples": 128})["id"]
    )
    line = wait_for(
        server,
        submit(server, child_id, dataset, {"mode": "interpolation", "steps": 5, "max_samples": 128})["id"],
    )
    child_plane = wait_for(
        server, submit(server, child_id, dataset, {"mode": "2d", "steps": 5, "max_samples": 128})["id"]
    )
    assert {plane["status"], line["status"], child_plane["status"]} == {"succeeded"}, (
        plane,
        line,
        child_plane,
    )
    barrier = httpx.get(f"{server}/api/jobs/{line['id']}/result").json()["summary"]["barrier"]

    # When the pair's Landscape tab opens
    page.goto(f"{server}/compare?ids={dense_id},{child_id}&tab=landscape&dataset={dataset}")

    # Then the table names the interpolation's target, and the contour and interpolation figures render
    table = page.locator("#landscape-summary")
    expect(table).to_contain_text("flat dense")
    # the child keeps both results: its 2D slice (row 2) and its interpolation to the parent (row 3)
    expect(table.locator(".ag-row")).to_have_count(3)
    expect(table.locator(".ag-row[row-index='2']")).to_contain_text("flat dense")
    expect(page.locator("#fig-landscape-contours g.contour")).to_have_count(2)
    expect(page.locator("#fig-landscape-interpolation")).to_contain_text(f"{barrier:.3g}")
