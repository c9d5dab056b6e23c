"""Sparsity of a state_dict: the fraction of exactly-zero entries among its parameters.

Which tensors count (a state_dict does not say which entries are parameters, so this goes by name):

- every floating-point tensor, keyed by its full name (``conv1.weight``, ``bn1.bias``, ``pos_embed``);
- except BatchNorm running statistics (names ending in ``running_mean`` / ``running_var``) and
  ``num_batches_tracked`` (an integer, excluded as every non-floating tensor is);
- except pruning masks: a pair ``<name>_orig`` / ``<name>_mask`` left by ``torch.nn.utils.prune`` counts
  once, as ``<name>`` with the value ``<name>_orig * <name>_mask``; any other ``*_mask`` key is skipped.

Non-tensor values (``_extra_state`` objects) are skipped. An entry is zero when it compares equal to 0, so
``-0.0`` counts and NaN does not.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

__all__ = ["sparsity_report"]

_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")
_ORIG, _MASK = "_orig", "_mask"


def _counted(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The tensors that count, by name, with prune masks folded into their ``_orig`` weights."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(value, Tensor) or not value.is_floating_point():
            continue
        if key.endswith(_BUFFER_SUFFIXES) or key.endswith(_MASK):
            continue
        if key.endswith(_ORIG):
            base = key[: -len(_ORIG)]
            mask = state_dict.get(base + _MASK)
            if isinstance(mask, Tensor) and mask.shape == value.shape:
                out[base] = value * mask
                continue
        out[key] = value
    return out


def sparsity_report(state_dict: Mapping[str, Tensor]) -> tuple[float, dict[str, dict[str, float | int]]]:
    """Overall and per-tensor sparsity of ``state_dict`` (see the module docstring for what counts).

    Returns:
        ``(overall, per_layer)`` where ``overall`` is zeros / entries over all counted tensors (0.0 when
        none count) and ``per_layer[name] = {"numel": int, "zeros": int, "sparsity": float}``.
    """
    per_layer: dict[str, dict[str, float | int]] = {}
    total = zeros = 0
    with torch.no_grad():
        for name, tensor in _counted(state_dict).items():
            numel = tensor.numel()
            nz = int((tensor == 0).sum().item()) if numel else 0
            per_layer[name] = {"numel": numel, "zeros": nz, "sparsity": nz / numel if numel else 0.0}
            total += numel
            zeros += nz
    return (zeros / total if total else 0.0), per_layer
