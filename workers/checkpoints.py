"""From a checkpoint file to a ready module, and the facts the checkpoint table shows.

Used by the server when a checkpoint is uploaded (to check it fits its architecture and to
measure it) and by workers when a job needs the module. Both load the same way (DESIGN §5): the
container checks of :mod:`workers.intake` in this process, then deserialisation in the sandboxed
child of :mod:`workers.sandbox`, which hands the tensors back as safetensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from workers import architectures
from workers.intake import CheckpointError, LoadedCheckpoint, fold_prune_masks, preflight, zero_masks
from workers.sandbox import LoadLimits, load
from workers.sparsity import sparsity_report


@dataclass
class CheckpointInfo:
    format: str
    architecture: str
    num_classes: int
    input_shape: list[int]
    parameter_count: int
    sparsity: float
    layer_sparsity: dict
    meta: dict


# Address space Python, torch and safetensors take in the child before any tensor is read.
CHILD_BASELINE_MB = 768


def default_limits() -> LoadLimits:
    from server.config import get_settings

    return LoadLimits.from_settings(get_settings())


def load_checkpoint(path: Path, limits: LoadLimits | None = None) -> LoadedCheckpoint:
    """Check ``path``'s container, then load it in the sandbox; raises CheckpointError on any refusal."""
    limits = limits or default_limits()
    checked = preflight(Path(path), max_elements=limits.max_elements)
    needed_mb = CHILD_BASELINE_MB + 2 * checked.tensor_bytes / 2**20
    if needed_mb > limits.memory_mb:
        raise CheckpointError(
            f"the checkpoint needs more than {limits.memory_mb} MiB to load "
            f"(its tensors take {checked.tensor_bytes / 2**20:.0f} MiB; "
            "the limit is the setting checkpoint_load_memory_mb)"
        )
    return load(Path(path), checked.format, expected_bytes=checked.tensor_bytes, limits=limits)


def _mask_label(state_dict: dict, prune_masks: dict) -> dict:
    if prune_masks:
        return {"mask": "from torch.nn.utils.prune", "masked_parameters": len(prune_masks)}
    inferred = zero_masks(state_dict)
    if inferred:
        return {"mask": "inferred from zeros", "masked_parameters": len(inferred)}
    return {}


def _resolve(state_dict, architecture: str, num_classes: int | None, input_shape) -> tuple[int, tuple]:
    arch = architectures.get(architecture)
    if num_classes is None:
        num_classes = architectures.infer_num_classes(state_dict)
        if num_classes is None:
            raise CheckpointError("could not infer the number of classes; pass num_classes")
    if input_shape:
        shape = tuple(input_shape)
    else:
        shape = architectures.infer_input_shape(architecture, state_dict) or tuple(arch.default_input_shape)
    return int(num_classes), shape


def instantiate(
    path: Path,
    *,
    architecture: str,
    num_classes: int | None = None,
    input_shape=None,
    limits: LoadLimits | None = None,
) -> tuple[torch.nn.Module, CheckpointInfo]:
    """Load ``path`` into a fresh ``architecture`` module (eval mode) and describe it.

    ``limits`` defaults to the settings of this process (``PRUNESCOPE_CHECKPOINT_LOAD_*``).
    """
    loaded = load_checkpoint(path, limits)
    state_dict, masks = fold_prune_masks(architectures.normalize_keys(loaded.state_dict))
    num_classes, shape = _resolve(state_dict, architecture, num_classes, input_shape)
    model = architectures.build(
        architecture, num_classes=num_classes, input_shape=shape, state_dict=state_dict
    )
    model.eval()
    with torch.inference_mode():
        try:
            model(torch.zeros(1, *shape))
        except RuntimeError as exc:
            raise CheckpointError(f"the model fails on an input of shape {shape}: {exc}") from None
    overall, per_layer = sparsity_report(model.state_dict())
    info = CheckpointInfo(
        format=loaded.format,
        architecture=architecture,
        num_classes=num_classes,
        input_shape=list(shape),
        parameter_count=sum(p.numel() for p in model.parameters()),
        sparsity=overall,
        layer_sparsity=per_layer,
        meta={**loaded.meta, **_mask_label(state_dict, masks)},
    )
    return model, info
