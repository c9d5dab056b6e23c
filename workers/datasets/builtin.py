"""Data sets that ship with PruneScope: scikit-learn's digits and Gaussian clusters for tests."""

from __future__ import annotations

import numpy as np

from workers.datasets.arrays import DatasetArrays, validate


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
