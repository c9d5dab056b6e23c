"""Hostile checkpoints are refused by ``POST /api/checkpoints``: no code runs, a specific 4xx, nothing left.

Each hostile case asserts (a) the payload's marker file does not exist, (b) the status and a phrase of the
message, (c) no checkpoint row, no blob, no temp file and no child process remain. Benign controls of every
format load.
"""

from __future__ import annotations

import io
import struct

import pytest
import torch
import torch.nn.utils.prune
from safetensors.torch import save as save_safetensors

from tests.security.conftest import (
    child_pids,
    cuda_tagged,
    f32,
    legacy_tar_with_pickle,
    legacy_with_pickle,
    payload_pickle,
    pt2_with_sample_inputs_payload,
    pt2_with_use_pickle,
    safetensors_bytes,
    small_state_dict,
    storage_larger_than_record,
    torch_bytes,
    torch_zip_with_pickle,
    torchscript_with_payload,
    upload,
    zip_bomb,
    zip_with_duplicate_member,
    zip_with_member,
    zip_with_nul_member,
)

HTML_KEY = "<img src=x onerror=alert(1)>"

HOSTILE = {
    "zip .pt with os.system payload": (lambda m: torch_zip_with_pickle(payload_pickle(m)), "weights only"),
    "zip .pt with exec payload": (lambda m: torch_zip_with_pickle(payload_pickle(m, "exec")), "weights only"),
    "raw pickle with os.system payload": (lambda m: payload_pickle(m), "plain Python pickle"),
    "legacy non-zip with payload": (lambda m: legacy_with_pickle(payload_pickle(m)), "weights only"),
    "legacy non-zip with exec payload": (
        lambda m: legacy_with_pickle(payload_pickle(m, "exec")),
        "weights only",
    ),
    "legacy .tar with payload": (lambda m: legacy_tar_with_pickle(payload_pickle(m)), "tar archive"),
    ".pt2 with a use_pickle weight": (pt2_with_use_pickle, ".pt2"),
    ".pt2 with a payload in sample_inputs": (pt2_with_sample_inputs_payload, ".pt2"),
    "TorchScript with payload data.pkl": (torchscript_with_payload, "TorchScript"),
    "zip-slip ../ member": (lambda m: zip_with_member("archive/../../evil"), "unsafe member name"),
    "zip-slip absolute member": (lambda m: zip_with_member("/etc/evil"), "unsafe member name"),
    "zip-slip backslash member": (lambda m: zip_with_member("archive\\..\\evil"), "unsafe member name"),
    "zip-slip NUL member": (lambda m: zip_with_nul_member(), "unsafe member name"),
    "duplicate member": (lambda m: zip_with_duplicate_member(), "duplicate member names"),
    "deflated zip bomb": (lambda m: zip_bomb(), "compressed"),
    "storage larger than its record": (lambda m: storage_larger_than_record(), "its record holds"),
    "safetensors huge shape": (
        lambda m: safetensors_bytes({"w": f32([2**40, 2**40], 0, 16)}, bytes(16)),
        "elements",
    ),
    "safetensors 2^60 header length": (
        lambda m: safetensors_bytes({"w": f32([4], 0, 16)}, bytes(16), length=2**60),
        "header claims",
    ),
    "safetensors offsets past the end": (
        lambda m: safetensors_bytes({"w": f32([256], 0, 1024)}, bytes(16)),
        "outside the file",
    ),
    "safetensors overflowing shape product": (
        lambda m: safetensors_bytes({"w": f32([2**62, 2**62, 2**62, 0], 0, 0)}, b""),
        "elements",
    ),
    "safetensors overlapping ranges": (
        lambda m: safetensors_bytes({"a": f32([4], 0, 16), "b": f32([4], 8, 24)}, bytes(24)),
        "overlap",
    ),
    "safetensors duplicated key": (
        lambda m: safetensors_bytes(
            '{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, '
            '"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}',
            bytes(16),
        ),
        "repeats the key",
    ),
    "safetensors unknown dtype": (
        lambda m: safetensors_bytes({"w": {"dtype": "X9", "shape": [4], "data_offsets": [0, 16]}}, bytes(16)),
        "unknown dtype",
    ),
    "ELF bytes": (lambda m: b"\x7fELF\x02\x01\x01" + bytes(200), "not a checkpoint"),
    "PNG bytes": (lambda m: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100), "not a checkpoint"),
    "empty file": (lambda m: b"", "empty"),
}

TRUNCATED = {
    "zip": lambda: torch_bytes(small_state_dict()),
    "legacy": lambda: torch_bytes(small_state_dict(), legacy=True),
    "safetensors": lambda: save_safetensors(small_state_dict()),
}


def _leftovers(settings) -> dict:
    blobs = settings.data_dir / "blobs"
    return {
        "blobs": sorted(p.name for p in blobs.rglob("*") if p.is_file()) if blobs.exists() else [],
        "tmp": sorted(p.name for p in settings.tmp_dir.rglob("*")) if settings.tmp_dir.exists() else [],
        "children": child_pids(),
    }


def _assert_refused(client, settings, marker, data: bytes, status: int, needle: str | None) -> dict:
    resp = upload(client, data)
    assert not marker.exists(), "the payload ran"
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    if needle is not None:
        assert needle in detail, detail
    assert client.get("/api/checkpoints").json() == []
    assert _leftovers(settings) == {"blobs": [], "tmp": [], "children": []}
    return resp.json()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_file_is_refused_without_running_code_or_leaving_anything(case, client, app_settings, marker):
    make, needle = HOSTILE[case]
    _assert_refused(client, app_settings, marker, make(marker), 422, needle)


@pytest.mark.parametrize("fmt", list(TRUNCATED))
def test_every_format_truncated_at_half_is_refused(fmt, client, app_settings, marker):
    data = TRUNCATED[fmt]()
    _assert_refused(client, app_settings, marker, data[: len(data) // 2], 422, None)


def test_oversize_upload_is_refused_with_413(client, app_settings, marker):
    data = torch_bytes({"w": torch.zeros(3 * 1024 * 1024)})  # 12 MB, over the 8 MB limit
    _assert_refused(client, app_settings, marker, data, 413, None)


def test_whole_pickled_model_is_refused_with_the_state_dict_hint(client, app_settings, marker):
    data = torch_bytes(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    body = _assert_refused(client, app_settings, marker, data, 422, "model.state_dict()")
    assert "torch.nn.modules" in body["detail"]


def test_html_tensor_name_comes_back_as_plain_json_text(client, app_settings, marker):
    sd = {**small_state_dict(), HTML_KEY: torch.zeros(1)}
    resp = upload(client, save_safetensors(sd), filename="w.safetensors")
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/json")
    assert repr(HTML_KEY) in resp.json()["detail"]  # quoted as text, never markup
    assert _leftovers(app_settings) == {"blobs": [], "tmp": [], "children": []}


# --- benign controls ------------------------------------------------------------------------------


def _pruned_state_dict() -> dict[str, torch.Tensor]:
    from workers.architectures import build

    torch.manual_seed(0)
    model = build("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
            torch.nn.utils.prune.l1_unstructured(module, "weight", amount=0.6)
    return model.state_dict()


def _baked_state_dict() -> dict[str, torch.Tensor]:
    sd = small_state_dict()
    for key, value in sd.items():
        if key.endswith("weight") and value.dim() > 1:
            value.view(-1)[: value.numel() // 2] = 0
    return sd


BENIGN = {
    "zip state_dict": (lambda: torch_bytes(small_state_dict()), "torch_zip", None),
    "legacy non-zip state_dict": (lambda: torch_bytes(small_state_dict(), legacy=True), "torch_legacy", None),
    "safetensors": (lambda: save_safetensors(small_state_dict()), "safetensors", None),
    "wrapped dict with metadata": (
        lambda: torch_bytes({"epoch": 7, "best_acc": torch.tensor(0.9), "model": small_state_dict()}),
        "torch_zip",
        None,
    ),
    "module. prefix (legacy)": (
        lambda: torch_bytes({f"module.{k}": v for k, v in small_state_dict().items()}, legacy=True),
        "torch_legacy",
        None,
    ),
    "CUDA-tagged storages": (lambda: cuda_tagged(small_state_dict()), "torch_zip", None),
    "torch.nn.utils.prune state_dict": (
        lambda: torch_bytes(_pruned_state_dict()),
        "torch_zip",
        "from torch.nn.utils.prune",
    ),
    "zeros baked in": (lambda: torch_bytes(_baked_state_dict()), "torch_zip", "inferred from zeros"),
}


@pytest.mark.parametrize("case", list(BENIGN))
def test_benign_checkpoint_of_every_format_loads(case, client, app_settings):
    make, fmt, mask = BENIGN[case]
    resp = upload(client, make(), name=case)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["format"] == fmt and body["num_classes"] == 10
    assert body["metadata"].get("mask") == mask
    if mask is not None:
        assert 0.3 < body["layer_sparsity"]["conv1.weight"]["sparsity"] < 0.7
    if case.startswith("wrapped"):
        assert body["metadata"]["epoch"] == 7 and abs(body["metadata"]["best_acc"] - 0.9) < 1e-6
    assert _leftovers(app_settings)["tmp"] == [] and child_pids() == []


HOSTILE_NAMES = {
    "traversal": "../../etc/passwd",
    "absolute": "/etc/passwd",
    "backslash": "..\\..\\windows\\system32\\x.pt",
    "NUL": "w\x00.pt",
    "right-to-left override": "w\u202etp.exe",
    "10 KB long": "a" * 10_000,
    "empty": "",
}


@pytest.mark.parametrize("case", list(HOSTILE_NAMES))
def test_hostile_upload_filename_is_stored_as_text_never_as_a_path(case, client, app_settings, tmp_path):
    # Given a valid checkpoint uploaded under a hostile file name
    before = {p for p in tmp_path.rglob("*") if "blobs" not in p.parts}
    resp = upload(client, torch_bytes(small_state_dict()), filename=HOSTILE_NAMES[case])
    # Then it is stored or cleanly refused (400: the multipart parser's header limit), and nothing is
    # written outside the blob store
    assert resp.status_code in (201, 400, 422), resp.text
    if resp.status_code == 201:
        name = resp.json()["name"]
        assert "\x00" not in name and "\u202e" not in name and len(name) <= 200
    after = {
        p for p in tmp_path.rglob("*") if "blobs" not in p.parts and p.suffix not in (".db-wal", ".db-shm")
    }
    assert {p.name for p in after - before} <= {"prunescope.db-journal"}
    assert not (tmp_path / "etc").exists() and child_pids() == []


def test_header_length_is_checked_before_reading(tmp_path):
    import tracemalloc

    from workers.intake import CheckpointError, check_safetensors

    path = tmp_path / "w"
    path.write_bytes(struct.pack("<Q", 2**60) + b"{" + bytes(64))
    tracemalloc.start()
    with pytest.raises(CheckpointError):
        check_safetensors(path, max_elements=10**9)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 256 * 1024


def test_legacy_files_with_a_storage_past_the_end_are_refused(tmp_path):
    from workers.intake import CheckpointError, check_torch_legacy

    data = torch_bytes({"w": torch.zeros(16)}, legacy=True)
    path = tmp_path / "w"
    path.write_bytes(data[:-8])
    with pytest.raises(CheckpointError, match="more bytes than the file holds"):
        check_torch_legacy(path)
    path.write_bytes(io.BytesIO(data).getvalue())
    assert check_torch_legacy(path) == 64
