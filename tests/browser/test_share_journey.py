"""J4 in a real browser: the owner signs in and shares a comparison; a fresh browser opens the link read-only,
cannot write, and gets a 404 once the owner revokes it. The server runs with an API token, as a shared server
must (without one, every visitor is the owner)."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import served
from tests.browser.test_journeys import save_checkpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TOKEN = "j4-owner-token"
OWNER = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE = '<img src=x onerror="window.__pwned=1">child <script>window.__pwned=2</script>'


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("token-server"), PRUNESCOPE_API_TOKEN=TOKEN) as base:
        yield base


def _post(base, path, name, parent=None):
    fields = {"architecture": "small_cnn", "name": name, "family": "j4"}
    if parent:
        fields["parent_id"] = str(parent)
    with open(path, "rb") as f:
        resp = httpx.post(
            f"{base}/api/checkpoints", data=fields, files={"file": (path.name, f)}, headers=OWNER, timeout=60
        )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def _wait(base, job_id):
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = httpx.get(f"{base}/api/jobs/{job_id}", headers=OWNER, timeout=10).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish")


def test_share_open_read_only_try_a_write_revoke_and_reload(browser, token_server, tmp_path):
    base = token_server
    # Given a dense checkpoint and a child with a hostile name, each evaluated, and one checkpoint not shared
    ds = httpx.post(f"{base}/api/datasets", json={"builtin": "digits"}, headers=OWNER, timeout=60).json()[
        "id"
    ]
    dense = _post(base, save_checkpoint(tmp_path / "d.pt", seed=1), "dense j4")
    child = _post(base, save_checkpoint(tmp_path / "c.pt", seed=1, zero_fraction=0.5), HOSTILE, parent=dense)
    _post(base, save_checkpoint(tmp_path / "o.pt", seed=2), "unshared secret")
    body = {"analysis": "evaluate", "checkpoint_ids": [dense, child], "dataset_id": ds, "params": {}}
    jobs = httpx.post(f"{base}/api/jobs", json=body, headers=OWNER, timeout=30).json()
    assert all(_wait(base, j["id"])["status"] == "succeeded" for j in jobs)

    # When the owner signs in (the dashboard sends them to the form first) and shares the comparison
    owner_ctx = browser.new_context()
    owner = owner_ctx.new_page()
    owner.set_default_timeout(20_000)
    owner.goto(f"{base}/compare?ids={dense},{child}&dataset={ds}&tab=evaluate")
    expect(owner).to_have_url(
        f"{base}/login?next=%2Fcompare%3Fids%3D{dense}%2C{child}%26dataset%3D{ds}%26tab%3Devaluate"
    )
    owner.fill("#login-token", TOKEN)
    owner.click("#login-submit")
    expect(owner.locator("#compare-content")).to_contain_text("dense j4")
    owner.click("#share-create")
    link = owner.locator("#share-url-text")
    expect(link).to_be_visible()
    url = link.input_value()
    assert url.startswith(f"{base}/s/") and len(url.rsplit("/", 1)[1]) == 43

    # Then a fresh browser (no account, no cookie) opens the link read-only
    guest_ctx = browser.new_context()
    guest = guest_ctx.new_page()
    guest.set_default_timeout(20_000)
    dialogs: list[str] = []
    guest.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    first = guest.goto(url)
    assert first is not None and first.status == 200, (url, first and first.status)
    content = guest.locator("#compare-content")
    expect(content).to_contain_text("dense j4")
    expect(content).to_contain_text("child <script>")  # the hostile name, as text
    assert guest.evaluate("window.__pwned") is None and not dialogs
    assert guest.locator("#compare-content img[src='x']").count() == 0
    expect(guest.locator("body")).not_to_contain_text("unshared secret")
    assert guest.locator("#share-create, #compare-queue, #upload").count() == 0  # no write controls

    # And every write (and every read outside the view) is refused to it
    status = guest.evaluate(
        """async (ids) => {
            const json = {'Content-Type': 'application/json'};
            const post = await fetch('/api/jobs', {method: 'POST', headers: json,
              body: JSON.stringify({analysis: 'evaluate', checkpoint_ids: ids, dataset_id: 1, params: {}})});
            const list = await fetch('/api/checkpoints');
            const del = await fetch('/api/checkpoints/' + ids[0], {method: 'DELETE'});
            return [post.status, list.status, del.status];
        }""",
        [dense, child],
    )
    assert status == [401, 401, 401]
    guest.goto(f"{base}/checkpoints")
    expect(guest).to_have_url(f"{base}/login?next=%2Fcheckpoints")

    # When the owner revokes the link from the list of shared links
    owner.goto(f"{base}/shares")
    owner.locator("button", has_text="Revoke").first.click()
    expect(owner.locator("#shares-message")).to_contain_text("revoked")

    # Then the guest's reload gets a 404 (and so does the share API)
    response = guest.goto(url)
    assert response is not None and response.status == 404
    assert httpx.get(f"{base}/api/shared/{url.rsplit('/', 1)[1]}").status_code == 404
    owner_ctx.close()
    guest_ctx.close()
