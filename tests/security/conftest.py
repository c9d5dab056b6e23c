"""Hostile and benign checkpoint files, crafted at test time (never committed as binaries).

Every payload, if it ever ran, would create ``marker``; the tests assert it never exists.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from server.app import create_app
from workers.architectures import build

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def app_settings(sqlite_url, make_settings):
    return make_settings(sqlite_url, max_upload_bytes=8 * 1024 * 1024)


@pytest.fixture
def client(app_settings):
    app = create_app(app_settings, with_dashboard=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def upload(client, data: bytes, *, architecture="small_cnn", filename="w.pt", **fields):
    form = {"architecture": architecture, **{k: str(v) for k, v in fields.items()}}
    return client.post(
        "/api/checkpoints", data=form, files={"file": (filename, data, "application/octet-stream")}
    )


def child_pids() -> list[int]:
    """Live (non-zombie) child processes of this test process."""
    me, found = str(os.getpid()), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[1] == me and fields[0] != "Z":
            found.append(int(entry.name))
    return found


# --- payloads ------------------------------------------------------------------------------------


class _System:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Exec:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def payload_pickle(marker: Path, how: str = "system") -> bytes:
    """A protocol-2 pickle whose loading would run code that creates ``marker``."""
    obj = _System(marker) if how == "system" else _Exec(marker)
    return pickle.dumps({"state_dict": obj}, protocol=2)


# --- containers ----------------------------------------------------------------------------------


def small_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return build("small_cnn", num_classes=10, input_shape=(1, 8, 8)).state_dict()


def torch_bytes(obj, *, legacy: bool = False) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def make_zip(files: dict[str, bytes], *, deflate: tuple[str, ...] = ()) -> bytes:
    """A zip laid out like torch.save's (STORED unless named in ``deflate``)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            kind = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            zf.writestr(zipfile.ZipInfo(name), content, compress_type=kind)
    return buf.getvalue()


def rewrite_zip(data: bytes, changes: dict[str, bytes], **kw) -> bytes:
    return make_zip({**members(data), **changes}, **kw)


def torch_zip_with_pickle(pkl: bytes) -> bytes:
    """A torch.save archive whose data.pkl is ``pkl``."""
    return rewrite_zip(torch_bytes({"w": torch.zeros(2)}), {"archive/data.pkl": pkl})


def legacy_with_pickle(pkl: bytes) -> bytes:
    """A legacy (non-zip) torch.save file: magic, protocol, sys_info, then ``pkl`` as the object."""
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4}}
    head = b"".join(pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC, 1001, sys_info))
    return head + pkl + pickle.dumps([], protocol=2)


def legacy_tar_with_pickle(pkl: bytes) -> bytes:
    """torch's pre-1.0 tar format: members sys_info, pickle, storages, tensors."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, content in (("sys_info", b""), ("pickle", pkl), ("storages", b""), ("tensors", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.lin(x)


def pt2_bytes() -> bytes:
    buf = io.BytesIO()
    torch.export.save(torch.export.export(_Tiny(), (torch.zeros(1, 2),)), buf)
    return buf.getvalue()


def pt2_with_use_pickle(marker: Path) -> bytes:
    data = pt2_bytes()
    files = members(data)
    cfg_name = next(n for n in files if n.endswith("model_weights_config.json"))
    cfg = json.loads(files[cfg_name])
    for entry in cfg["config"].values():
        entry["use_pickle"] = True
    weight = next(n for n in files if n.endswith("weights/weight_0"))
    return rewrite_zip(data, {cfg_name: json.dumps(cfg).encode(), weight: payload_pickle(marker)})


def pt2_with_sample_inputs_payload(marker: Path) -> bytes:
    data = pt2_bytes()
    sample = next(n for n in members(data) if "sample_inputs" in n)
    return rewrite_zip(data, {sample: torch_zip_with_pickle(payload_pickle(marker))})


def torchscript_with_payload(marker: Path) -> bytes:
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, still in the wild
        torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2)), buf)
    return rewrite_zip(buf.getvalue(), {"archive/data.pkl": payload_pickle(marker)})


def zip_with_member(name: str) -> bytes:
    return rewrite_zip(torch_bytes(small_state_dict()), {name: b"x"})


def zip_with_nul_member() -> bytes:
    data = zip_with_member("archive/evil\x01name")
    return data.replace(b"evil\x01name", b"evil\x00name")


def zip_bomb() -> bytes:
    """A valid torch archive whose 20 MB tensor record is DEFLATED down to ~20 KB."""
    data = torch_bytes({"w": torch.zeros(5 * 1024 * 1024)})
    return rewrite_zip(data, {}, deflate=("archive/data/0",))


def storage_larger_than_record() -> bytes:
    data = torch_bytes({"w": torch.zeros(4)})
    pkl = members(data)["archive/data.pkl"]
    bigger, count = re.subn(rb"(cpuq.)K\x04t", lambda m: m[1] + b"M\xff\xfft", pkl)  # numel 4 -> 65535
    assert count == 1
    return rewrite_zip(data, {"archive/data.pkl": bigger})


def cuda_tagged(obj) -> bytes:
    """A zip checkpoint whose storages say they were saved on ``cuda:0``."""
    data = torch_bytes(obj)
    pkl = members(data)["archive/data.pkl"]
    cpu, cuda = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"
    assert cpu in pkl
    return rewrite_zip(data, {"archive/data.pkl": pkl.replace(cpu, cuda)})


def safetensors_bytes(header: dict | str, data: bytes, *, length: int | None = None) -> bytes:
    raw = header if isinstance(header, str) else json.dumps(header)
    raw_bytes = raw.encode()
    return struct.pack("<Q", len(raw_bytes) if length is None else length) + raw_bytes + data


def f32(shape, start, end) -> dict:
    return {"dtype": "F32", "shape": list(shape), "data_offsets": [start, end]}


def zip_with_duplicate_member() -> bytes:
    """A torch archive holding ``archive/data.pkl`` twice (the second an empty dict)."""
    import warnings

    buf = io.BytesIO(torch_bytes(small_state_dict()))
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "a") as zf:
        warnings.simplefilter("ignore")
        zf.writestr(zipfile.ZipInfo("archive/data.pkl"), pickle.dumps({}, protocol=2))
    return buf.getvalue()
