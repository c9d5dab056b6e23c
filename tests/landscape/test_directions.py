"""Directions: filter normalisation, masks, 1D parameters, seeds, the Hessian eigenvector."""

from __future__ import annotations

import math

import pytest
import torch

from workers.architectures import build
from workers.landscape.directions import hessian_direction, normalize, random_direction, weight_masks


def _params(seed: int = 0, zero_fraction: float = 0.0) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    model = build("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    params = [p.detach().clone() for p in model.parameters()]
    if zero_fraction:
        gen = torch.Generator().manual_seed(seed + 100)
        for p in params:
            if p.ndim >= 2:
                p[torch.rand(p.shape, generator=gen) < zero_fraction] = 0.0
    # a whole pruned filter of conv1; BatchNorm shifts keep their all-zero initial value
    params[0][1] = 0.0
    return params


def test_filter_normalised_direction_matches_each_filter_norm():
    params = _params()
    d = random_direction(params, torch.Generator().manual_seed(1), "filter")
    for di, p in zip(d, params, strict=True):
        if p.ndim < 2:
            continue
        dn = torch.linalg.vector_norm(di.flatten(1), dim=1)
        pn = torch.linalg.vector_norm(p.flatten(1), dim=1)
        torch.testing.assert_close(dn, pn, rtol=1e-5, atol=1e-7)
    assert float(torch.linalg.vector_norm(d[0][1])) == 0.0  # the pruned filter: zero, not NaN
    assert all(torch.isfinite(t).all() for t in d)


def test_one_dimensional_parameters_are_zero_by_default_and_layer_normalised_on_request():
    params = _params()
    d = random_direction(params, torch.Generator().manual_seed(1), "filter")
    assert all(float(di.abs().sum()) == 0.0 for di, p in zip(d, params, strict=True) if p.ndim == 1)
    d1 = random_direction(params, torch.Generator().manual_seed(1), "filter", include_1d=True)
    for di, p in zip(d1, params, strict=True):
        if p.ndim == 1:
            # an all-zero bias has norm 0, so its direction is 0 (loss-landscapes divides by zero here)
            assert math.isclose(float(di.norm()), float(p.norm()), rel_tol=1e-5, abs_tol=1e-7)
            assert torch.isfinite(di).all()


def test_layer_and_none_normalisations():
    params = _params()
    raw = [torch.randn(p.shape, generator=torch.Generator().manual_seed(i)) for i, p in enumerate(params)]
    layer = normalize(raw, params, "layer")
    none = normalize(raw, params, "none")
    for r, lay, non, p in zip(raw, layer, none, params, strict=True):
        if p.ndim >= 2:
            assert math.isclose(float(lay.norm()), float(p.norm()), rel_tol=1e-5)
            torch.testing.assert_close(non, r)
    with pytest.raises(ValueError, match="normalization"):
        normalize(raw, params, "global")  # type: ignore[arg-type]


def test_masked_directions_are_zero_exactly_on_pruned_weights():
    params = _params(zero_fraction=0.5)
    masks = weight_masks(params)
    d = random_direction(params, torch.Generator().manual_seed(3), "filter", masks=masks)
    for di, p, m in zip(d, params, masks, strict=True):
        if p.ndim >= 2:
            assert bool((di[~m] == 0).all())
            assert bool((di[m] != 0).any())
            # norms are matched over the surviving weights of each filter
            dn = torch.linalg.vector_norm(di.flatten(1), dim=1)
            torch.testing.assert_close(
                dn, torch.linalg.vector_norm(p.flatten(1), dim=1), rtol=1e-5, atol=1e-7
            )


def test_equal_seeds_cut_two_checkpoints_along_the_same_raw_draws():
    a, b = _params(seed=0), _params(seed=1)
    da = random_direction(a, torch.Generator().manual_seed(7), "filter")
    db = random_direction(b, torch.Generator().manual_seed(7), "filter")
    dc = random_direction(b, torch.Generator().manual_seed(8), "filter")
    w = 3  # conv2.weight: no pruned filter
    unit = lambda d: d.flatten(1) / d.flatten(1).norm(dim=1, keepdim=True)  # noqa: E731
    torch.testing.assert_close(unit(da[w]), unit(db[w]))
    assert not torch.allclose(unit(db[w]), unit(dc[w]))


def test_hessian_direction_keeps_the_eigenvector_and_scales_it_to_the_weights():
    params = _params(zero_fraction=0.3)
    masks = weight_masks(params)
    total = sum(p.numel() for p in params)
    v = torch.randn(total, generator=torch.Generator().manual_seed(0))
    d = hessian_direction(v, params, masks=masks)
    flat = torch.cat([t.flatten() for t in d])
    weight_norm = math.sqrt(sum(float(p.square().sum()) for p in params if p.ndim >= 2))
    assert math.isclose(float(flat.norm()), weight_norm, rel_tol=1e-5)
    kept = torch.cat([m.flatten() for m in masks])
    assert bool((flat[~kept] == 0).all())
    cos = torch.nn.functional.cosine_similarity(flat[kept], v[kept], dim=0)
    assert float(cos) > 1 - 1e-6
    with pytest.raises(ValueError, match="parameters"):
        hessian_direction(torch.ones(total + 1), params)
