from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.app import create_app


@pytest.fixture
def app_settings(db_url, make_settings):
    return make_settings(db_url, max_upload_bytes=5 * 1024 * 1024, lease_seconds=30)


@pytest.fixture
def client(app_settings):
    app = create_app(app_settings, with_dashboard=False)
    app.state.queue.flush()
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
