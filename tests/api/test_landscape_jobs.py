"""Landscape jobs through the API and an in-process worker: targets, defaults, refusals, reuse."""

from __future__ import annotations

import io

import pytest
import torch

from tests.api.conftest import upload
from tests.conftest import state_dict_bytes
from workers.architectures import build
from workers.pruning import channel_l1_prune
from workers.runner import Worker


@pytest.fixture
def digits_id(client):
    return client.post("/api/datasets", json={"builtin": "digits"}).json()["id"]


@pytest.fixture
def family(client):
    dense = upload(client, state_dict_bytes(seed=0), name="dense").json()["id"]
    pruned = upload(
        client, state_dict_bytes(seed=0, zero_fraction=0.5), name="pruned", parent_id=dense
    ).json()["id"]
    return dense, pruned


def _submit(client, ids, dataset_id, **params):
    return client.post(
        "/api/jobs",
        json={"analysis": "landscape", "checkpoint_ids": ids, "dataset_id": dataset_id, "params": params},
    )


def _run(client, settings, job) -> dict:
    assert Worker(settings).run_one(job["id"]) == "succeeded", client.get(f"/api/jobs/{job['id']}").json()
    return client.get(f"/api/jobs/{job['id']}/result").json()


def test_interpolation_goes_to_the_parent_by_default(client, app_settings, family, digits_id):
    dense, pruned = family
    resp = _submit(client, [pruned], digits_id, mode="interpolation", steps=5, max_samples=300)
    assert resp.status_code == 202, resp.text
    job = resp.json()[0]
    assert job["params"]["target_checkpoint_id"] == dense
    result = _run(client, app_settings, job)
    s = result["summary"]
    assert s["mode"] == "interpolation" and s["target_checkpoint_id"] == dense and len(s["loss"]) == 5
    assert s["barrier"] is not None and [a["name"] for a in result["artifacts"]] == ["surface"]
    # the explicit form of the same request is the same work
    again = _submit(
        client,
        [pruned],
        digits_id,
        mode="interpolation",
        steps=5,
        max_samples=300,
        target_checkpoint_id=dense,
    ).json()[0]
    assert again["reused"] and again["id"] == job["id"]


BAD_REQUESTS = [
    ({"mode": "interpolation"}, "no parent"),
    ({"mode": "interpolation", "target_checkpoint_id": 999}, "not found"),
    ({"mode": "2d", "steps": 30}, "odd"),
    ({"mode": "2d", "target_checkpoint_id": 1}, "interpolation"),
    ({"mode": "2d", "steps": 301}, "at most"),
    ({"mode": "sideways"}, "mode"),
    ({"mode": "interpolation", "direction": "hessian", "target_checkpoint_id": 2}, "direction"),
]


def test_bad_landscape_requests_get_a_clear_4xx(client, family, digits_id):
    dense, _ = family
    for params, message in BAD_REQUESTS:
        resp = _submit(client, [dense], digits_id, **params)
        assert resp.status_code in (400, 404, 422), (params, resp.text)
        assert message in resp.json()["detail"], params
    assert client.get("/api/jobs").json() == []  # nothing was queued


def test_interpolation_to_itself_or_another_shape_is_refused(client, family, digits_id):
    dense, pruned = family
    resp = _submit(client, [dense], digits_id, mode="interpolation", target_checkpoint_id=dense)
    assert resp.status_code == 422 and "itself" in resp.json()["detail"]
    wide = upload(client, state_dict_bytes("mlp", seed=0), architecture="mlp", name="mlp").json()["id"]
    resp = _submit(client, [pruned], digits_id, mode="interpolation", target_checkpoint_id=wide)
    assert resp.status_code == 422 and "differ" in resp.json()["detail"]
    # a channel-pruned child has the parent's architecture but fewer parameters
    torch.manual_seed(0)
    narrow = channel_l1_prune(build("small_cnn", num_classes=10, input_shape=(1, 8, 8)), 0.5)
    buf = io.BytesIO()
    torch.save(narrow.state_dict(), buf)
    child = upload(client, buf.getvalue(), name="narrow", parent_id=dense).json()["id"]
    resp = _submit(client, [child], digits_id, mode="interpolation")
    assert resp.status_code == 422 and "channel-pruned" in resp.json()["detail"]


def test_hessian_direction_reuses_a_finished_hessian_result(client, app_settings, family, digits_id):
    dense, _ = family
    small = {"mode": "1d", "steps": 5, "max_samples": 200, "direction": "hessian"}
    first = _run(client, app_settings, _submit(client, [dense], digits_id, **small).json()[0])
    assert first["summary"]["hessian_vector"].startswith("computed")
    hessian = client.post(
        "/api/jobs",
        json={
            "analysis": "hessian",
            "checkpoint_ids": [dense],
            "dataset_id": digits_id,
            "params": {
                "max_samples": 200,
                "top_k": 1,
                "n_negative": 0,
                "trace_probes": 0,
                "density_vectors": 0,
            },
        },
    ).json()[0]
    _run(client, app_settings, hessian)
    second = _run(client, app_settings, _submit(client, [dense], digits_id, **small, seed=1).json()[0])
    assert second["summary"]["hessian_vector"] == "hessian result"
    # both cut along the same (top) direction, up to its sign: the same curve or its mirror image
    a, b = first["summary"]["loss"], second["summary"]["loss"]
    assert a == pytest.approx(b, rel=2e-2) or a == pytest.approx(b[::-1], rel=2e-2)
