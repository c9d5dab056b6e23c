"""The Dash app against a real SQLite database: building, serving, and the data helpers."""

from __future__ import annotations

import importlib

import pytest
from fastapi.testclient import TestClient

from dashboard import data
from dashboard.app import create_dash
from server.app import create_app
from tests.conftest import state_dict_bytes
from workers.runner import Worker


@pytest.fixture
def client(settings):
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def upload(client, seed: int, **fields) -> dict:
    resp = client.post(
        "/api/checkpoints",
        data={"architecture": "small_cnn", **{k: str(v) for k, v in fields.items()}},
        files={"file": ("w.pt", state_dict_bytes(seed=seed, zero_fraction=0.5 if seed else 0.0))},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_building_two_apps_registers_each_callback_once_per_app(settings):
    first, second = create_dash(settings), create_dash(settings)
    assert first.callback_map.keys() == second.callback_map.keys()
    assert len(first.callback_map) >= 8


@pytest.mark.parametrize(
    "path", ["/", "/datasets", "/jobs", "/compare", "/compare?ids=1,x,%3Cb%3E&dataset=zz"]
)
def test_every_page_is_served(client, path):
    assert client.get(path).status_code == 200


def test_the_browser_gets_each_callback_once(client):
    deps = client.get("/_dash-dependencies").json()
    outputs = [d["output"] for d in deps]
    assert len(outputs) == len(set(outputs))


def test_data_helpers_run_an_evaluation_end_to_end(client, settings):
    # Given a dataset and a dense checkpoint with one pruned child
    ds = data.add_builtin_dataset("digits")
    dense = upload(client, 0, name="dense", family="cnn")
    child = upload(client, 1, name="half", family="cnn", parent_id=dense["id"])
    assert data.family_ids("cnn") == [dense["id"], child["id"]]
    assert [c["name"] for c in data.list_checkpoints()] == ["dense", "half"]
    # When evaluate is submitted twice and a worker runs the jobs
    ids = [dense["id"], child["id"]]
    jobs = data.submit_jobs("evaluate", ids, ds["id"])
    assert [j["reused"] for j in jobs] == [False, False]
    assert [j["reused"] for j in data.submit_jobs("evaluate", ids, ds["id"])] == [True, True]
    worker = Worker(settings)
    for job in jobs:
        assert worker.run_one(job["id"]) == "succeeded"
    # Then the results and the compare page content are there
    results = data.results("evaluate", ids, ds["id"])
    assert set(results) == set(ids) and 0.0 <= results[dense["id"]]["accuracy"] <= 1.0
    assert data.default_dataset("evaluate", ids) == ds["id"]
    listed = data.list_jobs()
    assert {j["checkpoint_name"] for j in listed} == {"dense", "half"} and {j["status"] for j in listed} == {
        "succeeded"
    }
    compare = importlib.import_module("dashboard.pages.compare")
    content, pending = compare.view_content({"ids": ids, "dataset": ds["id"], "tab": "evaluate"})
    assert not pending
    assert "fig-confusion" in str(content)


def test_refusals_come_back_as_readable_action_errors(client, settings):
    create_dash(settings)
    ds = data.add_builtin_dataset("digits")
    dense = upload(client, 0, name="dense")
    with pytest.raises(data.ActionError, match="select at least one"):
        data.submit_jobs("evaluate", [], ds["id"])
    with pytest.raises(data.ActionError, match="unknown analysis"):
        data.submit_jobs("nope", [dense["id"]], ds["id"])
    job = data.submit_jobs("evaluate", [dense["id"]], ds["id"])[0]
    assert data.cancel_job(job["id"])["status"] == "cancelled"
    with pytest.raises(data.ActionError, match="already cancelled"):
        data.cancel_job(job["id"])


def test_a_shared_views_requests_cannot_write_through_the_data_helpers(client, settings):
    import flask

    from server.views.scope import of_state

    ds = data.add_builtin_dataset("digits")
    dense = upload(client, 0, name="dense")
    with flask.Flask("t").test_request_context("/s/_dash-update-component"):
        setattr(flask.g, data.SCOPE_KEY, of_state({"ids": [dense["id"]], "dataset": ds["id"]}))
        with pytest.raises(data.ActionError, match="read-only"):
            data.submit_jobs("evaluate", [dense["id"]], ds["id"])
        with pytest.raises(data.ActionError, match="read-only"):
            data.add_builtin_dataset("synthetic")
        assert [c["name"] for c in data.list_checkpoints()] == ["dense"]  # reads still work


def test_the_overview_reads_each_childs_cka_to_its_parent_from_the_robustness_features(client, settings):
    # Given a dense checkpoint and a pruned child, each with a robustness result
    ds = data.add_builtin_dataset("digits")
    dense = upload(client, 0, name="dense", family="cnn")
    child = upload(client, 1, name="half", family="cnn", parent_id=dense["id"])
    ids = [dense["id"], child["id"]]
    params = {"corruptions": ["contrast"], "severities": [1], "max_samples": 120}
    worker = Worker(settings)
    for job in data.submit_jobs("robustness", ids, ds["id"], params):
        assert worker.run_one(job["id"]) == "succeeded"
    # When the overview's results are read
    found = data.results_of_all("overview", ids, ds["id"])
    # Then the child has the linear CKA of the two stored feature sets, the dense model none (no parent)
    assert "cka_to_parent" not in found[dense["id"]]["robustness"]
    import torch

    from workers.robustness.cka import linear_cka

    feats = [
        data.result_artifact("robustness", i, ds["id"], "geometry", ["clean_features"])["clean_features"]
        for i in (child["id"], dense["id"])
    ]
    expected = linear_cka(*(torch.from_numpy(f.astype("float32")) for f in feats))
    assert found[child["id"]]["robustness"]["cka_to_parent"] == pytest.approx(expected, rel=1e-9)
    assert 0.0 < expected < 1.0 - 1e-6


def test_the_compare_page_keeps_the_settings_of_its_url_and_drops_junk(client):
    from dashboard.pages.compare import SETTINGS_STORE, URL_CONTROLS, layout
    from dashboard.state import SETTINGS
    from tests.dashboard.test_components import walk

    page = layout(ids="1,2", tab="robustness", severity="3", log="1", sample="x", mode="<b>", junk="1")
    (store,) = [c for c in walk(page) if getattr(c, "id", None) == SETTINGS_STORE]
    assert store.data == {"severity": 3, "log": True}
    # every setting has its control, which the browser copies into the store and the address bar
    names = [name for controls in URL_CONTROLS.values() for name, *_, kind in controls if kind != "drawn"]
    assert sorted(names) == sorted(SETTINGS)
    assert all(len(controls) >= 2 for controls in URL_CONTROLS.values())  # "all changed": just drawn
