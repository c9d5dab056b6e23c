"""An in-process app over a SQLite file, and small tus helpers (the protocol spoken by hand)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from fastapi.testclient import TestClient

from server.app import create_app

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}
LIMIT = 5 * 1024 * 1024


@pytest.fixture
def app_settings(sqlite_url, make_settings):
    return make_settings(sqlite_url, max_upload_bytes=LIMIT)


@pytest.fixture
def client(app_settings):
    with TestClient(create_app(app_settings, with_dashboard=False), raise_server_exceptions=False) as c:
        yield c


def metadata_header(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def create(client, length: int, **metadata: str) -> str:
    """Create an upload; returns its URL (the ``Location`` header)."""
    headers = {**TUS, "Upload-Length": str(length)}
    if metadata:
        headers["Upload-Metadata"] = metadata_header(**metadata)
    resp = client.post("/api/uploads", headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.headers["location"]


def patch(client, url: str, offset: int, data, **headers: str):
    return client.patch(url, content=data, headers={**OCTETS, "Upload-Offset": str(offset), **headers})


def offset_of(client, url: str) -> int:
    resp = client.head(url, headers=TUS)
    assert resp.status_code == 200, resp.status_code
    return int(resp.headers["upload-offset"])


def upload(client, data: bytes, *, chunk: int = 64 * 1024, **metadata: str) -> str:
    """Upload ``data`` in chunks; returns the upload id."""
    url = create(client, len(data), **metadata)
    for start in range(0, len(data), chunk):
        resp = patch(client, url, start, data[start : start + chunk])
        assert resp.status_code == 204, resp.text
    return url.rsplit("/", 1)[1]


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def upload_files(settings) -> list[str]:
    root = settings.data_dir / "uploads"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def staged_files(settings) -> list[str]:
    return sorted(p.name for p in settings.tmp_dir.glob("upload-*"))
