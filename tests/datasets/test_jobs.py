"""Jobs on uploaded data sets: an in-process worker reads each format with the row's format and meta."""

from __future__ import annotations

import numpy as np
import pytest

from tests.api.conftest import upload
from tests.conftest import state_dict_bytes
from tests.datasets import factories as f
from workers.runner import Worker


@pytest.fixture
def cifar_checkpoint(client):
    data = state_dict_bytes("small_cnn", num_classes=10, input_shape=(3, 32, 32))
    resp = upload(client, data, input_shape="3,32,32", name="cnn32")
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def _evaluate(client, settings, checkpoint_id: int, dataset_id: int) -> tuple[str, dict]:
    body = {"analysis": "evaluate", "checkpoint_ids": [checkpoint_id], "dataset_id": dataset_id}
    resp = client.post("/api/jobs", json=body)
    assert resp.status_code == 202, resp.text
    job = resp.json()[0]
    status = Worker(settings).run_one(job["id"])
    if status != "succeeded":
        return status, client.get(f"/api/jobs/{job['id']}").json()
    return status, client.get(f"/api/jobs/{job['id']}/result").json()["summary"]


def test_evaluate_on_an_uploaded_cifar10_batch(client, app_settings, cifar_checkpoint):
    ds = client.post("/api/datasets", files={"file": ("b", f.cifar_batch(20))}).json()
    status, summary = _evaluate(client, app_settings, cifar_checkpoint, ds["id"])
    assert status == "succeeded" and summary["n_samples"] == 20


def test_evaluate_on_a_cifar_c_zip_reads_every_slice(client, app_settings, cifar_checkpoint):
    ds = client.post("/api/datasets", files={"file": ("c", f.cifar_c_zip(f.cifar_c_arrays(n=4)))}).json()
    status, summary = _evaluate(client, app_settings, cifar_checkpoint, ds["id"])
    assert status == "succeeded" and summary["n_samples"] == 2 * 5 * 4


def test_same_bytes_with_another_split_are_read_as_their_own_view(client, app_settings, cifar_checkpoint):
    data = f.cifar_tar_gz({"data_batch_1.bin": f.cifar_batch(3), "test_batch.bin": f.cifar_batch(2)})
    test = client.post("/api/datasets", files={"file": ("t", data)}).json()
    train = client.post("/api/datasets", files={"file": ("t", data)}, data={"split": "train"}).json()
    assert _evaluate(client, app_settings, cifar_checkpoint, test["id"])[1]["n_samples"] == 2
    assert _evaluate(client, app_settings, cifar_checkpoint, train["id"])[1]["n_samples"] == 3


def test_server_path_dataset_is_read_in_place_and_a_changed_file_fails_the_job(
    client, app_settings, cifar_checkpoint, roots
):
    target = roots / "test_batch.bin"
    target.write_bytes(f.cifar_batch(7))
    ds = client.post("/api/datasets", json={"path": str(target), "name": "on disk"}).json()
    status, summary = _evaluate(client, app_settings, cifar_checkpoint, ds["id"])
    assert status == "succeeded" and summary["n_samples"] == 7
    target.write_bytes(f.cifar_batch(7, seed=5))
    body = {"analysis": "evaluate", "checkpoint_ids": [cifar_checkpoint], "dataset_id": ds["id"]}
    job = client.post("/api/jobs", json={**body, "params": {"max_samples": 5}}).json()[0]
    Worker(app_settings).run_one(job["id"])
    assert "changed since it was registered" in client.get(f"/api/jobs/{job['id']}").json()["error"]


def test_shape_mismatch_between_checkpoint_and_dataset_is_422(client, cifar_checkpoint):
    ds = client.post("/api/datasets", files={"file": ("i", f.zip_of(f.imagefolder_members()))}).json()
    assert ds["input_shape"] == [3, 16, 16]
    body = {"analysis": "evaluate", "checkpoint_ids": [cifar_checkpoint], "dataset_id": ds["id"]}
    resp = client.post("/api/jobs", json=body)
    assert resp.status_code == 422 and "(3, 16, 16)" in resp.json()["detail"]
    assert client.get("/api/jobs").json() == []


def test_robustness_reads_corruptions_from_a_stored_cifar_c_set(client, app_settings, cifar_checkpoint):
    # a clean batch, and a CIFAR-C set whose "fog" holds the very same images at every severity
    x, y = f.cifar_records(6, seed=0)
    clean = client.post("/api/datasets", files={"file": ("b", f.cifar_batch(6, seed=0))}).json()
    hwc = x.reshape(6, 3, 32, 32).transpose(0, 2, 3, 1)
    arrays = {"fog": np.tile(hwc, (5, 1, 1, 1)), "labels": np.tile(y.astype(np.int64), 5)}
    stored = client.post("/api/datasets", files={"file": ("c", f.cifar_c_zip(arrays))}).json()
    body = {"analysis": "robustness", "checkpoint_ids": [cifar_checkpoint], "dataset_id": clean["id"]}
    params = {"corrupted_dataset_id": stored["id"], "corruptions": ["fog"], "severities": [2, 5]}
    job = client.post("/api/jobs", json={**body, "params": params}).json()[0]
    assert Worker(app_settings).run_one(job["id"]) == "succeeded", client.get(f"/api/jobs/{job['id']}").json()
    s = client.get(f"/api/jobs/{job['id']}/result").json()["summary"]
    assert s["source"] == "stored" and set(s["corruptions"]["fog"]) == {"2", "5"}
    for severity in ("2", "5"):  # identical images: identical geometry
        assert s["corruptions"]["fog"][severity]["accuracy"] == s["clean"]["accuracy"]
        assert s["corruptions"]["fog"][severity]["mean_margin"] == pytest.approx(s["clean"]["mean_margin"])
    # refusals name the problem before anything is queued
    for bad, message in [
        ({"corrupted_dataset_id": clean["id"]}, "not a CIFAR-C set"),
        ({"corrupted_dataset_id": stored["id"], "corruptions": ["snow"]}, "holds no ['snow']"),
        ({"corrupted_dataset_id": 999}, "not found"),
    ]:
        resp = client.post("/api/jobs", json={**body, "params": bad})
        assert resp.status_code == 422 and message in resp.json()["detail"], resp.text
