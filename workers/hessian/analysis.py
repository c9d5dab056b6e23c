"""The Hessian analysis: top and most negative eigenvalues, trace, spectral density and outliers.

One pass over the pieces of this package (DESIGN.md section 6), on the Hessian of the mean cross-entropy
over the first ``max_samples`` samples in ``eval()`` mode:

1. :func:`workers.hessian.lanczos.lanczos` for the ``top_k`` largest algebraic and ``n_negative`` most
   negative eigenvalues, with residual norms and the top eigenvector;
2. :mod:`workers.hessian.trace` (Hutchinson or Hutch++) for the trace and its standard error;
3. :func:`workers.hessian.density.slq` for the spectral density;
4. :func:`workers.hessian.outliers.split_outliers` for the outliers and the bulk edge;
5. optionally the top eigenvalues of each parameter group's diagonal block (per layer).

Each phase draws its random vectors from its own generator seeded from ``seed``, so a phase's results do
not depend on how many products an earlier one took. For pruned checkpoints the operator is restricted to
the unpruned coordinates (:func:`workers.hessian.hvp.pruning_mask`) and the result says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from workers.hessian.block_lanczos import block_lanczos
from workers.hessian.density import SpectralDensity, slq
from workers.hessian.hvp import HessianOperator, HVPMethod, default_block, hessian_operator
from workers.hessian.lanczos import lanczos
from workers.hessian.outliers import split_outliers
from workers.hessian.trace import hutchinson, hutchpp

logger = logging.getLogger(__name__)

__all__ = ["HessianResult", "hessian_spectrum", "parameter_groups"]

Progress = Callable[[float, str], None]


@dataclass
class HessianResult:
    top_eigenvalues: list[float]  # descending
    residuals: list[float]  # ||H u - theta u|| of each top eigenvalue: a true eigenvalue lies that close
    errors: list[float]  # min(r, r^2 / gap): the eigenvalue error estimate Lanczos stopped on
    negative_eigenvalues: list[float]  # ascending (most negative first)
    negative_residuals: list[float]
    negative_errors: list[float]
    converged: bool
    lanczos_iterations: int  # products spent on the top and negative eigenvalues
    lanczos_block: int  # products per Lanczos step, computed in one pass
    trace: float | None
    trace_stderr: float | None
    trace_method: str
    density: dict[str, list[float]]  # {"x": grid, "y": density}; empty lists when not computed
    density_sigma: float | None
    outliers: list[float]
    bulk_edge: float | None
    subspace: str  # "unpruned" or "all"
    n_params: int
    n_samples: int
    num_classes: int
    hvp_count: int
    hvp_method: str
    hvp_seconds: float
    seconds: float
    phase_seconds: dict[str, float]  # setup, lanczos, trace, density (and per_layer): where seconds went
    dtype: str
    per_layer: dict[str, dict[str, Any]] | None
    # (D,) float32 over all parameters, flattened in named_parameters() order, zeros at pruned coordinates;
    # left on the device it was computed on until arrays() (copying 47 MB to the host is 1.5 products)
    top_eigenvector: Tensor = field(repr=False)
    lanczos_alpha: np.ndarray = field(repr=False)  # (j,) float64
    lanczos_beta: np.ndarray = field(repr=False)  # (j,) float64
    lanczos_projection: np.ndarray = field(repr=False)  # (j, j) Q^T H Q of a block run, else (0, 0)
    density_nodes: np.ndarray = field(repr=False)  # (V, m) float64
    density_weights: np.ndarray = field(repr=False)  # (V, m) float64

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable keys (DESIGN.md section 4), without the arrays."""
        return {k: _finite(v) for k, v in self.__dict__.items() if k not in ARRAYS}

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays, on the host (the eigenvector is copied from the device here)."""
        out = {k: getattr(self, k) for k in ARRAYS}
        out["top_eigenvector"] = self.top_eigenvector.cpu().numpy()
        return out


ARRAYS = (
    "top_eigenvector",
    "lanczos_alpha",
    "lanczos_beta",
    "lanczos_projection",
    "density_nodes",
    "density_weights",
)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float (an undefined standard error, say) replaced by ``None``."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def parameter_groups(model: nn.Module) -> dict[str, list[str]]:
    """Parameter names grouped by the module that owns them directly (``conv1`` -> ``conv1.weight``)."""
    groups: dict[str, list[str]] = {}
    for mod_name, module in model.named_modules():
        names = [f"{mod_name}.{p}" if mod_name else p for p, _ in module.named_parameters(recurse=False)]
        if names:
            groups[mod_name or "."] = names
    return groups


def _floats(t: Tensor) -> list[float]:
    return [float(v) for v in t]


def hessian_spectrum(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    device: torch.device,
    max_samples: int = 2048,
    batch_size: int = 512,
    top_k: int | None = None,
    n_negative: int = 3,
    lanczos_iters: int = 100,
    lanczos_block: int | None = None,
    tol: float = 1e-4,
    trace_probes: int = 30,
    trace_method: Literal["hutchinson", "hutchpp"] = "hutchinson",
    density_vectors: int = 3,
    density_iters: int = 40,
    density_sigma: float = 1.6e-3,
    density_grid: int = 1000,
    seed: int = 0,
    subspace: Literal["auto", "all", "unpruned"] = "auto",
    dtype: torch.dtype = torch.float32,
    per_layer: bool = False,
    hvp_method: HVPMethod = "double_backward",
    progress: Progress | None = None,
) -> HessianResult:
    """Hessian spectrum of the mean cross-entropy of ``model`` on the first ``max_samples`` of ``(x, y)``.

    Args:
        model: a classifier ``(B, *input_shape) -> (B, C)``; neither moved, cast nor written to, and each
            submodule's training flag is restored.
        x, y: inputs ``(N, *input_shape)`` and integer labels ``(N,)`` on any device.
        top_k: largest eigenvalues wanted; ``None`` means ``C + 5`` so the ``C`` class outliers of Papyan
            2020 and the bulk edge show (DESIGN.md section 6).
        n_negative: most negative eigenvalues wanted (0 for none).
        lanczos_iters: most products for them.
        lanczos_block: products per Lanczos step, computed together in one pass over the data (block
            Lanczos, :mod:`workers.hessian.block_lanczos`); ``None``:
            :func:`workers.hessian.hvp.default_block` for the device and method.
        tol: Lanczos stops when every wanted residual is at most ``tol * max|theta|``.
        trace_probes: products spent on the trace (0 skips it).
        density_vectors, density_iters: SLQ random vectors and Lanczos steps per vector (0 skips it).
        subspace: ``"auto"`` restricts to unpruned coordinates when a weight of 2+ dimensions holds exact
            zeros, else uses all; ``"all"`` and ``"unpruned"`` force one.
        per_layer: also the top eigenvalues of each parameter group's diagonal block.
        progress: called after every product with the fraction of the planned products done and a
            message such as ``"HVP 12/80 (Lanczos)"``.
    """
    started = time.perf_counter()
    phase_seconds: dict[str, float] = {}

    def lap(name: str) -> None:  # the seconds since the last phase ended
        phase_seconds[name] = time.perf_counter() - started - sum(phase_seconds.values())

    if x.shape[0] != y.shape[0] or y.ndim != 1 or x.shape[0] == 0:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must hold the same N >= 1 samples")
    n_samples = min(int(x.shape[0]), max_samples)
    x, y = x[:n_samples], y[:n_samples]
    op = hessian_operator(model, x, y, batch_size=batch_size, device=device, dtype=dtype, method=hvp_method)
    mask = op.unpruned()  # from the operator's own copy of the weights, on the device
    restrict = subspace == "unpruned" or (subspace == "auto" and not bool(mask.all()))
    if restrict:
        op = op.restricted(mask)
    block = lanczos_block if lanczos_block is not None else default_block(op.device, hvp_method)
    if block < 1:
        raise ValueError(f"lanczos_block must be at least 1, got {block}")
    num_classes = op.num_outputs()
    k = top_k if top_k is not None else num_classes + 5
    groups = parameter_groups(model) if per_layer else {}
    planned = (
        min(lanczos_iters, op.n)
        + trace_probes
        + density_vectors * min(density_iters, op.n)
        + len(groups) * lanczos_iters
    )
    phase = {"name": "Lanczos", "base": 0}

    def report(count: int) -> None:
        done = phase["base"] + count
        if progress is not None:
            progress(min(done / max(planned, 1), 1.0), f"HVP {done}/{planned} ({phase['name']})")

    op.on_product = report
    kw: dict[str, Any] = {"dtype": dtype, "device": op.device}

    lap("setup")
    wanted = dict(k=k, n_smallest=n_negative, max_iter=lanczos_iters, tol=tol, **kw)
    gen = torch.Generator().manual_seed(seed)
    if block > 1:
        top = block_lanczos(op.matmat, op.n, block=block, generator=gen, **wanted)
    else:
        top = lanczos(op.matvec, op.n, generator=gen, **wanted)
    outliers, edge = split_outliers(_floats(top.top))

    lap("lanczos")
    # the probes and the SLQ runs also take their products block at a time
    trace, stderr = _trace(
        op, phase, trace_method, trace_probes, torch.Generator().manual_seed(seed + 1), block, kw
    )
    lap("trace")
    density, dens = _density(
        op, phase, density_vectors, density_iters, density_sigma, density_grid, seed + 2, block, kw
    )
    lap("density")

    layers = None
    if groups:
        phase["name"] = "per-layer Lanczos"
        layers = _per_layer(
            model,
            x,
            y,
            groups,
            mask if restrict else None,
            op,
            phase,
            report,
            k=k,
            lanczos_iters=lanczos_iters,
            tol=tol,
            seed=seed,
            batch_size=batch_size,
            hvp_method=hvp_method,
        )
        lap("per_layer")

    vector = op.expand(top.top_vector if top.top_vector is not None else torch.zeros(op.n, **kw))  # (D,)
    result = HessianResult(
        top_eigenvalues=_floats(top.top),
        residuals=_floats(top.top_residuals),
        errors=_floats(top.top_errors),
        negative_eigenvalues=_floats(top.bottom),
        negative_residuals=_floats(top.bottom_residuals),
        negative_errors=_floats(top.bottom_errors),
        converged=top.converged,
        lanczos_iterations=top.iterations,
        lanczos_block=block,
        trace=trace,
        trace_stderr=stderr,
        trace_method=trace_method,
        density=density,
        density_sigma=dens.sigma if dens else None,
        outliers=outliers,
        bulk_edge=edge,
        subspace="unpruned" if restrict else "all",
        n_params=op.n,
        n_samples=n_samples,
        num_classes=num_classes,
        hvp_count=op.count + sum(layer["hvp_count"] for layer in (layers or {}).values()),
        hvp_method=hvp_method,
        hvp_seconds=op.seconds,
        seconds=time.perf_counter() - started,
        phase_seconds=phase_seconds,
        dtype=str(dtype).removeprefix("torch."),
        per_layer=layers,
        top_eigenvector=vector.detach().float(),
        lanczos_alpha=top.alpha.numpy(),
        lanczos_beta=top.beta.numpy(),
        lanczos_projection=top.projection.numpy() if top.projection is not None else np.zeros((0, 0)),
        density_nodes=dens.nodes.numpy() if dens else np.zeros((0, 0)),
        density_weights=dens.weights.numpy() if dens else np.zeros((0, 0)),
    )
    logger.debug("hessian: top %s after %d HVPs", result.top_eigenvalues[:3], result.hvp_count)
    return result


def _trace(
    op: HessianOperator,
    phase: dict[str, Any],
    method: str,
    probes: int,
    gen: torch.Generator,
    block: int,
    kw: dict,
) -> tuple[float | None, float | None]:
    if probes <= 0:
        return None, None
    phase["name"] = "trace"
    if method == "hutchpp":
        est = hutchpp(op.matvec, op.n, products=max(probes, 3), generator=gen, **kw)
    else:
        est = hutchinson(op.matvec, op.n, probes=probes, generator=gen, matmat=op.matmat, block=block, **kw)
    return est.value, est.stderr


def _density(
    op: HessianOperator,
    phase: dict[str, Any],
    vectors: int,
    iters: int,
    rel_sigma: float,
    grid: int,
    seed: int,
    block: int,
    kw: dict,
) -> tuple[dict[str, list[float]], SpectralDensity | None]:
    if vectors <= 0 or iters <= 0:
        return {"x": [], "y": []}, None
    phase["name"] = "density"
    gen = torch.Generator().manual_seed(seed)
    dens = slq(
        op.matvec,
        op.n,
        vectors=vectors,
        iters=iters,
        rel_sigma=rel_sigma,
        grid=grid,
        generator=gen,
        matmat=op.matmat,
        block=block,
        **kw,
    )
    return {"x": _floats(dens.x), "y": _floats(dens.y)}, dens


def _per_layer(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    groups: dict[str, list[str]],
    mask: Tensor | None,
    full: HessianOperator,
    phase: dict[str, Any],
    report: Callable[[int], None],
    *,
    k: int,
    lanczos_iters: int,
    tol: float,
    seed: int,
    batch_size: int,
    hvp_method: HVPMethod,
) -> dict[str, dict[str, Any]]:
    """Top eigenvalues of each group's diagonal Hessian block (the other parameters held fixed)."""
    phase["base"] = full.count
    params = dict(model.named_parameters())
    ends = np.cumsum([p.numel() for p in params.values()])
    span = {
        name: (int(end) - p.numel(), int(end)) for (name, p), end in zip(params.items(), ends, strict=True)
    }
    out: dict[str, dict[str, Any]] = {}
    for group, names in groups.items():
        sub = None
        if mask is not None:
            sub = torch.cat([mask[span[n][0] : span[n][1]] for n in names])
            if not bool(sub.any()):
                continue
        op = hessian_operator(
            model,
            x,
            y,
            batch_size=batch_size,
            device=full.device,
            dtype=full.dtype,
            names=names,
            mask=sub,
            method=hvp_method,
        )
        op.on_product = report
        res = lanczos(
            op.matvec,
            op.n,
            k=min(k, op.n),
            max_iter=lanczos_iters,
            tol=tol,
            generator=torch.Generator().manual_seed(seed),
            dtype=full.dtype,
            device=full.device,
            want_vector=False,
        )
        out[group] = {
            "parameters": names,
            "n_params": op.n,
            "top_eigenvalues": _floats(res.top),
            "residuals": _floats(res.top_residuals),
            "converged": res.converged,
            "hvp_count": op.count,
        }
        phase["base"] += op.count
    return out
