"""The ``prune`` job end to end: POST /api/jobs, a real worker, children registered under the parent."""

from __future__ import annotations

import pytest

from server.checkpoints.models import Checkpoint
from server.db import session_scope
from server.jobs import leases
from server.jobs import service as jobs
from server.storage import make_store
from tests.api.conftest import upload
from tests.conftest import state_dict_bytes
from workers.children import ChildRegistrar
from workers.registry import NewCheckpoint
from workers.runner import Worker


@pytest.fixture
def digits_id(client):
    resp = client.post("/api/datasets", json={"builtin": "digits"})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


@pytest.fixture
def parent(client):
    resp = upload(client, state_dict_bytes(seed=0), name="dense", family="fam")
    assert resp.status_code == 201, resp.text
    return resp.json()


def _prune(client, parent_id, dataset_id, **params):
    body = {"analysis": "prune", "checkpoint_ids": [parent_id], "dataset_id": dataset_id, "params": params}
    return client.post("/api/jobs", json=body)


def _children(client, parent_id):
    return [c for c in client.get("/api/checkpoints").json() if c["parent_id"] == parent_id]


def test_prune_job_registers_children_under_the_parent_and_identical_work_is_reused(
    client, app_settings, parent, digits_id
):
    # Given a dense checkpoint and the digits data set, when a prune job with fine-tuning and a follow-up
    # evaluation is submitted and a real worker runs it,
    params = {
        "methods": ["channel_l1", "global_magnitude"],
        "sparsities": [0.5],
        "finetune_epochs": 1,
        "then": ["evaluate"],
    }
    resp = _prune(client, parent["id"], digits_id, **params)
    assert resp.status_code == 202, resp.text
    job = resp.json()[0]
    worker = Worker(app_settings)
    assert worker.run_one(job["id"]) == "succeeded"

    # then its result lists two children, registered with their parent, family, method and target,
    summary = client.get(f"/api/jobs/{job['id']}/result").json()["summary"]
    children = _children(client, parent["id"])
    assert sorted(c["id"] for c in children) == sorted(summary["checkpoint_ids"])
    by_method = {c["pruning_method"]: c for c in children}
    assert set(by_method) == {"global_magnitude", "channel_l1"}
    for child in children:
        assert child["family"] == "fam" and child["sparsity_target"] == 0.5
        assert child["metadata"]["recipe"]["finetune_epochs"] == 1
        assert child["name"].startswith("dense ")
    unstructured = by_method["global_magnitude"]
    assert abs(unstructured["metadata"]["achieved_sparsity"] - 0.5) < 1e-3
    assert unstructured["parameter_count"] == parent["parameter_count"] and unstructured["sparsity"] > 0.4
    structured = by_method["channel_l1"]  # loaded back through the intake with its narrower layers
    assert structured["parameter_count"] < parent["parameter_count"] / 2 and structured["sparsity"] < 0.05

    # and each child's follow-up evaluation was queued on the job's dataset and runs on the child.
    followups = {c["checkpoint_id"]: c["followup_job_ids"] for c in summary["children"]}
    for child in children:
        (job_id,) = followups[child["id"]]
        queued = client.get(f"/api/jobs/{job_id}").json()
        assert queued["analysis"] == "evaluate" and queued["dataset_id"] == digits_id
        assert queued["checkpoint_id"] == child["id"] and queued["status"] == "queued"
    (structured_eval,) = followups[structured["id"]]
    assert worker.run_one(structured_eval) == "succeeded"
    assert client.get(f"/api/jobs/{structured_eval}/result").json()["summary"]["n_samples"] == 1797

    # When the same work is submitted again (written in another order), the stored result comes back,
    reordered = {**params, "methods": params["methods"][::-1]}
    again = _prune(client, parent["id"], digits_id, **reordered).json()[0]
    assert again["reused"] and again["id"] == job["id"] and again["status"] == "succeeded"
    # and a job that makes an overlapping family reuses the children it shares (same bytes, same rows).
    wider_params = {**params, "methods": ["global_magnitude"], "sparsities": [0.5, 0.75]}
    wider = _prune(client, parent["id"], digits_id, **wider_params).json()[0]
    assert not wider["reused"] and worker.run_one(wider["id"]) == "succeeded"
    wider_ids = client.get(f"/api/jobs/{wider['id']}/result").json()["summary"]["checkpoint_ids"]
    assert wider_ids[0] == unstructured["id"] and wider_ids[1] not in summary["checkpoint_ids"]
    assert len(_children(client, parent["id"])) == 3


def test_a_worker_that_lost_its_lease_registers_no_child(client, app_settings, parent):
    # Given a prune job claimed by a worker whose lease is then taken away (the job is cancelled),
    job = _prune(client, parent["id"], None).json()[0]
    url = app_settings.resolved_database_url
    with session_scope(url) as session:
        lease = leases.claim(session=session, job_id=job["id"], worker_id="w", lease_seconds=30)
        facts = leases.job_inputs(session=session, job_id=job["id"])
    registrar = ChildRegistrar(
        settings=app_settings,
        store=make_store(app_settings.resolved_storage_url, app_settings.tmp_dir),
        queue=client.app.state.queue,
        lease=lease,
        parent=facts["checkpoint"],
        dataset=None,
    )
    child = NewCheckpoint(state_dict_bytes(seed=5, zero_fraction=0.5), "random 50%", {"pruning_method": "r"})
    # while it holds the lease, registering the same bytes twice gives one row,
    first, second = registrar.add(child), registrar.add(child)
    assert first.checkpoint_id == second.checkpoint_id
    with session_scope(url) as session:
        jobs.cancel(session=session, job_id=job["id"])
    # once the lease is gone, nothing is registered.
    other = NewCheckpoint(state_dict_bytes(seed=6, zero_fraction=0.5), "random 60%", {})
    assert registrar.add(other) is None
    with session_scope(url) as session:
        assert session.query(Checkpoint).filter(Checkpoint.parent_id == parent["id"]).count() == 1


def test_prune_params_are_checked_at_submission_with_clear_reasons(client, parent, digits_id):
    many = {"methods": ["random", "channel_l1"], "sparsities": [i / 20 for i in range(13)]}  # 26 children
    cases = [
        ({"methods": ["magic"]}, digits_id, "methods.0"),
        ({"sparsities": [1.0]}, digits_id, "less than 1"),
        ({"sparsities": [-0.1]}, digits_id, "greater than or equal to 0"),
        (many, digits_id, "at most 24"),
        ({"finetune_epochs": 2}, None, "fine-tuning (finetune_epochs > 0) needs a dataset_id"),
        ({"then": ["evaluate"]}, None, "follow-up analyses"),
        ({"then": ["prune"]}, digits_id, "then.0"),
    ]
    for params, dataset_id, reason in cases:
        resp = _prune(client, parent["id"], dataset_id, **params)
        assert resp.status_code == 422, (params, resp.text)
        assert reason in resp.json()["detail"], (params, resp.json()["detail"])
    # pruning alone needs no data set
    assert _prune(client, parent["id"], None, sparsities=[0.3]).status_code == 202
