"""The compare page's Hessian tab in a real browser, on a small checkpoint's real hessian result."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.test_journeys import post_checkpoint, save_checkpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow]

JOB_SECONDS = 60
SMALL = {  # about 25 Hessian-vector products on 128 samples
    "max_samples": 128,
    "top_k": 3,
    "n_negative": 0,
    "lanczos_iters": 12,
    "trace_probes": 3,
    "density_vectors": 1,
    "density_iters": 10,
    "hvp_method": "retained",  # the fastest on the CPU for a model this small
}


def submit_hessian(base: str, checkpoint_id: int, dataset_id: int) -> dict:
    resp = httpx.post(
        f"{base}/api/jobs",
        json={
            "analysis": "hessian",
            "checkpoint_ids": [checkpoint_id],
            "dataset_id": dataset_id,
            "params": SMALL,
        },
        timeout=30,
    )
    assert resp.status_code == 202, resp.text
    return resp.json()[0]


def wait_for(base: str, job_id: int) -> dict:
    deadline = time.monotonic() + JOB_SECONDS
    while time.monotonic() < deadline:
        job = httpx.get(f"{base}/api/jobs/{job_id}", timeout=10).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.3)
    pytest.fail(f"job {job_id} still {job['status']} after {JOB_SECONDS}s")


def test_hessian_tab_shows_the_spectrum_and_queues_per_layer_spectra(browser, server, page, tmp_path):
    # Given a small checkpoint with a finished hessian job on digits
    ds = httpx.post(f"{server}/api/datasets", json={"builtin": "digits"}, timeout=60)
    assert ds.status_code == 201, ds.text
    resp = post_checkpoint(server, save_checkpoint(tmp_path / "h.pt", seed=7), name="spectral")
    assert resp.status_code == 201, resp.text
    cid, dataset = resp.json()["id"], ds.json()["id"]
    job = wait_for(server, submit_hessian(server, cid, dataset)["id"])
    assert job["status"] == "succeeded", job
    top = httpx.get(f"{server}/api/jobs/{job['id']}/result").json()["summary"]["top_eigenvalues"][0]

    # When its Hessian tab opens
    page.goto(f"{server}/compare?ids={cid}&tab=hessian&dataset={dataset}")

    # Then the table shows the top eigenvalue, and the density and eigenvalue figures render
    row = page.locator("#compare-summary .ag-row")
    expect(row).to_contain_text("spectral")
    expect(row.locator(".ag-cell[col-id='top']")).to_contain_text(f"{top:.4g}")
    expect(page.locator("#fig-density g.trace.scatter")).to_have_count(2)  # the density and its outlier ticks
    expect(page.locator("#fig-density .ytick").first).to_be_visible()
    expect(page.locator("#fig-eigenvalues g.trace.bars")).to_have_count(1)

    # And asking for per-layer spectra queues one job
    page.click("#hessian-per-layer")
    expect(page.locator("#compare-queue-result")).to_contain_text("Queued 1 job")
