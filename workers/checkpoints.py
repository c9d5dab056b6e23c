"""From a checkpoint file to a ready module, and the facts the checkpoint table shows.

Used by the server when a checkpoint is uploaded (to check it fits its architecture and to
measure it) and by workers when a job needs the module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from workers import architectures
from workers.intake import CheckpointError, fold_prune_masks, load_checkpoint
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


def _resolve(state_dict, architecture: str, num_classes: int | None, input_shape) -> tuple[int, tuple]:
    arch = architectures.get(architecture)
    if num_classes is None:
        num_classes = architectures.infer_num_classes(state_dict)
        if num_classes is None:
            raise CheckpointError("could not infer the number of classes; pass num_classes")
    shape = tuple(input_shape) if input_shape else tuple(arch.default_input_shape)
    return int(num_classes), shape


def instantiate(
    path: Path, *, architecture: str, num_classes: int | None = None, input_shape=None
) -> tuple[torch.nn.Module, CheckpointInfo]:
    """Load ``path`` into a fresh ``architecture`` module (eval mode) and describe it."""
    loaded = load_checkpoint(path)
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
        meta={**loaded.meta, **({"mask": "from torch.nn.utils.prune"} if masks else {})},
    )
    return model, info
