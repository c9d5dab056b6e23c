"""Lanczos against eigvalsh of dense Hessians and of matrices with a known spectrum."""

from __future__ import annotations

import pytest
import torch

from tests.hessian.conftest import Case
from workers.hessian.hvp import hessian_operator
from workers.hessian.lanczos import error_estimates, lanczos, ritz

CPU = torch.device("cpu")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_top_k_and_most_negative_match_eigvalsh(case: Case):
    op = hessian_operator(case.model, case.x, case.y, batch_size=16, device=CPU, dtype=torch.float64)
    res = lanczos(
        op.matvec, op.n, k=8, n_smallest=3, max_iter=400, tol=1e-10, generator=_gen(), dtype=torch.float64
    )
    expected_top = case.eigenvalues.flip(0)[:8]
    expected_bottom = case.eigenvalues[:3]
    assert res.converged and res.iterations == op.count < op.n
    torch.testing.assert_close(res.top, expected_top, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(res.bottom, expected_bottom, rtol=1e-6, atol=1e-9)
    assert bool((res.bottom < 0).all())  # these models are not at a minimum
    scale = case.eigenvalues.abs().max()
    assert bool((res.top_errors <= 1e-10 * scale * 1.01).all())
    assert bool((res.bottom_errors <= 1e-10 * scale * 1.01).all())
    # the residual is a guaranteed bound on the distance to a true eigenvalue
    assert bool(((res.top - expected_top).abs() <= res.top_residuals + 1e-12).all())


def test_top_ritz_vector_is_an_eigenvector(cnn_case: Case):
    op = hessian_operator(
        cnn_case.model, cnn_case.x, cnn_case.y, batch_size=12, device=CPU, dtype=torch.float64
    )
    res = lanczos(op.matvec, op.n, k=3, max_iter=200, tol=1e-10, generator=_gen(), dtype=torch.float64)
    u = res.top_vector
    assert u is not None and u.shape == (op.n,)
    torch.testing.assert_close(torch.linalg.vector_norm(u), torch.tensor(1.0, dtype=torch.float64))
    residual = torch.linalg.vector_norm(cnn_case.hessian @ u - res.top[0] * u)
    assert float(residual) <= 1e-8 * float(res.top[0])


def test_returns_largest_algebraic_not_largest_magnitude():
    # eigenvalues -100 .. and 1..5: power iteration (PyHessian) would call -100 the "top" eigenvalue
    eigs = torch.tensor([-100.0, -50.0, 0.1, 0.2, 1.0, 2.0, 3.0, 4.0, 5.0] + [0.01] * 41, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(50, 50, generator=_gen(4), dtype=torch.float64))
    h = q @ torch.diag(eigs) @ q.T
    res = lanczos(
        lambda v: h @ v, 50, k=3, n_smallest=2, max_iter=50, tol=1e-12, generator=_gen(), dtype=torch.float64
    )
    torch.testing.assert_close(res.top, torch.tensor([5.0, 4.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(res.bottom, torch.tensor([-100.0, -50.0], dtype=torch.float64))


def test_stops_on_the_residual_tolerance_well_before_n():
    eigs = torch.cat([torch.tensor([100.0, 50.0, 25.0]), torch.linspace(0, 1, 997)]).double()
    res = lanczos(
        lambda v: eigs * v, 1000, k=3, max_iter=1000, tol=1e-8, generator=_gen(), dtype=torch.float64
    )
    assert res.converged and res.iterations < 60
    torch.testing.assert_close(res.top, torch.tensor([100.0, 50.0, 25.0], dtype=torch.float64))


def test_error_estimates_bound_the_true_errors_along_the_run(case: Case):
    """At every step, min(r, r^2 / gap) is at least each converging top Ritz value's actual error."""
    op = hessian_operator(case.model, case.x, case.y, batch_size=16, device=CPU, dtype=torch.float64)
    expected = case.eigenvalues.flip(0)[:3]
    res = lanczos(op.matvec, op.n, k=3, max_iter=400, tol=1e-12, generator=_gen(), dtype=torch.float64)
    checked = 0
    for j in range(6, res.iterations + 1):
        theta, s = ritz(res.alpha[:j], res.beta[:j])
        r = res.beta[j - 1] * s[-1].abs()
        est = error_estimates(theta, r).flip(0)[:3]
        err = (theta.flip(0)[:3] - expected).abs()
        small = r.flip(0)[:3] < 1e-2 * float(expected[0])  # once a value has begun to converge
        assert bool((err[small] <= est[small] * 1.001 + 1e-12).all()), j
        checked += int(small.sum())
    assert checked > 10


def test_error_estimate_is_the_squared_residual_over_the_gap():
    theta = torch.tensor([0.0, 1.0, 5.0], dtype=torch.float64)
    r = torch.tensor([0.5, 1e-3, 1e-4], dtype=torch.float64)
    est = error_estimates(theta, r)
    # 5.0: nearest neighbour 1.0 moved by its residual -> gap 4 - 1e-3
    torch.testing.assert_close(est[2], torch.tensor(1e-8 / (4 - 1e-3), dtype=torch.float64))
    # 1.0: neighbours 0.0 (moved by 0.5 -> 0.5) and 5.0 (-> 4 - 1e-4): gap 0.5
    torch.testing.assert_close(est[1], torch.tensor(1e-6 / 0.5, dtype=torch.float64))
    # 0.0: gap 1 - 1e-3, so r^2 / gap = 0.25 / 0.999 beats the residual 0.5
    torch.testing.assert_close(est[0], torch.tensor(0.25 / (1 - 1e-3), dtype=torch.float64))
    assert float(error_estimates(torch.tensor([2.0]), torch.tensor([0.1]))) == pytest.approx(0.1)


def test_eigenvalue_criterion_needs_fewer_products_for_the_same_accuracy():
    eigs = torch.cat([torch.tensor([10.0, 9.0, 8.0, 7.5, 7.0]), torch.linspace(-1, 5, 995)]).double()
    runs = {
        c: lanczos(
            lambda v: eigs * v, 1000, k=5, tol=1e-6, generator=_gen(), dtype=torch.float64, criterion=c
        )
        for c in ("eigenvalue", "residual")
    }
    expected = torch.tensor([10.0, 9.0, 8.0, 7.5, 7.0], dtype=torch.float64)
    for res in runs.values():
        assert res.converged
        assert float(((res.top - expected).abs() / expected).max()) <= 1e-6
    assert runs["eigenvalue"].iterations < runs["residual"].iterations
    with pytest.raises(ValueError, match="criterion"):
        lanczos(lambda v: eigs * v, 1000, k=5, generator=_gen(), criterion="energy")  # type: ignore[arg-type]


def test_reports_non_convergence_when_the_budget_runs_out():
    eigs = torch.linspace(1, 2, 1000, dtype=torch.float64)  # no gap: slow convergence
    res = lanczos(
        lambda v: eigs * v, 1000, k=5, max_iter=10, tol=1e-12, generator=_gen(), dtype=torch.float64
    )
    assert not res.converged and res.iterations == 10
    assert float(res.top_residuals.max()) > 1e-12


def test_invariant_subspace_ends_the_run_with_exact_values():
    eigs = torch.tensor([3.0, 3.0, 1.0, 1.0, -2.0, -2.0], dtype=torch.float64)  # 3 distinct values
    res = lanczos(
        lambda v: eigs * v, 6, k=2, n_smallest=1, max_iter=6, tol=1e-14, generator=_gen(), dtype=torch.float64
    )
    assert res.converged and res.iterations == 3
    torch.testing.assert_close(res.top, torch.tensor([3.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(res.bottom, torch.tensor([-2.0], dtype=torch.float64))


def test_same_seed_gives_identical_results(mlp_case: Case):
    op = hessian_operator(mlp_case.model, mlp_case.x, mlp_case.y, batch_size=32, device=CPU)
    a = lanczos(op.matvec, op.n, k=4, max_iter=30, generator=_gen(7))
    b = lanczos(op.matvec, op.n, k=4, max_iter=30, generator=_gen(7))
    assert torch.equal(a.top, b.top) and torch.equal(a.alpha, b.alpha)
