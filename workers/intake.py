"""Reading uploaded checkpoints safely: format from the bytes, container checks, weights only.

Users upload weights, never code (DESIGN §5). The format is detected from the first bytes,
never from the file name; a torch zip archive is checked before torch sees it (every member
STORED, safe member names, sizes within the file), and loading uses
``torch.load(weights_only=True, mmap=True)`` or safetensors. A failed load is never retried
with ``weights_only=False``.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

MAX_ZIP_MEMBERS = 100_000
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")


class CheckpointError(ValueError):
    """An uploaded checkpoint that cannot be used, with a message that says what to do."""


@dataclass
class LoadedCheckpoint:
    format: str
    state_dict: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)


def detect_format(head: bytes) -> str:
    if len(head) == 0:
        raise CheckpointError("the file is empty")
    if head.startswith(b"PK\x03\x04"):
        return "torch_zip"
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= MAX_SAFETENSORS_HEADER and head[8:9] == b"{":
            return "safetensors"
    if head.startswith(b"\x80\x02"):
        return "torch_legacy"
    raise CheckpointError(
        "not a checkpoint PruneScope can read: expected a torch.save state_dict (.pt/.pth) "
        "or a .safetensors file"
    )


def check_torch_zip(path: Path) -> None:
    """Refuse archives torch would inflate or that smuggle odd member names."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"the zip container is damaged: {exc}") from None
    if len(infos) > MAX_ZIP_MEMBERS:
        raise CheckpointError(f"the archive has {len(infos)} members; at most {MAX_ZIP_MEMBERS} are allowed")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise CheckpointError("the archive has duplicate member names")
    for info in infos:
        name = info.filename
        if name.startswith(("/", "\\")) or "\\" in name or "\x00" in name or ".." in name.split("/"):
            raise CheckpointError(f"the archive has an unsafe member name {name!r}")
        if info.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(
                f"archive member {name!r} is compressed; torch.save writes uncompressed archives "
                "(a compressed member can inflate to far more memory than the file's size)"
            )
        if info.file_size > size or info.compress_size > size:
            raise CheckpointError(f"archive member {name!r} declares more bytes than the file holds")
    if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        if any(n.endswith("/constants.pkl") or "code/" in n for n in names):
            raise CheckpointError(
                "this is a TorchScript archive, which cannot be loaded safely; "
                "save the weights instead: torch.save(model.state_dict(), 'weights.pt')"
            )
        raise CheckpointError("this zip archive is not a torch.save checkpoint (no data.pkl)")


def _unwrap(obj) -> tuple[dict[str, torch.Tensor], dict]:
    meta: dict = {}
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                meta = {
                    str(k): v for k, v in obj.items() if k != key and isinstance(v, (int, float, str, bool))
                }
                obj = inner
                break
    if isinstance(obj, torch.nn.Module):  # cannot happen with weights_only=True; kept as a guard
        raise CheckpointError("the file holds a whole pickled model; save model.state_dict() instead")
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"expected a state_dict (a mapping of names to tensors); the file holds a {type(obj).__name__}"
        )
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError("the file holds no tensors")
    return tensors, meta


def _load_torch(path: Path) -> object:
    try:
        return torch.load(path, weights_only=True, mmap=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"torch could not load the file with weights_only=True ({msg}); "
            "save a plain state_dict: torch.save(model.state_dict(), 'weights.pt')"
        ) from None


def _check_safetensors_header(path: Path) -> None:
    size = path.stat().st_size
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > size - 8:
            raise CheckpointError("the safetensors header is longer than the file")
        raw = f.read(n)

    def _no_dupes(pairs):
        out = dict(pairs)
        if len(out) != len(pairs):
            dupes = sorted({k for k, _ in pairs if sum(1 for k2, _ in pairs if k2 == k) > 1})
            raise CheckpointError(f"the safetensors header repeats the key {dupes[0]!r}")
        return out

    try:
        header = json.loads(raw, object_pairs_hook=_no_dupes)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"the safetensors header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise CheckpointError("the safetensors header is not a JSON object")
    spans = sorted(
        tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
    )
    expected = 0
    for start, end in spans:
        if start != expected or end < start:
            raise CheckpointError("the safetensors data offsets are not contiguous")
        expected = end
    if expected != size - 8 - n:
        raise CheckpointError("the safetensors data offsets do not cover the file exactly")


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    _check_safetensors_header(path)
    try:
        tensors = load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except (SafetensorError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"the safetensors file could not be read: {exc}") from None
    return tensors, meta


def load_checkpoint(path: Path) -> LoadedCheckpoint:
    """Read a checkpoint file into a flat state_dict of CPU tensors, or raise CheckpointError."""
    with path.open("rb") as f:
        head = f.read(64)
    fmt = detect_format(head)
    if fmt == "safetensors":
        tensors, meta = _load_safetensors(path)
        return LoadedCheckpoint(fmt, dict(tensors), meta)
    if fmt == "torch_zip":
        check_torch_zip(path)
    tensors, meta = _unwrap(_load_torch(path))
    return LoadedCheckpoint(fmt, tensors, meta)


def fold_prune_masks(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict]:
    """Fold ``torch.nn.utils.prune`` pairs (``w_orig``, ``w_mask``) into ``w = w_orig * w_mask``.

    Returns the folded state_dict and the masks by parameter name.
    """
    out: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith("_orig") and key[: -len("_orig")] + "_mask" in state_dict:
            base = key[: -len("_orig")]
            mask = state_dict[base + "_mask"]
            if mask.shape != value.shape:
                raise CheckpointError(
                    f"prune mask {base + '_mask'!r} has shape {tuple(mask.shape)} "
                    f"but {key!r} has {tuple(value.shape)}"
                )
            out[base] = value * mask.to(value.dtype)
            masks[base] = mask.bool()
        elif key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state_dict:
            continue
        else:
            out[key] = value
    return out, masks
