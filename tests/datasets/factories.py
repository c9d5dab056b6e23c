"""Data set files crafted at test time, in every format the server reads (no committed binaries)."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib

import numpy as np
from PIL import Image


def cifar_records(n: int = 20, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random CIFAR-10 images ``(n, 3, 32, 32)`` uint8 and labels ``(n,)``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, size=n)


def cifar_batch(n: int = 20, *, seed: int = 0) -> bytes:
    """A CIFAR-10 binary batch: per record one label byte, then R, G, B planes of 32x32."""
    x, y = cifar_records(n, seed=seed)
    records = np.concatenate([y.astype(np.uint8)[:, None], x.reshape(n, -1)], axis=1)  # (n, 3073)
    return records.tobytes()


def cifar_tar_gz(batches: dict[str, bytes], root: str = "cifar-10-batches-bin/") -> bytes:
    """The layout of ``cifar-10-binary.tar.gz``: a top folder of batches plus a text member."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        members = {**batches, "batches.meta.txt": b"airplane\nautomobile\n"}
        for name, data in members.items():
            info = tarfile.TarInfo(root + name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_of(members: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def cifar_c_arrays(corruptions=("fog", "brightness"), n: int = 4, *, seed: int = 0) -> dict[str, np.ndarray]:
    """``<corruption>`` arrays ``(5n, 32, 32, 3)`` uint8, ``labels`` ``(5n,)`` (n test labels tiled 5x)."""
    rng = np.random.default_rng(seed)
    out = {c: rng.integers(0, 256, size=(5 * n, 32, 32, 3), dtype=np.uint8) for c in corruptions}
    out["labels"] = np.tile(rng.integers(0, 10, size=n), 5).astype(np.int64)
    return out


def cifar_c_zip(arrays: dict[str, np.ndarray], root: str = "") -> bytes:
    return zip_of({f"{root}{name}.npy": npy(a) for name, a in arrays.items()})


def image_bytes(size: tuple[int, int], fmt: str, *, color=(200, 30, 30), mode: str = "RGB") -> bytes:
    """An image of ``size`` (W, H) in ``fmt``."""
    buf = io.BytesIO()
    img = Image.new(mode, size, color if mode == "RGB" else 128)
    img.save(buf, format=fmt)
    return buf.getvalue()


def imagefolder_members() -> dict[str, bytes]:
    """3 classes, PNG and JPEG, 5 images of 16x16 and 2 of 24x12 (W x H), one grayscale."""
    return {
        "cat/1.png": image_bytes((16, 16), "PNG"),
        "cat/2.jpg": image_bytes((16, 16), "JPEG"),
        "dog/1.png": image_bytes((24, 12), "PNG", color=(0, 0, 255)),
        "dog/2.png": image_bytes((16, 16), "PNG", mode="L"),
        "bird/1.jpeg": image_bytes((16, 16), "JPEG", color=(0, 255, 0)),
        "bird/2.png": image_bytes((24, 12), "PNG"),
        "bird/3.png": image_bytes((16, 16), "PNG"),
    }


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def zip_with_raw_name(name: bytes, data: bytes = b"x") -> bytes:
    """A zip whose member name is exactly ``name`` (NUL and all), patched in after writing."""
    placeholder = b"Z" * len(name)
    raw = zip_of({placeholder.decode(): data}, compression=zipfile.ZIP_STORED)
    return raw.replace(placeholder, name)


def huge_npy_header(count: int = 10**12) -> bytes:
    """An ``.npy`` header declaring ``count`` int64 values, followed by none of them."""
    buf = io.BytesIO()
    header = {"descr": "<i8", "fortran_order": False, "shape": (count,)}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()
