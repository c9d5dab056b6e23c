"""The prune dialog of the checkpoints page: its parsing, its estimate, and a submission through data.py."""

from __future__ import annotations

import pytest
from dash.development.base_component import Component
from fastapi.testclient import TestClient

from dashboard import data
from dashboard.components.checkpoints import parse_sparsities, prune_dialog, prune_estimate, prune_params
from server.app import create_app
from tests.conftest import state_dict_bytes
from workers.runner import Worker


def _ids(node) -> set[str]:
    found = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, Component):
            if isinstance(getattr(item, "id", None), str):
                found.add(item.id)
            stack.append(getattr(item, "children", None))
    return found


def test_sparsities_combine_presets_and_typed_values_unique_and_sorted():
    assert parse_sparsities([0.8, 0.5], " 0.6, 75% ;0.5") == [0.5, 0.6, 0.75, 0.8]
    assert parse_sparsities(None, None) == []


@pytest.mark.parametrize(
    ("extra", "reason"), [("half", "'half' is not a sparsity"), ("1", "outside [0, 1)"), ("-5%", "outside")]
)
def test_a_typed_sparsity_that_is_not_in_zero_to_one_is_refused_with_its_reason(extra, reason):
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace(")", r"\)")):
        parse_sparsities([0.5], extra)


def test_the_estimate_counts_the_prune_job_and_one_follow_up_per_child_and_analysis():
    jobs, text = prune_estimate(["random", "channel_l1"], [0.5, 0.7, 0.9], 2, ["evaluate", "hessian"])
    assert jobs == 1 + 2 * 3 * 2
    assert "6 children (2 methods x 3 sparsities)" in text and "12 fine-tuning epochs" in text
    assert prune_estimate(["random"], [0.5], 0, [])[0] == 1


def test_the_dialog_holds_every_control_its_callbacks_read():
    ids = _ids(prune_dialog([{"id": 1, "name": "digits"}]))
    assert {
        "prune-checkpoint", "prune-methods", "prune-sparsities", "prune-extra", "prune-epochs",
        "prune-dataset", "prune-seed", "prune-rewind", "prune-then", "prune-estimate", "prune-run",
        "prune-result",
    } <= ids  # fmt: skip


def test_the_dialog_submits_a_prune_job_whose_children_appear_under_the_parent(settings):
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/").status_code == 200  # the page with the dialog is served
        resp = client.post(
            "/api/checkpoints",
            data={"architecture": "small_cnn", "name": "dense", "family": "cnn"},
            files={"file": ("w.pt", state_dict_bytes(seed=0))},
        )
        dense = resp.json()
        # Given the dialog's controls: two methods, one sparsity, no fine-tuning, no dataset,
        params = prune_params(["random", "global_magnitude"], [0.5], "", 0, [], seed=1)
        # when submitted twice, the second comes back reused,
        (job,) = data.submit_prune(dense["id"], None, params)
        assert _table_polls(client)  # the table redraws itself while the job runs
        (again,) = data.submit_prune(dense["id"], None, params)
        assert job["analysis"] == "prune" and again["reused"] and again["id"] == job["id"]
        # fine-tuning without a dataset and no checkpoint are refused with their reason,
        with pytest.raises(data.ActionError, match="fine-tuning"):
            data.submit_prune(dense["id"], None, {**params, "finetune_epochs": 1})
        with pytest.raises(data.ActionError, match="choose the checkpoint"):
            data.submit_prune(None, None, params)
        # and once a worker ran the job, the children are in the checkpoint table under their parent.
        assert Worker(settings).run_one(job["id"]) == "succeeded"
        children = [c for c in data.list_checkpoints() if c["parent_id"] == dense["id"]]
        assert sorted(c["pruning_method"] for c in children) == ["global_magnitude", "random"]
        assert {c["family"] for c in children} == {"cnn"}
        assert not _table_polls(client)  # and stops once none runs


def _table_polls(client) -> bool:
    """Whether the checkpoint table's render callback leaves its poll on."""
    ids = ["ckpt-table.children", "ckpt-parent.children", "ckpt-family.options", "prune-checkpoint.options"]
    ids.append("ckpt-poll.disabled")
    output = ".." + "...".join(ids) + ".."
    outputs = [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in ids]
    body = {
        "output": output,
        "outputs": outputs,
        "inputs": [
            {"id": "ckpt-refresh", "property": "n_clicks", "value": None},
            {"id": "ckpt-poll", "property": "n_intervals", "value": 1},
            {"id": "prune-result", "property": "children", "value": None},
        ],
        "changedPropIds": ["ckpt-poll.n_intervals"],
        "state": [{"id": "ckpt-selection", "property": "data", "value": []}],
    }
    resp = client.post("/_dash-update-component", json=body)
    assert resp.status_code == 200, resp.text[:500]
    return resp.json()["response"]["ckpt-poll"]["disabled"] is False
