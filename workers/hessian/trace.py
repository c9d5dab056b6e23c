"""Stochastic trace estimates of a symmetric operator, with their standard errors.

- Hutchinson (1989): ``tr(H) = E[z^T H z]`` for Rademacher ``z`` (entries +-1), the variance-minimising
  choice among i.i.d. probes (``Var = 2 sum_{i != j} H_ij^2``); averaged over ``m`` probes, with the
  standard error ``std(z_i^T H z_i) / sqrt(m)``. PyHessian (Yao et al. 2020) uses the same estimator but
  stops on the relative change of the running mean, a test with a sign error that ends after two probes
  when the first is negative (DESIGN.md section 6); here the number of probes is fixed and the error bar
  is reported.
- Hutch++ (Meyer, Musco, Musco & Woodruff 2021, "Hutch++: Optimal Stochastic Trace Estimation", SOSA,
  Algorithm 1): a third of the products sketch the top of the spectrum, ``Q = orth(H S)``, whose part of
  the trace ``tr(Q^T H Q)`` is computed exactly; Hutchinson estimates only the deflated rest
  ``tr((I - QQ^T) H (I - QQ^T))``. Its error falls as ``1/m`` instead of ``1/sqrt(m)`` when a few outliers
  dominate the trace, as they do for network Hessians (Sagun et al. 2017). The standard error reported
  is that of the Hutchinson part.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["TraceEstimate", "device_generator", "gaussian", "hutchinson", "hutchpp", "rademacher"]

MatVec = Callable[[Tensor], Tensor]
MatMat = Callable[[Tensor], Tensor]  # (b, n) -> (b, n)


@dataclass
class TraceEstimate:
    value: float
    stderr: float  # standard error of the stochastic part
    samples: list[float]  # the probes' quadratic forms z^T H z (of the deflated operator for Hutch++)
    products: int  # products with H spent


def device_generator(generator: torch.Generator | None, device) -> torch.Generator | None:
    """``None`` on the CPU (draw from ``generator`` itself); elsewhere a generator on ``device`` seeded by
    one draw from ``generator``, so a vector of millions of entries is drawn where it is used.

    Drawing 11.7 million float64 Gaussians on the host took 0.43 s here, 17 times a ResNet-18 HVP on an
    H100; results stay deterministic for a seed on each kind of device (CPU results are unchanged).
    """
    device = torch.device(device)
    if device.type == "cpu":
        return None
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def gaussian(n: int, generator: torch.Generator | None, *, dtype: torch.dtype, device) -> Tensor:
    """Standard normal ``(n,)``: drawn in float64 on the CPU there, on the device elsewhere."""
    on_device = device_generator(generator, device)
    if on_device is None:
        return torch.randn(n, generator=generator, dtype=torch.float64).to(dtype=dtype)
    return torch.randn(n, generator=on_device, device=device, dtype=dtype)


def rademacher(n: int, generator: torch.Generator | None, *, dtype: torch.dtype, device) -> Tensor:
    """Entries +-1 with probability 1/2 each, ``(n,)`` (drawn where :func:`device_generator` says)."""
    on_device = device_generator(generator, device)
    if on_device is None:
        bits = torch.randint(0, 2, (n,), generator=generator, dtype=torch.int8)
        return (bits * 2 - 1).to(device=device, dtype=dtype)
    bits = torch.randint(0, 2, (n,), generator=on_device, device=device, dtype=torch.int8)
    return (bits * 2 - 1).to(dtype=dtype)


def _mean_and_stderr(samples: list[float]) -> tuple[float, float]:
    m = len(samples)
    mean = sum(samples) / m
    if m < 2:
        return mean, math.inf
    var = sum((s - mean) ** 2 for s in samples) / (m - 1)
    return mean, math.sqrt(var / m)


def hutchinson(
    matvec: MatVec,
    n: int,
    *,
    probes: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    matmat: MatMat | None = None,
    block: int = 1,
) -> TraceEstimate:
    """Hutchinson's estimate of ``tr(H)`` from ``probes`` Rademacher vectors (``probes`` products).

    With ``matmat`` (``(b, n) -> (b, n)``) and ``block > 1``, the probes go ``block`` at a time through one
    product pass each; they are drawn in the same order, so the estimate is the same up to rounding.
    """
    if probes < 1:
        raise ValueError(f"need at least one probe, got {probes}")
    samples: list[float] = []
    while len(samples) < probes:
        b = min(block, probes - len(samples)) if matmat is not None else 1
        z = torch.stack([rademacher(n, generator, dtype=dtype, device=device) for _ in range(b)])  # (b, n)
        hz = matmat(z) if b > 1 else matvec(z[0])[None]
        samples.extend((z * hz).sum(1).tolist())
    mean, se = _mean_and_stderr(samples)
    return TraceEstimate(mean, se, samples, probes)


def hutchpp(
    matvec: MatVec,
    n: int,
    *,
    products: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> TraceEstimate:
    """Hutch++ (Meyer et al. 2021, Algorithm 1) with ``products`` products with ``H`` (at least 3).

    ``s = products // 3`` sketch vectors (capped at ``n``), ``s`` products for ``tr(Q^T H Q)`` and the
    remaining ``products - 2 s`` Rademacher probes of the deflated operator.
    """
    if products < 3:
        raise ValueError(f"Hutch++ needs at least 3 products, got {products}")
    s = min(products // 3, n)
    sketch = torch.stack([matvec(rademacher(n, generator, dtype=dtype, device=device)) for _ in range(s)], 1)
    q, _ = torch.linalg.qr(sketch)  # (n, s) orthonormal basis of range(H S)
    exact = sum(float(torch.dot(q[:, i], matvec(q[:, i]))) for i in range(q.shape[1]))
    samples = []
    for _ in range(products - 2 * s):
        g = rademacher(n, generator, dtype=dtype, device=device)  # (n,)
        g = g - q @ (q.T @ g)  # (I - QQ^T) g
        samples.append(float(torch.dot(g, matvec(g))))  # g^T P H P g with P = I - QQ^T
    if not samples:
        return TraceEstimate(exact, math.inf if s < n else 0.0, [], 2 * s)
    mean, se = _mean_and_stderr(samples)
    return TraceEstimate(exact + mean, se, samples, 2 * s + len(samples))
