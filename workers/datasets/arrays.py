"""The in-memory form of every data set, its validation, and the caps that bound reading one.

``x`` is ``(N, C, H, W)`` for images or ``(N, D)`` for vectors; ``y`` is int64 in ``[0, num_classes)``.
Image formats keep their pixels as uint8 with ``scale = 1/255`` and are turned into float32 only by
:meth:`DatasetArrays.normalized_x`; an ``.npz`` keeps the float32 values it was uploaded with. Optional
``mean``/``std`` (broadcastable to one sample) are applied after scaling.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

MAX_SAMPLES = 5_000_000
MAX_ELEMENTS = 2_000_000_000


class DatasetError(ValueError):
    """A data set that cannot be used, with a message that says why."""


@dataclass(frozen=True)
class Limits:
    """Caps applied while reading uploads (set from ``PRUNESCOPE_DATASET_*`` on the server)."""

    max_image_pixels: int = 4096 * 4096  # one image, read from its header before any decoding
    max_total_pixels: int = 500_000_000  # summed over every image of an ImageFolder
    max_members: int = 200_000  # entries in a zip or tar archive
    max_unpacked_bytes: int = 16 * 1024**3  # declared uncompressed bytes of an archive


@dataclass
class DatasetArrays:
    x: np.ndarray  # (N, C, H, W) or (N, D); float32, or uint8 pixels when `scale` is set
    y: np.ndarray  # (N,) int64
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    scale: float | None = None  # uint8 pixels are multiplied by this (1/255) when turned into floats

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1 if len(self.y) else 0

    @property
    def input_shape(self) -> list[int]:
        return [int(d) for d in self.x.shape[1:]]

    def normalized_x(self) -> np.ndarray:
        x = self.x
        if self.scale is not None:
            x = x.astype(np.float32) * np.float32(self.scale)
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        return x.astype(np.float32, copy=False)

    def to_npz_bytes(self) -> bytes:
        buf = io.BytesIO()
        arrays = {"x": self.normalized_x() if self.scale is not None else self.x, "y": self.y}
        if self.mean is not None and self.scale is None:
            arrays["mean"] = self.mean
        if self.std is not None and self.scale is None:
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
    if arrays.scale is not None:
        if x.dtype != np.uint8:
            raise DatasetError(f"scaled pixels must be uint8; got dtype {x.dtype}")
    else:
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
        if not np.isfinite(value).all():
            raise DatasetError(f"{name} holds NaN or infinite values")
        if name == "std" and (value <= 0).any():
            raise DatasetError("std must be positive")
        setattr(arrays, name, value)
    arrays.x, arrays.y = x, y.astype(np.int64, copy=False)
    return arrays


def with_normalization(arrays: DatasetArrays, meta: dict) -> DatasetArrays:
    """Apply a per-channel ``meta["normalization"]`` (``{"mean": [...], "std": [...]}``) to image pixels."""
    norm = meta.get("normalization") or {}
    for name in ("mean", "std"):
        if norm.get(name) is not None:
            value = np.asarray(norm[name], dtype=np.float32)
            setattr(arrays, name, value.reshape(-1, 1, 1) if arrays.x.ndim == 4 else value)
    return validate(arrays)
