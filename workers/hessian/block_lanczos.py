"""Extreme eigenvalues by block Lanczos: ``b`` Hessian-vector products per step, computed in one pass.

Block Lanczos (Golub & Underwood 1977; Golub & Van Loan, "Matrix Computations", 4th ed., section 10.3.6)
grows an orthonormal basis ``Q = [Q_0, Q_1, ...]`` of the block Krylov space ``span{Q_0, H Q_0, H^2 Q_0,
...}`` ``b`` vectors at a time. Each step multiplies ``H`` by a whole block, which
:meth:`workers.hessian.hvp.HessianOperator.matmat` computes in one pass over the data: the forward and
backward pass are shared by the ``b`` tangents, so on an accelerator a block costs far less than ``b``
single products (DESIGN.md section 6; ``bench/hessian.py`` measures the ratio).

Each step:

1. ``W = H Q_j`` (``b`` products);
2. ``C = Q^T W`` against the whole basis, ``W <- W - Q C``, twice ("twice is enough", as in
   :mod:`workers.hessian.lanczos`); ``C`` fills the block column ``j`` of the projected matrix
   ``T = Q^T H Q`` (block tridiagonal up to rounding; kept whole and symmetrised);
3. the remainder is factored ``W^T = Q_{j+1} B`` by Gram-Schmidt over its rows (twice) followed by an
   SVD of the small triangular factor, so a rank-deficient remainder shows as small singular values: a
   direction whose singular value is below rounding level is replaced by a fresh random vector orthogonal
   to the basis (the Krylov space has an invariant subspace there), and when all are, the Ritz values
   are exact.

The Ritz pairs ``(theta_i, Q s_i)`` of ``T`` satisfy ``H Q s_i - theta_i Q s_i = Q_{j+1} B s_i^{(j)}``
with ``s_i^{(j)}`` the last block of ``s_i``, so each residual norm is ``||B s_i^{(j)}||`` for free, and
the same stopping test as single-vector Lanczos applies: every wanted value's error estimate ``min(r,
r^2/gap)`` at most ``tol * max|theta|`` (:func:`workers.hessian.lanczos.error_estimates`).

A block also finds every copy of a repeated eigenvalue (up to ``b`` of them). The Krylov space of one
vector holds one direction of each eigenspace, so single-vector Lanczos finds further copies only as
rounding seeds them: on a matrix with 5 three times over it reported ``[5, 5, 4, 3]`` as its converged
top 4 (``tests/hessian/test_block_lanczos.py``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from workers.hessian.lanczos import INITIAL_ROWS, LanczosResult, check_arguments, error_estimates, passes
from workers.hessian.trace import MatMat, gaussian

__all__ = ["block_lanczos"]


def _orthogonalise(w: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
    """``w (b, n)`` minus its projection on the rows of ``q (m, n)``, twice; returns it and ``C = q w^T``
    ``(m, b)``, the coefficients removed."""
    c = _coefficients(q, w)  # (m, b)
    w = w - c.T @ q
    c2 = _coefficients(q, w)
    return w - c2.T @ q, c + c2


def _coefficients(q: Tensor, w: Tensor) -> Tensor:
    """``q w^T`` ``(m, b)`` as ``b`` matrix-vector products: a product with a reduction over millions of
    entries and a tiny output is the shape that matrix-vector kernels spread over the whole device. On the
    H100 (n = 11.2M, b = 2) the two products took 0.20, 0.36, 0.67 and 1.27 ms for m = 4, 10, 20 and 40
    rows, and one matrix product ``q @ w.T`` 0.85, 0.89, 2.13 and 2.20 ms."""
    return torch.stack([q @ row for row in w], 1)


def _random_rows(count: int, q: Tensor, generator: torch.Generator | None) -> Tensor:
    """``count`` unit rows orthogonal to the rows of ``q (m, n)`` and to each other."""
    n = q.shape[1]
    rows = torch.stack([gaussian(n, generator, dtype=q.dtype, device=q.device) for _ in range(count)])
    rows, _ = _orthogonalise(rows, q)
    return _qr_rows(rows)[0]  # (count, n)


def _ritz_pairs(t: Tensor, coupling: Tensor, lo: int) -> tuple[Tensor, Tensor, Tensor]:
    """Ritz values ``(m,)`` ascending, eigenvectors ``(m, m)`` of the projection ``t`` and their residual
    norms ``||B s^{(j)}||``, with ``B`` the coupling to the next block and ``s^{(j)}`` rows ``lo:`` of each
    eigenvector (the last block)."""
    theta, s = torch.linalg.eigh(t)
    return theta, s, torch.linalg.vector_norm(coupling @ s[lo:], dim=0)


def _qr_rows(w: Tensor) -> tuple[Tensor, Tensor]:
    """``w (b, n) = R^T Q`` with orthonormal rows ``Q (b, n)`` and upper triangular ``R (b, b)`` (both on
    ``w``'s device), by classical Gram-Schmidt over the rows, twice.

    For the few rows of a block this is a handful of matrix-vector products on the device. On CUDA,
    ``torch.linalg.qr`` of an 11.7M x 4 matrix took about 85 ms (its Householder panels run on the host),
    three times the Hessian-vector products of the step. A row that is (numerically) a combination of the
    ones before it gets a tiny ``R`` diagonal and an arbitrary direction, which the caller's SVD of ``R``
    finds and replaces.
    """
    b = w.shape[0]
    q = torch.empty_like(w)
    r = torch.zeros(b, b, dtype=w.dtype, device=w.device)  # on the device: the caller copies it once
    for i in range(b):
        v = w[i]
        for _ in range(2 if i else 0):  # "twice is enough"
            c = q[:i] @ v  # (i,)
            v = v - c @ q[:i]
            r[:i, i] += c
        norm = torch.linalg.vector_norm(v)
        q[i] = v / norm.clamp_min(torch.finfo(w.dtype).tiny)
        r[i, i] = norm
    return q, r


def block_lanczos(
    matmat: MatMat,
    n: int,
    *,
    k: int,
    block: int,
    n_smallest: int = 0,
    max_iter: int = 100,
    tol: float = 1e-5,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    want_vector: bool = True,
    criterion: Literal["eigenvalue", "residual"] = "eigenvalue",
) -> LanczosResult:
    """The ``k`` largest and ``n_smallest`` smallest algebraic eigenvalues, ``block`` products per step.

    Arguments as :func:`workers.hessian.lanczos.lanczos`, with ``matmat`` mapping ``(b, n)`` to ``(b, n)``
    and ``max_iter`` the most products (rounded down to whole blocks, at least one block). The result's
    ``projection`` holds ``T = Q^T H Q`` (float64); ``alpha`` and ``beta`` (a tridiagonal ``T``'s) are
    empty, and ``iterations`` counts products.
    """
    check_arguments(k, n_smallest, n, tol, criterion)
    if block < 1:
        raise ValueError(f"need block >= 1, got {block}")
    b = min(block, n)
    steps = max(1, min(max_iter // b, n // b))
    wanted = k + n_smallest
    eps = torch.finfo(dtype).eps

    start = torch.stack([gaussian(n, generator, dtype=dtype, device=device) for _ in range(b)])  # (b, n)
    basis = torch.empty(min(steps, max(1, math.ceil(INITIAL_ROWS / b))) * b, n, dtype=dtype, device=device)
    basis[:b] = _qr_rows(start)[0]
    t = torch.zeros(steps * b, steps * b, dtype=torch.float64)  # projected matrix, filled block by block
    converged = False
    hi = 0
    for j in range(steps):
        lo, hi = j * b, (j + 1) * b
        w = matmat(basis[lo:hi])  # (b, n)
        w, c = _orthogonalise(w, basis[:hi])
        q_r, r = _qr_rows(w)  # (b, n), (b, b)
        host = torch.cat([c.reshape(-1), r.reshape(-1)]).double().cpu()  # one wait for the device per step
        c, r = host[: hi * b].view(hi, b), host[hi * b :].view(b, b)
        t[:hi, lo:hi] = c
        t[lo:hi, :hi] = c.T
        diag = t[lo:hi, lo:hi]
        t[lo:hi, lo:hi] = (diag + diag.T) / 2
        u, sigma, vh = torch.linalg.svd(r)
        coupling = torch.diag(sigma) @ vh  # B: W^T = (Q_r U) B
        last = j + 1 == steps
        theta = s = res = None  # past 100 rows, Ritz values (a dense eigh) every fifth step only
        if hi <= 100 or j % 5 == 0 or last:
            theta, s, res = _ritz_pairs(t[:hi, :hi], coupling, lo)
        scale = max(float(t[:hi, :hi].abs().max()), eps)
        if bool((sigma <= 10 * eps * scale).all()) or hi == n:  # an invariant subspace: exact values
            converged = True
            break
        if theta is not None and hi >= min(wanted, n):
            if passes(theta, res, k=k, n_smallest=n_smallest, tol=tol, criterion=criterion):
                converged = True
                break
        if last:
            break
        new = u.T.to(device=q_r.device, dtype=q_r.dtype) @ q_r  # (b, n) orthonormal rows
        small = sigma <= 10 * eps * scale
        if bool(small.any()):  # an invariant subspace in those directions: restart them at random
            keep, _ = _orthogonalise(new[~small.to(new.device)], basis[:hi])  # noise can leak into them
            keep = _qr_rows(keep)[0]
            new = torch.cat([keep, _random_rows(int(small.sum()), torch.cat([basis[:hi], keep]), generator)])
        if hi + b > basis.shape[0]:
            grown = torch.empty(min(2 * basis.shape[0], steps * b), n, dtype=basis.dtype, device=basis.device)
            grown[:hi] = basis[:hi]
            basis = grown
        basis[hi : hi + b] = new
    if theta is None:
        theta, s, res = _ritz_pairs(t[:hi, :hi], coupling, hi - b)
    err = error_estimates(theta, res)
    kk, mm = min(k, hi), min(n_smallest, hi)
    vector = None
    if want_vector:
        coeff = s[:, -1].to(device=basis.device, dtype=basis.dtype)  # (hi,)
        vector = basis[:hi].T @ coeff  # (n,)
        vector = vector / torch.linalg.vector_norm(vector)
    empty = torch.zeros(0, dtype=torch.float64)
    return LanczosResult(
        top=theta.flip(0)[:kk].clone(),
        top_residuals=res.flip(0)[:kk].clone(),
        top_errors=err.flip(0)[:kk].clone(),
        bottom=theta[:mm].clone(),
        bottom_residuals=res[:mm].clone(),
        bottom_errors=err[:mm].clone(),
        top_vector=vector,
        alpha=empty,
        beta=empty,
        iterations=hi,
        converged=converged,
        projection=t[:hi, :hi].clone(),
    )
