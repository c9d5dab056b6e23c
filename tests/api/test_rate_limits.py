"""Uploads, job submissions, share links and sign-ins are rate-limited per client: request N+1 gets 429."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.ratelimit import RateLimiter
from tests.api.conftest import upload
from tests.conftest import state_dict_bytes

LIMIT = 3


@pytest.fixture
def limited(sqlite_url, make_settings):
    settings = make_settings(sqlite_url, rate_limit_per_minute=LIMIT)
    with TestClient(create_app(settings, with_dashboard=False), raise_server_exceptions=False) as client:
        yield client


def test_request_after_the_limit_gets_429_with_retry_after_and_reads_stay_free(limited):
    ds = limited.post("/api/datasets", json={"builtin": "digits"})  # 1 of the upload budget
    assert ds.status_code == 201, ds.text
    ckpt = upload(limited, state_dict_bytes(seed=0), name="a")  # 2
    assert ckpt.status_code == 201
    body = {"analysis": "evaluate", "checkpoint_ids": [ckpt.json()["id"]], "dataset_id": ds.json()["id"]}
    for i in range(LIMIT):  # the job budget is its own
        resp = limited.post("/api/jobs", json={**body, "params": {"max_samples": 10 + i}})
        assert resp.status_code == 202, resp.text
    refused = limited.post("/api/jobs", json=body)
    assert refused.status_code == 429
    assert "at most 3 a minute" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert upload(limited, state_dict_bytes(seed=1), name="b").status_code == 201  # 3: still allowed
    assert upload(limited, state_dict_bytes(seed=2), name="c").status_code == 429  # 4
    tus = limited.post("/api/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10"})
    assert tus.status_code == 429  # resumable uploads draw on the same budget
    for _ in range(10):
        assert limited.get("/api/checkpoints").status_code == 200
    assert len(limited.get("/api/jobs").json()) == LIMIT  # nothing was created by a refused request


def test_limiter_window_slides_and_zero_turns_it_off():
    now = [0.0]
    limiter = RateLimiter(2, 60.0, clock=lambda: now[0])
    assert limiter.hit("k") is None and limiter.hit("k") is None
    assert limiter.hit("k") == pytest.approx(60.0)
    assert limiter.hit("other") is None  # per key
    now[0] = 30.0
    assert limiter.hit("k") == pytest.approx(30.0)  # refused requests do not count
    now[0] = 60.5
    assert limiter.hit("k") is None
    off = RateLimiter(0)
    assert all(off.hit("k") is None for _ in range(1000))


def test_share_links_and_sign_in_attempts_have_budgets_of_their_own(limited):
    for _ in range(LIMIT):
        assert limited.post("/api/views", json={"state": {"ids": [1]}}).status_code == 201
    refused = limited.post("/api/views", json={"state": {"ids": [1]}})
    assert refused.status_code == 429 and "share links" in refused.json()["detail"]
    for _ in range(LIMIT):
        assert limited.post("/login", data={"token": "x"}, follow_redirects=False).status_code == 303
    assert limited.post("/login", data={"token": "x"}).status_code == 429
    assert limited.post("/api/datasets", json={"builtin": "digits"}).status_code == 201  # its own budget
