"""POST /api/datasets for every format, server-side paths under the roots, and refusals that leave nothing."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from tests.datasets import factories as f
from tests.datasets.conftest import leftovers
from tests.datasets.test_formats import REFUSED


def _upload(client, data: bytes, filename: str = "data.bin", **fields):
    return client.post("/api/datasets", files={"file": (filename, data)}, data=fields)


def test_cifar10_batch_upload_keeps_the_uploaded_bytes_as_its_blob(client, app_settings):
    data = f.cifar_batch(20)
    resp = _upload(client, data, name="cifar test")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    sha = hashlib.sha256(data).hexdigest()
    assert body["format"] == "cifar10-binary" and body["sha256"] == sha and body["size_bytes"] == len(data)
    assert body["input_shape"] == [3, 32, 32] and body["num_classes"] <= 10 and body["sample_count"] == 20
    assert (app_settings.data_dir / "blobs" / sha[:2] / sha[2:4] / sha).read_bytes() == data
    assert leftovers(app_settings) == [f"blobs/{sha[:2]}/{sha[2:4]}/{sha}"]  # and nothing else


def test_tar_gz_upload_takes_the_split_field(client):
    data = f.cifar_tar_gz({"data_batch_1.bin": f.cifar_batch(3), "test_batch.bin": f.cifar_batch(2)})
    assert _upload(client, data).json()["sample_count"] == 2
    body = _upload(client, data, split="train").json()
    assert body["sample_count"] == 3 and body["meta"]["split"] == "train"
    assert _upload(client, data, split="valid").status_code == 422


def test_cifar_c_and_imagefolder_uploads_record_their_meta(client):
    body = _upload(client, f.cifar_c_zip(f.cifar_c_arrays(n=4)), mean="0.5,0.5,0.5", std="0.25").json()
    assert body["format"] == "cifar-c" and body["meta"]["corruptions"] == ["brightness", "fog"]
    assert body["meta"]["normalization"] == {"mean": [0.5, 0.5, 0.5], "std": [0.25]}
    body = _upload(client, f.zip_of(f.imagefolder_members()), image_size="8").json()
    assert body["format"] == "imagefolder" and body["input_shape"] == [3, 8, 8]
    assert body["meta"]["classes"] == ["bird", "cat", "dog"] and body["num_classes"] == 3


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_uploads_are_422_and_leave_nothing_behind(client, app_settings, case):
    data, needle = REFUSED[case]
    resp = _upload(client, data)
    assert resp.status_code == 422 and needle in resp.json()["detail"], resp.text
    assert client.get("/api/datasets").json() == []
    assert leftovers(app_settings) == []


def test_oversize_upload_is_413(client, app_settings):
    resp = _upload(client, b"\x00" * (4 * 1024 * 1024))
    assert resp.status_code == 413
    assert client.get("/api/datasets").json() == [] and leftovers(app_settings) == []


def test_server_path_under_the_roots_is_hashed_not_copied(client, app_settings, roots):
    data = f.cifar_batch(6)
    (roots / "sub").mkdir()
    target = roots / "sub" / "test_batch.bin"
    target.write_bytes(data)
    resp = client.post("/api/datasets", json={"path": str(roots / "sub" / ".." / "sub" / "test_batch.bin")})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["kind"] == "path" and body["name"] == "test_batch.bin" and body["sample_count"] == 6
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and "source_path" not in body
    assert leftovers(app_settings) == []  # nothing copied into the blob store


def test_server_paths_outside_the_roots_are_refused(client, app_settings, roots, tmp_path):
    outside = tmp_path / "secret.bin"
    outside.write_bytes(f.cifar_batch(2))
    os.symlink(outside, roots / "escape.bin")
    (roots / "dir").mkdir()
    (roots / "junk.bin").write_bytes(b"junk")
    cases = {
        str(outside): "not inside any of the configured dataset roots",
        str(roots / ".." / "secret.bin"): "not inside any",
        str(roots / "escape.bin"): "not inside any",  # a symlink that leaves the roots
        "secret.bin": "absolute path",
        str(roots / "dir"): "not a regular file",
        str(roots / "missing.bin"): "not a regular file",
        str(roots / "junk.bin"): "not an .npz",
    }
    for path, needle in cases.items():
        resp = client.post("/api/datasets", json={"path": path})
        assert resp.status_code == 422 and needle in resp.json()["detail"], (path, resp.text)
    assert client.get("/api/datasets").json() == [] and leftovers(app_settings) == []


def test_server_paths_are_off_without_roots(sqlite_url, make_settings, tmp_path):
    from fastapi.testclient import TestClient

    from server.app import create_app

    (tmp_path / "b.bin").write_bytes(f.cifar_batch(2))
    with TestClient(create_app(make_settings(sqlite_url), with_dashboard=False)) as c:
        resp = c.post("/api/datasets", json={"path": str(tmp_path / "b.bin")})
    assert resp.status_code == 422 and "PRUNESCOPE_DATASET_ROOTS" in resp.json()["detail"]


def test_npz_upload_still_reads_its_own_mean_and_refuses_form_normalisation(client):
    import io

    buf = io.BytesIO()
    np.savez(buf, x=np.random.rand(6, 4).astype(np.float32), y=np.arange(6) % 2, mean=np.float32(0.5))
    assert _upload(client, buf.getvalue()).json()["format"] == "npz"
    resp = _upload(client, buf.getvalue(), mean="0.1")
    assert resp.status_code == 422 and "mean does not apply" in resp.json()["detail"]
