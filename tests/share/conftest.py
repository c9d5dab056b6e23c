"""A server (API, dashboard and the share app) on a real SQLite file, with two checkpoints and a dataset."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.migrate import upgrade
from tests.conftest import state_dict_bytes

HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>"javascript:alert(3)'


def upload(client, seed: int, headers=None, **fields) -> dict:
    resp = client.post(
        "/api/checkpoints",
        data={"architecture": "small_cnn", **{k: str(v) for k, v in fields.items()}},
        files={"file": ("w.pt", state_dict_bytes(seed=seed, zero_fraction=0.5 if seed else 0.0))},
        headers=headers or {},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def callback(client, output: str, inputs: list[dict], state: list[dict] | None = None, prefix: str = "/s/"):
    """POST one Dash callback the way the browser does; ``output`` like ``"compare-content.children"``."""
    many = output.startswith("..")
    parts = output[2:-2].split("...") if many else [output]
    outputs = [{"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1]} for o in parts]
    body = {
        "output": output,
        "outputs": outputs if many else outputs[0],
        "inputs": inputs,
        "changedPropIds": [f"{i['id']}.{i['property']}" for i in inputs],
        "state": state or [],
    }
    return client.post(f"{prefix}_dash-update-component", json=body)


def text_of(payload) -> str:
    return json.dumps(payload)


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory) -> Settings:
    root = tmp_path_factory.mktemp("share")
    url = f"sqlite:///{root / 'prunescope.db'}"
    upgrade(url)
    return Settings(data_dir=root / "data", database_url=url, api_token="owner-secret")


@pytest.fixture(scope="module")
def family(server_settings):
    """(client, owner headers, ids of dense/child/other, dataset id) on a server with an API token.
    Shared by a module's tests: each makes and revokes its own links."""
    app = create_app(server_settings)
    owner = {"Authorization": "Bearer owner-secret"}
    with TestClient(app, raise_server_exceptions=False) as client:
        ds = client.post("/api/datasets", json={"builtin": "digits"}, headers=owner).json()
        dense = upload(client, 0, owner, name="dense", family="cnn")
        child = upload(client, 1, owner, name=HOSTILE, family="cnn", parent_id=dense["id"])
        other = upload(client, 2, owner, name="private-other")
        yield client, owner, (dense["id"], child["id"], other["id"]), ds["id"]


def share(client, owner, ids, dataset, tab="evaluate", **extra) -> dict:
    resp = client.post(
        "/api/views", json={"state": {"ids": ids, "dataset": dataset, "tab": tab}, **extra}, headers=owner
    )
    assert resp.status_code == 201, resp.text
    return resp.json()
