"""Robustness jobs through the API and an in-process worker: a result, its artifact, refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.api.conftest import upload
from tests.conftest import state_dict_bytes
from workers.runner import Worker

SMALL = {"corruptions": ["contrast", "gaussian_noise"], "severities": [2, 1], "max_samples": 200}


def _submit(client, ids, dataset_id, **params):
    return client.post(
        "/api/jobs",
        json={"analysis": "robustness", "checkpoint_ids": ids, "dataset_id": dataset_id, "params": params},
    )


def test_robustness_job_stores_summary_and_per_sample_artifact(client, app_settings):
    dataset = client.post("/api/datasets", json={"builtin": "digits"}).json()["id"]
    ckpt = upload(client, state_dict_bytes(seed=0), name="dense").json()["id"]
    resp = _submit(client, [ckpt], dataset, **SMALL)
    assert resp.status_code == 202, resp.text
    job = resp.json()[0]
    # parameters are put in one order, so the same request in another order is the same work
    assert job["params"]["corruptions"] == ["gaussian_noise", "contrast"] and job["params"]["severities"] == [
        1,
        2,
    ]
    assert Worker(app_settings).run_one(job["id"]) == "succeeded", client.get(f"/api/jobs/{job['id']}").json()
    result = client.get(f"/api/jobs/{job['id']}/result").json()
    s = result["summary"]
    assert set(s["corruptions"]) == {"gaussian_noise", "contrast"} and s["n_samples"] == 200
    assert 0.0 <= s["clean"]["accuracy"] <= 1.0 and s["images"] == 5 * 200
    [artifact] = result["artifacts"]
    assert artifact["name"] == "geometry"
    with np.load(io.BytesIO(client.get(artifact["url"]).content), allow_pickle=False) as npz:
        assert npz["margin"].shape == (5, 200) and npz["clean_features"].shape[0] == 200
        assert list(npz["conditions"])[:2] == ["clean", "gaussian_noise/1"]
    again = _submit(
        client, [ckpt], dataset, **{**SMALL, "corruptions": ["gaussian_noise", "contrast"]}
    ).json()[0]
    assert again["reused"] and again["id"] == job["id"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"corruptions": ["fog"]}, "unknown corruptions"),
        ({"severities": [0, 6]}, "severities"),
        ({"max_samples": 0}, "max_samples"),
    ],
)
def test_bad_robustness_parameters_are_refused(client, params, message):
    dataset = client.post("/api/datasets", json={"builtin": "digits"}).json()["id"]
    ckpt = upload(client, state_dict_bytes(seed=0), name="dense").json()["id"]
    resp = _submit(client, [ckpt], dataset, **params)
    assert resp.status_code == 422 and message in resp.json()["detail"], resp.text
