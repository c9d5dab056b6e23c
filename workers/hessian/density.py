"""Spectral density by stochastic Lanczos quadrature (SLQ), with Gaussian broadening.

The empirical spectral density ``phi(t) = 1/n sum_i delta(t - lambda_i)`` is estimated as in Ghorbani,
Krishnan & Xiao 2019 ("An Investigation into Neural Net Optimization via Hessian Eigenvalue Density",
ICML, section 2.2) and Papyan 2020 ("Traces of Class/Cross-Class Structure Pervade Deep Learning
Spectra", JMLR, section 5; the SLQ of Lin, Saad & Yang 2016 and Ubaru, Chen & Saad 2017): for each of
``V`` random unit vectors ``v`` (Rademacher / sqrt(n)), ``m`` Lanczos steps from ``v`` give Ritz values
``theta_i`` and Gauss quadrature weights ``tau_i = (e_1^T s_i)^2`` that sum to 1, and

    phi_sigma(t) = 1/V sum_v sum_i tau_i g_sigma(t - theta_i),

``g_sigma`` a Gaussian of standard deviation ``sigma``.

The quadrature is exact for polynomials of degree up to ``2m - 1``; in particular its first moment
``sum_i tau_i theta_i = v^T H v``, whose mean over Rademacher vectors is ``tr(H) / n``.

``sigma`` is given relative to the spread of the Ritz values, ``sigma = rel_sigma * (max theta - min
theta)``; the default ``1.6e-3`` matches the variance ``1e-5`` that Ghorbani et al. and PyHessian's
``density(sigma_squared=1e-5)`` use on a spectrum rescaled to ``[-1, 1]`` (``sqrt(1e-5) / 2``). The density
is tabulated on ``grid`` equally spaced points spanning the Ritz values plus ``5 sigma`` on each side and
normalised to mass 1 by the trapezoidal rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from workers.hessian.lanczos import lanczos_tridiagonal, lanczos_tridiagonals, ritz
from workers.hessian.trace import MatMat, MatVec, rademacher

__all__ = ["SpectralDensity", "broaden", "slq"]


@dataclass
class SpectralDensity:
    x: Tensor  # (G,) grid, float64
    y: Tensor  # (G,) density on the grid, trapezoidal mass 1
    nodes: Tensor  # (V, m) Ritz values per random vector (padded with NaN when a run stopped early)
    weights: Tensor  # (V, m) quadrature weights per vector, each row summing to 1 (0 where padded)
    sigma: float  # absolute standard deviation of the broadening
    products: int


def broaden(nodes: Tensor, weights: Tensor, *, rel_sigma: float, grid: int) -> tuple[Tensor, Tensor, float]:
    """Gaussian-broadened density of weighted nodes ``(V, m)`` on a grid; returns ``(x, y, sigma)``."""
    ok = torch.isfinite(nodes)
    theta, tau = nodes[ok].double(), weights[ok].double() / nodes.shape[0]  # (K,), (K,)
    lo, hi = float(theta.min()), float(theta.max())
    sigma = rel_sigma * (hi - lo) if hi > lo else rel_sigma * max(abs(hi), 1.0)
    x = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, grid, dtype=torch.float64)  # (G,)
    y = torch.zeros_like(x)
    for chunk in torch.split(torch.arange(theta.numel()), 4096):  # bounds memory at G x 4096
        z = (x[:, None] - theta[None, chunk]) / sigma  # (G, c)
        y += (torch.exp(-0.5 * z**2) * tau[None, chunk]).sum(1) / (sigma * math.sqrt(2 * math.pi))
    y /= torch.trapezoid(y, x)
    return x, y, sigma


def slq(
    matvec: MatVec,
    n: int,
    *,
    vectors: int,
    iters: int,
    rel_sigma: float = 1.6e-3,
    grid: int = 1000,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    matmat: MatMat | None = None,
    block: int = 1,
) -> SpectralDensity:
    """SLQ density from ``vectors`` Rademacher starts of ``iters`` Lanczos steps each (``vectors * iters``
    products at most; a run stops early on an invariant subspace, where its quadrature is exact).

    With ``matmat`` (``(b, n) -> (b, n)``) and ``block > 1``, up to ``block`` of the runs go in lockstep,
    their products in one pass per step (:func:`workers.hessian.lanczos.lanczos_tridiagonals`); the starts
    are drawn in the same order, so the density is the same up to rounding.
    """
    if vectors < 1 or iters < 1 or grid < 2:
        raise ValueError(f"need vectors >= 1, iters >= 1, grid >= 2; got {vectors}, {iters}, {grid}")
    m = min(iters, n)
    nodes = torch.full((vectors, m), math.nan, dtype=torch.float64)  # (V, m)
    weights = torch.zeros((vectors, m), dtype=torch.float64)  # (V, m)
    products = 0
    row = 0
    while row < vectors:
        b = min(block, vectors - row) if matmat is not None else 1
        starts = torch.stack(
            [rademacher(n, generator, dtype=dtype, device=device) for _ in range(b)]
        )  # (b, n)
        if b > 1:
            runs = lanczos_tridiagonals(matmat, starts, m)
        else:
            runs = [lanczos_tridiagonal(matvec, starts[0], m)[:2]]
        for alpha, beta in runs:
            theta, s = ritz(alpha, beta)  # (j,), (j, j)
            j = theta.numel()
            nodes[row, :j] = theta
            weights[row, :j] = s[0] ** 2
            products += j
            row += 1
    x, y, sigma = broaden(nodes, weights, rel_sigma=rel_sigma, grid=grid)
    return SpectralDensity(x, y, nodes, weights, sigma, products)
