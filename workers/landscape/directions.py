"""Directions in parameter space for loss-landscape slices (Li et al. 2018, DESIGN.md section 6).

A direction is a list of tensors shaped like a model's parameters (``named_parameters()`` order). Random
directions are drawn from a standard Gaussian on the CPU from one seeded generator, in that order, so two
checkpoints of the same architecture get the *same raw draws* and differ only through the normalisation
to their own weights; that is what makes their slices comparable.

Normalisations of a direction ``d`` against the weights ``theta``:

- ``"filter"`` (Li et al. 2018, section 4): for every output filter ``i`` of a weight of two or more
  dimensions (a row of a linear weight, an output channel of a convolution),
  ``d_i <- d_i / ||d_i|| * ||theta_i||``;
- ``"layer"``: the same over each whole tensor;
- ``"none"``: the raw Gaussian draws.

One-dimensional parameters (biases, BatchNorm scales and shifts) get a zero direction by default, as in
Li et al.'s ``ignore='biasbn'``; with ``include_1d`` they are normalised as a whole tensor (``"layer"``).
(loss-landscapes sets them to ``|theta|`` and divides by zero on an all-zero bias; DESIGN.md section 6.)

Pruned checkpoints: each direction is multiplied by the mask of unpruned weights *before* normalising, so a
filter's norm is matched over its surviving weights and every point of the slice stays in the pruned
subspace (a fully pruned filter gets a zero direction).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

__all__ = ["Normalization", "hessian_direction", "normalize", "random_direction", "weight_masks"]

Normalization = Literal["filter", "layer", "none"]


def weight_masks(params: Sequence[Tensor]) -> list[Tensor]:
    """Boolean masks of the unpruned entries: ``p != 0`` for weights of 2+ dimensions, all ``True`` else.

    The same rule as :func:`workers.hessian.hvp.pruning_mask`: a zero bias is a value, not a pruned entry.
    """
    return [(p != 0) if p.ndim >= 2 else torch.ones_like(p, dtype=torch.bool) for p in params]


def normalize(
    direction: Sequence[Tensor],
    params: Sequence[Tensor],
    normalization: Normalization,
    *,
    include_1d: bool = False,
    masks: Sequence[Tensor] | None = None,
) -> list[Tensor]:
    """``direction`` masked, then normalised against ``params`` (new tensors; inputs are left alone)."""
    if normalization not in ("filter", "layer", "none"):
        raise ValueError(f"unknown normalization {normalization!r}; use 'filter', 'layer' or 'none'")
    if len(direction) != len(params):
        raise ValueError(f"direction has {len(direction)} tensors, the model {len(params)}")
    out: list[Tensor] = []
    for i, (d, p) in enumerate(zip(direction, params, strict=True)):
        if d.shape != p.shape:
            raise ValueError(f"direction tensor {i} has shape {tuple(d.shape)}, parameter {tuple(p.shape)}")
        d = d.to(dtype=p.dtype, device=p.device)
        if masks is not None:
            d = d * masks[i].to(device=p.device)
        if p.ndim <= 1:
            if not include_1d:
                out.append(torch.zeros_like(p))
                continue
            out.append(_scaled(d, p) if normalization != "none" else d.clone())
        elif normalization == "filter":
            out.append(_scaled(d, p, dims=tuple(range(1, p.ndim))))
        elif normalization == "layer":
            out.append(_scaled(d, p))
        else:
            out.append(d.clone())
    return out


def _scaled(d: Tensor, p: Tensor, dims: tuple[int, ...] | None = None) -> Tensor:
    """``d / ||d|| * ||p||`` over ``dims`` (all when ``None``); zero where ``d`` is all zero there."""
    d_norm = torch.linalg.vector_norm(d, dim=dims, keepdim=dims is not None)
    p_norm = torch.linalg.vector_norm(p, dim=dims, keepdim=dims is not None)
    scale = torch.where(d_norm > 0, p_norm / torch.where(d_norm > 0, d_norm, 1.0), 0.0)
    return d * scale


def random_direction(
    params: Sequence[Tensor],
    generator: torch.Generator,
    normalization: Normalization = "filter",
    *,
    include_1d: bool = False,
    masks: Sequence[Tensor] | None = None,
) -> list[Tensor]:
    """A Gaussian direction drawn on the CPU (float32, ``params`` order), masked and normalised."""
    raw = [torch.randn(p.shape, generator=generator, dtype=torch.float32) for p in params]
    return normalize(raw, params, normalization, include_1d=include_1d, masks=masks)


def hessian_direction(
    vector: Tensor, params: Sequence[Tensor], *, masks: Sequence[Tensor] | None = None
) -> list[Tensor]:
    """The flat top Hessian eigenvector ``(D,)`` as a direction of norm ``||theta||`` (all parameters).

    The eigenvector is kept as it is (normalising it per filter would turn it away from the sharpest
    direction); scaling it to the norm of the weights puts ``alpha`` in the same units as a
    filter-normalised direction, whose norm is that of the weights of 2+ dimensions.
    """
    total = sum(p.numel() for p in params)
    if vector.ndim != 1 or vector.numel() != total:
        raise ValueError(f"eigenvector has shape {tuple(vector.shape)}, the model has {total} parameters")
    pieces = list(vector.detach().float().cpu().split([p.numel() for p in params]))
    out = []
    for i, (piece, p) in enumerate(zip(pieces, params, strict=True)):
        d = piece.view(p.shape).to(dtype=p.dtype, device=p.device)
        out.append(d * masks[i].to(device=p.device) if masks is not None else d)
    v_norm = math.sqrt(sum(float(d.double().square().sum()) for d in out))
    w_norm = math.sqrt(sum(float(p.double().square().sum()) for p in params if p.ndim >= 2))
    if v_norm == 0.0:
        raise ValueError("the Hessian eigenvector is zero on the model's (unpruned) parameters")
    scale = w_norm / v_norm
    return [d * scale for d in out]
