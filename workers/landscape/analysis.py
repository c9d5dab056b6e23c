"""The loss-landscape analysis: 1D and 2D slices around a checkpoint, and interpolation to another one.

- ``"1d"``: ``f(alpha) = L(theta + alpha d)``; ``"2d"``: ``f(alpha, beta) = L(theta + alpha d + beta e)``,
  with ``d`` (and ``e``) Gaussian directions drawn from ``seed``, filter-normalised by default and masked to
  the unpruned weights of a pruned checkpoint (:mod:`.directions`), or ``d`` the top Hessian eigenvector.
- ``"interpolation"``: ``theta(alpha) = (1 - alpha) theta_A + alpha theta_B`` from this checkpoint (A) to
  a target (B) of the same architecture, with the loss and error barriers; BatchNorm running statistics
  interpolated with the weights or re-estimated at every point on ``bn_samples`` samples.

Everything is evaluated on the first ``max_samples`` samples in eval mode (:class:`.PointEvaluator`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from workers.landscape.directions import (
    Normalization,
    hessian_direction,
    random_direction,
    weight_masks,
)
from workers.landscape.evaluator import PointEvaluator, Precision, copy_like
from workers.landscape.grid import axis, barrier, curvature, interpolate_sweep, sweep

__all__ = ["LandscapeResult", "interpolation", "slices"]

Progress = Callable[[float, str], None]
# Compile the forward when the sweep would take longer than this eagerly: compiling a ResNet-20 forward
# took 11 s on 2 CPU cores here and made it 2x faster, so it pays off beyond about half a minute.
COMPILE_AFTER_SECONDS = 30.0


@dataclass
class LandscapeResult:
    summary: dict[str, Any]
    arrays: dict[str, np.ndarray]


def _json(a: np.ndarray) -> list:
    out = np.asarray(a, dtype=np.float64)
    return (
        [_json(row) for row in out] if out.ndim > 1 else [float(v) if np.isfinite(v) else None for v in out]
    )


def _reporter(progress: Progress | None, label: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(done / total, f"{label} point {done}/{total}")

    return report


def slices(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    device: torch.device,
    mode: Literal["1d", "2d"] = "2d",
    steps: int = 31,
    span: float = 1.0,
    direction: Literal["random", "hessian"] = "random",
    normalization: Normalization = "filter",
    include_1d: bool = False,
    masked: bool | None = None,
    seed: int = 0,
    max_samples: int = 2048,
    batch_size: int = 2048,
    precision: Precision = "fp32",
    compile: Literal["auto", "on", "off"] = "auto",
    hessian_vector: Tensor | None = None,
    progress: Progress | None = None,
) -> LandscapeResult:
    """A 1D or 2D slice of the loss around ``model``'s weights.

    Args:
        masked: restrict directions to the unpruned weights; ``None`` (default): when the model's weights
            hold exact zeros.
        compile: ``"auto"`` compiles the forward (:func:`workers.compile.compile_or_eager`) when the sweep
            would take longer than ``COMPILE_AFTER_SECONDS`` eagerly, timed on the first point.
        direction: ``"hessian"`` makes the first direction ``hessian_vector`` (flat, ``named_parameters()``
            order, as the hessian analysis stores it), scaled to the norm of the weights; the second
            direction of a 2D slice stays random.
    """
    started = time.perf_counter()
    alphas = axis(span, steps)
    n = min(int(x.shape[0]), max_samples)
    ev = PointEvaluator(model, x[:n], y[:n], device=device, batch_size=batch_size, precision=precision)
    params = [p.detach() for p in ev.params]
    masks = weight_masks(params)
    pruned = any(not bool(m.all()) for m in masks)
    use_mask = pruned if masked is None else masked
    kept = masks if use_mask else None
    gen = torch.Generator().manual_seed(seed)
    cpu_params = [p.cpu() for p in params]
    cpu_masks = [m.cpu() for m in kept] if kept is not None else None
    if direction == "hessian":
        if hessian_vector is None:
            raise ValueError("direction 'hessian' needs the top Hessian eigenvector")
        first = hessian_direction(hessian_vector, cpu_params, masks=cpu_masks)
    else:
        first = random_direction(cpu_params, gen, normalization, include_1d=include_1d, masks=cpu_masks)
    dirs = [first]
    if mode == "2d":
        dirs.append(random_direction(cpu_params, gen, normalization, include_1d=include_1d, masks=cpu_masks))
    elif mode != "1d":
        raise ValueError(f"unknown mode {mode!r}; use '1d' or '2d'")
    dirs = [[copy_like(d, p) for d, p in zip(dd, params, strict=True)] for dd in dirs]  # device, layout
    base = [p.clone() for p in params]

    if mode == "1d":
        coords = alphas.reshape(-1, 1)
    else:
        aa, bb = np.meshgrid(alphas, alphas, indexing="ij")
        coords = np.stack([aa.ravel(), bb.ravel()], axis=1)  # (steps^2, 2), alpha-major
    eval_seconds = ev.time_one()  # one plain pass: the reference a grid point's cost is measured against
    accelerate(ev, eval_seconds, coords.shape[0], compile)
    sweep_started = time.perf_counter()
    out = sweep(ev.params, base, dirs, coords, ev.evaluate, progress=_reporter(progress, mode))
    if ev.device.type == "cuda":
        torch.cuda.synchronize(ev.device)
    sweep_seconds = time.perf_counter() - sweep_started
    torch._foreach_copy_(ev.params, base)

    centre = steps // 2
    if mode == "1d":
        loss, acc = out[:, 0], out[:, 1]
        curv: Any = curvature(alphas, loss)
        c_loss, c_acc = loss[centre], acc[centre]
    else:
        loss, acc = out[:, 0].reshape(steps, steps), out[:, 1].reshape(steps, steps)
        curv = [curvature(alphas, loss[:, centre]), curvature(alphas, loss[centre, :])]
        c_loss, c_acc = loss[centre, centre], acc[centre, centre]
    points = coords.shape[0]
    summary: dict[str, Any] = {
        "mode": mode,
        "alpha": _json(alphas),
        **({"beta": _json(alphas)} if mode == "2d" else {}),
        "loss": _json(loss),
        "accuracy": _json(acc),
        "center_loss": _finite(c_loss),
        "center_accuracy": _finite(c_acc),
        "curvature": curv,
        "direction": direction,
        "normalization": "hessian eigenvector" if direction == "hessian" and mode == "1d" else normalization,
        "include_1d": include_1d,
        "masked": bool(use_mask),
        "seed": seed,
        "steps": steps,
        "span": span,
        "precision": precision,
        "n_samples": n,
        "points": points,
        "seconds": time.perf_counter() - started,
        "seconds_per_point": sweep_seconds / points,
        "eval_seconds": eval_seconds,
        "compiled": ev.compiled,
        "cuda_graph": ev.cuda_graph,
        "channels_last": ev.channels_last,
    }
    arrays = {"alpha": alphas, "loss": loss, "accuracy": acc}
    if mode == "2d":
        arrays["beta"] = alphas
    return LandscapeResult(summary, arrays)


def interpolation(
    model: nn.Module,
    target: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    device: torch.device,
    steps: int = 21,
    batchnorm: Literal["interpolate", "recompute"] = "interpolate",
    bn_samples: int = 2048,
    max_samples: int = 2048,
    batch_size: int = 2048,
    precision: Precision = "fp32",
    target_checkpoint_id: int | None = None,
    progress: Progress | None = None,
) -> LandscapeResult:
    """Loss and accuracy along the straight line from ``model`` (alpha 0) to ``target`` (alpha 1).

    ``batchnorm="recompute"`` re-estimates running statistics at every point on the first ``bn_samples``
    samples of ``x`` (Frankle et al. 2020; plain interpolation of BatchNorm networks collapses the
    variance); the endpoints are then re-estimated too, so both ends use the same rule.
    """
    started = time.perf_counter()
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (both endpoints), got {steps}")
    if batchnorm not in ("interpolate", "recompute"):
        raise ValueError(f"unknown batchnorm {batchnorm!r}; use 'interpolate' or 'recompute'")
    n = min(int(x.shape[0]), max_samples)
    ev = PointEvaluator(model, x[:n], y[:n], device=device, batch_size=batch_size, precision=precision)
    try:
        end_p, end_b = ev.state_of(target)
    except ValueError as exc:
        raise ValueError(f"the target checkpoint does not match this one: {exc}") from None
    start_p = [p.detach().clone() for p in ev.params]
    start_b = [b.clone() for b in ev.buffers]
    alphas = np.linspace(0.0, 1.0, steps)
    state, start, end = ev.params + ev.buffers, start_p + start_b, end_p + end_b
    before = None
    if batchnorm == "recompute":
        x_bn = x[: min(int(x.shape[0]), bn_samples)]

        def before() -> None:
            ev.recompute_batchnorm(x_bn)

    if batchnorm == "interpolate":  # re-estimating statistics runs the model in train mode between replays
        ev.use_cuda_graph()
    sweep_started = time.perf_counter()
    out = interpolate_sweep(
        state, start, end, alphas, ev.evaluate, before=before, progress=_reporter(progress, "interpolation")
    )
    sweep_seconds = time.perf_counter() - sweep_started
    loss, acc = out[:, 0], out[:, 1]
    summary = {
        "mode": "interpolation",
        "alpha": _json(alphas),
        "loss": _json(loss),
        "accuracy": _json(acc),
        "center_loss": _finite(loss[0]),
        "center_accuracy": _finite(acc[0]),
        "target_checkpoint_id": target_checkpoint_id,
        "barrier": barrier(loss),
        "error_barrier": barrier(1.0 - acc),
        "batchnorm": batchnorm,
        "bn_samples": min(int(x.shape[0]), bn_samples) if batchnorm == "recompute" else 0,
        "steps": steps,
        "precision": precision,
        "n_samples": n,
        "points": steps,
        "seconds": time.perf_counter() - started,
        "seconds_per_point": sweep_seconds / steps,
    }
    return LandscapeResult(summary, {"alpha": alphas, "loss": loss, "accuracy": acc})


def accelerate(ev: PointEvaluator, eval_seconds: float, points: int, compile: str) -> None:
    """Compile the forward when the sweep would take over ``COMPILE_AFTER_SECONDS`` eagerly (or when asked);
    otherwise, on a GPU, replay one evaluation as a CUDA graph (no compilation, fewer launches)."""
    if compile == "on" or (compile == "auto" and eval_seconds * points > COMPILE_AFTER_SECONDS):
        ev.use_compile()
    else:
        ev.use_cuda_graph()


def _finite(v: float) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None
