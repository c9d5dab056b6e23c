"""Which format an upload is (from its bytes, never its name), what it holds, and how workers read it.

=================  =======================================================  ==============================
format             detected by                                              ``meta``
=================  =======================================================  ==============================
``npz``            a zip whose members include ``x.npy`` and ``y.npy``       ``{}`` (mean/std in the file)
``cifar10-binary`` a raw file of 3073-byte records, or a zip / tar(.gz)     ``container``, ``split``,
                   holding ``.bin`` batches                                 ``members``, ``classes``
``cifar-c``        a zip holding ``labels.npy`` and ``<corruption>.npy``     ``corruptions``, ``severities``,
                                                                            ``samples_per_slice``, ...
``imagefolder``    any other zip: ``<class>/<image>`` members                ``classes``, ``image_size``,
                                                                            ``limits``
=================  =======================================================  ==============================

Every format may also carry ``meta["normalization"] = {"mean": [...], "std": [...]}`` (per channel,
applied after pixels are scaled to [0, 1]; an ``.npz`` carries its own instead). The stored blob is the
upload itself; :func:`read_dataset` turns it into arrays on a worker.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from workers.datasets import cifar, cifar_c, imagefolder
from workers.datasets.archive import GZIP_MAGIC, Archive, is_tar, open_archive
from workers.datasets.arrays import DatasetArrays, DatasetError, Limits, validate, with_normalization
from workers.datasets.npz import read_npz

FORMATS = ("npz", "cifar10-binary", "cifar-c", "imagefolder")
_NOT_KNOWN = (
    "not an .npz, a CIFAR-10 binary batch (or a zip / tar.gz of them), a CIFAR-C zip or an ImageFolder zip"
)


@dataclass(frozen=True)
class Options:
    """Choices an uploader may make; each applies to some formats only."""

    split: str | None = None  # cifar10-binary archives: train | test | all (default test)
    image_size: list[int] | None = None  # imagefolder: [H, W] (default: the most common size)
    mean: list[float] | None = None  # image formats: per-channel normalisation
    std: list[float] | None = None


@dataclass(frozen=True)
class Described:
    """What the server stores about a data set."""

    format: str
    meta: dict
    sample_count: int
    input_shape: list[int]
    num_classes: int
    arrays: DatasetArrays | None = field(default=None, repr=False)


def _zip_kind(archive: Archive) -> str:
    names = {m.name.rsplit("/", 1)[-1] for m in archive.files()}
    top = {m.name for m in archive.files()}
    if {"x.npy", "y.npy"} <= top:
        return "npz"
    if "labels.npy" in names:
        return "cifar-c"
    if any(n.endswith(".bin") for n in names):
        return "cifar10-binary"
    if top and all("/" not in n and n.endswith(".npy") for n in top):  # an .npz without x or y
        found = sorted(n.removesuffix(".npy") for n in top)[:10]
        raise DatasetError(f"an .npz data set needs arrays 'x' and 'y'; found {found!r}")
    return "imagefolder"


def detect(path: Path, limits: Limits = Limits()) -> str:
    """The format of the file at ``path``, from its bytes."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(512)
    size = path.stat().st_size
    if head.startswith(b"PK"):
        with open_archive(path, limits) as archive:
            return _zip_kind(archive)
    if head.startswith(GZIP_MAGIC) or is_tar(head):
        return "cifar10-binary"
    if head.startswith(b"\x93NUMPY"):
        raise DatasetError(f"{_NOT_KNOWN}: a lone .npy array; zip it with labels.npy (CIFAR-C) or use .npz")
    if size % cifar.RECORD == 0 and cifar.looks_like_batch(size, head):
        return "cifar10-binary"
    if cifar.looks_like_batch(size, head):
        raise DatasetError(
            f"not a CIFAR-10 binary batch: {size} bytes is not a whole number of {cifar.RECORD}-byte records "
            "(1 label byte + 3072 pixel bytes); truncated, or another record size"
        )
    raise DatasetError(_NOT_KNOWN)


def _normalization(options: Options, channels: int) -> dict:
    out = {}
    for name in ("mean", "std"):
        value = getattr(options, name)
        if value is None:
            continue
        if len(value) not in (1, channels):
            raise DatasetError(f"{name} needs 1 or {channels} values (one per channel); got {len(value)}")
        out[name] = [float(v) for v in value]
    return {"normalization": out} if out else {}


def _refuse(options: Options, fmt: str, *names: str) -> None:
    for name in names:
        if getattr(options, name) is not None:
            raise DatasetError(f"{name} does not apply to a {fmt} data set")


def describe(path: Path, options: Options = Options(), limits: Limits = Limits()) -> Described:
    """Detect, validate completely and summarise the file at ``path``."""
    fmt = detect(path, limits)
    if fmt == "npz":
        _refuse(options, fmt, "split", "image_size", "mean", "std")
        return _summary(fmt, {}, read_npz(path))
    if fmt == "cifar-c":
        _refuse(options, fmt, "split", "image_size")
        with open_archive(path, limits) as archive:
            meta = cifar_c.describe(archive)
        meta |= _normalization(options, 3)
        with_normalization(cifar_c.read_corruption(path, meta, meta["corruptions"][0], 1, limits), meta)
        count = meta["samples_per_slice"] * len(meta["corruptions"]) * len(meta["severities"])
        return Described(fmt, meta, count, meta["image_shape"], meta["num_classes"])
    if fmt == "imagefolder":
        _refuse(options, fmt, "split")
        with open_archive(path, limits) as archive:
            arrays, meta = imagefolder.read_archive(archive, options.image_size, limits)
        meta["limits"] = {
            "max_image_pixels": limits.max_image_pixels,
            "max_total_pixels": limits.max_total_pixels,
        }
        meta |= _normalization(options, 3)
        return _summary(fmt, meta, with_normalization(arrays, meta))
    _refuse(options, fmt, "image_size")
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith((b"PK", GZIP_MAGIC)) or is_tar(head):
        with open_archive(path, limits) as archive:
            meta = cifar.describe_archive(archive, options.split)
    else:
        _refuse(options, "single-batch CIFAR-10", "split")
        meta = {"container": "raw", "classes": cifar.CLASSES}
    meta |= _normalization(options, 3)
    return _summary(fmt, meta, cifar.read_cifar10(path, meta, limits))


def _summary(fmt: str, meta: dict, arrays: DatasetArrays) -> Described:
    arrays = validate(arrays)
    return Described(fmt, meta, len(arrays.y), arrays.input_shape, arrays.num_classes, arrays)


def read_dataset(path: Path, format: str, meta: dict) -> DatasetArrays:  # noqa: A002 - the column's name
    """The arrays of a stored data set (``format`` and ``meta`` as :func:`describe` gave them)."""
    if format == "npz":
        return read_npz(path)
    if format == "cifar10-binary":
        return cifar.read_cifar10(path, meta)
    if format == "cifar-c":
        return cifar_c.read_all(path, meta)
    if format == "imagefolder":
        return imagefolder.read_imagefolder(path, meta, Limits(**meta.get("limits", {})))
    raise DatasetError(f"unknown data set format {format!r}; known: {', '.join(FORMATS)}")


def read_corruption(path: Path, meta: dict, corruption: str, severity: int) -> DatasetArrays:
    """One ``(corruption, severity)`` slice of a ``cifar-c`` data set, as ``(N, 3, H, W)`` uint8 pixels."""
    return cifar_c.read_corruption(path, meta, corruption, severity)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_source(path: str, sha256: str) -> Path:
    """A server-side data set's file, refused if a link now redirects it or its bytes changed.

    Registration stored the fully resolved path and the file's sha256; a worker re-resolves the path
    (it must resolve to itself) and re-hashes the whole file before reading it, so a swapped symlink or
    an edited file fails the job instead of silently changing its data.
    """
    if os.path.realpath(path) != path:
        raise DatasetError(
            "the data set's server path now resolves elsewhere (a link changed); re-register it"
        )
    try:
        actual = file_sha256(Path(path))
    except OSError as exc:
        raise DatasetError(f"the data set's server file cannot be read: {exc.strerror}") from None
    if actual != sha256:
        raise DatasetError("the data set's server file changed since it was registered; re-register it")
    return Path(path)
