"""Property-based fuzzing of every API operation with schemathesis: no input may cause a 5xx.

The server runs in-process over a SQLite file seeded with a checkpoint, a dataset and a job, so
generated ids sometimes hit real rows. (``schemathesis.pytest.from_fixture`` does not work with
pytest 9, so the app is built at import time over a temporary directory.)
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from server.app import create_app
from server.config import Settings
from server.migrate import upgrade
from tests.conftest import state_dict_bytes

_DIR = Path(tempfile.mkdtemp(prefix="prunescope-fuzz-"))
_SETTINGS = Settings(data_dir=_DIR, max_upload_bytes=1024 * 1024, api_token=None)
APP = create_app(_SETTINGS, with_dashboard=False)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _seeded():
    upgrade(_SETTINGS.resolved_database_url)
    with TestClient(APP) as c:
        ckpt = c.post(
            "/api/checkpoints",
            data={"architecture": "small_cnn", "name": "seed"},
            files={"file": ("w.pt", state_dict_bytes())},
        ).json()
        ds = c.post("/api/datasets", json={"builtin": "digits"}).json()
        c.post(
            "/api/jobs", json={"analysis": "evaluate", "checkpoint_ids": [ckpt["id"]], "dataset_id": ds["id"]}
        )
    yield
    shutil.rmtree(_DIR, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_returns_a_server_error(case):
    response = case.call()
    where = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, f"{where} -> {response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        assert isinstance(response.json().get("detail"), str), f"{where}: {response.text[:300]}"
