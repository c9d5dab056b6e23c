"""Sweeps on a quadratic loss against its closed form; grids, curvature, barriers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workers.landscape.grid import axis, barrier, curvature, interpolate_sweep, sweep

D = 7


def _quadratic(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(D, D, generator=gen, dtype=torch.float64)
    a = m @ m.T / D + 0.1 * torch.eye(D, dtype=torch.float64)  # symmetric positive definite
    b = torch.randn(D, generator=gen, dtype=torch.float64)

    def f(t: torch.Tensor) -> torch.Tensor:
        return 0.5 * t @ a @ t + b @ t

    return a, b, f


def test_two_dimensional_sweep_equals_the_closed_form_of_a_quadratic():
    a, b, f = _quadratic()
    gen = torch.Generator().manual_seed(1)
    theta = torch.randn(D, generator=gen, dtype=torch.float64)
    d, e = (torch.randn(D, generator=gen, dtype=torch.float64) for _ in range(2))
    state = [theta.clone()]
    alphas, betas = axis(1.5, 9), axis(0.5, 5)
    aa, bb = np.meshgrid(alphas, betas, indexing="ij")
    coords = np.stack([aa.ravel(), bb.ravel()], axis=1)
    seen = []

    def evaluate() -> torch.Tensor:
        return torch.stack([f(state[0]), state[0].sum()])

    out = sweep(
        state, [theta], [[d], [e]], coords, evaluate, chunk=4, progress=lambda i, n: seen.append((i, n))
    )
    # f(theta + x d + y e) = f(theta) + x g.d + y g.e + x^2/2 d'Ad + x y d'Ae + y^2/2 e'Ae
    g = a @ theta + b
    expected = (
        f(theta).item()
        + aa * float(g @ d)
        + bb * float(g @ e)
        + 0.5 * aa**2 * float(d @ a @ d)
        + aa * bb * float(d @ a @ e)
        + 0.5 * bb**2 * float(e @ a @ e)
    )
    np.testing.assert_allclose(out[:, 0].reshape(aa.shape), expected, rtol=1e-12, atol=1e-12)
    centre = (len(alphas) // 2) * len(betas) + len(betas) // 2
    assert out[centre, 0] == pytest.approx(f(theta).item(), rel=1e-15)
    assert seen[-1] == (coords.shape[0], coords.shape[0])
    # curvature along d at the centre is d'Ad, exactly for a quadratic
    row = out[:, 0].reshape(aa.shape)[:, len(betas) // 2]
    assert curvature(alphas, row) == pytest.approx(float(d @ a @ d), rel=1e-9)


def test_interpolation_sweep_is_exact_at_both_ends():
    _, _, f = _quadratic()
    start = [torch.randn(D, dtype=torch.float64)]
    end = [torch.randn(D, dtype=torch.float64)]
    state = [start[0].clone()]
    out = interpolate_sweep(
        state, start, end, np.linspace(0, 1, 11), lambda: torch.stack([f(state[0]), f(state[0])])
    )
    assert out[0, 0] == f(start[0]).item()
    assert out[-1, 0] == f(end[0]).item()
    mid = 0.5 * (start[0] + end[0])
    assert out[5, 0] == pytest.approx(f(mid).item(), rel=1e-12)


def test_axis_puts_the_centre_exactly_on_the_grid_and_refuses_even_steps():
    values = axis(1.0, 31)
    assert values[15] == 0.0 and values[0] == -1.0 and values[-1] == 1.0
    np.testing.assert_allclose(values, -values[::-1], atol=1e-15)
    for bad in (2, 30, 1):
        with pytest.raises(ValueError, match="odd"):
            axis(1.0, bad)
    with pytest.raises(ValueError, match="span"):
        axis(0.0, 5)


def test_barrier_and_curvature_edge_cases():
    assert barrier(np.array([1.0, 3.0, 2.0])) == pytest.approx(1.5)
    assert barrier(np.array([2.0, 1.0, 0.0])) == pytest.approx(1.0)  # a monotone path: max is an end
    assert barrier(np.array([1.0, np.nan])) is None
    assert curvature(np.array([-1.0, 0.0, 1.0]), np.array([np.nan, 1.0, np.nan])) is None
    x = np.linspace(-1, 1, 11)
    assert curvature(x, 3.0 * x**2 + x + 5) == pytest.approx(6.0)


def test_sweep_checks_coordinate_shape():
    with pytest.raises(ValueError, match="coords"):
        sweep([torch.zeros(2)], [torch.zeros(2)], [[torch.ones(2)]], np.zeros((3, 2)), lambda: torch.zeros(2))
