"""J5 in a real browser: the prune dialog on the checkpoints page makes a family that appears in the table."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import browser, page, server  # noqa: F401 - fixtures of the browser suite
from tests.conftest import state_dict_bytes

pytestmark = [pytest.mark.browser, pytest.mark.slow]

JOB_SECONDS = 120


def _wait_succeeded(base: str, job_id: int) -> None:
    deadline = time.monotonic() + JOB_SECONDS
    while time.monotonic() < deadline:
        status = httpx.get(f"{base}/api/jobs/{job_id}", timeout=10).json()["status"]
        if status == "succeeded":
            return
        assert status in ("queued", "running"), status
        time.sleep(0.5)
    pytest.fail(f"prune job {job_id} did not finish in {JOB_SECONDS} s")


def test_prune_dialog_estimates_submits_and_the_children_appear(server, page):  # noqa: F811
    # Given a dense checkpoint uploaded through the API,
    resp = httpx.post(
        f"{server}/api/checkpoints",
        data={"architecture": "small_cnn", "name": "dense", "family": "cnn"},
        files={"file": ("w.pt", state_dict_bytes(seed=0))},
        timeout=60,
    )
    assert resp.status_code == 201, resp.text
    dense_id = resp.json()["id"]

    # when the dialog is opened and the checkpoint's row selected, the dialog prunes that checkpoint,
    page.goto(f"{server}/")
    table = page.locator("#ckpt-table-el")
    expect(table).to_contain_text("dense")
    page.click("#prune-dialog summary")
    table.locator("tr", has_text="dense").locator("input[type=checkbox]").check()
    expect(page.locator("#prune-checkpoint")).to_contain_text(f"dense (#{dense_id})")
    # and the estimate follows the choices: 2 methods x 2 sparsities, then 2 x 1 sparsity,
    estimate = page.locator("#prune-estimate")
    expect(estimate).to_contain_text("4 children (2 methods x 2 sparsities)")
    page.locator("#prune-sparsities label", has_text="80%").locator("input").uncheck()
    expect(estimate).to_contain_text("2 children (2 methods x 1 sparsity): 1 job.")
    # fine-tuning without a dataset disables the button with the reason,
    page.fill("#prune-epochs", "1")
    expect(estimate).to_contain_text("need a dataset")
    expect(page.locator("#prune-run")).to_be_disabled()
    page.fill("#prune-epochs", "0")
    expect(page.locator("#prune-run")).to_be_enabled()

    # when submitted, one prune job is queued,
    page.click("#prune-run")
    expect(page.locator("#prune-result li")).to_have_count(1)
    expect(page.locator("#prune-result li")).to_contain_text("prune on dense")
    (job,) = [j for j in httpx.get(f"{server}/api/jobs", timeout=10).json() if j["analysis"] == "prune"]
    _wait_succeeded(server, job["id"])

    # and its children are listed in the table under their parent.
    page.reload()
    for name in ("dense global_magnitude 50%", "dense random 50%"):
        expect(table.locator("tr", has_text=name)).to_contain_text(f"dense (#{dense_id})")
