"""ImageFolder zips: ``<class>/<image>`` members (optionally under one top folder), as torchvision reads them.

Classes are the folder names, sorted; every image is decoded with Pillow from memory (PNG, JPEG, BMP,
GIF, WebP, TIFF only), converted to RGB and resized to one size: the most common one, or the
``image_size`` asked for. Each image's size is read from its header and checked against
``Limits.max_image_pixels`` before it is decoded, and the sum over all images against
``Limits.max_total_pixels``, so a decompression bomb is refused before it costs memory.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from workers.datasets.archive import Archive, common_root, open_archive
from workers.datasets.arrays import DatasetArrays, DatasetError, Limits, with_normalization

FORMATS = ["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"]
MAX_MEMBER_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class _Entry:
    member: str
    label: int
    size: tuple[int, int]  # (W, H) as Pillow reports it


def _open(data: bytes, member: str, limits: Limits) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DatasetError(f"{member!r} declares too many pixels (a decompression bomb?)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(
            f"{member!r} is not an image Pillow can read ({', '.join(FORMATS)}): {exc}"
        ) from None
    w, h = img.size
    if w * h > limits.max_image_pixels:
        raise DatasetError(
            f"{member!r} declares {w}x{h} = {w * h} pixels; at most {limits.max_image_pixels} per image"
        )
    return img


def _entries(archive: Archive, limits: Limits) -> tuple[list[str], list[_Entry]]:
    files = archive.files()
    if not files:
        raise DatasetError("the zip holds no files")
    root = common_root([m.name for m in files])
    if root and all(m.name[len(root) :].count("/") == 0 for m in files):
        root = ""  # one folder of images is one class, not a root
    names = {m.name: m for m in files}
    rel = {m.name: m.name[len(root) :] for m in files}
    for member, path in rel.items():
        if path.count("/") != 1:
            raise DatasetError(f"an ImageFolder zip holds <class>/<image> members; {member!r} is not one")
        if names[member].size > MAX_MEMBER_BYTES:
            raise DatasetError(f"{member!r} is larger than {MAX_MEMBER_BYTES} bytes")
    classes = sorted({p.split("/", 1)[0] for p in rel.values()})
    index = {c: i for i, c in enumerate(classes)}
    entries, total = [], 0
    for member in sorted(rel):
        img = _open(archive.read(member), member, limits)
        total += img.size[0] * img.size[1]
        img.close()
        if total > limits.max_total_pixels:
            raise DatasetError(f"the images hold more than {limits.max_total_pixels} pixels in all")
        entries.append(_Entry(member, index[rel[member].split("/", 1)[0]], img.size))
    return classes, entries


def _target(entries: list[_Entry], image_size: list[int] | None, limits: Limits) -> tuple[int, int]:
    if image_size is not None:
        h, w = image_size
    else:
        (w, h), _ = Counter(e.size for e in entries).most_common(1)[0]
    if len(entries) * w * h > limits.max_total_pixels:
        raise DatasetError(f"{len(entries)} images of {h}x{w} exceed {limits.max_total_pixels} pixels in all")
    return h, w


def _decode(archive: Archive, entry: _Entry, size: tuple[int, int], limits: Limits) -> np.ndarray:
    h, w = size
    img = _open(archive.read(entry.member), entry.member, limits)
    try:
        rgb = img.convert("RGB")
        if rgb.size != (w, h):
            rgb = rgb.resize((w, h), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)  # (3, H, W)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"{entry.member!r} could not be decoded: {exc}") from None
    finally:
        img.close()


def read_archive(
    archive: Archive, image_size: list[int] | None, limits: Limits
) -> tuple[DatasetArrays, dict]:
    classes, entries = _entries(archive, limits)
    h, w = _target(entries, image_size, limits)
    x = np.stack([_decode(archive, e, (h, w), limits) for e in entries])  # (N, 3, H, W) uint8
    y = np.array([e.label for e in entries], dtype=np.int64)
    meta = {"classes": classes, "image_size": [h, w]}
    return DatasetArrays(x=x, y=y, scale=1 / 255), meta


def read_imagefolder(path: Path, meta: dict, limits: Limits = Limits()) -> DatasetArrays:
    with open_archive(path, limits) as archive:
        arrays, _ = read_archive(archive, meta["image_size"], limits)
    return with_normalization(arrays, meta)
