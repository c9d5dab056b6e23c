"""Checking an uploaded checkpoint before anything deserialises it (DESIGN §5).

The format comes from the bytes, never the file name. Every check here reads the container with the
standard library only (``zipfile``, ``struct``, ``json``, ``pickletools.genops``, which decodes opcodes
without executing them); loading itself happens later in :mod:`workers.sandbox`.

- torch zip (``PK\\x03\\x04``): TorchScript and ``torch.export`` archives are refused with a hint; every
  member STORED, names without ``..``, leading ``/``, backslash or NUL, no duplicates, a bounded count,
  sizes within the file; ``data.pkl`` decoded to list the globals it names and the storages it declares,
  each storage no larger than its ``data/<key>`` record.
- legacy torch (``\\x80\\x02`` + torch's magic number): the pickles decoded the same way, each storage
  record's length checked against the file. Legacy ``.tar`` archives and plain pickles are refused.
- safetensors: header length sane before reading it, JSON without duplicate keys, known dtypes,
  non-negative shapes whose byte size matches the offsets, offsets contiguous and covering the data.

Each check returns the bytes the tensors will take in memory, so a file too large for the configured
caps is refused before a process is started for it.
"""

from __future__ import annotations

import io
import json
import pickletools
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

MAX_ZIP_MEMBERS = 100_000
MAX_PICKLE_BYTES = 64 * 1024 * 1024
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
MAX_RANK = 32
MAX_SHOWN = 200
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

SAFETENSORS_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
STORAGE_ITEMSIZE = {
    "ByteStorage": 1, "CharStorage": 1, "BoolStorage": 1, "QUInt8Storage": 1, "QInt8Storage": 1,
    "UntypedStorage": 1, "ShortStorage": 2, "HalfStorage": 2, "BFloat16Storage": 2, "IntStorage": 4,
    "FloatStorage": 4, "QInt32Storage": 4, "LongStorage": 8, "DoubleStorage": 8,
    "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1,
}  # fmt: skip
# Globals a weights file may name; torch's weights_only unpickler is the real gate, this gives early hints.
_SAFE_BUILTINS = {"set", "frozenset", "bytearray", "slice", "complex", "int", "float", "bool", "str"}
_MODEL_MODULES = ("torch.nn.modules", "torch.fx", "torch.jit", "torch_pruning", "__main__")
SAVE_HINT = "save the weights instead: torch.save(model.state_dict(), 'weights.pt')"


class CheckpointError(ValueError):
    """An uploaded checkpoint that cannot be used, with a message that says what to do."""


@dataclass
class LoadedCheckpoint:
    format: str
    state_dict: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Preflight:
    """What the container checks found: the format, and the bytes its tensors take once loaded."""

    format: str
    tensor_bytes: int


def show(text: object) -> str:
    """An attacker-controlled name as a short, escaped Python literal (never markup, never a path)."""
    text = str(text)
    return repr(text[:MAX_SHOWN]) + ("..." if len(text) > MAX_SHOWN else "")


# --- format --------------------------------------------------------------------------------------


def detect_format(head: bytes) -> str:
    """``torch_zip``, ``safetensors`` or ``torch_legacy`` from the first 512 bytes, or CheckpointError."""
    if len(head) == 0:
        raise CheckpointError("the file is empty")
    if head.startswith(b"PK\x03\x04"):
        return "torch_zip"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and _is_legacy(head):
        return "torch_legacy"
    if head[257:262] == b"ustar":
        raise CheckpointError(
            "this is a tar archive (torch's pre-1.0 '.tar' checkpoint format), which PruneScope does not "
            f"load; load it with a trusted PyTorch and {SAVE_HINT}"
        )
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise CheckpointError(
            "this is a plain Python pickle, not a torch.save checkpoint; pickles can run code, and "
            f"PruneScope loads torch files only with weights_only=True: {SAVE_HINT}"
        )
    raise CheckpointError(
        "not a checkpoint PruneScope can read: expected a torch.save state_dict (.pt/.pth) "
        "or a .safetensors file"
    )


def _is_legacy(head: bytes) -> bool:
    """A legacy torch.save file starts with a pickle of torch's magic number (any protocol)."""
    try:
        return scan_pickle(io.BytesIO(head), len(head)).result == LEGACY_MAGIC
    except CheckpointError:
        return False


# --- pickle scan (no execution) ------------------------------------------------------------------


class _Opaque:
    """A value the scan does not track."""


_OPAQUE = _Opaque()
_MARK = object()


@dataclass
class PickleScan:
    globals: list[str] = field(default_factory=list)
    storages: list[tuple] = field(default_factory=list)  # persistent ids: ('storage', type, key, loc, n)
    result: object = None


class _Bounded:
    """A reader whose ``read(n)`` never asks for more than what is left (a pickle may claim 2^63 bytes)."""

    def __init__(self, f, end: int):
        self.f, self.end = f, end

    def read(self, n: int = -1) -> bytes:
        left = max(0, self.end - self.f.tell())
        return self.f.read(left if n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self.f.readline(min(1 << 20, max(0, self.end - self.f.tell())))

    def tell(self) -> int:
        return self.f.tell()


def _pop_to_mark(stack: list) -> list:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1 :]
            del stack[i:]
            return items
    raise CheckpointError("the pickle in the checkpoint is malformed (no mark)")


def _pop(stack: list, n: int) -> list:
    if n > len(stack):
        raise CheckpointError("the pickle in the checkpoint is malformed (stack underflow)")
    items = stack[len(stack) - n :] if n else []
    del stack[len(stack) - n :]
    return items


_SIMPLE = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG", "BINUNICODE",
           "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING",
           "BINFLOAT", "FLOAT"}  # fmt: skip


def _step(op, arg, stack: list, memo: dict, scan: PickleScan) -> None:  # noqa: C901, PLR0912
    name = op.name
    if name in _SIMPLE:
        stack.append(arg)
    elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
        stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
    elif name == "GLOBAL":
        scan.globals.append(arg.replace(" ", "."))
        stack.append(("global", arg.replace(" ", ".")))
    elif name == "STACK_GLOBAL":
        mod, qual = _pop(stack, 2)
        full = f"{mod}.{qual}" if isinstance(mod, str) and isinstance(qual, str) else "<computed>"
        scan.globals.append(full)
        stack.append(("global", full))
    elif name in ("INST", "EXT1", "EXT2", "EXT4"):  # a class named inline, or by the copyreg registry
        if name == "INST":
            scan.globals.append(arg.replace(" ", "."))
            _pop_to_mark(stack)
        else:
            scan.globals.append(f"<extension {arg}>")
        stack.append(_OPAQUE)
    elif name == "MARK":
        stack.append(_MARK)
    elif name == "TUPLE":
        stack.append(tuple(_pop_to_mark(stack)))
    elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        stack.append(tuple(_pop(stack, int(name[-1]))))
    elif name == "EMPTY_TUPLE":
        stack.append(())
    elif name == "EMPTY_LIST":
        stack.append([])
    elif name in ("APPEND", "APPENDS"):
        items = _pop(stack, 1) if name == "APPEND" else _pop_to_mark(stack)
        if not stack:
            raise CheckpointError("the pickle in the checkpoint is malformed (stack underflow)")
        if isinstance(stack[-1], list):
            stack[-1].extend(items)
    elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
        if not stack:
            raise CheckpointError("the pickle in the checkpoint is malformed (stack underflow)")
        memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo.get(arg, _OPAQUE))
    elif name in ("BINPERSID", "PERSID"):
        pid = _pop(stack, 1)[0] if name == "BINPERSID" else arg
        scan.storages.append(pid if isinstance(pid, tuple) else (pid,))
        stack.append(_OPAQUE)
    elif name in ("PROTO", "FRAME"):
        pass
    elif name == "STOP":
        scan.result = _pop(stack, 1)[0]
    else:
        before, after = op.stack_before, op.stack_after
        if pickletools.markobject in before:
            _pop_to_mark(stack)
            _pop(stack, before.index(pickletools.markobject))
        else:
            _pop(stack, len(before))
        stack.extend(_OPAQUE for _ in after)


def scan_pickle(f, end: int) -> PickleScan:
    """Decode one pickle from ``f`` (up to offset ``end``) without executing it; stop after STOP."""
    scan, stack, memo = PickleScan(), [], {}
    try:
        for op, arg, _pos in pickletools.genops(_Bounded(f, end)):
            _step(op, arg, stack, memo, scan)
    except CheckpointError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"the pickle in the checkpoint is malformed or truncated ({exc})") from None
    return scan


def check_globals(names: list[str]) -> None:
    """Refuse pickles that name code a weights file never needs, with the hint that fits."""
    for name in names:
        module, _, attr = name.rpartition(".")
        if module == "torch" or module.startswith("torch.") and not module.startswith(_MODEL_MODULES):
            continue
        if name in ("collections.OrderedDict", "_codecs.encode") or module.startswith("numpy"):
            continue
        if module in ("builtins", "__builtin__") and attr in _SAFE_BUILTINS:
            continue
        raise CheckpointError(
            f"the file holds Python objects beyond tensors (it names {show(name)}), e.g. a whole model "
            "saved with torch.save(model) or by Torch-Pruning, or code; PruneScope loads weights only "
            f"(weights_only=True): {SAVE_HINT}"
        )


def _storage_bytes(pid: tuple) -> tuple[str, int, int]:
    """(key, bytes, itemsize) of a ('storage', type, key, location, numel, ...) persistent id."""
    if len(pid) < 5 or pid[0] != "storage" or not isinstance(pid[2], str):
        raise CheckpointError("the checkpoint declares a storage torch does not write")
    kind, numel = pid[1], pid[4]
    cls = kind[1].rpartition(".")[2] if isinstance(kind, tuple) and kind[:1] == ("global",) else None
    if cls not in STORAGE_ITEMSIZE:
        raise CheckpointError(f"the checkpoint declares a storage of unknown type {show(cls)}")
    if isinstance(numel, bool) or not isinstance(numel, int) or numel < 0:
        raise CheckpointError(f"storage {show(pid[2])} declares an invalid size")
    return pid[2], numel * STORAGE_ITEMSIZE[cls], STORAGE_ITEMSIZE[cls]


# --- torch zip -----------------------------------------------------------------------------------


def _member_name_ok(name: str) -> bool:
    parts = name.split("/")
    return not (name.startswith("/") or "\\" in name or "\x00" in name or ".." in parts or ":" in parts[0])


def _refuse_other_zip_kinds(names: list[str]) -> None:
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        raise CheckpointError(
            "this is a TorchScript archive, which cannot be loaded safely (no weights-only mode exists); "
            f"load it with torch.jit.load where you trust it and {SAVE_HINT}"
        )
    if any(n.endswith(("/archive_format", "/models/model.json")) or "/sample_inputs/" in n for n in names):
        raise CheckpointError(
            "this is a torch.export .pt2 archive, which PruneScope refuses (torch.export.load can fall back "
            "to weights_only=False); where you trust it, save the weights instead: "
            "torch.save(torch.export.load('m.pt2').module().state_dict(), 'weights.pt')"
        )


def check_torch_zip(path: Path) -> int:
    """Container checks of a torch zip archive; returns the bytes its storages declare."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise CheckpointError(f"the archive has more than {MAX_ZIP_MEMBERS} members")
            names = [i.filename for i in infos]
            for name in (i.orig_filename for i in infos):  # zipfile cuts names at NUL; check the raw ones
                if not _member_name_ok(name):
                    raise CheckpointError(f"the archive has an unsafe member name {show(name)}")
            if len(set(names)) != len(names):
                raise CheckpointError("the archive has duplicate member names")
            _refuse_other_zip_kinds(names)
            for info in infos:
                if info.compress_type != zipfile.ZIP_STORED:
                    raise CheckpointError(
                        f"archive member {show(info.filename)} is compressed; torch.save writes uncompressed "
                        "archives (a compressed member can inflate to far more memory than the file's size)"
                    )
                if info.file_size != info.compress_size or info.header_offset + info.file_size > size:
                    raise CheckpointError(
                        f"archive member {show(info.filename)} declares more bytes than the file holds"
                    )
            if sum(i.file_size for i in infos) > size:
                raise CheckpointError("the archive's members declare more bytes than the file holds")
            pkl = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
            if len(pkl) != 1:
                raise CheckpointError("this zip archive is not a torch.save checkpoint (no data.pkl)")
            if zf.getinfo(pkl[0]).file_size > MAX_PICKLE_BYTES:
                raise CheckpointError("the checkpoint's data.pkl is larger than 64 MiB")
            raw = zf.read(pkl[0])
            records = {i.filename: i.file_size for i in infos}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"the zip container is damaged or truncated: {exc}") from None
    scan = scan_pickle(io.BytesIO(raw), len(raw))
    check_globals(scan.globals)
    prefix = pkl[0].rpartition("/")[0]
    total = 0
    for pid in scan.storages:
        key, nbytes, _ = _storage_bytes(pid)
        record = records.get(f"{prefix}/data/{key}")
        if record is None:
            raise CheckpointError(f"storage {show(key)} has no record in the archive")
        if nbytes > record:
            raise CheckpointError(
                f"storage {show(key)} declares {nbytes} bytes but its record holds {record}"
            )
        total += nbytes
    return total


# --- legacy torch --------------------------------------------------------------------------------


def check_torch_legacy(path: Path) -> int:
    """Walk a legacy ``torch.save`` file: magic, protocol, sys_info, the object, storage keys, records."""
    size = path.stat().st_size
    with path.open("rb") as f:
        magic = scan_pickle(f, size).result
        protocol = scan_pickle(f, size).result
        if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
            raise CheckpointError("this legacy torch file has an unknown magic number or protocol")
        scan_pickle(f, size)  # sys_info
        main = scan_pickle(f, size)
        check_globals(main.globals)
        keys = scan_pickle(f, size).result
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise CheckpointError("this legacy torch file lists its storages in an unknown way")
        declared = {key: (nbytes, itemsize) for key, nbytes, itemsize in map(_storage_bytes, main.storages)}
        total = 0
        for key in keys:
            head = f.read(8)
            if len(head) < 8 or key not in declared:
                raise CheckpointError("the checkpoint ends before its tensors do (truncated?)")
            (count,) = struct.unpack("<q", head)
            nbytes, itemsize = declared[key]
            if count < 0 or count * itemsize != nbytes or f.tell() + nbytes > size:
                raise CheckpointError(f"storage {show(key)} declares more bytes than the file holds")
            f.seek(nbytes, io.SEEK_CUR)
            total += nbytes
    return total


# --- safetensors ---------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dupe = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise CheckpointError(f"the safetensors header repeats the key {show(dupe)}")
    return out


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _entry_span(key: str, entry: object, data_size: int, max_elements: int) -> tuple[int, int, int]:
    """(start, end, elements) of one header entry, all fields checked."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise CheckpointError(f"safetensors entry {show(key)} needs exactly dtype, shape and data_offsets")
    itemsize = SAFETENSORS_ITEMSIZE.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    if itemsize is None:
        raise CheckpointError(f"safetensors entry {show(key)} has an unknown dtype {show(entry['dtype'])}")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(_is_int(s) and s >= 0 for s in shape):
        raise CheckpointError(f"safetensors entry {show(key)} has an invalid shape")
    numel = 1
    for s in shape:
        numel *= s
        if numel > max_elements:
            raise CheckpointError(
                f"safetensors entry {show(key)} holds more than {max_elements} elements, the configured limit"
            )
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets):
        raise CheckpointError(f"safetensors entry {show(key)} has invalid data_offsets")
    start, end = offsets
    if not 0 <= start <= end <= data_size:
        raise CheckpointError(f"safetensors entry {show(key)} points outside the file's data")
    if end - start != numel * itemsize:
        raise CheckpointError(f"safetensors entry {show(key)}: its shape does not match its byte range")
    return start, end, numel


def validate_safetensors_header(raw: bytes, data_size: int, *, max_elements: int) -> int:
    """Check a safetensors JSON header against a data section of ``data_size`` bytes; return its bytes.

    Raises only :class:`CheckpointError`; allocates nothing beyond what parsing ``raw`` needs.
    """
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except CheckpointError:
        raise
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"the safetensors header is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(header, dict):
        raise CheckpointError("the safetensors header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError("the safetensors __metadata__ must map names to strings")
    spans, total = [], 0
    for key, entry in header.items():
        start, end, numel = _entry_span(key, entry, data_size, max_elements)
        total += numel
        if total > max_elements:
            raise CheckpointError(
                f"the checkpoint holds more than {max_elements} elements, the configured limit"
            )
        spans.append((start, end))
    expected = 0
    for start, end in sorted(spans):
        if start != expected:
            raise CheckpointError("the safetensors data offsets overlap or leave gaps")
        expected = end
    if expected != data_size:
        raise CheckpointError("the safetensors data offsets do not cover the file's data exactly")
    return data_size


def check_safetensors(path: Path, *, max_elements: int) -> int:
    """Read and check a safetensors header without trusting its length; returns the data bytes."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError("the safetensors file is shorter than its header length")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_SAFETENSORS_HEADER or n > size - 8:
            raise CheckpointError(f"the safetensors header claims {n} bytes; the file holds {size - 8}")
        raw = f.read(n)
    return validate_safetensors_header(raw, size - 8 - n, max_elements=max_elements)


def preflight(path: Path, *, max_elements: int) -> Preflight:
    """Detect the format and run its container checks; nothing here deserialises."""
    with path.open("rb") as f:
        head = f.read(512)
    fmt = detect_format(head)
    if fmt == "safetensors":
        return Preflight(fmt, check_safetensors(path, max_elements=max_elements))
    if fmt == "torch_zip":
        return Preflight(fmt, check_torch_zip(path))
    return Preflight(fmt, check_torch_legacy(path))


# --- pruning masks -------------------------------------------------------------------------------


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
                    f"prune mask {show(base + '_mask')} has shape {tuple(mask.shape)} "
                    f"but {show(key)} has {tuple(value.shape)}"
                )
            out[base] = value * mask.to(value.dtype)
            masks[base] = mask.bool()
        elif key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state_dict:
            continue
        else:
            out[key] = value
    return out, masks


def zero_masks(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Masks inferred from weights that are exactly zero (pruning baked in by ``prune.remove``)."""
    return {
        key: value != 0
        for key, value in state_dict.items()
        if key.endswith("weight")
        and value.dim() > 1
        and value.is_floating_point()
        and bool((value == 0).any())
    }
