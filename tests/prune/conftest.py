"""The API tests' client, with a lease long enough for a prune job's fine-tuning."""

from __future__ import annotations

import pytest

from tests.api.conftest import client  # noqa: F401 - the same client fixture, on these settings


@pytest.fixture
def app_settings(db_url, make_settings):
    return make_settings(db_url, max_upload_bytes=5 * 1024 * 1024, lease_seconds=30)
