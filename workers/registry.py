"""The analysis registry: a name maps to a pure function, its parameter schema and a code version.

Adding an analysis means one module under ``workers/analyses/`` and one :func:`register` call
below. ``version`` is part of every job's cache key: bump it when a change alters results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from pydantic import BaseModel


class UnknownAnalysis(ValueError):
    pass


@dataclass
class NewCheckpoint:
    """A checkpoint an analysis makes (a pruned child of the job's checkpoint), as serialized weights."""

    data: bytes  # safetensors bytes, loaded back through the normal intake path
    label: str  # appended to the parent's name
    metadata: dict  # pruning_method, sparsity_target, achieved sparsity, recipe
    followups: list[str] = field(default_factory=list)  # analyses to queue for it on the job's dataset


@dataclass(frozen=True)
class RegisteredCheckpoint:
    checkpoint_id: int
    followup_job_ids: list[int]


def no_registration(new: NewCheckpoint) -> RegisteredCheckpoint:
    raise RuntimeError("this worker cannot register checkpoints")


@dataclass
class AnalysisInputs:
    model: torch.nn.Module
    x: torch.Tensor  # (N, ...) on the CPU; the analysis moves batches to `device`
    y: torch.Tensor  # (N,)
    device: torch.device
    params: BaseModel
    progress: Callable[[float, str], None]
    checkpoint: dict = field(default_factory=dict)
    target: torch.nn.Module | None = None  # the checkpoint named by params.target_checkpoint_id, if any
    reused: dict[str, np.ndarray] = field(default_factory=dict)  # arrays of earlier results (see leases)
    # (mean, std) the data set's samples were normalised with after scaling to pixels (None: not applied):
    # x = (pixels - mean) / std, so analyses that alter images (corruptions) can work on pixels
    normalization: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    corrupted: StoredCorruptions | None = None  # params.corrupted_dataset_id, if any
    # registers a checkpoint made by the job as a child of its checkpoint (fenced by the job's lease)
    add_checkpoint: Callable[[NewCheckpoint], RegisteredCheckpoint] = no_registration


@dataclass
class StoredCorruptions:
    """A stored corrupted data set (CIFAR-10-C): its meta, and a reader of one slice at a time."""

    meta: dict
    read: Callable[[str, int], tuple[torch.Tensor, torch.Tensor]]  # (corruption, severity) -> x, y


@dataclass
class AnalysisOutput:
    summary: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    artifact: str = "per_sample"  # the name the arrays are stored under, as one .npz


@dataclass(frozen=True)
class AnalysisSpec:
    name: str
    version: str
    title: str
    description: str
    params_model: type[BaseModel]
    run: Callable[[AnalysisInputs], AnalysisOutput]
    testing: bool = False  # only registered for the reliability tests
    # Per-checkpoint parameters at submission, e.g. a default target: (validated params, checkpoint facts
    # {"id", "parent_id"}) -> params; raises ValueError with a message fit for the user.
    per_checkpoint: Callable[[dict, dict], dict] | None = None
    # Whether validated params need a dataset: None = always; else returns why one is needed, or None.
    needs_dataset: Callable[[dict], str | None] | None = None

    def dataset_reason(self, params: dict) -> str | None:
        """Why a job with these params needs a dataset_id (None when it can run without one)."""
        if self.testing:
            return None
        if self.needs_dataset is None:
            return f"analysis {self.name!r} needs a dataset_id"
        return self.needs_dataset(params)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "title": self.title,
            "description": self.description,
            "params_schema": self.params_model.model_json_schema(),
            "defaults": self.params_model().model_dump(),
        }


_REGISTRY: dict[str, AnalysisSpec] = {}


def register(spec: AnalysisSpec) -> AnalysisSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"analysis {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def specs(*, include_testing: bool = False) -> list[AnalysisSpec]:
    _load_builtin()
    return [s for s in _REGISTRY.values() if include_testing or not s.testing]


def get(name: str, *, include_testing: bool = False) -> AnalysisSpec:
    _load_builtin()
    spec = _REGISTRY.get(name)
    if spec is None or (spec.testing and not include_testing):
        known = ", ".join(s.name for s in specs(include_testing=include_testing))
        raise UnknownAnalysis(f"unknown analysis {name!r}; known: {known}")
    return spec


_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from workers.analyses import (  # noqa: F401 - each registers itself on import
        evaluate_task,
        hessian_task,
        landscape_task,
        prune_task,
        robustness_task,
        testing,
    )
