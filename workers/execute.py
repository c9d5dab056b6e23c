"""Run one job's analysis: fetch its inputs (cached per process), call the pure function, pack artifacts."""

from __future__ import annotations

import io
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from server.storage import BlobStore
from workers import registry
from workers.checkpoints import instantiate
from workers.datasets import DatasetError, read_corruption, read_dataset, verify_source


@dataclass(frozen=True)
class JobInputs:
    """Everything a worker needs to know about a job, read from its row in one go."""

    job_id: int
    analysis: str
    params: dict
    checkpoint: dict  # id, sha256, blob_key, architecture, num_classes, input_shape, ...
    dataset: dict | None  # id, sha256, blob_key, format, meta, kind, source_path
    target: dict | None = None  # the checkpoint named by params.target_checkpoint_id, same keys
    corrupted_dataset: dict | None = None  # the data set named by params.corrupted_dataset_id
    reuse: dict[str, str] = field(default_factory=dict)  # artifact name -> blob key of an earlier result


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_or(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        while len(self) > self.size:
            self.popitem(last=False)
        return value


class Executor:
    """Holds a worker's small caches of loaded checkpoints and datasets."""

    def __init__(self, store: BlobStore, device: torch.device, *, include_testing: bool = False):
        self.store = store
        self.device = device
        self.include_testing = include_testing
        self._models = _LRU(4)
        self._data = _LRU(2)

    def _model(self, ckpt: dict) -> torch.nn.Module:
        key = (ckpt["sha256"], ckpt["architecture"], ckpt["num_classes"], tuple(ckpt["input_shape"]))

        def make():
            path: Path = self.store.fetch(ckpt["blob_key"])
            model, _ = instantiate(
                path,
                architecture=ckpt["architecture"],
                num_classes=ckpt["num_classes"],
                input_shape=ckpt["input_shape"],
            )
            return model.to(self.device)

        return self._models.get_or(key, make)

    def _dataset(self, ds: dict) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """Normalised samples, labels, and the ``(mean, std)`` that were applied (``None`` where not)."""
        fmt, meta = ds.get("format", "npz"), ds.get("meta") or {}
        key = (ds["sha256"], fmt, json.dumps(meta, sort_keys=True))  # one file may back several views

        def make():
            arrays = read_dataset(self.dataset_file(ds), fmt, meta)
            x, y = torch.from_numpy(arrays.normalized_x()), torch.from_numpy(arrays.y)
            return x, y, (arrays.mean, arrays.std)

        return self._data.get_or(key, make)

    def dataset_file(self, ds: dict) -> Path:
        """The verified local file behind a data set: a fetched blob, or a server path re-hashed in place.

        Analyses that read a CIFAR-C set one slice at a time pass it to ``workers.datasets.read_corruption``.
        """
        if ds.get("kind") == "path":
            return verify_source(ds["source_path"], ds["sha256"])
        return self.store.fetch(ds["blob_key"])

    def _stored_corruptions(self, ds: dict | None) -> registry.StoredCorruptions | None:
        """A reader of one (corruption, severity) slice of a CIFAR-C set at a time (never all of it)."""
        if ds is None:
            return None
        path, meta = self.dataset_file(ds), ds.get("meta") or {}

        def read(corruption: str, severity: int) -> tuple[torch.Tensor, torch.Tensor]:
            arrays = read_corruption(path, meta, corruption, severity)
            return torch.from_numpy(arrays.normalized_x()), torch.from_numpy(arrays.y)

        return registry.StoredCorruptions(meta=meta, read=read)

    def _reused(self, reuse: dict[str, str]) -> dict[str, np.ndarray]:
        """The arrays of earlier results' artifacts, merged (an artifact is an .npz of named arrays)."""
        arrays: dict[str, np.ndarray] = {}
        for key in reuse.values():
            arrays.update(_load_npz(self.store.fetch(key)))
        return arrays

    def run(
        self, job: JobInputs, progress, add_checkpoint=registry.no_registration
    ) -> tuple[dict, dict[str, bytes]]:
        spec = registry.get(job.analysis, include_testing=self.include_testing)
        params = spec.params_model.model_validate(job.params)
        normalization: tuple = (None, None)
        if job.dataset is None:
            x = y = torch.empty(0)
        else:
            x, y, normalization = self._dataset(job.dataset)
        model = self._model(job.checkpoint) if not spec.testing else torch.nn.Identity()
        if (
            job.dataset is not None
            and not spec.testing
            and list(x.shape[1:]) != list(job.checkpoint["input_shape"])
        ):
            raise DatasetError(
                f"the data set's samples have shape {tuple(x.shape[1:])}, "
                f"the checkpoint expects {tuple(job.checkpoint['input_shape'])}"
            )
        out = spec.run(
            registry.AnalysisInputs(
                model=model,
                x=x,
                y=y,
                device=self.device,
                params=params,
                progress=progress,
                checkpoint=job.checkpoint,
                target=self._model(job.target) if job.target is not None else None,
                reused=self._reused(job.reuse),
                normalization=normalization,
                corrupted=self._stored_corruptions(job.corrupted_dataset),
                add_checkpoint=add_checkpoint,
            )
        )
        return out.summary, ({out.artifact: _npz(out.arrays)} if out.arrays else {})


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()
