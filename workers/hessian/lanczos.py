"""Extreme eigenvalues of a symmetric operator by Lanczos with full re-orthogonalisation.

Lanczos (1950) builds an orthonormal basis ``Q_j`` of the Krylov space ``span{q, Hq, ..., H^{j-1} q}`` in
which ``H`` is the tridiagonal ``T_j = Q_j^T H Q_j`` (diagonal ``alpha``, off-diagonal ``beta``). The
eigenvalues of ``T_j`` (Ritz values) converge to both ends of the spectrum first, and each comes with an
exact residual norm for free: ``||H u_i - theta_i u_i|| = beta_j |s_{j,i}|`` with ``s_{j,i}`` the last
component of the ``i``-th eigenvector of ``T_j`` (Golub & Van Loan, "Matrix Computations", 4th ed.,
section 10.1.4). Since ``H`` is symmetric, some true eigenvalue lies within that residual of each Ritz
value (and within ``residual^2 / gap`` once it is separated by ``gap``), so the residuals are reported
as the convergence measure and iteration stops once every wanted one is below ``tol * max|theta|``.

Every new vector is orthogonalised against the whole basis, twice (classical Gram-Schmidt, "twice is
enough": Giraud, Langou & Rozloznik 2005). Without it, rounding makes converged Ritz values reappear as
spurious copies ("ghosts"), which is what stopped hessian-eigenthings' Lanczos early (DESIGN.md section 6).

Why not power iteration with deflation, as PyHessian (Yao et al. 2020) does: power iteration converges to
the eigenvalue of largest *magnitude*, so when the most negative eigenvalue is larger in magnitude than
the top positive one its "top-k" holds negative values (a ResNet-20's held -83.9), each eigenvalue costs a
separate run whose rate depends on the ratio of consecutive eigenvalues, and its stopping rule (relative
change of the estimate below 1e-3) says nothing about the error. Lanczos returns the largest *algebraic*
eigenvalues and the most negative ones from one Krylov space, with residuals, in far fewer products.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from workers.hessian.trace import gaussian

__all__ = ["LanczosResult", "lanczos", "lanczos_tridiagonal", "ritz"]

MatVec = Callable[[Tensor], Tensor]


@dataclass
class LanczosResult:
    """Wanted Ritz values with their residual norms ``||H u - theta u||`` (float64, on the CPU)."""

    top: Tensor  # (k,) largest algebraic, descending
    top_residuals: Tensor  # (k,)
    bottom: Tensor  # (m,) smallest algebraic (most negative first), ascending
    bottom_residuals: Tensor  # (m,)
    top_vector: Tensor | None  # (n,) unit Ritz vector of top[0], in the operator's dtype and device
    alpha: Tensor  # (j,) diagonal of T_j
    beta: Tensor  # (j,) off-diagonal of T_j, then the last residual norm beta_j
    iterations: int  # products with H
    converged: bool


def ritz(alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues ``(j,)`` ascending and eigenvectors ``(j, j)`` of the tridiagonal ``T_j`` (float64)."""
    j = alpha.numel()
    t = torch.diag(alpha.double())
    if j > 1:
        off = beta[: j - 1].double()
        t += torch.diag(off, 1) + torch.diag(off, -1)
    return torch.linalg.eigh(t)


def lanczos_tridiagonal(
    matvec: MatVec,
    start: Tensor,
    steps: int,
    *,
    stop: Callable[[Tensor, Tensor], bool] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run up to ``steps`` Lanczos steps from ``start`` ``(n,)``, re-orthogonalising fully.

    ``stop(alpha, beta)`` is asked after each step and ends the run when it returns ``True``; the run also
    ends when ``beta`` vanishes (an invariant subspace was found: the Ritz values are exact).

    Returns:
        ``alpha`` ``(j,)`` and ``beta`` ``(j,)`` in float64 on the CPU, and the basis ``Q`` ``(j, n)``.
    """
    n = start.numel()
    steps = min(steps, n)
    basis = torch.empty(steps, n, dtype=start.dtype, device=start.device)  # (steps, n) rows q_0..q_{j-1}
    basis[0] = start / torch.linalg.vector_norm(start)
    alphas: list[float] = []
    betas: list[float] = []
    eps = torch.finfo(start.dtype).eps
    for j in range(steps):
        w = matvec(basis[j])  # (n,)
        a = float(torch.dot(basis[j], w))
        w = w - a * basis[j]
        if j > 0:
            w = w - betas[-1] * basis[j - 1]
        q = basis[: j + 1]  # (j+1, n)
        for _ in range(2):  # "twice is enough"
            w = w - q.T @ (q @ w)
        b = float(torch.linalg.vector_norm(w))
        alphas.append(a)
        betas.append(b)
        alpha, beta = torch.tensor(alphas, dtype=torch.float64), torch.tensor(betas, dtype=torch.float64)
        scale = max(abs(x) for x in alphas) + max(betas)
        if j + 1 == steps or b <= 10 * eps * max(scale, eps):
            break
        if stop is not None and stop(alpha, beta):
            break
        basis[j + 1] = w / b
    j = len(alphas)
    return torch.tensor(alphas, dtype=torch.float64), torch.tensor(betas, dtype=torch.float64), basis[:j]


def lanczos(
    matvec: MatVec,
    n: int,
    *,
    k: int,
    n_smallest: int = 0,
    max_iter: int = 100,
    tol: float = 1e-5,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    want_vector: bool = True,
) -> LanczosResult:
    """The ``k`` largest algebraic and ``n_smallest`` smallest algebraic eigenvalues of ``matvec``.

    Args:
        matvec: ``v (n,) -> H v (n,)`` for a symmetric ``H``.
        n: the dimension.
        k: how many of the largest eigenvalues to return (at most the Krylov dimension reached).
        n_smallest: how many of the smallest (most negative) to return.
        max_iter: most products with ``H`` (capped at ``n``).
        tol: stop once every wanted Ritz value's residual norm is at most ``tol * max|theta|``.
        generator: seeds the Gaussian start vector (:func:`workers.hessian.trace.gaussian`: drawn on the
            CPU in float64 there, on the device elsewhere).
        want_vector: also return the top Ritz vector.

    Returns:
        A :class:`LanczosResult`; ``converged`` says whether the residual test (or an invariant subspace)
        ended the run rather than ``max_iter``.
    """
    if k < 1 or n_smallest < 0 or n < 1:
        raise ValueError(
            f"need k >= 1, n_smallest >= 0 and n >= 1, got k={k}, n_smallest={n_smallest}, n={n}"
        )
    if tol <= 0:
        raise ValueError(f"tol must be positive, got {tol}")
    start = gaussian(n, generator, dtype=dtype, device=device)  # (n,)
    wanted = k + n_smallest

    def converged(alpha: Tensor, beta: Tensor) -> bool:
        j = alpha.numel()
        if j < min(wanted, n):
            return False
        theta, s = ritz(alpha, beta)
        res = beta[-1] * s[-1].abs()  # (j,) residual norms, ascending order of theta
        picked = torch.cat([res[:n_smallest], res[max(j - k, 0) :]])
        return bool((picked <= tol * theta.abs().max()).all())

    def stop(alpha: Tensor, beta: Tensor) -> bool:
        j = alpha.numel()
        return (j <= 100 or j % 5 == 0) and converged(alpha, beta)  # past 100 steps, test every fifth

    alpha, beta, basis = lanczos_tridiagonal(matvec, start, max_iter, stop=stop)
    j = alpha.numel()
    theta, s = ritz(alpha, beta)  # (j,), (j, j)
    res = beta[-1] * s[-1].abs()  # (j,)
    eps = torch.finfo(dtype).eps
    invariant = beta[-1] <= 10 * eps * max(float(theta.abs().max()), eps)
    done = bool(invariant) or j == n or converged(alpha, beta)
    kk, mm = min(k, j), min(n_smallest, j)
    top = theta.flip(0)[:kk]
    top_res = res.flip(0)[:kk]
    vector = None
    if want_vector:
        coeff = s[:, -1].to(device=basis.device, dtype=basis.dtype)  # (j,)
        vector = basis.T @ coeff  # (n,)
        vector = vector / torch.linalg.vector_norm(vector)
    return LanczosResult(
        top=top.clone(),
        top_residuals=top_res.clone(),
        bottom=theta[:mm].clone(),
        bottom_residuals=res[:mm].clone(),
        top_vector=vector,
        alpha=alpha,
        beta=beta,
        iterations=j,
        converged=done,
    )
