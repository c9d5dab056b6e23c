"""Journeys in a real browser against a real server: upload (J1), analyse (J2), compare (J3)."""

from __future__ import annotations

import base64
import re

import httpx
import numpy as np
import pytest
import torch
from playwright.sync_api import expect

from workers.architectures import build

pytestmark = [pytest.mark.browser, pytest.mark.slow]

JOB_SECONDS = 120


def save_checkpoint(path, *, seed: int, zero_fraction: float = 0.0):
    torch.manual_seed(seed)
    model = build("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.view(-1)[: int(zero_fraction * p.numel())] = 0
    torch.save(model.state_dict(), path)
    return path


def post_checkpoint(base: str, path, **fields) -> httpx.Response:
    with open(path, "rb") as f:
        return httpx.post(
            f"{base}/api/checkpoints",
            data={"architecture": "small_cnn", **fields},
            files={"file": (path.name, f)},
            timeout=60,
        )


def test_upload_analyse_and_compare(browser, server, page, tmp_path):
    # Given a digits dataset and a dense checkpoint, added through the REST API
    assert httpx.post(f"{server}/api/datasets", json={"builtin": "digits"}, timeout=60).status_code == 201
    dense = post_checkpoint(
        server, save_checkpoint(tmp_path / "dense.pt", seed=0), name="dense", family="cnn"
    )
    assert dense.status_code == 201, dense.text
    dense_id = dense.json()["id"]

    # When the checkpoints page opens, the dense checkpoint is in the table
    page.goto(f"{server}/")
    table = page.locator("#ckpt-table-el")
    expect(table).to_contain_text("dense")

    # When a pruned child is uploaded through the file input, its progress completes and its row appears
    page.fill("#ckpt-name", "pruned-50")
    page.fill("#ckpt-family", "cnn")
    page.select_option("#ckpt-parent", str(dense_id))
    pruned = save_checkpoint(tmp_path / "pruned.pt", seed=1, zero_fraction=0.5)
    page.set_input_files("#ckpt-drop input[type=file]", str(pruned))
    done = page.locator("#ckpt-drop-status .ps-upload-ok")
    expect(done).to_contain_text("stored as #")
    expect(done.locator("progress")).to_have_js_property("value", 100)
    expect(table.locator("tr", has_text="pruned-50")).to_contain_text(f"dense (#{dense_id})")
    expect(table.locator("tr", has_text="pruned-50")).to_contain_text("50.0%")

    # When an invalid file is uploaded, the server's reason is shown and nothing is stored
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    reason = post_checkpoint(server, bad).json()["detail"]
    page.set_input_files("#ckpt-drop input[type=file]", str(bad))
    expect(page.locator("#ckpt-drop-status .ps-upload-error [role=alert]")).to_have_text(reason)
    checkpoints = httpx.get(f"{server}/api/checkpoints", params={"family": "cnn"}).json()
    assert [c["name"] for c in checkpoints] == ["dense", "pruned-50"]
    ids = [c["id"] for c in checkpoints]

    # When both are selected and evaluate runs on digits, two jobs are created
    for cid in ids:
        table.locator("tr", has=page.locator(f"td:nth-child(2):text-is('{cid}')")).locator(
            "input[type=checkbox]"
        ).check()
    expect(page.locator("#ckpt-selected-count")).to_have_text("2 selected")
    expect(page.locator("#ckpt-compare-link")).to_have_attribute("href", f"/compare?ids={ids[0]},{ids[1]}")
    page.click("#ckpt-run")
    expect(page.locator("#ckpt-run-result li")).to_have_count(2)

    # Then the jobs page shows them reach succeeded
    page.click("a.ps-nav-link:text-is('Jobs')")
    expect(page.locator("#jobs-table-el .ps-badge.ps-status-succeeded")).to_have_count(
        2, timeout=JOB_SECONDS * 1000
    )

    # And the compare page shows the figures, and keeps the selection over a reload
    page.goto(f"{server}/compare?ids={ids[0]},{ids[1]}")
    _expect_compare_page(page)
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
    page.reload()
    assert re.search(rf"ids={ids[0]},{ids[1]}", page.url)
    _expect_compare_page(page)

    # And picking a family from the compare page selects all of it, in the URL
    page.goto(f"{server}/compare")
    page.click("#compare-family")
    page.get_by_role("option", name="cnn").click()
    page.wait_for_url(re.compile(rf"/compare\?ids={ids[0]},{ids[1]}"))
    _expect_compare_page(page)


def _expect_compare_page(page):
    summary = page.locator("#compare-summary")
    expect(summary).to_contain_text("dense")
    expect(summary).to_contain_text("pruned-50")
    expect(page.locator("#fig-accuracy g.trace.bars")).to_have_count(2)
    expect(page.locator("#fig-per-class g.trace.scatter")).to_have_count(2)
    expect(page.locator("#fig-confusion g.hm")).to_have_count(2)
    expect(page.locator("#fig-confusion g.colorbar")).to_have_count(1)


def test_user_text_is_shown_as_text_never_as_html(browser, server, page, tmp_path):
    hostile = "<img src=x onerror=\"document.title='pwned'\">"
    resp = post_checkpoint(server, save_checkpoint(tmp_path / "h.pt", seed=2), name=hostile, family=hostile)
    assert resp.status_code == 201, resp.text
    cid = resp.json()["id"]
    page.goto(f"{server}/")
    row = page.locator("#ckpt-table-el tr", has_text=hostile)
    expect(row).to_have_count(1)
    expect(row.locator("img")).to_have_count(0)
    httpx.post(f"{server}/api/datasets", json={"builtin": "digits"}, timeout=60).raise_for_status()
    page.goto(f"{server}/compare?ids={cid}")
    expect(page.locator(".ps-missing")).to_contain_text(hostile)
    expect(page.locator(".ps-missing img")).to_have_count(0)

    # Queueing the missing result from the compare page fills the page in when the job is done
    page.click("#compare-queue")
    expect(page.locator("#compare-queue-result")).to_contain_text("Queued 1 job")
    expect(page.locator("#compare-summary")).to_contain_text(hostile, timeout=JOB_SECONDS * 1000)
    expect(page.locator("#fig-confusion g.hm")).to_have_count(1)
    expect(
        page.locator("#fig-confusion .gtitle, #fig-confusion .annotation-text").filter(has_text=hostile)
    ).to_have_count(1)
    expect(page.locator("#compare-content img")).to_have_count(0)  # (an svg <image> is a heatmap)
    assert page.title() != "pwned"


DROP_FILES = """(files) => {
    const dt = new DataTransfer();
    for (const [name, b64] of files) {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        dt.items.add(new File([bytes], name));
    }
    return dt;
}"""


def test_dropping_several_files_uploads_each_in_turn(browser, server, page, tmp_path):
    files = [save_checkpoint(tmp_path / f"drop-{s}.pt", seed=s) for s in (3, 4)]
    page.goto(f"{server}/")
    page.fill("#ckpt-name", "ignored when several files are dropped")
    page.fill("#ckpt-family", "dropped")
    transfer = page.evaluate_handle(
        DROP_FILES, [[f.name, base64.b64encode(f.read_bytes()).decode()] for f in files]
    )
    page.dispatch_event("#ckpt-drop", "drop", {"dataTransfer": transfer})
    expect(page.locator("#ckpt-drop-status .ps-upload-ok")).to_have_count(2)
    for f in files:
        expect(page.locator("#ckpt-table-el tr", has_text=f.name)).to_contain_text("dropped")
    stored = httpx.get(f"{server}/api/checkpoints", params={"family": "dropped"}).json()
    assert [c["name"] for c in stored] == [f.name for f in files]


def test_datasets_page_adds_builtins_and_uploads_npz(browser, server, page, tmp_path):
    good, bad = tmp_path / "blobs.npz", tmp_path / "broken.npz"
    np.savez(good, x=np.zeros((12, 1, 8, 8), dtype=np.float32), y=np.arange(12) % 3)
    np.savez(bad, x=np.zeros((12, 4), dtype=np.float32))
    page.goto(f"{server}/datasets")
    page.click("button:text-is('Add built-in synthetic')")
    expect(page.locator("#ds-builtin-result")).to_contain_text("synthetic")
    table = page.locator("#ds-table-el")
    expect(table.locator("tr", has_text="synthetic")).to_contain_text("builtin")
    page.set_input_files("#ds-drop input[type=file]", [str(good), str(bad)])
    expect(page.locator("#ds-drop-status .ps-upload-ok")).to_have_count(1)
    expect(page.locator("#ds-drop-status .ps-upload-error")).to_contain_text("needs arrays 'x' and 'y'")
    expect(table.locator("tr", has_text="blobs.npz")).to_contain_text("1×8×8")


def submit(base: str, analysis: str, checkpoint_id: int, **params) -> dict:
    resp = httpx.post(
        f"{base}/api/jobs",
        json={"analysis": analysis, "checkpoint_ids": [checkpoint_id], "params": params},
        timeout=30,
    )
    assert resp.status_code == 202, resp.text
    return resp.json()[0]


def test_jobs_page_shows_live_progress_cancels_and_failures(browser, server, page, tmp_path):
    resp = post_checkpoint(server, save_checkpoint(tmp_path / "j.pt", seed=5), name="jobs-demo")
    cid = resp.json()["id"]
    slow = submit(server, "_sleep", cid, seconds=60, steps=600, tag="browser")
    page.goto(f"{server}/jobs")
    running = page.locator("#jobs-table-el tr", has=page.locator(f"td:first-child:text-is('{slow['id']}')"))
    expect(running.locator(".ps-badge")).to_have_text("running", timeout=JOB_SECONDS * 1000)
    first = running.locator(".ps-progress span").inner_text()
    expect(running.locator(".ps-progress span")).not_to_have_text(first)  # the bar moves on its own
    running.locator("button:text-is('Cancel')").click()
    expect(page.locator("#jobs-message")).to_have_text(f"Job #{slow['id']} cancelled.")
    expect(running.locator(".ps-badge")).to_have_text("cancelled")
    expect(running.locator("button")).to_have_count(0)
    assert httpx.get(f"{server}/api/jobs/{slow['id']}").json()["status"] == "cancelled"

    crash = submit(server, "_crash", cid, message="boom: <b>not bold</b>")
    failed = page.locator("#jobs-table-el tr", has=page.locator(f"td:first-child:text-is('{crash['id']}')"))
    expect(failed.locator(".ps-badge")).to_have_text("failed", timeout=JOB_SECONDS * 1000)
    expect(failed.locator(".ps-error")).to_have_text("RuntimeError: boom: <b>not bold</b>")
    expect(failed.locator("b")).to_have_count(0)

    # The status filter lives in the URL
    page.click("a.ps-filter-link:text-is('cancelled')")
    expect(page).to_have_url(re.compile(r"/jobs\?status=cancelled$"))
    expect(page.locator("#jobs-table-el .ps-badge")).to_have_text(["cancelled"])
