"""Linear centred kernel alignment between representations (Kornblith et al. 2019, "Similarity of Neural
Network Representations Revisited", ICML; equation 4 and section 3).

For representations ``X (N, D1)`` and ``Y (N, D2)`` of the same ``N`` samples, centred over the samples,

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F),

which equals the HSIC form ``tr(K L) / sqrt(tr(K K) tr(L L))`` with linear Grams ``K = X X^T``,
``L = Y Y^T``. It compares layers of different widths, is 1 for identical representations, and is
invariant to orthogonal transforms and isotropic scaling of either one (not to arbitrary invertible maps).

Each product is formed in whichever space is cheaper: the feature form (``D x D`` matrices, ``O(N D^2)``)
when the widths are below the number of samples, as for 10,000 samples of features up to 2,048 wide, and
the sample form (``N x N`` Grams) otherwise; the two are equal. Everything is computed in float64 on the
inputs' device. A representation that is constant over the samples makes CKA undefined: ``nan``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["cka_matrix", "linear_cka"]


def linear_cka(a: Tensor, b: Tensor) -> float:
    """Linear CKA of ``a (N, D1)`` and ``b (N, D2)`` (trailing dimensions are flattened)."""
    x, y = _centred(a), _centred(b.to(a.device))
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"representations of different samples: {tuple(a.shape)} and {tuple(b.shape)}")
    return _ratio(_cross(x, y), _self_norm(x), _self_norm(y))


def cka_matrix(features: list[Tensor]) -> np.ndarray:
    """Symmetric ``(M, M)`` matrix of :func:`linear_cka` between every pair of ``M`` representations.

    All must describe the same ``N`` samples, in the same order; they are centred once, in float64, on the
    first one's device (memory: ``8 N sum(D)`` bytes). The diagonal is 1 (``nan`` for a constant one).
    """
    if not features:
        raise ValueError("cka_matrix needs at least one representation")
    device = features[0].device
    centred = [_centred(f.to(device)) for f in features]
    sizes = {x.shape[0] for x in centred}
    if len(sizes) != 1:
        raise ValueError(
            f"representations of different numbers of samples: {[tuple(f.shape) for f in features]}"
        )
    norms = [_self_norm(x) for x in centred]
    m = len(centred)
    out = np.eye(m)
    for i in range(m):
        if norms[i] == 0:
            out[i, i] = np.nan
        for j in range(i + 1, m):
            out[i, j] = out[j, i] = _ratio(_cross(centred[i], centred[j]), norms[i], norms[j])
    return out


def _centred(t: Tensor) -> Tensor:
    if t.ndim < 2:
        raise ValueError(f"a representation must be (N, D), got {tuple(t.shape)}")
    x = t.flatten(1).double()  # (N, D)
    return x - x.mean(dim=0)


def _feature_form(x: Tensor, y: Tensor) -> bool:
    """Whether ``D x D`` products cost less than ``N x N`` Grams for these two representations."""
    n, d1, d2 = x.shape[0], x.shape[1], y.shape[1]
    return d1 * d2 <= n * (d1 + d2)


def _cross(x: Tensor, y: Tensor) -> float:
    """``||Y^T X||_F^2 = tr(X X^T Y Y^T)``."""
    if _feature_form(x, y):
        return float((y.T @ x).square().sum())  # (D2, D1)
    return float(((x @ x.T) * (y @ y.T)).sum())  # (N, N)


def _self_norm(x: Tensor) -> float:
    """``||X^T X||_F = ||X X^T||_F``."""
    gram = x.T @ x if _feature_form(x, x) else x @ x.T  # (D, D) or (N, N)
    return float(torch.linalg.matrix_norm(gram))


def _ratio(cross: float, norm_a: float, norm_b: float) -> float:
    denominator = norm_a * norm_b
    return cross / denominator if denominator > 0 else float("nan")
