"""Submitting jobs, reuse of identical work, cancel, results: API plus an in-process worker."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.api.conftest import upload
from tests.conftest import state_dict_bytes
from workers.runner import Worker


@pytest.fixture
def digits_id(client):
    resp = client.post("/api/datasets", json={"builtin": "digits"})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


@pytest.fixture
def two_checkpoints(client):
    return [upload(client, state_dict_bytes(seed=s), name=f"c{s}").json()["id"] for s in (0, 1)]


def _submit(client, ids, dataset_id, **params):
    return client.post(
        "/api/jobs",
        json={"analysis": "evaluate", "checkpoint_ids": ids, "dataset_id": dataset_id, "params": params},
    )


def test_submit_creates_one_queued_job_per_checkpoint_and_enqueues_it(client, two_checkpoints, digits_id):
    resp = _submit(client, two_checkpoints, digits_id)
    assert resp.status_code == 202, resp.text
    jobs = resp.json()
    assert [j["checkpoint_id"] for j in jobs] == two_checkpoints
    assert {j["status"] for j in jobs} == {"queued"}
    assert not any(j["reused"] for j in jobs)
    assert client.app.state.queue.pending_ids() == {j["id"] for j in jobs}


def test_identical_work_is_reused_and_different_params_are_not(client, two_checkpoints, digits_id):
    first = _submit(client, two_checkpoints, digits_id).json()
    again = _submit(client, two_checkpoints, digits_id).json()
    assert [j["id"] for j in again] == [j["id"] for j in first]
    assert all(j["reused"] for j in again)
    # same bytes uploaded under another name are the same work
    dup = upload(client, state_dict_bytes(seed=0), name="same bytes").json()["id"]
    assert _submit(client, [dup], digits_id).json()[0]["id"] == first[0]["id"]
    other = _submit(client, two_checkpoints, digits_id, max_samples=100).json()
    assert not any(j["reused"] for j in other)
    # defaults written out explicitly are the same parameters
    explicit = _submit(client, two_checkpoints, digits_id, max_samples=10000, batch_size=1024).json()
    assert all(j["reused"] for j in explicit)


def test_worker_runs_job_and_result_is_served(client, app_settings, two_checkpoints, digits_id):
    job = _submit(client, two_checkpoints[:1], digits_id).json()[0]
    worker = Worker(app_settings)
    assert worker.run_one(job["id"]) == "succeeded"
    assert worker.run_one(job["id"]) == "skipped"  # a second message for it is harmless
    done = client.get(f"/api/jobs/{job['id']}").json()
    assert done["status"] == "succeeded" and done["progress"] == 1.0 and done["attempts"] == 1
    result = client.get(f"/api/jobs/{job['id']}/result").json()
    summary = result["summary"]
    assert summary["n_samples"] == 1797
    assert 0.0 <= summary["accuracy"] <= 1.0
    assert len(summary["confusion"]) == 10 and sum(map(sum, summary["confusion"])) == 1797
    art = client.get(result["artifacts"][0]["url"])
    assert art.status_code == 200
    with np.load(io.BytesIO(art.content), allow_pickle=False) as npz:
        assert npz["predictions"].shape == (1797,)
    # identical work after success comes back already succeeded
    reused = _submit(client, two_checkpoints[:1], digits_id).json()[0]
    assert reused["reused"] and reused["status"] == "succeeded"


def test_cancel_queued_job_then_worker_skips_it(client, app_settings, two_checkpoints, digits_id):
    job = _submit(client, two_checkpoints[:1], digits_id).json()[0]
    resp = client.post(f"/api/jobs/{job['id']}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 409
    assert Worker(app_settings).run_one(job["id"]) == "skipped"
    assert client.get(f"/api/jobs/{job['id']}/result").status_code == 404
    # cancelled work is not reused: submitting again makes a new job
    again = _submit(client, two_checkpoints[:1], digits_id).json()[0]
    assert again["id"] != job["id"] and not again["reused"]


def test_bad_job_requests_get_4xx_with_detail(client, two_checkpoints, digits_id):
    cases = [
        (
            {"analysis": "nope", "checkpoint_ids": two_checkpoints, "dataset_id": digits_id},
            422,
            "unknown analysis",
        ),
        ({"analysis": "evaluate", "checkpoint_ids": [999], "dataset_id": digits_id}, 404, "checkpoint 999"),
        ({"analysis": "evaluate", "checkpoint_ids": two_checkpoints, "dataset_id": 999}, 404, "dataset 999"),
        ({"analysis": "evaluate", "checkpoint_ids": two_checkpoints}, 422, "needs a dataset"),
        ({"analysis": "evaluate", "checkpoint_ids": [], "dataset_id": digits_id}, 422, "checkpoint_ids"),
        (
            {
                "analysis": "evaluate",
                "checkpoint_ids": two_checkpoints,
                "dataset_id": digits_id,
                "params": {"max_samples": 0},
            },
            422,
            "max_samples",
        ),
        (
            {
                "analysis": "evaluate",
                "checkpoint_ids": two_checkpoints,
                "dataset_id": digits_id,
                "params": {"bogus": 1},
            },
            422,
            "bogus",
        ),
    ]
    for body, status, needle in cases:
        resp = client.post("/api/jobs", json=body)
        assert resp.status_code == status, (body, resp.text)
        assert needle in resp.json()["detail"], (body, resp.json())
    assert client.get("/api/jobs").json() == []
    assert client.get("/api/jobs/77").status_code == 404
    assert client.get("/api/jobs", params={"status": "weird"}).status_code == 422


def test_dataset_shape_must_match_checkpoint(client, two_checkpoints):
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((20, 3, 8, 8), np.float32), y=np.arange(20) % 10)
    ds = client.post("/api/datasets", files={"file": ("rgb.npz", buf.getvalue())}).json()
    assert ds["input_shape"] == [3, 8, 8]
    resp = _submit(client, two_checkpoints, ds["id"])
    assert resp.status_code == 422 and "(3, 8, 8)" in resp.json()["detail"]


def test_npz_dataset_upload_and_refusals(client, app_settings):
    buf = io.BytesIO()
    np.savez(buf, x=np.random.rand(30, 1, 8, 8).astype(np.float32), y=np.arange(30) % 5, mean=np.float32(0.5))
    resp = client.post("/api/datasets", files={"file": ("d.npz", buf.getvalue())}, data={"name": "mine"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["num_classes"] == 5 and resp.json()["sample_count"] == 30
    bad = io.BytesIO()
    np.savez(bad, x=np.array([object()], dtype=object), y=np.array([0]))
    for data, needle in [(b"junk", "not an .npz"), (bad.getvalue(), "could not read")]:
        resp = client.post("/api/datasets", files={"file": ("d.npz", data)})
        assert resp.status_code == 422 and needle in resp.json()["detail"], resp.text
    mismatched = io.BytesIO()
    np.savez(mismatched, x=np.zeros((5, 4), np.float32), y=np.zeros(3, np.int64))
    resp = client.post("/api/datasets", files={"file": ("d.npz", mismatched.getvalue())})
    assert resp.status_code == 422 and "match x" in resp.json()["detail"]
    assert len(client.get("/api/datasets").json()) == 1
    assert client.post("/api/datasets", json={"builtin": "imagenet"}).status_code == 422
    assert (
        client.post("/api/datasets", content=b"x", headers={"content-type": "text/plain"}).status_code == 422
    )


def test_builtin_dataset_is_created_once(client):
    a = client.post("/api/datasets", json={"builtin": "digits"}).json()
    b = client.post("/api/datasets", json={"builtin": "digits"}).json()
    assert a["id"] == b["id"] and a["sample_count"] == 1797


def test_write_endpoints_need_the_api_token_when_set(db_url, make_settings):
    from fastapi.testclient import TestClient

    from server.app import create_app

    app = create_app(make_settings(db_url, api_token="s3cret"), with_dashboard=False)
    with TestClient(app) as c:
        assert c.post("/api/datasets", json={"builtin": "digits"}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert c.post("/api/datasets", json={"builtin": "digits"}, headers=wrong).status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert c.post("/api/datasets", json={"builtin": "digits"}, headers=ok).status_code == 201
        assert c.get("/api/datasets").status_code == 401  # reads too: a token guards the whole server
        assert c.get("/api/datasets", headers=ok).status_code == 200
        assert c.get("/api/health").status_code == 200


def test_health_reports_database_and_queue(client):
    body = client.get("/api/health").json()
    assert body == {**body, "status": "ok", "database": "ok", "queue": "ok"}


def test_latest_jobs_picks_the_newest_per_checkpoint_on_that_dataset(
    client, app_settings, two_checkpoints, digits_id
):
    from server.db import session_scope
    from server.jobs import service

    other = client.post("/api/datasets", json={"builtin": "synthetic"}).json()["id"]
    a, b = two_checkpoints
    old = _submit(client, [a], digits_id).json()[0]
    new = _submit(client, [a], digits_id, max_samples=50).json()[0]
    elsewhere = _submit(client, [a, b], other).json()
    with session_scope(app_settings.resolved_database_url, write=False) as session:
        found = service.latest_jobs(
            session=session, analysis="evaluate", checkpoint_ids=[a, b], dataset_id=digits_id
        )
        assert {cid: j.id for cid, j in found.items()} == {a: new["id"]} and old["id"] < new["id"]
        on_other = service.latest_jobs(
            session=session, analysis="evaluate", checkpoint_ids=[a, b], dataset_id=other
        )
        assert {cid: j.id for cid, j in on_other.items()} == {a: elsewhere[0]["id"], b: elsewhere[1]["id"]}
