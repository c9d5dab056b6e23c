"""CIFAR-10-C / CIFAR-100-C: a zip of ``<corruption>.npy`` arrays plus ``labels.npy``.

Hendrycks & Dietterich 2019, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations" (ICLR), https://zenodo.org/records/2535967: each corruption is a uint8 array of shape
``(5 * N, 32, 32, 3)`` (HWC), severities 1 to 5 stacked in that order, N = 10,000 test images; ``labels.npy``
holds the ``5 * N`` labels (the test labels repeated per severity; ``N`` labels are accepted too).
Only the ``.npy`` headers and the labels are read at upload; :func:`read_corruption` reads one
``(corruption, severity)`` slice by seeking inside the member, so the whole set is never in memory.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import numpy.lib.format as npy

from workers.datasets.archive import Archive, common_root, open_archive
from workers.datasets.arrays import DatasetArrays, DatasetError, Limits, with_normalization
from workers.datasets.npyfile import read_header

SEVERITIES = (1, 2, 3, 4, 5)
_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def _labels(archive: Archive, member: str, counts: tuple[int, ...]) -> np.ndarray:
    """The labels, once their header shows one of the expected ``counts`` (nothing larger is allocated)."""
    with archive.open(member) as f:
        shape, dtype, _ = read_header(f, repr(member))
    if not np.issubdtype(dtype, np.integer) or len(shape) != 1:
        raise DatasetError(f"{member!r} must be a 1-D integer array; got shape {shape}, dtype {dtype}")
    if shape[0] not in counts:
        need = " or ".join(str(c) for c in counts)
        raise DatasetError(
            f"labels.npy holds {shape[0]} labels; the corruptions hold {counts[0]} images "
            f"(5 severities of {counts[-1]}), so {need} labels are needed"
        )
    with archive.open(member) as f:
        labels = npy.read_array(f, allow_pickle=False).astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= 100_000):
        raise DatasetError(f"{member!r} holds labels outside [0, 100000)")
    return labels


def _counts(meta: dict) -> tuple[int, int]:
    return 5 * meta["samples_per_slice"], meta["samples_per_slice"]


def describe(archive: Archive) -> dict:
    """Validate every member's header and the labels; the meta that :func:`read_corruption` needs."""
    files = [m for m in archive.files() if m.name.endswith(".npy")]
    root = common_root([m.name for m in files])
    by_name = {m.name[len(root) :]: m for m in files if m.name.startswith(root)}
    if "labels.npy" not in by_name:
        raise DatasetError("a CIFAR-C archive needs a labels.npy next to the <corruption>.npy files")
    corruptions = sorted(n[: -len(".npy")] for n in by_name if n != "labels.npy")
    if not corruptions:
        raise DatasetError("the CIFAR-C archive holds labels.npy but no <corruption>.npy arrays")
    shapes = {}
    for name in corruptions:
        if not _NAME.match(name):
            raise DatasetError(f"corruption names are letters, digits, '_' or '-'; got {name!r}")
        member = by_name[name + ".npy"]
        with archive.open(member.name) as f:
            shape, dtype, header = read_header(f, repr(member.name))
        if dtype != np.uint8 or len(shape) != 4 or shape[3] != 3 or shape[0] == 0 or shape[0] % 5:
            raise DatasetError(
                f"{member.name!r} must be uint8 of shape (5*N, H, W, 3), severities 1-5 stacked; "
                f"got shape {shape}, dtype {dtype}"
            )
        if member.size != header + int(np.prod(shape)):
            raise DatasetError(f"{member.name!r} is truncated or padded: its size does not match its header")
        shapes[name] = shape
    first = shapes[corruptions[0]]
    for name, shape in shapes.items():
        if shape != first:
            raise DatasetError(f"every corruption must have the same shape; {name} has {shape}, not {first}")
    per_severity = first[0] // 5
    labels = _labels(archive, by_name["labels.npy"].name, (first[0], per_severity))
    return {
        "root": root,
        "corruptions": corruptions,
        "severities": list(SEVERITIES),
        "samples_per_slice": per_severity,
        "image_shape": [3, first[1], first[2]],
        "num_classes": int(labels.max()) + 1,
    }


def _slice(archive: Archive, meta: dict, labels: np.ndarray, corruption: str, severity: int) -> DatasetArrays:
    if corruption not in meta["corruptions"]:
        raise DatasetError(
            f"unknown corruption {corruption!r}; this set has {', '.join(meta['corruptions'])}"
        )
    if severity not in meta["severities"]:
        raise DatasetError(f"severity must be one of {meta['severities']}; got {severity!r}")
    n = meta["samples_per_slice"]
    _, h, w = meta["image_shape"]
    with archive.open(f"{meta['root']}{corruption}.npy") as f:
        _, _, header = read_header(f, corruption)
        f.seek(header + (severity - 1) * n * h * w * 3)
        data = f.read(n * h * w * 3)
    if len(data) != n * h * w * 3:
        raise DatasetError(f"{corruption}.npy ended early at severity {severity}")
    x = np.frombuffer(data, dtype=np.uint8).reshape(n, h, w, 3).transpose(0, 3, 1, 2)  # (N, 3, H, W)
    y = labels[(severity - 1) * n : severity * n] if len(labels) == 5 * n else labels
    return DatasetArrays(x=np.ascontiguousarray(x), y=y, scale=1 / 255)


def read_corruption(
    path: Path, meta: dict, corruption: str, severity: int, limits: Limits = Limits()
) -> DatasetArrays:
    """The ``(N, 3, H, W)`` images of one corruption at one severity (1-5), with their labels."""
    with open_archive(path, limits) as archive:
        labels = _labels(archive, f"{meta['root']}labels.npy", _counts(meta))
        arrays = _slice(archive, meta, labels, corruption, int(severity))
    return with_normalization(arrays, meta)


def read_all(path: Path, meta: dict, limits: Limits = Limits()) -> DatasetArrays:
    """Every slice stacked, corruption by corruption, severity 1 to 5 within each."""
    n, (c, h, w) = meta["samples_per_slice"], meta["image_shape"]
    total = n * len(meta["corruptions"]) * len(meta["severities"])
    if total * c * h * w > 2_000_000_000:
        raise DatasetError(
            f"this CIFAR-C set holds {total} images, too many to load at once; analyses that read it "
            "one (corruption, severity) at a time can use it"
        )
    with open_archive(path, limits) as archive:
        labels = _labels(archive, f"{meta['root']}labels.npy", _counts(meta))
        parts = [
            _slice(archive, meta, labels, cor, sev)
            for cor in meta["corruptions"]
            for sev in meta["severities"]
        ]
    arrays = DatasetArrays(
        x=np.concatenate([p.x for p in parts]), y=np.concatenate([p.y for p in parts]), scale=1 / 255
    )
    return with_normalization(arrays, meta)
