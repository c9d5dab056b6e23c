from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.app import create_app


@pytest.fixture
def roots(tmp_path):
    root = tmp_path / "shared-data"
    root.mkdir()
    return root


@pytest.fixture
def app_settings(sqlite_url, make_settings, roots):
    return make_settings(sqlite_url, max_upload_bytes=2 * 1024 * 1024, dataset_roots=str(roots))


@pytest.fixture
def client(app_settings):
    app = create_app(app_settings, with_dashboard=False)
    app.state.queue.flush()
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def leftovers(settings) -> list[str]:
    """Every file under the blob store and the temp dir (uploads in flight land there)."""
    data = settings.data_dir
    return sorted(
        str(p.relative_to(data))
        for p in data.rglob("*")
        if p.is_file() and not p.name.startswith(("queue.db", "prunescope.db"))
    )
