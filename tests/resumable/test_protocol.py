"""tus 1.0.0 at /api/uploads, spoken by hand: creation, offsets, limits, checksums, termination."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.resumable.conftest import (
    LIMIT,
    OCTETS,
    TUS,
    create,
    metadata_header,
    offset_of,
    patch,
    sha256_b64,
    upload,
    upload_files,
)

DATA = os.urandom(300_000)


def part_bytes(settings, url: str) -> bytes:
    return (settings.data_dir / "uploads" / f"{url.rsplit('/', 1)[1]}.part").read_bytes()


def test_options_advertises_version_extensions_and_max_size(client):
    resp = client.options("/api/uploads")
    assert resp.status_code == 204
    assert resp.headers["tus-version"] == "1.0.0"
    extensions = set(resp.headers["tus-extension"].split(","))
    assert extensions == {"creation", "termination", "expiration", "checksum"}
    assert resp.headers["tus-max-size"] == str(LIMIT)
    assert "sha256" in resp.headers["tus-checksum-algorithm"].split(",")


def test_create_answers_201_with_location_and_head_reports_offset_zero(client):
    resp = client.post(
        "/api/uploads",
        headers={**TUS, "Upload-Length": "10", "Upload-Metadata": metadata_header(filename="w.pt")},
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["tus-resumable"] == "1.0.0"
    url = resp.headers["location"]
    assert url == f"/api/uploads/{resp.json()['id']}"
    assert "upload-expires" in resp.headers
    head = client.head(url, headers=TUS)
    assert head.status_code == 200
    assert (head.headers["upload-offset"], head.headers["upload-length"]) == ("0", "10")
    assert head.headers["cache-control"] == "no-store"
    assert head.headers["upload-metadata"] == metadata_header(filename="w.pt")


def test_patches_in_chunks_append_in_order_until_complete(client, app_settings):
    url = create(client, len(DATA))
    for start in range(0, len(DATA), 100_000):
        resp = patch(client, url, start, DATA[start : start + 100_000])
        assert resp.status_code == 204, resp.text
        assert resp.headers["upload-offset"] == str(min(start + 100_000, len(DATA)))
        assert resp.headers["tus-resumable"] == "1.0.0"
    assert offset_of(client, url) == len(DATA)
    assert part_bytes(app_settings, url) == DATA


def test_patch_at_the_wrong_offset_is_409_and_appends_nothing(client, app_settings):
    url = create(client, len(DATA))
    assert patch(client, url, 0, DATA[:1000]).status_code == 204
    for wrong in (0, 999, 1001):
        resp = patch(client, url, wrong, DATA[1000:2000])
        assert resp.status_code == 409
        assert "HEAD" in resp.json()["detail"]
    assert offset_of(client, url) == 1000
    assert part_bytes(app_settings, url) == DATA[:1000]


@pytest.mark.parametrize("content_type", [None, "application/octet-stream", "text/plain"])
def test_patch_with_another_content_type_is_415(client, content_type):
    url = create(client, 10)
    headers = {**TUS, "Upload-Offset": "0"}
    if content_type:
        headers["Content-Type"] = content_type
    resp = client.patch(url, content=b"0123456789", headers=headers)
    assert resp.status_code == 415
    assert "offset+octet-stream" in resp.json()["detail"]
    assert offset_of(client, url) == 0


def test_patch_past_upload_length_is_413_and_appends_nothing(client, app_settings):
    url = create(client, 1000)
    assert patch(client, url, 0, DATA[:600]).status_code == 204
    declared = patch(client, url, 600, DATA[:401])  # Content-Length says it: refused before reading
    streamed = patch(client, url, 600, iter([DATA[:300], DATA[:101]]))  # chunked: refused while reading
    for resp in (declared, streamed):
        assert resp.status_code == 413
        assert "nothing was appended" in resp.json()["detail"]
    assert offset_of(client, url) == 600
    assert part_bytes(app_settings, url) == DATA[:600]
    assert patch(client, url, 600, DATA[600:1000]).status_code == 204


def test_upload_length_over_the_limit_is_413(client):
    resp = client.post("/api/uploads", headers={**TUS, "Upload-Length": str(LIMIT + 1)})
    assert resp.status_code == 413
    assert str(LIMIT) in resp.json()["detail"]
    assert client.post("/api/uploads", headers={**TUS, "Upload-Length": str(LIMIT)}).status_code == 201


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Upload-Length": "-1"},
        {"Upload-Length": "ten"},
        {"Upload-Length": "9" * 30},
        {"Upload-Defer-Length": "1"},
        {"Upload-Length": "5", "Upload-Metadata": "filename not-base64!"},
        {"Upload-Length": "5", "Upload-Metadata": "bad key aGk="},
        {"Upload-Length": "5", "Upload-Metadata": "a aGk=,a aGk="},
        {"Upload-Length": "5", "Upload-Metadata": "filename " + base64.b64encode(b"a\x00b").decode()},
        {"Upload-Length": "5", "Upload-Metadata": "k " + "A" * 5000},
    ],
)
def test_malformed_creation_headers_are_400(client, app_settings, headers):
    resp = client.post("/api/uploads", headers={**TUS, **headers})
    assert resp.status_code == 400, resp.text
    assert isinstance(resp.json()["detail"], str)
    assert upload_files(app_settings) == []


def test_requests_without_tus_resumable_1_0_0_are_412(client):
    url = create(client, 10)
    for headers in ({}, {"Tus-Resumable": "0.2.2"}):
        resp = client.head(url, headers=headers)
        assert resp.status_code == 412
        assert resp.headers["tus-version"] == "1.0.0"
        resp = client.post("/api/uploads", headers={**headers, "Upload-Length": "10"})
        assert resp.status_code == 412
        assert "Tus-Resumable: 1.0.0" in resp.json()["detail"]


def test_checksum_is_verified_per_patch(client, app_settings):
    url = create(client, 2000)
    good = patch(client, url, 0, DATA[:1000], **{"Upload-Checksum": "sha256 " + sha256_b64(DATA[:1000])})
    assert good.status_code == 204
    wrong = "sha256 " + sha256_b64(b"something else")
    bad = patch(client, url, 1000, DATA[1000:2000], **{"Upload-Checksum": wrong})
    assert bad.status_code == 460
    assert "Upload-Checksum" in bad.json()["detail"]
    sha1 = "sha1 " + base64.b64encode(hashlib.sha1(DATA[1000:2000]).digest()).decode()
    assert patch(client, url, 1000, DATA[1000:2000], **{"Upload-Checksum": sha1}).status_code == 204
    assert part_bytes(app_settings, url) == DATA[:2000]


@pytest.mark.parametrize("value", ["md5 AAAA", "sha256", "sha256 !!!", "sha256 " + "A" * 8])
def test_malformed_checksums_are_400(client, value):
    url = create(client, 10)
    assert patch(client, url, 0, b"0123456789", **{"Upload-Checksum": value}).status_code == 400
    assert offset_of(client, url) == 0


def test_delete_removes_the_bytes_and_the_url_then_answers_404(client, app_settings):
    url = create(client, len(DATA))
    assert patch(client, url, 0, DATA[:5000]).status_code == 204
    resp = client.delete(url, headers=TUS)
    assert resp.status_code == 204
    assert resp.headers["tus-resumable"] == "1.0.0"
    assert upload_files(app_settings) == []
    assert client.head(url, headers=TUS).status_code == 404
    assert patch(client, url, 5000, DATA[5000:6000]).status_code == 404
    assert client.delete(url, headers=TUS).status_code == 404


HOSTILE_IDS = [
    "..",
    "%2e%2e",
    "..%2f..%2fprunescope.db",
    "a" * 33,
    "a" * 31,
    "A" * 31 + "$",
    "abc%00def" + "a" * 23,
    "%20" + "a" * 31,
    "x" * 10_000,
]


@pytest.mark.parametrize("upload_id", HOSTILE_IDS)
def test_hostile_ids_are_refused_and_touch_no_file(client, app_settings, upload_id):
    before = sorted(p for p in app_settings.data_dir.rglob("*"))
    url = f"/api/uploads/{upload_id}"
    for resp in (
        client.head(url, headers=TUS),
        patch(client, url, 0, b"x"),
        client.delete(url, headers=TUS),
    ):
        assert resp.status_code in (404, 405), resp.status_code
    resp = patch(client, url, 0, b"x")
    assert resp.status_code in (404, 405)
    assert isinstance(resp.json()["detail"], str)
    assert sorted(p for p in app_settings.data_dir.rglob("*")) == before


def test_an_unknown_well_formed_id_is_404(client):
    url = "/api/uploads/" + "a" * 32
    assert client.head(url, headers=TUS).status_code == 404
    assert patch(client, url, 0, b"x").json()["detail"].startswith("no such upload")


def test_a_second_writer_is_told_to_retry(client, app_settings):
    url = create(client, 100)
    part = app_settings.data_dir / "uploads" / f"{url.rsplit('/', 1)[1]}.part"
    with part.open("rb") as f:  # as if another request (or server process) were appending
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        resp = patch(client, url, 0, b"x" * 10)
    assert resp.status_code == 409
    assert "retry" in resp.json()["detail"]
    assert patch(client, url, 0, b"x" * 10).status_code == 204


def test_bytes_past_the_recorded_offset_after_a_crash_are_dropped(client, app_settings):
    url = create(client, 3000)
    assert patch(client, url, 0, DATA[:1000]).status_code == 204
    part = app_settings.data_dir / "uploads" / f"{url.rsplit('/', 1)[1]}.part"
    with part.open("ab") as f:  # the server died mid-PATCH, after writing but before recording
        f.write(b"\xff" * 700)
    assert offset_of(client, url) == 1000
    assert patch(client, url, 1000, DATA[1000:3000]).status_code == 204
    assert part.read_bytes() == DATA[:3000]


def test_write_endpoints_need_the_api_token_when_one_is_set(sqlite_url, make_settings):
    settings = make_settings(sqlite_url, api_token="s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    with TestClient(create_app(settings, with_dashboard=False)) as client:
        assert client.post("/api/uploads", headers={**TUS, "Upload-Length": "4"}).status_code == 401
        resp = client.post("/api/uploads", headers={**TUS, **auth, "Upload-Length": "4"})
        assert resp.status_code == 201
        url = resp.headers["location"]
        assert client.patch(url, content=b"abcd", headers={**OCTETS, "Upload-Offset": "0"}).status_code == 401
        assert client.head(url, headers=TUS).status_code == 401  # with a token, reads need it too
        assert client.head(url, headers={**TUS, **auth}).status_code == 200
        assert client.delete(url, headers=TUS).status_code == 401
        assert patch(client, url, 0, b"abcd", **auth).status_code == 204


def test_an_upload_of_zero_bytes_is_complete_at_once(client):
    url = create(client, 0)
    assert offset_of(client, url) == 0
    assert patch(client, url, 0, b"").status_code == 204
    assert upload(client, b"") != url.rsplit("/", 1)[1]
