"""Checkpoint upload, listing, update and delete through the REST API, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import struct
import zipfile

import torch
from safetensors.torch import save as save_safetensors

from tests.api.conftest import upload
from tests.conftest import state_dict_bytes


def _blob_files(settings):
    root = settings.data_dir / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts)


def test_upload_reports_architecture_parameters_and_sparsity(client):
    resp = upload(client, state_dict_bytes(zero_fraction=0.5), name="half")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["architecture"] == "small_cnn"
    assert body["num_classes"] == 10
    assert body["input_shape"] == [1, 8, 8]
    assert body["format"] == "torch_zip"
    assert body["parameter_count"] > 1000
    assert 0.3 < body["sparsity"] < 0.6
    assert body["layer_sparsity"]["conv1.weight"]["sparsity"] > 0.4
    assert len(body["sha256"]) == 64
    assert client.get(f"/api/checkpoints/{body['id']}").json()["name"] == "half"


def test_upload_safetensors_is_accepted(client):
    from workers.architectures import build

    sd = build("mlp", num_classes=10, input_shape=(1, 8, 8)).state_dict()
    resp = upload(client, save_safetensors(sd), architecture="mlp", filename="w.safetensors")
    assert resp.status_code == 201, resp.text
    assert resp.json()["format"] == "safetensors"


def test_upload_unwraps_checkpoint_dict_and_keeps_scalar_metadata(client):
    from workers.architectures import build

    sd = build("small_cnn", num_classes=10, input_shape=(1, 8, 8)).state_dict()
    buf = io.BytesIO()
    torch.save({"epoch": 7, "state_dict": {f"module.{k}": v for k, v in sd.items()}}, buf)
    resp = upload(client, buf.getvalue())
    assert resp.status_code == 201, resp.text
    assert resp.json()["metadata"]["epoch"] == 7


def test_family_and_parent_are_recorded_and_patchable(client):
    parent = upload(client, state_dict_bytes(), name="dense", family="f").json()
    child = upload(
        client,
        state_dict_bytes(zero_fraction=0.8),
        name="pruned",
        family="f",
        parent_id=parent["id"],
        metadata='{"pruning_method": "global_magnitude", "sparsity_target": 0.8}',
    ).json()
    assert child["parent_id"] == parent["id"]
    assert child["pruning_method"] == "global_magnitude"
    assert child["sparsity_target"] == 0.8
    listed = client.get("/api/checkpoints", params={"family": "f"}).json()
    assert [c["id"] for c in listed] == [parent["id"], child["id"]]
    patched = client.patch(f"/api/checkpoints/{child['id']}", json={"name": "renamed", "parent_id": None})
    assert patched.status_code == 200
    assert patched.json()["name"] == "renamed" and patched.json()["parent_id"] is None


def test_patch_refuses_cycles_and_unknown_parents(client):
    a = upload(client, state_dict_bytes(), name="a").json()
    b = upload(client, state_dict_bytes(seed=1), name="b", parent_id=a["id"]).json()
    resp = client.patch(f"/api/checkpoints/{a['id']}", json={"parent_id": b["id"]})
    assert resp.status_code == 422 and "ancestor" in resp.json()["detail"]
    resp = client.patch(f"/api/checkpoints/{a['id']}", json={"parent_id": 999})
    assert resp.status_code == 422


def test_delete_removes_row_and_unshared_blob(client, app_settings):
    data = state_dict_bytes()
    first = upload(client, data, name="one").json()
    second = upload(client, data, name="two").json()
    assert len(_blob_files(app_settings)) == 1
    assert client.delete(f"/api/checkpoints/{first['id']}").status_code == 204
    assert len(_blob_files(app_settings)) == 1  # still used by "two"
    assert client.delete(f"/api/checkpoints/{second['id']}").status_code == 204
    assert _blob_files(app_settings) == []
    assert client.get(f"/api/checkpoints/{first['id']}").status_code == 404


def _zip_with_deflated_member() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("archive/data/0", b"\x00" * 100_000)
    return buf.getvalue()


BAD_FILES = {
    "empty": (b"", "empty"),
    "text": (b"hello, I am not a checkpoint", "not a checkpoint"),
    "deflated zip": (_zip_with_deflated_member(), "compressed"),
    "truncated safetensors": (struct.pack("<Q", 1000) + b'{"a": 1', "header"),
    "pickle with code": (
        b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.",
        "weights_only",
    ),
}


def test_bad_files_are_refused_with_a_reason_and_leave_nothing(client, app_settings):
    for label, (data, needle) in BAD_FILES.items():
        resp = upload(client, data)
        assert resp.status_code == 422, (label, resp.text)
        assert needle in resp.json()["detail"], (label, resp.json())
    assert client.get("/api/checkpoints").json() == []
    assert _blob_files(app_settings) == []
    assert list((app_settings.tmp_dir).glob("upload-*")) == []


def test_wrong_architecture_and_shapes_are_refused(client):
    resp = upload(client, state_dict_bytes(), architecture="nonexistent")
    assert resp.status_code == 422 and "unknown architecture" in resp.json()["detail"]
    resp = upload(client, state_dict_bytes("mlp"), architecture="small_cnn")
    assert resp.status_code == 422
    resp = upload(client, state_dict_bytes(), num_classes=3)
    assert resp.status_code == 422 and "head" in resp.json()["detail"]
    assert client.get("/api/checkpoints").json() == []


def test_oversize_upload_gets_413_and_leaves_nothing(client, app_settings):
    resp = upload(client, b"\x00" * (7 * 1024 * 1024))
    assert resp.status_code == 413
    assert client.get("/api/checkpoints").json() == []
    assert list((app_settings.tmp_dir).glob("upload-*")) == []


def test_unknown_ids_and_malformed_input_get_4xx(client):
    assert client.get("/api/checkpoints/12345").status_code == 404
    assert client.get("/api/checkpoints/abc").status_code == 422
    assert (
        client.patch(
            "/api/checkpoints/1", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    resp = upload(client, state_dict_bytes(), metadata="[1, 2]")
    assert resp.status_code == 422 and "metadata" in resp.json()["detail"]


def test_reads_do_not_wait_for_a_held_sqlite_write_lock(sqlite_url, make_settings):
    import sqlite3
    import time

    from fastapi.testclient import TestClient

    from server.app import create_app

    app = create_app(make_settings(sqlite_url), with_dashboard=False)
    with TestClient(app) as c:
        assert upload(c, state_dict_bytes()).status_code == 201
        # Given another process holding SQLite's write lock (a worker mid-transaction)
        holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            # When a client lists checkpoints, Then it is answered at once from the last commit
            started = time.monotonic()
            resp = c.get("/api/checkpoints")
            assert resp.status_code == 200 and len(resp.json()) == 1
            assert time.monotonic() - started < 5  # a write transaction would wait the 30 s busy timeout
        finally:
            holder.execute("ROLLBACK")
            holder.close()


def test_upload_works_with_the_default_relative_data_dir(tmp_path, monkeypatch):
    # `make run` uses PRUNESCOPE_DATA_DIR's default ".prunescope", relative to the working directory,
    # while the sandboxed loader runs in its own directory: every path it gets must be absolute.
    from pathlib import Path

    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.config import Settings
    from server.migrate import upgrade

    monkeypatch.chdir(tmp_path)
    settings = Settings(data_dir=Path(".prunescope"))
    assert settings.data_dir.is_absolute() and settings.tmp_dir.is_absolute()
    settings.data_dir.mkdir()
    upgrade(settings.resolved_database_url)
    with TestClient(create_app(settings, with_dashboard=False)) as c:
        resp = upload(c, state_dict_bytes())
        assert resp.status_code == 201, resp.text


def test_a_created_checkpoint_is_committed_before_the_response_is_sent(db_url, make_settings):
    # A client that lists right after a 201 (the dashboard refreshes its table at once) must see the row:
    # the commit may not wait until the response has gone out. Look at the database, from another
    # connection, at the moment the response starts.
    from fastapi.testclient import TestClient
    from sqlalchemy import create_engine, text

    from server.app import create_app

    app = create_app(make_settings(db_url), with_dashboard=False)
    seen: list[int] = []
    probe = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))

    async def watching(scope, receive, send):
        async def spy(message):
            if message["type"] == "http.response.start" and scope["method"] == "POST":
                with probe.connect() as conn:
                    seen.append(conn.execute(text("SELECT count(*) FROM checkpoints")).scalar_one())
            await send(message)

        await app(scope, receive, spy)

    with TestClient(watching) as c:
        assert upload(c, state_dict_bytes()).status_code == 201
    probe.dispose()
    assert seen == [1]
