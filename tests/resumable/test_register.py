"""A completed upload registers as a checkpoint (POST /api/checkpoints with upload_id) and is consumed."""

from __future__ import annotations

import hashlib

import pytest

from server.errors import Conflict, NotFound
from server.resumable.service import take_completed
from tests.conftest import state_dict_bytes
from tests.resumable.conftest import TUS, create, metadata_header, patch, staged_files, upload, upload_files


def register(client, upload_id: str, **fields):
    return client.post(
        "/api/checkpoints",
        data={"architecture": "small_cnn", "upload_id": upload_id, **{k: str(v) for k, v in fields.items()}},
    )


def test_a_completed_upload_registers_as_a_checkpoint_and_is_consumed(client, app_settings):
    data = state_dict_bytes(zero_fraction=0.5)
    upload_id = upload(client, data, chunk=10_000, filename="pruned.pt", kind="checkpoint")
    resp = register(client, upload_id, family="f")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["size_bytes"] == len(data)
    assert (body["name"], body["family"], body["architecture"]) == ("pruned.pt", "f", "small_cnn")
    assert 0.3 < body["sparsity"] < 0.6
    assert client.head(f"/api/uploads/{upload_id}", headers=TUS).status_code == 404
    assert upload_files(app_settings) == [] and staged_files(app_settings) == []
    assert register(client, upload_id).status_code == 404


def test_a_name_field_wins_over_the_uploaded_file_name(client):
    upload_id = upload(client, state_dict_bytes(), filename="w.pt")
    assert register(client, upload_id, name="dense").json()["name"] == "dense"


def test_a_refused_checkpoint_still_consumes_its_upload(client, app_settings):
    upload_id = upload(client, b"this is not a checkpoint" * 100, filename="bad.pt")
    resp = register(client, upload_id)
    assert resp.status_code == 422
    assert isinstance(resp.json()["detail"], str)
    assert client.head(f"/api/uploads/{upload_id}", headers=TUS).status_code == 404
    assert upload_files(app_settings) == [] and staged_files(app_settings) == []
    assert client.get("/api/checkpoints").json() == []


def test_an_incomplete_upload_cannot_be_registered_and_is_kept(client, app_settings):
    data = state_dict_bytes()
    url = create(client, len(data))
    assert patch(client, url, 0, data[:100]).status_code == 204
    resp = register(client, url.rsplit("/", 1)[1])
    assert resp.status_code == 409
    assert f"100 of {len(data)} bytes" in resp.json()["detail"]
    assert patch(client, url, 100, data[100:]).status_code == 204
    assert register(client, url.rsplit("/", 1)[1]).status_code == 201


@pytest.mark.parametrize("upload_id", ["a" * 32, "../prunescope.db", "x" * 100, "a b"])
def test_an_unknown_or_hostile_upload_id_is_404(client, upload_id):
    resp = register(client, upload_id)
    assert resp.status_code == 404
    assert resp.json()["detail"].startswith("no such upload")


def test_a_file_and_an_upload_id_together_or_neither_are_refused(client):
    upload_id = upload(client, state_dict_bytes())
    both = client.post(
        "/api/checkpoints",
        data={"architecture": "small_cnn", "upload_id": upload_id},
        files={"file": ("w.pt", state_dict_bytes())},
    )
    neither = client.post("/api/checkpoints", data={"architecture": "small_cnn"})
    for resp in (both, neither):
        assert resp.status_code == 422
        assert "either a 'file' or the 'upload_id'" in resp.json()["detail"]
    assert register(client, upload_id).status_code == 201


def test_an_announced_sha256_that_does_not_match_is_refused(client, app_settings):
    data = state_dict_bytes()
    url = create(client, len(data))
    client.delete(url, headers=TUS)
    resp = client.post(
        "/api/uploads",
        headers={
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata_header(sha256=hashlib.sha256(b"other").hexdigest()),
        },
    )
    url = resp.headers["location"]
    assert patch(client, url, 0, data).status_code == 204
    resp = register(client, url.rsplit("/", 1)[1])
    assert resp.status_code == 422
    assert "sha256" in resp.json()["detail"]
    assert upload_files(app_settings) == [] and staged_files(app_settings) == []


def test_take_completed_hands_back_a_staged_file_for_other_routes(client, app_settings):
    data = b"any bytes a dataset route might want"
    upload_id = upload(client, data, filename="d.npz")
    staged = take_completed(upload_id, app_settings)
    assert staged.path.parent == app_settings.tmp_dir
    assert staged.path.read_bytes() == data
    assert (staged.size, staged.filename) == (len(data), "d.npz")
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    staged.discard()
    with pytest.raises(NotFound):
        take_completed(upload_id, app_settings)
    url = create(client, 10)
    with pytest.raises(Conflict):
        take_completed(url.rsplit("/", 1)[1], app_settings)
