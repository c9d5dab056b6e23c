"""Pruning baselines: magnitude and random unstructured masks, and L1 channel pruning.

The unstructured baselines are those Blalock et al. 2020 ("What is the State of Neural Network
Pruning?", MLSys; the ShrinkBench library) recommend every paper compare against:

- global magnitude pruning: remove the ``round(s * N)`` smallest-magnitude weights over all prunable
  layers together (N weights in all), so layers end up with different sparsities;
- layer-wise magnitude pruning: remove the ``round(s * n_l)`` smallest-magnitude weights of each layer;
- random pruning: remove ``round(s * n_l)`` weights of each layer chosen uniformly at random.

Prunable tensors are the ``weight`` of every ``nn.Conv1d/2d/3d`` and ``nn.Linear`` module, the classifier
head included; biases and normalization parameters are kept. Masks are boolean tensors shaped like their
weight, ``True`` where the weight is kept, keyed by parameter name (``"conv1.weight"``). Ties in magnitude
are broken by position (stable sort), so masks are deterministic. Weights that are already zero have the
smallest magnitude and are pruned first, so pruning a pruned model again extends its mask.

Structured pruning (:func:`channel_l1_prune`) follows Li et al. 2017 ("Pruning Filters for Efficient
ConvNets", ICLR), section 3.1-3.2: in each conv layer, drop the output channels whose filters have the
smallest L1 norm, norms computed on the original weights of every layer ("independent" strategy).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from workers import architectures
from workers.architectures import SmallCNN

logger = logging.getLogger(__name__)

__all__ = [
    "PruningError",
    "apply_masks",
    "channel_l1_prune",
    "global_magnitude_masks",
    "layerwise_magnitude_masks",
    "prunable_weights",
    "random_masks",
]

_PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class PruningError(ValueError):
    """Invalid pruning request: sparsity out of range, unknown parameter, mask of the wrong shape."""


def _check_sparsity(sparsity: float, *, what: str = "sparsity") -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) or not math.isfinite(sparsity):
        raise PruningError(f"{what} must be a number in [0, 1), got {sparsity!r}")
    if not 0.0 <= sparsity < 1.0:
        raise PruningError(f"{what} must be in [0, 1), got {sparsity!r}")
    return float(sparsity)


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """``{name: weight}`` of every Conv1d/2d/3d and Linear module, in module order."""
    weights = {
        f"{name}.weight" if name else "weight": module.weight
        for name, module in model.named_modules()
        if isinstance(module, _PRUNABLE)
    }
    if not weights:
        raise PruningError(f"{type(model).__name__} has no Conv or Linear layer to prune")
    return weights


def _drop_smallest(scores: Tensor, k: int) -> Tensor:
    """Boolean keep-mask shaped like ``scores`` with its ``k`` smallest entries (stable order) False."""
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)  # (n,)
    if k > 0:
        order = torch.argsort(scores.reshape(-1), stable=True)  # (n,)
        keep[order[:k]] = False
    return keep.reshape(scores.shape)


def global_magnitude_masks(model: nn.Module, sparsity: float) -> dict[str, Tensor]:
    """Masks removing the ``round(sparsity * N)`` smallest |w| over all prunable weights together."""
    s = _check_sparsity(sparsity)
    weights = prunable_weights(model)
    with torch.no_grad():
        flat = torch.cat([w.detach().abs().reshape(-1).double() for w in weights.values()])  # (N,)
        keep = _drop_smallest(flat, round(s * flat.numel()))  # (N,)
    masks, offset = {}, 0
    for name, w in weights.items():
        masks[name] = keep[offset : offset + w.numel()].reshape(w.shape).clone()  # own storage, not a view
        offset += w.numel()
    return masks


def layerwise_magnitude_masks(model: nn.Module, sparsity: float) -> dict[str, Tensor]:
    """Masks removing the ``round(sparsity * n_l)`` smallest |w| of each prunable layer."""
    s = _check_sparsity(sparsity)
    with torch.no_grad():
        return {
            name: _drop_smallest(w.detach().abs(), round(s * w.numel()))
            for name, w in prunable_weights(model).items()
        }


def random_masks(model: nn.Module, sparsity: float, *, seed: int) -> dict[str, Tensor]:
    """Masks removing ``round(sparsity * n_l)`` weights of each prunable layer uniformly at random.

    The draw uses its own CPU generator seeded with ``seed``, so it is reproducible and leaves the global
    random state alone.
    """
    s = _check_sparsity(sparsity)
    gen = torch.Generator().manual_seed(seed)
    masks = {}
    for name, w in prunable_weights(model).items():
        scores = torch.rand(w.shape, generator=gen, dtype=torch.float64)
        masks[name] = _drop_smallest(scores, round(s * w.numel())).to(w.device)
    return masks


def apply_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Multiply each named parameter by its mask, in place (pruned entries become exactly zero)."""
    params = dict(model.named_parameters())
    checked = []
    for name, mask in masks.items():
        if name not in params:
            raise PruningError(f"mask for {name!r} names no parameter of {type(model).__name__}")
        p = params[name]
        if mask.shape != p.shape:
            raise PruningError(f"mask for {name!r} has shape {tuple(mask.shape)}, parameter {tuple(p.shape)}")
        checked.append((p, mask))
    with torch.no_grad():
        for p, mask in checked:
            p.mul_(mask.to(device=p.device, dtype=p.dtype))


def _keep_channels(conv: nn.Conv2d, fraction: float) -> Tensor:
    """Sorted indices of the output channels to keep: all but the ``round(fraction * c)`` smallest L1."""
    c = conv.out_channels
    n_drop = min(round(fraction * c), c - 1)  # always keep at least one channel
    l1 = conv.weight.detach().abs().sum(dim=(1, 2, 3)).double()  # (c,)
    keep = _drop_smallest(l1, n_drop)  # (c,)
    return torch.nonzero(keep).reshape(-1)  # (c - n_drop,), ascending


def channel_l1_prune(
    model: SmallCNN, fraction: float, *, layers: Sequence[str] = ("conv1", "conv2", "conv3")
) -> SmallCNN:
    """A smaller ``SmallCNN`` without the ``fraction`` of each conv's output channels of lowest filter L1.

    Removing channel ``j`` of ``convK`` slices ``convK.weight[j]``, entry ``j`` of ``bnK``'s weight, bias and
    running statistics, and input channel ``j`` of the next layer (``conv{K+1}``, or the columns of
    ``head`` for ``conv3``, whose outputs are the pooled features). The head keeps its classes. Each layer
    keeps at least one channel. The input model is left unchanged; the new one has its dtype, device and
    training flag, and ``architectures.build("small_cnn", ..., state_dict=new.state_dict())`` rebuilds it.

    Args:
        model: a :class:`~workers.architectures.SmallCNN`.
        fraction: share of output channels to remove in each listed layer, in [0, 1).
        layers: which of ``conv1``, ``conv2``, ``conv3`` to prune.
    """
    if not isinstance(model, SmallCNN):
        raise PruningError(f"channel_l1_prune supports small_cnn models, got {type(model).__name__}")
    f = _check_sparsity(fraction, what="fraction")
    convs = ("conv1", "conv2", "conv3")
    unknown = [name for name in layers if name not in convs]
    if unknown:
        raise PruningError(f"layers must be among {', '.join(convs)}, got {unknown[0]!r}")

    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    consumers = {"conv1": "conv2.weight", "conv2": "conv3.weight", "conv3": "head.weight"}
    for conv_name in convs:
        if conv_name not in layers:
            continue
        keep = _keep_channels(getattr(model, conv_name), f)
        bn = "bn" + conv_name[-1]
        sd[f"{conv_name}.weight"] = sd[f"{conv_name}.weight"][keep]  # (c', c_in, 3, 3)
        for stat in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{bn}.{stat}"] = sd[f"{bn}.{stat}"][keep]  # (c',)
        nxt = consumers[conv_name]
        sd[nxt] = sd[nxt][:, keep]  # next conv (c_out, c', 3, 3) or head (classes, c')

    widths = tuple(int(sd[f"{c}.weight"].shape[0]) for c in convs)
    ref = model.conv1.weight
    pruned = SmallCNN(in_channels=model.conv1.in_channels, num_classes=model.head.out_features, widths=widths)
    pruned.to(device=ref.device, dtype=ref.dtype)
    architectures.load_weights(pruned, sd)
    pruned.train(model.training)
    logger.debug("channel L1 pruning %.3f of %s: widths %s -> %s", f, list(layers), model.widths, widths)
    return pruned
