"""Uploads outlive a server restart, expire after a while, and are swept (at startup and periodically)."""

from __future__ import annotations

import hashlib
import os
import time

from fastapi.testclient import TestClient

from server.app import create_app
from server.resumable.service import sweep
from tests.conftest import state_dict_bytes
from tests.resumable.conftest import TUS, create, offset_of, patch, upload_files


def test_an_upload_resumes_after_the_server_restarts_between_patches(app_settings):
    data = state_dict_bytes()
    half = len(data) // 2
    # Given half a checkpoint uploaded to one server process
    with TestClient(create_app(app_settings, with_dashboard=False)) as first:
        url = create(first, len(data), filename="restarted.pt")
        assert patch(first, url, 0, data[:half]).status_code == 204
    # When a new server over the same data directory is asked where the upload stands
    with TestClient(create_app(app_settings, with_dashboard=False)) as second:
        assert offset_of(second, url) == half
        # Then the rest can be sent from there, and the whole registers with the sha256 of every byte
        assert patch(second, url, half, data[half:]).status_code == 204
        resp = second.post(
            "/api/checkpoints", data={"architecture": "small_cnn", "upload_id": url.rsplit("/", 1)[1]}
        )
    assert resp.status_code == 201, resp.text
    assert resp.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert resp.json()["name"] == "restarted.pt"


def test_an_expired_upload_answers_410_until_swept_then_404(sqlite_url, make_settings):
    settings = make_settings(sqlite_url, upload_expiry_seconds=0.3, upload_sweep_interval_seconds=3600)
    with TestClient(create_app(settings, with_dashboard=False)) as client:
        url = create(client, 100)
        assert patch(client, url, 0, b"x" * 10).status_code == 204
        time.sleep(0.4)
        assert client.head(url, headers=TUS).status_code == 410
        gone = patch(client, url, 10, b"x" * 10)
        assert gone.status_code == 410
        assert "expired" in gone.json()["detail"]
        assert sweep(settings) == 1
        assert upload_files(settings) == []
        assert client.head(url, headers=TUS).status_code == 404


def test_each_patch_pushes_the_expiry_back(sqlite_url, make_settings):
    settings = make_settings(sqlite_url, upload_expiry_seconds=60)
    with TestClient(create_app(settings, with_dashboard=False)) as client:
        url = create(client, 100)
        created = client.head(url, headers=TUS).headers["upload-expires"]
        time.sleep(1.1)
        assert patch(client, url, 0, b"x").headers["upload-expires"] != created
        assert sweep(settings, now=time.time() + 59) == 0
        assert sweep(settings, now=time.time() + 61) == 1


def test_the_server_sweeps_expired_uploads_at_startup_and_then_periodically(sqlite_url, make_settings):
    settings = make_settings(sqlite_url, upload_expiry_seconds=0.5, upload_sweep_interval_seconds=0.2)
    idle = make_settings(sqlite_url, upload_expiry_seconds=0.5, upload_sweep_interval_seconds=3600)
    with TestClient(create_app(idle, with_dashboard=False)) as client:
        old = create(client, 100)
    time.sleep(0.6)
    with TestClient(create_app(settings, with_dashboard=False)) as client:
        # at startup
        assert client.head(old, headers=TUS).status_code == 404
        # periodically
        url = create(client, 100)
        assert len(upload_files(settings)) == 2
        deadline = time.monotonic() + 10
        while upload_files(settings) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert upload_files(settings) == []
        assert client.head(url, headers=TUS).status_code == 404


def test_sweeping_removes_leftovers_but_not_foreign_files(sqlite_url, make_settings):
    settings = make_settings(sqlite_url, upload_expiry_seconds=60)
    root = settings.data_dir / "uploads"
    root.mkdir(parents=True)
    orphan_part = root / ("o" * 32 + ".part")  # a crash while registering, or while creating
    stray_state = root / ("s" * 32 + ".json")  # a state whose part is gone
    fresh_part = root / ("f" * 32 + ".part")  # perhaps an upload being created right now
    foreign = root / "README"
    for path in (orphan_part, stray_state, fresh_part, foreign):
        path.write_bytes(b"x")
    hour_ago = time.time() - 3600
    os.utime(orphan_part, (hour_ago, hour_ago))
    sweep(settings)
    assert upload_files(settings) == sorted([fresh_part.name, foreign.name])
