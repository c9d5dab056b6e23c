"""Block Lanczos against eigvalsh of dense Hessians and of matrices with a known spectrum."""

from __future__ import annotations

import pytest
import torch

from tests.hessian.conftest import Case
from workers.hessian.block_lanczos import block_lanczos
from workers.hessian.hvp import hessian_operator
from workers.hessian.lanczos import lanczos

CPU = torch.device("cpu")
F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _known(eigs: list[float], seed: int = 4) -> tuple[torch.Tensor, int]:
    """A dense symmetric matrix with eigenvalues ``eigs`` in a random basis."""
    n = len(eigs)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=_gen(seed), dtype=F64))
    return q @ torch.diag(torch.tensor(eigs, dtype=F64)) @ q.T, n


@pytest.mark.parametrize("block", [2, 3])
def test_top_k_and_most_negative_match_eigvalsh(case: Case, block: int):
    op = hessian_operator(case.model, case.x, case.y, batch_size=16, device=CPU, dtype=F64)
    res = block_lanczos(
        op.matmat, op.n, k=8, block=block, n_smallest=3, max_iter=400, tol=1e-10, generator=_gen(), dtype=F64
    )
    expected_top, expected_bottom = case.eigenvalues.flip(0)[:8], case.eigenvalues[:3]
    assert res.converged and res.iterations == op.count < op.n and res.iterations % block == 0
    torch.testing.assert_close(res.top, expected_top, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(res.bottom, expected_bottom, rtol=1e-6, atol=1e-9)
    # the residuals bound the distance to a true eigenvalue, the error estimates passed the tolerance
    assert bool(((res.top - expected_top).abs() <= res.top_residuals + 1e-12).all())
    assert bool((res.top_errors <= 1e-10 * case.eigenvalues.abs().max() * 1.01).all())
    # the projection is symmetric and holds the Ritz values
    t = res.projection
    assert t is not None and t.shape == (res.iterations, res.iterations)
    torch.testing.assert_close(t, t.T)
    torch.testing.assert_close(torch.linalg.eigvalsh(t).flip(0)[:8], res.top)
    # and the top Ritz vector is an eigenvector
    u = res.top_vector
    assert u is not None and u.shape == (op.n,)
    assert float(torch.linalg.vector_norm(case.hessian @ u - res.top[0] * u)) <= 1e-8 * float(res.top[0])


def test_a_block_takes_fewer_passes_than_single_lanczos_takes_products(case: Case):
    # the point of a block: b products per pass over the data, fewer passes in all
    op = hessian_operator(case.model, case.x, case.y, batch_size=16, device=CPU, dtype=F64)
    kw = dict(k=5, max_iter=400, tol=1e-8, generator=_gen(), dtype=F64)
    single = lanczos(op.matvec, op.n, **kw)
    paired = block_lanczos(op.matmat, op.n, block=2, **kw)
    assert single.converged and paired.converged
    assert paired.iterations // 2 < single.iterations
    torch.testing.assert_close(paired.top, single.top, rtol=1e-6, atol=1e-9)


def test_a_block_finds_every_copy_of_a_repeated_eigenvalue():
    # Given 5 three times over: the Krylov space of one vector holds one direction of that eigenspace, and
    # further copies appear only as rounding seeds them (here single-vector Lanczos reports [5, 5, 4, 3] as
    # converged), while a block of 3 spans the whole eigenspace
    h, n = _known([5.0, 5.0, 5.0, 4.0, 3.0] + torch.linspace(0, 1, 95).tolist())
    kw = dict(k=4, max_iter=100, tol=1e-10, generator=_gen(), dtype=F64)
    single = lanczos(lambda v: h @ v, n, **kw)
    block = block_lanczos(lambda v: v @ h, n, block=3, **kw)
    assert single.converged and single.top.tolist() != pytest.approx([5.0, 5.0, 5.0, 4.0])
    assert block.converged
    torch.testing.assert_close(block.top, torch.tensor([5.0, 5.0, 5.0, 4.0], dtype=F64))


def test_an_invariant_subspace_ends_the_run_with_exact_values():
    # rank 2: after one block of 3 the remainder has a zero direction, after two the space is invariant
    h, n = _known([7.0, -2.0] + [0.0] * 38)
    res = block_lanczos(
        lambda v: v @ h, n, k=2, block=3, n_smallest=1, max_iter=40, tol=1e-12, generator=_gen(), dtype=F64
    )
    assert res.converged and res.iterations <= 6
    torch.testing.assert_close(res.top, torch.tensor([7.0, 0.0], dtype=F64), atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(res.bottom, torch.tensor([-2.0], dtype=F64), atol=1e-5, rtol=1e-6)
    assert bool(torch.isfinite(res.projection).all())


def test_filling_the_whole_space_is_exact():
    h, n = _known([3.0, 2.0, 1.0, -1.0, 0.5, 0.25])
    res = block_lanczos(
        lambda v: v @ h, n, k=6, block=3, max_iter=100, tol=1e-14, generator=_gen(), dtype=F64
    )
    assert res.converged and res.iterations == 6
    torch.testing.assert_close(res.top, torch.tensor([3.0, 2.0, 1.0, 0.5, 0.25, -1.0], dtype=F64))


def test_reports_non_convergence_when_the_budget_runs_out():
    h, n = _known(torch.linspace(1, 2, 200).tolist())
    res = block_lanczos(lambda v: v @ h, n, k=5, block=2, max_iter=7, tol=1e-12, generator=_gen(), dtype=F64)
    assert not res.converged and res.iterations == 6  # whole blocks within the budget


def test_same_seed_gives_identical_results(mlp_case: Case):
    op = hessian_operator(mlp_case.model, mlp_case.x, mlp_case.y, batch_size=32, device=CPU, dtype=F64)
    a, b = (
        block_lanczos(op.matmat, op.n, k=3, block=2, tol=1e-6, generator=_gen(7), dtype=F64) for _ in range(2)
    )
    assert torch.equal(a.top, b.top) and torch.equal(a.projection, b.projection)


@pytest.mark.parametrize(
    "bad", [{"block": 0}, {"k": 0}, {"n_smallest": -1}, {"tol": 0.0}, {"criterion": "ritz"}]
)
def test_rejects_bad_arguments(bad):
    kw = {"k": 2, "block": 2, "tol": 1e-6, **bad}
    with pytest.raises(ValueError):
        block_lanczos(lambda v: v, 10, **kw)


def test_past_100_rows_it_tests_every_fifth_step_and_returns_its_last_ritz_values():
    # a tight cluster at the top of a dense spectrum: well over 100 rows before the top 3 pass
    expected = torch.tensor([3.0, 2.99, 2.98], dtype=F64)
    h, n = _known(expected.tolist() + torch.linspace(0, 2.97, 397).tolist(), seed=5)
    kw = dict(k=3, block=2, tol=1e-13, generator=_gen(), dtype=F64)
    short = block_lanczos(lambda v: v @ h, n, max_iter=150, **kw)
    assert not short.converged and short.iterations == 150  # the budget's last step is tested too
    torch.testing.assert_close(short.top, expected, atol=1e-6, rtol=0)
    full = block_lanczos(lambda v: v @ h, n, max_iter=400, **kw)
    step = full.iterations // 2 - 1
    assert full.converged and full.iterations > 100 and step % 5 == 0
    torch.testing.assert_close(full.top, expected, atol=1e-12, rtol=0)
