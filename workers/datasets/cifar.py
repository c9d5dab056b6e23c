"""CIFAR-10 binary batches (``data_batch_1.bin`` ... ``test_batch.bin``), alone or in a zip / tar.gz.

A batch is N records of 3073 bytes: one label byte (0-9), then 3072 pixel bytes, the 1024 red values
of the 32x32 image in row-major order, then green, then blue (Krizhevsky 2009, "Learning Multiple Layers
of Features from Tiny Images", and https://www.cs.toronto.edu/~kriz/cifar.html). So one record is a
``(3, 32, 32)`` CHW image as is. In an archive (``cifar-10-binary.tar.gz`` unpacks to
``cifar-10-batches-bin/data_batch_{1..5}.bin`` and ``test_batch.bin``) the ``split`` picks the train
batches, the test batch, or all of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from workers.datasets.archive import Archive, open_archive
from workers.datasets.arrays import DatasetArrays, DatasetError, Limits, with_normalization

RECORD = 3073
SHAPE = (3, 32, 32)
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SPLITS = ("train", "test", "all")
_TRAIN = re.compile(r"data_batch_\d+\.bin$")
_TEST = re.compile(r"test_batch\.bin$")


def looks_like_batch(size: int, first: bytes) -> bool:
    """A raw file that could be a CIFAR-10 batch (used to word the error for a truncated one)."""
    return size >= RECORD and len(first) > 0 and first[0] < 10


def parse_batch(data: bytes, what: str = "the file") -> DatasetArrays:
    if len(data) == 0 or len(data) % RECORD:
        raise DatasetError(
            f"{what} is not a CIFAR-10 binary batch: {len(data)} bytes is not a whole number of "
            f"{RECORD}-byte records (1 label byte + 3072 pixel bytes); truncated, or another record size"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)  # (N, 3073)
    y = records[:, 0].astype(np.int64)
    if int(y.max()) >= len(CLASSES):
        bad = int(np.argmax(y >= len(CLASSES)))
        raise DatasetError(f"{what}: record {bad} has label byte {int(y[bad])}; CIFAR-10 labels are 0-9")
    x = records[:, 1:].reshape(-1, *SHAPE)  # (N, 3, 32, 32) uint8
    return DatasetArrays(x=x, y=y, scale=1 / 255)


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def select_batches(archive: Archive, split: str) -> list[str]:
    """Names of the ``.bin`` members that make up ``split``, in natural order."""
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    bins = sorted((m for m in archive.files() if m.name.endswith(".bin")), key=lambda m: _natural(m.name))
    pattern = {"train": _TRAIN, "test": _TEST}.get(split)
    chosen = [m for m in bins if pattern is None or pattern.search(m.name.rsplit("/", 1)[-1])]
    if not chosen:
        found = [m.name for m in bins][:10]
        raise DatasetError(
            f"the archive has no CIFAR-10 batches for split {split!r}; its .bin members: {found!r}"
        )
    for m in chosen:
        if m.size == 0 or m.size % RECORD:
            raise DatasetError(
                f"member {m.name!r} is not a CIFAR-10 binary batch: {m.size} bytes is not a whole number "
                f"of {RECORD}-byte records"
            )
    return [m.name for m in chosen]


def read_cifar10(path: Path, meta: dict, limits: Limits = Limits()) -> DatasetArrays:
    """The batches named in ``meta["members"]`` (an archive) or the whole file (a raw batch)."""
    if meta.get("container", "raw") == "raw":
        arrays = parse_batch(Path(path).read_bytes())
    else:
        with open_archive(path, limits) as archive:
            parts = [parse_batch(archive.read(name), f"member {name!r}") for name in meta["members"]]
        arrays = DatasetArrays(
            x=np.concatenate([p.x for p in parts]), y=np.concatenate([p.y for p in parts]), scale=1 / 255
        )
    return with_normalization(arrays, meta)


def describe_archive(archive: Archive, split: str | None) -> dict:
    """The meta of a CIFAR-10 archive upload: which members form the chosen split."""
    split = split or "test"
    return {
        "container": archive.kind,
        "split": split,
        "members": select_batches(archive, split),
        "classes": CLASSES,
    }
