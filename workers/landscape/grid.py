"""Grids, sweeps and summaries of loss-landscape slices; no model code, so they test on closed forms.

A sweep moves a list of state tensors to ``base + sum_k c_k d_k`` for each row ``c`` of a coordinate array
(in place, with ``torch._foreach_*`` so a point costs a few fused kernels, not a Python loop over tensors)
and calls ``evaluate()``, which returns a ``(2,)`` tensor ``[loss, accuracy]`` left on the device; results
are gathered on the device and copied back once per chunk, when progress is reported, so the device is
never made to wait for the host between points.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["axis", "barrier", "curvature", "interpolate_sweep", "sweep"]

Progress = Callable[[int, int], None]  # (points done, points planned)


def axis(span: float, steps: int) -> np.ndarray:
    """``steps`` points over ``[-span, span]`` with the centre exactly 0 (so ``steps`` must be odd)."""
    if steps < 3 or steps % 2 == 0:
        raise ValueError(f"steps must be odd and at least 3, so the centre (0) is on the grid; got {steps}")
    if not span > 0:
        raise ValueError(f"span must be positive, got {span}")
    values = np.linspace(-span, span, steps)
    values[steps // 2] = 0.0  # linspace may leave a rounding error of 1e-17 at the centre
    return values


def curvature(alphas: np.ndarray, losses: np.ndarray, *, points: int = 5) -> float | None:
    """Second derivative of the loss at ``alpha = 0`` from a quadratic fit to the ``points`` nearest 0.

    ``None`` when fewer than 3 finite points surround the centre. For ``L(alpha) = a alpha^2 + ...`` the
    answer is ``2 a``: the directional curvature along the (normalised) direction.
    """
    alphas, losses = np.asarray(alphas, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    order = np.argsort(np.abs(alphas), kind="stable")[:points]
    a, f = alphas[order], losses[order]
    keep = np.isfinite(f)
    if keep.sum() < 3 or np.ptp(a[keep]) == 0:
        return None
    coeffs = np.polyfit(a[keep], f[keep], 2)
    return float(2.0 * coeffs[0])


def barrier(values: np.ndarray) -> float | None:
    """``max_alpha v(alpha) - (v(0) + v(1)) / 2`` over an interpolation path whose ends are the first and
    last entries (Frankle et al. 2020); ``None`` if any value is not finite."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2 or not np.all(np.isfinite(v)):
        return None
    return float(v.max() - 0.5 * (v[0] + v[-1]))


def sweep(
    state: Sequence[Tensor],
    base: Sequence[Tensor],
    directions: Sequence[Sequence[Tensor]],
    coords: np.ndarray,
    evaluate: Callable[[], Tensor],
    *,
    chunk: int = 32,
    progress: Progress | None = None,
) -> np.ndarray:
    """Evaluate at ``state = base + sum_k coords[p, k] * directions[k]`` for every row ``p``.

    Args:
        state: the tensors ``evaluate`` reads (a working model's parameters), overwritten in place and
            left at the last point.
        base: the centre, tensors shaped like ``state``.
        directions: ``K`` directions, each a list shaped like ``state``.
        coords: ``(P, K)`` coefficients.
        evaluate: returns ``[loss, accuracy]`` ``(2,)`` for the current state.

    Returns:
        ``(P, 2)`` float64: loss and accuracy at each point.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != len(directions):
        raise ValueError(f"coords must be (P, {len(directions)}), got {coords.shape}")
    state, base = list(state), list(base)
    dirs = [list(d) for d in directions]

    def move(c: np.ndarray) -> None:
        torch._foreach_copy_(state, base)
        for d, a in zip(dirs, c, strict=True):
            if a != 0.0:
                torch._foreach_add_(state, d, alpha=float(a))

    return _run(coords, move, evaluate, chunk=chunk, progress=progress)


def interpolate_sweep(
    state: Sequence[Tensor],
    start: Sequence[Tensor],
    end: Sequence[Tensor],
    alphas: np.ndarray,
    evaluate: Callable[[], Tensor],
    *,
    before: Callable[[], None] | None = None,
    chunk: int = 8,
    progress: Progress | None = None,
) -> np.ndarray:
    """Evaluate at ``state = (1 - alpha) start + alpha end`` for each alpha (``torch.lerp``, exact at both
    ends); ``before()`` runs after each move (to recompute BatchNorm statistics, say). Returns ``(P, 2)``."""
    state, start, end = list(state), list(start), list(end)
    alphas = np.asarray(alphas, dtype=np.float64).reshape(-1, 1)

    def move(c: np.ndarray) -> None:
        torch._foreach_copy_(state, start)
        if c[0] != 0.0:
            torch._foreach_lerp_(state, end, float(c[0]))
        if before is not None:
            before()

    return _run(alphas, move, evaluate, chunk=chunk, progress=progress)


def _run(
    coords: np.ndarray,
    move: Callable[[np.ndarray], None],
    evaluate: Callable[[], Tensor],
    *,
    chunk: int,
    progress: Progress | None,
) -> np.ndarray:
    total = coords.shape[0]
    out = np.empty((total, 2), dtype=np.float64)
    pending: list[Tensor] = []
    first = 0
    last_report = time.monotonic()
    for p in range(total):
        move(coords[p])
        pending.append(evaluate())
        if len(pending) == chunk or p == total - 1:
            out[first : p + 1] = torch.stack(pending).double().cpu().numpy()  # one sync per chunk
            first, pending = p + 1, []
            now = time.monotonic()
            if progress is not None and (now - last_report > 0.5 or p == total - 1):
                progress(p + 1, total)
                last_report = now
    return out
