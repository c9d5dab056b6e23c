"""Share links through the API: created once, read only their view, refused writes, revoked for good."""

from __future__ import annotations

import hashlib
import logging
import secrets

import pytest

from server.access import redact
from server.db import session_scope
from server.errors import NotFound
from server.views import service as views
from server.views.models import SharedView
from tests.share.conftest import share


def test_a_link_reads_its_own_view_and_nothing_else(family):
    client, owner, (dense, child, other), ds = family
    link = share(client, owner, [dense, child], ds)
    token = link["token"]
    assert link["url"] == f"/s/{token}" and len(token) == 43
    view = client.get(f"/api/shared/{token}")
    assert view.status_code == 200
    assert [c["id"] for c in view.json()["checkpoints"]] == [dense, child]
    assert [d["id"] for d in view.json()["datasets"]] == [ds]
    assert client.get(f"/api/shared/{token}/checkpoints/{child}").json()["id"] == child
    outside = client.get(f"/api/shared/{token}/checkpoints/{other}")
    unknown = client.get(f"/api/shared/{'A' * 43}/checkpoints/{dense}")
    assert outside.status_code == unknown.status_code == 404
    assert outside.json() == unknown.json() == {"detail": "not found"}
    assert client.get(f"/api/shared/{token}/results", params={"analysis": "evaluate"}).json() == []


def test_only_the_tokens_hash_is_stored(family, server_settings):
    client, owner, (dense, _child, _other), ds = family
    token = share(client, owner, [dense], ds)["token"]
    with session_scope(server_settings.database_url) as session:
        rows = session.query(SharedView).all()
        stored = [(r.id, r.token_sha256, r.state) for r in rows]
    assert hashlib.sha256(token.encode()).hexdigest() in [h for _i, h, _s in stored]
    assert token not in str(stored)
    listed = client.get("/api/views", headers=owner).json()
    assert listed[0]["active"] and "token" not in listed[0] and token not in str(listed)


def test_without_the_owner_token_nothing_but_the_share_routes_answers(family):
    client, owner, (dense, child, _other), ds = family
    token = share(client, owner, [dense, child], ds)["token"]
    share_header = {"Authorization": f"Bearer {token}"}
    for method, path in [
        ("get", "/api/checkpoints"),
        ("get", f"/api/checkpoints/{dense}"),
        ("get", "/api/datasets"),
        ("get", "/api/jobs"),
        ("get", "/api/views"),
        ("post", "/api/views"),
        ("post", "/api/jobs"),
        ("delete", f"/api/checkpoints/{dense}"),
        ("delete", f"/api/views/{token}"),
        ("post", "/api/datasets"),
        ("get", "/compare"),
        ("post", "/_dash-update-component"),
    ]:
        for headers in ({}, share_header):
            resp = client.request(method, path, headers=headers, json={})
            assert resp.status_code == 401, (method, path, resp.status_code)
    assert client.get("/api/health").status_code == 200
    browser = client.get("/compare?ids=1", headers={"accept": "text/html"}, follow_redirects=False)
    assert browser.status_code == 303 and browser.headers["location"].startswith("/login?next=%2Fcompare")


def test_revoked_expired_and_unknown_tokens_get_the_same_404(family):
    client, owner, (dense, _child, _other), ds = family
    revoked = share(client, owner, [dense], ds)["token"]
    assert client.delete(f"/api/views/{revoked}", headers=owner).status_code == 204
    by_id = share(client, owner, [dense], ds)
    assert client.post(f"/api/views/{by_id['id']}/revoke", headers=owner).json()["active"] is False
    expired = share(client, owner, [dense], ds, expires_in_days=1e-9)["token"]
    bodies = set()
    for token in (revoked, by_id["token"], expired, secrets.token_urlsafe(32), "short", "x" * 64):
        for path in (f"/api/shared/{token}", f"/s/{token}"):
            resp = client.get(path)
            assert resp.status_code == 404, path
            bodies.add((path.split("/")[1], resp.text))
    assert len(bodies) == 2  # one body for the API, one for the page, whatever the token
    assert client.delete(f"/api/views/{revoked}", headers=owner).status_code == 404


def test_ten_thousand_random_tokens_all_get_identical_404s(family, server_settings):
    client, _owner, _ids, _ds = family
    # every route resolves a token through views.resolve: 10,000 random ones there, in one session...
    with session_scope(server_settings.database_url, write=False) as session:
        for _ in range(10_000):
            with pytest.raises(NotFound) as err:
                views.resolve(session=session, token=secrets.token_urlsafe(32))
            assert err.value.detail == "not found"
    # ...and 500 through each kind of HTTP route (a request costs ~10 ms here)
    answers: dict[str, set] = {"api": set(), "page": set(), "checkpoint": set()}
    for _ in range(500):
        token = secrets.token_urlsafe(32)
        for kind, path in (
            ("api", f"/api/shared/{token}"),
            ("page", f"/s/{token}"),
            ("checkpoint", f"/api/shared/{token}/checkpoints/1"),
        ):
            resp = client.get(path)
            answers[kind].add((resp.status_code, resp.text))
    assert answers["api"] == answers["checkpoint"] == {(404, '{"detail":"not found"}')}
    assert len(answers["page"]) == 1 and next(iter(answers["page"]))[0] == 404


def test_bad_view_states_are_refused_with_reasons(family):
    client, owner, (dense, _child, _other), ds = family
    for body in (
        {"state": {"ids": []}},
        {"state": {"ids": [0]}},
        {"state": {"ids": [dense], "tab": "<b>"}},
        {"state": {"ids": [dense], "settings": {"x": "y" * 5000}}},
        {"state": {"ids": [dense]}, "expires_in_days": -1},
        {"state": {"ids": [dense], "extra": 1}},
        {"state": "nope"},
    ):
        resp = client.post("/api/views", json=body, headers=owner)
        assert resp.status_code == 422 and resp.json()["detail"], body


def test_the_browser_signs_in_once_and_then_writes_from_its_own_origin(family):
    client, owner, (dense, _child, _other), ds = family
    wrong = client.post("/login", data={"token": "guess", "next": "/compare"}, follow_redirects=False)
    assert wrong.status_code == 401 and "not this server" in wrong.text
    ok = client.post(
        "/login", data={"token": "owner-secret", "next": "//evil.example"}, follow_redirects=False
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/"  # never another host
    cookie = ok.cookies.get("prunescope_session")
    assert cookie and "HttpOnly" in ok.headers["set-cookie"] and "SameSite=strict" in ok.headers["set-cookie"]
    assert client.get("/api/checkpoints").status_code == 200  # the cookie now signs requests
    state = {"state": {"ids": [dense], "dataset": ds}}
    cross = client.post("/api/views", json=state, headers={"origin": "https://evil.example"})
    assert cross.status_code == 401
    assert client.post("/api/views", json=state, headers={"origin": "http://testserver"}).status_code == 201
    client.post("/logout")
    assert client.get("/api/checkpoints").status_code == 401


def test_every_response_says_no_referrer_and_share_pages_are_not_cached(family):
    client, owner, (dense, _child, _other), ds = family
    token = share(client, owner, [dense], ds)["token"]
    for path in ("/api/health", f"/s/{token}", f"/api/shared/{token}", "/login"):
        resp = client.get(path)
        assert resp.headers["referrer-policy"] == "no-referrer", path
        assert resp.headers["x-content-type-options"] == "nosniff"
    assert client.get(f"/s/{token}").headers["cache-control"] == "no-store"


def test_tokens_never_reach_the_access_log(caplog):
    token = secrets.token_urlsafe(32)
    assert token not in redact(f'127.0.0.1 - "GET /s/{token} HTTP/1.1" 200')
    assert token not in redact(f"/api/shared/{token}/results?analysis=x")
    assert token not in redact(f"DELETE /api/views/{token}")
    from server.access import RedactTokens

    record = logging.LogRecord(
        "uvicorn.access", 20, "", 0, '%s - "%s %s"', ("ip", "GET", f"/s/{token}"), None
    )
    RedactTokens().filter(record)
    assert token not in record.getMessage() and "/s/[token]" in record.getMessage()


def test_every_api_route_refuses_a_share_token_but_the_share_routes(family):
    """Walk the app's routes: with a share token (as Bearer, or as the share page's cookie) and no owner
    credentials, each answers 401, except the health check, sign-in and the share routes themselves."""
    client, owner, (dense, _child, _other), ds = family
    token = share(client, owner, [dense], ds)["token"]
    client.get(f"/s/{token}")  # the share page's cookie, as a browser holds it
    open_paths = {"/api/health", "/login", "/logout"}
    checked = 0
    paths = client.app.openapi()["paths"]  # every documented route, with its methods
    for path, operations in paths.items():
        if path in open_paths or path.startswith("/api/shared/"):
            continue
        url = (
            path.replace("{checkpoint_id}", str(dense))
            .replace("{dataset_id}", str(ds))
            .replace("{job_id}", "1")
            .replace("{view_id}", "1")
            .replace("{token}", token)
            .replace("{upload_id}", "x" * 32)
            .replace("{name}", "geometry")
        )
        for method in set(operations) - {"head"}:
            resp = client.request(method.upper(), url, headers={"Authorization": f"Bearer {token}"}, json={})
            assert resp.status_code == 401, (method, path, resp.status_code)
            checked += 1
    assert checked >= 20
    assert client.get(f"/api/shared/{token}").status_code == 200
    client.cookies.clear()
