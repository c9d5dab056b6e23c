"""The share app's pages and callbacks: a token reads its own view through every callback, nothing more."""

from __future__ import annotations

import flask
import pytest

from dashboard import data
from dashboard.shared import create_shared_dash
from server.views.scope import of_state
from tests.share.conftest import HOSTILE, callback, share, text_of


def _open(client, token: str):
    """Load the page as a browser would: it sets the view's cookie on the client."""
    page = client.get(f"/s/{token}")
    assert page.status_code == 200, page.text
    return page


def test_the_page_sets_a_scoped_cookie_and_renders_only_its_checkpoints(family):
    client, owner, (dense, child, other), ds = family
    token = share(client, owner, [dense, child], ds, tab="overview")["token"]
    page = _open(client, token)
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("ps_view_") and "Path=/s/" in cookie and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    opened = callback(
        client,
        "..share-title.children...share-tab.value...compare-state.data..",
        [{"id": "share-url", "property": "pathname", "value": f"/s/{token}"}],
    )
    assert opened.status_code == 200
    assert opened.json()["response"]["share-tab"]["value"] == "overview"
    resp = callback(
        client,
        "compare-content.children",
        [
            {"id": "share-tab", "property": "value", "value": "overview"},
            {"id": "share-url", "property": "pathname", "value": f"/s/{token}"},
        ],
    )
    assert resp.status_code == 200
    body = text_of(resp.json())
    assert "dense" in body and "private-other" not in body
    assert "compare-queue" not in body and "hessian-per-layer" not in body  # no write controls


def test_callbacks_without_a_valid_token_get_404(family):
    client, owner, (dense, _child, _other), ds = family
    token = share(client, owner, [dense], ds)["token"]
    client.cookies.clear()
    inputs = [
        {"id": "share-tab", "property": "value", "value": "evaluate"},
        {"id": "share-url", "property": "pathname", "value": "/s/" + "B" * 43},
    ]
    assert callback(client, "compare-content.children", inputs).status_code == 404
    _open(client, token)
    assert client.delete(f"/api/views/{token}", headers=owner).status_code == 204
    assert callback(client, "compare-content.children", inputs).status_code == 404
    assert client.get(f"/s/{token}").status_code == 404
    client.cookies.clear()


def test_every_callback_of_the_share_app_stays_inside_its_view(family):
    """Each callback, sent a forged state naming a checkpoint outside the view, never shows it."""
    client, owner, (dense, child, other), ds = family
    token = share(client, owner, [dense, child], ds)["token"]
    _open(client, token)
    app = create_shared_dash(client.app.state.settings, client.app.state.limiter)
    forged = {"ids": [other, dense], "dataset": ds, "tab": "robustness"}
    checked = 0
    for key, cb in app.callback_map.items():
        if "callback" not in cb:
            continue  # clientside: runs in the browser, reads nothing from the server
        inputs = [
            {"id": i["id"], "property": i["property"], "value": _value(i, token, forged)}
            for i in cb["inputs"]
        ]
        state = [
            {"id": s["id"], "property": s["property"], "value": _value(s, token, forged)} for s in cb["state"]
        ]
        if any(i["id"].startswith("{") for i in cb["inputs"] + cb["state"]):
            continue  # pattern-matching inputs: covered by the browser tests
        resp = callback(client, key, inputs, state)
        assert resp.status_code in (200, 204), (key, resp.status_code, resp.text[:300])
        assert "private-other" not in resp.text, key
        checked += 1
    assert checked >= 5
    client.cookies.clear()


def _value(dep: dict, token: str, forged: dict):
    if dep["id"] == "compare-state":
        return forged
    if dep["id"] == "share-url":
        return f"/s/{token}"
    if dep["id"] == "share-tab":
        return "robustness"
    return None


@pytest.fixture
def scoped(family):
    """Run data helpers as a share request of a view holding dense and child."""
    client, owner, (dense, child, other), ds = family
    app = flask.Flask("t")
    with app.test_request_context("/s/_dash-update-component"):
        setattr(flask.g, data.SCOPE_KEY, of_state({"ids": [dense, child], "dataset": ds}))
        yield (dense, child, other), ds


def test_the_data_layer_applies_the_scope_to_every_read_and_refuses_every_write(scoped):
    (dense, child, other), ds = scoped
    assert [c["id"] for c in data.list_checkpoints()] == [dense, child]
    assert [d["id"] for d in data.list_datasets()] == [ds]
    assert data.family_ids("cnn") == [dense, child]
    assert data.results("evaluate", [dense, other], ds) == {}
    assert data.latest_jobs("evaluate", [other], ds) == {}
    assert data.result_artifact("robustness", other, ds, "samples") is None
    assert data.results("evaluate", [dense], ds + 1000) == {}
    with pytest.raises(data.ActionError, match="not found"):
        data.dataset_images(ds + 1000, [0])
    for write in (
        lambda: data.submit_jobs("evaluate", [dense], ds),
        lambda: data.add_builtin_dataset("synthetic"),
        lambda: data.cancel_job(1),
    ):
        with pytest.raises(data.ActionError, match="read-only"):
            write()


def test_names_reach_the_share_page_as_text(family):
    client, owner, (dense, child, _other), ds = family
    token = share(client, owner, [dense, child], ds)["token"]
    _open(client, token)
    resp = callback(
        client,
        "compare-content.children",
        [
            {"id": "share-tab", "property": "value", "value": "evaluate"},
            {"id": "share-url", "property": "pathname", "value": f"/s/{token}"},
        ],
    )
    assert HOSTILE.split("<img")[0] in resp.json()["response"]["compare-content"]["children"].__repr__()
    assert "dangerouslySetInnerHTML" not in resp.text
    client.cookies.clear()


def test_a_view_opens_with_the_settings_it_was_shared_with(family):
    client, owner, (dense, child, _other), ds = family
    state = {"ids": [dense, child], "dataset": ds, "tab": "overview", "settings": {"mode": "difference"}}
    token = client.post("/api/views", json={"state": state}, headers=owner).json()["token"]
    _open(client, token)
    inputs = [
        {"id": "share-tab", "property": "value", "value": "overview"},
        {"id": "share-url", "property": "pathname", "value": f"/s/{token}"},
    ]
    body = callback(client, "compare-content.children", inputs).text
    assert '"value": "difference"' in body.replace('":"', '": "')
    client.cookies.clear()
