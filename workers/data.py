"""Evaluation data as arrays; kept for its importers. The code lives in :mod:`workers.datasets`."""

from workers.datasets import (
    BUILTINS,
    DatasetArrays,
    DatasetError,
    digits,
    read_dataset,
    read_npz,
    synthetic,
    validate,
)

__all__ = [
    "BUILTINS",
    "DatasetArrays",
    "DatasetError",
    "digits",
    "read_dataset",
    "read_npz",
    "synthetic",
    "validate",
]
