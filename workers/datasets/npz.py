"""``.npz`` uploads: arrays ``x``, ``y`` and optional ``mean``/``std``, read with ``allow_pickle=False``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from workers.datasets.arrays import DatasetArrays, DatasetError, validate
from workers.datasets.npyfile import check_member


def read_npz(path: Path) -> DatasetArrays:
    """Read an ``.npz`` upload with ``allow_pickle=False`` (object arrays are refused)."""
    if not zipfile.is_zipfile(path):
        raise DatasetError("not an .npz file (expected a zip archive of .npy arrays)")
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename in ("x.npy", "y.npy", "mean.npy", "std.npy"):
                    with zf.open(info) as f:
                        check_member(f, info.filename, info.file_size)
    except (DatasetError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"could not read the .npz file: {exc}") from None
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
