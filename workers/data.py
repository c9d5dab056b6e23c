"""Evaluation data as arrays: built-in sets and ``.npz`` uploads.

``x`` is float32, ``(N, C, H, W)`` for images or ``(N, D)`` for vectors; ``y`` is int64 in
``[0, num_classes)``. Optional ``mean``/``std`` (broadcastable to one sample) are applied
when a worker loads the set, so the stored bytes stay as uploaded.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_SAMPLES = 5_000_000
MAX_ELEMENTS = 2_000_000_000


class DatasetError(ValueError):
    """A data set that cannot be used, with a message that says why."""


@dataclass
class DatasetArrays:
    x: np.ndarray  # (N, ...) float32
    y: np.ndarray  # (N,) int64
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1 if len(self.y) else 0

    @property
    def input_shape(self) -> list[int]:
        return [int(d) for d in self.x.shape[1:]]

    def normalized_x(self) -> np.ndarray:
        x = self.x
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        return x.astype(np.float32, copy=False)

    def to_npz_bytes(self) -> bytes:
        buf = io.BytesIO()
        arrays = {"x": self.x, "y": self.y}
        if self.mean is not None:
            arrays["mean"] = self.mean
        if self.std is not None:
            arrays["std"] = self.std
        np.savez(buf, **arrays)
        return buf.getvalue()


def validate(arrays: DatasetArrays) -> DatasetArrays:
    x, y = arrays.x, arrays.y
    if x.ndim not in (2, 4):
        raise DatasetError(f"x must have shape (N, D) or (N, C, H, W); got {tuple(x.shape)}")
    if y.ndim != 1 or len(y) != len(x):
        raise DatasetError(f"y must have shape ({len(x)},) to match x; got {tuple(y.shape)}")
    if len(x) == 0:
        raise DatasetError("the data set has no samples")
    if len(x) > MAX_SAMPLES or x.size > MAX_ELEMENTS:
        raise DatasetError(f"the data set is too large ({len(x)} samples, {x.size} values)")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DatasetError(f"x must hold numbers; got dtype {x.dtype}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"y must hold integer class labels; got dtype {y.dtype}")
    if y.min() < 0:
        raise DatasetError("y holds negative class labels")
    if int(y.max()) >= 100_000:
        raise DatasetError(f"y holds a class label of {int(y.max())}; at most 100000 classes are supported")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise DatasetError("x holds NaN or infinite values")
    sample_shape = x.shape[1:]
    for name in ("mean", "std"):
        value = getattr(arrays, name)
        if value is None:
            continue
        value = np.asarray(value, dtype=np.float32)
        try:
            np.broadcast_to(value, sample_shape)
        except ValueError:
            raise DatasetError(
                f"{name} of shape {tuple(value.shape)} does not broadcast to a sample of shape {sample_shape}"
            ) from None
        if name == "std" and (value <= 0).any():
            raise DatasetError("std must be positive")
        setattr(arrays, name, value)
    arrays.x, arrays.y = x, y.astype(np.int64, copy=False)
    return arrays


def read_npz(path: Path) -> DatasetArrays:
    """Read an ``.npz`` upload with ``allow_pickle=False`` (object arrays are refused)."""
    if not zipfile.is_zipfile(path):
        raise DatasetError("not an .npz file (expected a zip archive of .npy arrays)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            if not {"x", "y"} <= keys:
                raise DatasetError(f"an .npz data set needs arrays 'x' and 'y'; found {sorted(keys)!r}")
            arrays = DatasetArrays(
                x=npz["x"],
                y=npz["y"],
                mean=npz["mean"] if "mean" in keys else None,
                std=npz["std"] if "std" in keys else None,
            )
    except DatasetError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"could not read the .npz file: {exc}") from None
    return validate(arrays)


def digits() -> DatasetArrays:
    """scikit-learn's bundled 8x8 digits (1,797 samples, 10 classes), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    return validate(DatasetArrays(x=x, y=bunch.target.astype(np.int64)))


def synthetic(*, n: int = 1024, num_classes: int = 10, shape: tuple[int, ...] = (1, 8, 8), seed: int = 0):
    """Gaussian clusters around one random centre per class: separable, and cheap to make."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, size=(num_classes, *shape)).astype(np.float32)
    y = rng.integers(0, num_classes, size=n)
    x = centres[y] + 0.5 * rng.normal(size=(n, *shape)).astype(np.float32)
    return validate(DatasetArrays(x=x.astype(np.float32), y=y.astype(np.int64)))


BUILTINS = {"digits": digits, "synthetic": synthetic}
