"""The compare page's Robustness tab in a real browser, on a real robustness result of two checkpoints."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.test_hessian_view import wait_for
from tests.browser.test_journeys import post_checkpoint, save_checkpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SMALL = {"corruptions": ["gaussian_noise", "contrast"], "severities": [1, 3], "max_samples": 200}


def test_robustness_tab_shows_the_corruption_table_and_opens_a_sample(browser, server, page, tmp_path):
    # Given a dense checkpoint and a pruned one, each with a finished robustness job on digits
    ds = httpx.post(f"{server}/api/datasets", json={"builtin": "digits"}, timeout=60)
    assert ds.status_code == 201, ds.text
    dataset = ds.json()["id"]
    ids = []
    for name, zeros in (("sturdy dense", 0.0), ("thin child", 0.6)):
        resp = post_checkpoint(
            server, save_checkpoint(tmp_path / f"{zeros}.pt", seed=4, zero_fraction=zeros), name=name
        )
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    body = {"analysis": "robustness", "checkpoint_ids": ids, "dataset_id": dataset, "params": SMALL}
    jobs = httpx.post(f"{server}/api/jobs", json=body, timeout=30).json()
    for job in jobs:
        assert wait_for(server, job["id"])["status"] == "succeeded"
    clean = httpx.get(f"{server}/api/jobs/{jobs[0]['id']}/result").json()["summary"]["clean"]["accuracy"]

    # When the pair's Robustness tab opens
    page.goto(f"{server}/compare?ids={ids[0]},{ids[1]}&tab=robustness&dataset={dataset}")

    # Then the table shows each checkpoint's clean accuracy and the heatmap has a row per checkpoint
    table = page.locator("#robustness-summary")
    expect(table.locator(".ag-row")).to_have_count(2)
    expect(table.locator(".ag-row[row-index='0']")).to_contain_text(f"{clean:.2%}")
    expect(page.locator("#fig-robustness-heatmap .ytick")).to_have_count(2)
    expect(page.locator("#fig-robustness-angle")).to_contain_text("class 0")

    # And asking for a sample by its index opens it with a row of geometry per checkpoint
    page.fill("#robustness-index", "17")
    page.keyboard.press("Enter")
    expect(page.locator("#robustness-detail")).to_contain_text("Sample #17, true class 7")
    expect(page.locator("#robustness-sample-table tbody tr")).to_have_count(2)
