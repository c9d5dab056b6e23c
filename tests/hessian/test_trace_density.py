"""Trace estimators, stochastic Lanczos quadrature and the outlier split."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.hessian.conftest import Case
from workers.hessian.density import broaden, slq
from workers.hessian.hvp import hessian_operator
from workers.hessian.lanczos import lanczos_tridiagonal, lanczos_tridiagonals
from workers.hessian.outliers import split_outliers
from workers.hessian.trace import hutchinson, hutchpp, rademacher

CPU = torch.device("cpu")
F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _operator(case: Case):
    return hessian_operator(case.model, case.x, case.y, batch_size=32, device=CPU, dtype=torch.float64)


def test_rademacher_entries_are_plus_or_minus_one():
    z = rademacher(1000, _gen(), dtype=torch.float64, device=CPU)
    assert set(z.unique().tolist()) == {-1.0, 1.0}


def test_hutchinson_lies_within_four_standard_errors(case: Case):
    op = _operator(case)
    est = hutchinson(op.matvec, op.n, probes=30, generator=_gen(), dtype=torch.float64)
    true = float(case.hessian.trace())
    assert est.products == op.count == 30 and math.isfinite(est.stderr) and est.stderr > 0
    assert abs(est.value - true) < 4 * est.stderr


def test_hutchpp_lies_within_four_standard_errors(case: Case):
    op = _operator(case)
    est = hutchpp(op.matvec, op.n, products=30, generator=_gen(), dtype=torch.float64)
    true = float(case.hessian.trace())
    assert est.products == op.count == 30
    assert abs(est.value - true) < 4 * est.stderr


def test_hutchpp_is_exact_on_a_low_rank_matrix():
    u = torch.randn(200, 4, generator=_gen(1), dtype=torch.float64)
    h = u @ torch.diag(torch.tensor([9.0, -3.0, 2.0, 1.0], dtype=torch.float64)) @ u.T  # rank 4
    est = hutchpp(lambda v: h @ v, 200, products=15, generator=_gen(), dtype=torch.float64)
    assert est.value == pytest.approx(float(h.trace()), rel=1e-10)
    assert est.stderr < 1e-8 * abs(est.value)


def test_slq_density_has_mass_one_and_first_moment_trace_over_n(mlp_case: Case):
    op = _operator(mlp_case)
    dens = slq(op.matvec, op.n, vectors=6, iters=30, grid=4000, generator=_gen(5), dtype=torch.float64)
    n = op.n
    assert dens.products == op.count == 180
    assert float(torch.trapezoid(dens.y, dens.x)) == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(dens.weights.sum(1), torch.ones(6, dtype=torch.float64))
    # Gauss quadrature reproduces each start vector's Rayleigh quotient v^T H v / n exactly ...
    gen = _gen(5)
    quotients = []
    for row in range(6):
        z = rademacher(n, gen, dtype=torch.float64, device=CPU)
        quotients.append(float(z @ mlp_case.hessian @ z) / n)
        assert float((dens.weights[row] * dens.nodes[row]).sum()) == pytest.approx(quotients[-1], abs=1e-12)
    # ... whose mean estimates tr(H) / n within its error bar
    q = torch.tensor(quotients, dtype=torch.float64)
    stderr = float(q.std() / math.sqrt(len(quotients)))
    assert abs(float(q.mean()) - float(mlp_case.hessian.trace()) / n) < 4 * stderr
    # and broadening keeps the first moment
    moment = float(torch.trapezoid(dens.x * dens.y, dens.x))
    assert moment == pytest.approx(float(q.mean()), abs=1e-6 * float(dens.x[-1] - dens.x[0]))


def test_slq_nodes_span_the_spectrum_ends(mlp_case: Case):
    op = _operator(mlp_case)
    dens = slq(op.matvec, op.n, vectors=1, iters=80, generator=_gen(), dtype=torch.float64)
    top, bottom = float(mlp_case.eigenvalues[-1]), float(mlp_case.eigenvalues[0])
    assert float(dens.nodes.max()) == pytest.approx(top, rel=1e-6)
    assert float(dens.nodes.min()) == pytest.approx(bottom, rel=1e-3)


def test_broadening_a_single_node_gives_a_unit_gaussian():
    x, y, sigma = broaden(torch.tensor([[2.0]]), torch.tensor([[1.0]]), rel_sigma=0.1, grid=2001)
    assert sigma == pytest.approx(0.2)
    assert float(torch.trapezoid(y, x)) == pytest.approx(1.0)
    assert float(x[y.argmax()]) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("top", "outliers", "edge"),
    [
        ([50.0, 40.0, 30.0, 2.0, 1.9, 1.8], [50.0, 40.0, 30.0], 2.0),
        ([1.8, 50.0, 2.0, 40.0, -7.0, 30.0], [50.0, 40.0, 30.0], 2.0),  # order and negatives ignored
        ([10.0, 1.0], [10.0], 1.0),
        ([3.0, -1.0], [], None),
        ([], [], None),
    ],
)
def test_outliers_sit_above_the_largest_relative_gap(top, outliers, edge):
    assert split_outliers(top) == (outliers, edge)


def test_hutchinson_in_blocks_equals_one_probe_at_a_time(mlp_case: Case):
    op = hessian_operator(mlp_case.model, mlp_case.x, mlp_case.y, batch_size=32, device=CPU, dtype=F64)
    one = hutchinson(op.matvec, op.n, probes=7, generator=torch.Generator().manual_seed(3), dtype=F64)
    blocks = hutchinson(
        op.matvec,
        op.n,
        probes=7,
        generator=torch.Generator().manual_seed(3),
        dtype=F64,
        matmat=op.matmat,
        block=3,
    )
    # the same probes in passes of 3, 3 and 1
    np.testing.assert_allclose(blocks.samples, one.samples, rtol=1e-10)
    assert blocks.products == 7 and op.count == 14


def test_slq_in_lockstep_equals_one_run_at_a_time(mlp_case: Case):
    op = hessian_operator(mlp_case.model, mlp_case.x, mlp_case.y, batch_size=32, device=CPU, dtype=F64)
    kw = dict(vectors=3, iters=12, dtype=F64)
    one = slq(op.matvec, op.n, generator=torch.Generator().manual_seed(5), **kw)
    paired = slq(op.matvec, op.n, generator=torch.Generator().manual_seed(5), matmat=op.matmat, block=2, **kw)
    torch.testing.assert_close(paired.nodes, one.nodes, rtol=1e-8, atol=1e-10, equal_nan=True)
    torch.testing.assert_close(paired.weights, one.weights, rtol=1e-8, atol=1e-10)
    assert paired.products == one.products == 36


def test_a_lockstep_run_that_ends_early_keeps_its_place():
    # the first start is an eigenvector: its run ends after one step (beta = 0), the other goes on
    q, _ = torch.linalg.qr(torch.randn(30, 30, generator=torch.Generator().manual_seed(1), dtype=F64))
    h = q @ torch.diag(torch.linspace(-1, 2, 30, dtype=F64)) @ q.T
    starts = torch.stack([q[:, 4], torch.randn(30, generator=torch.Generator().manual_seed(2), dtype=F64)])
    runs = lanczos_tridiagonals(lambda v: v @ h, starts, 10)
    for (alpha, beta), start in zip(runs, starts, strict=True):
        expected_alpha, expected_beta, _ = lanczos_tridiagonal(lambda v: h @ v, start, 10)
        torch.testing.assert_close(alpha, expected_alpha)
        torch.testing.assert_close(beta, expected_beta)
    assert (runs[0][0].numel(), runs[1][0].numel()) == (1, 10)
