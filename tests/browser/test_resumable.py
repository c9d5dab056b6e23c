"""The dashboard uploads checkpoints through tus and resumes when the connection drops mid-upload."""

from __future__ import annotations

import hashlib
import re
import time

import httpx
import pytest
import torch
from playwright.sync_api import expect

from workers.architectures import build

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHUNK = 16 * 1024


def save_checkpoint(path, *, seed: int):
    torch.manual_seed(seed)
    torch.save(build("small_cnn", num_classes=10, input_shape=(1, 8, 8)).state_dict(), path)
    return path


def use_small_chunks(page, chunk: int = CHUNK) -> None:
    page.locator("#ckpt-drop").evaluate("(zone, chunk) => { zone.dataset.chunkSize = String(chunk); }", chunk)


def test_a_dropped_patch_is_resumed_and_the_checkpoint_is_stored(browser, server, page, tmp_path):
    path = save_checkpoint(tmp_path / "resumed.pt", seed=11)
    data = path.read_bytes()
    assert len(data) > 6 * CHUNK
    patch_offsets: list[int] = []

    checksums: list[str] = []
    held_heads: list = []  # HEAD requests held back until the test has seen "resuming"

    def flaky_network(route):
        if route.request.method == "HEAD":
            return held_heads.append(route)
        if route.request.method != "PATCH":
            return route.continue_()
        patch_offsets.append(int(route.request.headers["upload-offset"]))
        checksums.append(route.request.headers.get("upload-checksum", ""))
        if len(patch_offsets) == 2:  # lost on the way: the server never sees this chunk
            return route.abort("connectionreset")
        if len(patch_offsets) == 4:  # lost on the way back: the server stored it, the browser never hears
            route.fetch()
            return route.abort("connectionreset")
        return route.continue_()

    # Given a network that drops two PATCH requests
    page.route(re.compile(r".*/api/uploads/[^/]+$"), flaky_network)
    page.goto(f"{server}/")
    use_small_chunks(page)
    page.fill("#ckpt-name", "resumed")
    page.fill("#ckpt-family", "resumable")

    # When a checkpoint is chosen
    page.set_input_files("#ckpt-drop input[type=file]", str(path))

    # Then the row says it is resuming while it asks the server for its offset, twice
    row = page.locator("#ckpt-drop-status .ps-upload-item", has_text="resumed.pt")
    for resumption in (1, 2):
        expect(row).to_contain_text("resuming (try 1 of", timeout=20_000)
        expect(row).to_have_class(re.compile(r"\bps-upload-resuming\b"))
        deadline = time.monotonic() + 30
        while len(held_heads) < resumption and time.monotonic() < deadline:
            page.wait_for_timeout(50)
        assert len(held_heads) == resumption
        held_heads[-1].continue_()

    # And then that the checkpoint is stored
    expect(row).to_have_class(re.compile(r"\bps-upload-ok\b"), timeout=60_000)
    expect(row).to_contain_text("stored as #")
    expect(row.locator("progress")).to_have_js_property("value", 100)
    expect(row).to_have_attribute("data-resumes", "2")
    expect(page.locator("#ckpt-table-el tr", has_text="resumed")).to_contain_text("resumable", timeout=20_000)

    # And each resumption started from the offset the server reported (HEAD), not from scratch
    c = CHUNK
    assert patch_offsets[:5] == [0, c, c, 2 * c, 3 * c]
    assert patch_offsets[4:] == sorted(set(patch_offsets[4:]))
    assert len(patch_offsets) == -(-len(data) // c) + 1  # one chunk sent twice: the one never received

    # And every chunk carried its sha256 (127.0.0.1 is a secure context, so crypto.subtle exists)
    assert all(re.fullmatch(r"sha256 [A-Za-z0-9+/]{43}=", c) for c in checksums), checksums

    # And the stored checkpoint is byte for byte the file
    stored = httpx.get(f"{server}/api/checkpoints", params={"family": "resumable"}).json()
    assert [(c["name"], c["sha256"]) for c in stored] == [("resumed", hashlib.sha256(data).hexdigest())]


def test_a_refused_checkpoint_shows_the_servers_reason_and_leaves_no_upload(browser, server, page, tmp_path):
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"not a checkpoint at all " * 3000)
    locations: list[str] = []
    page.on(
        "response",
        lambda r: (
            locations.append(r.headers["location"])
            if r.request.method == "POST" and r.status == 201
            else None
        ),
    )
    page.goto(f"{server}/")
    use_small_chunks(page)
    page.set_input_files("#ckpt-drop input[type=file]", str(bad))
    alert = page.locator("#ckpt-drop-status .ps-upload-error [role=alert]")
    expect(alert).not_to_be_empty(timeout=30_000)
    with bad.open("rb") as f:
        reason = httpx.post(
            f"{server}/api/checkpoints", data={"architecture": "small_cnn"}, files={"file": ("junk.pt", f)}
        ).json()["detail"]
    expect(alert).to_have_text(reason)
    assert len(locations) == 1
    upload_url = locations[0] if locations[0].startswith("http") else server + locations[0]
    assert httpx.head(upload_url, headers={"Tus-Resumable": "1.0.0"}).status_code == 404
