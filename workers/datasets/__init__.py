"""Evaluation data: built-in sets and uploads in the formats researchers have (DESIGN.md section 5).

- :mod:`~workers.datasets.arrays`: :class:`DatasetArrays`, validation, :class:`Limits`
- :mod:`~workers.datasets.formats`: detection from bytes, :func:`describe`, :func:`read_dataset`
- one module per format: :mod:`npz`, :mod:`cifar`, :mod:`cifar_c`, :mod:`imagefolder`
- :mod:`~workers.datasets.archive`: zip / tar members read by name, never extracted
"""

from workers.datasets.arrays import DatasetArrays, DatasetError, Limits, validate
from workers.datasets.builtin import BUILTINS, digits, synthetic
from workers.datasets.formats import (
    FORMATS,
    Described,
    Options,
    describe,
    detect,
    read_corruption,
    read_dataset,
    verify_source,
)
from workers.datasets.npz import read_npz

__all__ = [
    "BUILTINS",
    "FORMATS",
    "DatasetArrays",
    "DatasetError",
    "Described",
    "Limits",
    "Options",
    "describe",
    "detect",
    "digits",
    "read_corruption",
    "read_dataset",
    "read_npz",
    "synthetic",
    "validate",
    "verify_source",
]
