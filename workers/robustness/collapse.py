"""Neural collapse NC1-NC4 of penultimate features (Papyan, Han, Donoho 2020, "Prevalence of neural collapse
during the terminal phase of deep learning training", PNAS 117(40)).

Notation (Papyan et al. section 2, restricted to the ``K`` classes present in ``y``; absent classes are
skipped): ``mu_c`` the mean feature of class ``c``; ``mu_G`` the global mean, taken as the mean of the class
means ``(1/K) sum_c mu_c`` (equal to the mean of all samples on a balanced set, and the centre that makes
an ETF's centred means sum to zero on an unbalanced one); ``m_c = mu_c - mu_G`` the centred means, the rows
of ``M (K, D)``; ``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T`` the within-class covariance;
``Sigma_B = (1/K) sum_c m_c m_c^T`` the between-class covariance; ``w_c`` the rows of the final Linear's
weight for the present classes.

- ``nc1`` = ``(1/K) tr(Sigma_W Sigma_B^+)`` (Papyan et al. Figure 6), with the pseudo-inverse truncated to
  ``Sigma_B``'s numerical rank (at most ``K - 1``; singular values of ``M`` below ``max(K, D) eps s_max``
  dropped). Computed without any ``D x D`` matrix: ``= ||R V_r S_r^-1||_F^2 / N`` for the residuals ``R``
  and the truncated SVD ``M = U_r S_r V_r^T``.
- NC2, equinorm and equiangularity (Figures 2-4), for the centred means and, separately (suffix ``_w``),
  for the classifier rows ``w_c`` (not centred, as in the paper):
  ``nc2_equinorm`` = ``std_c ||m_c|| / mean_c ||m_c||``;
  ``nc2_equiangular`` = ``std_{c != c'} cos(m_c, m_c')``;
  ``nc2_maxangle`` = ``mean_{c != c'} |cos(m_c, m_c') + 1/(K - 1)|`` (distance to the simplex ETF's angle).
  Standard deviations are population ones (divisor = number of terms), over ordered pairs ``c != c'``.
- ``nc3`` = ``|| W^T/||W||_F - M^T/||M||_F ||_F^2`` (Figure 5, self-duality; ``W`` rows = present classes).
- ``nc4`` = fraction of samples whose prediction (the network's ``argmax_c w_c . h + b_c`` over all
  classes) differs from the nearest class centre ``argmin_c ||h - mu_c||`` (Figure 7).

All computed in float64. On perfectly collapsed features (class means forming a simplex ETF, no within-class
variation, ``W`` a multiple of ``M``), every value is 0 up to rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["neural_collapse"]


def neural_collapse(
    h: Tensor,
    y: Tensor,
    W: Tensor,
    num_classes: int,
    *,
    b: Tensor | None = None,
    prediction: Tensor | None = None,
) -> dict[str, float]:
    """NC1-NC4 (module docstring) of features ``h (N, D)``, labels ``y (N,)`` and head weight ``W (C, D)``.

    ``prediction (N,)`` is the network's prediction for NC4; without it, ``argmax(h W^T + b)`` (``b``
    defaults to zero, so pass the head's bias or the predictions). Returns ``nc1``, ``nc2_equinorm``,
    ``nc2_equiangular``, ``nc2_maxangle``, the same three with suffix ``_w``, ``nc3``, ``nc4`` and
    ``classes`` (``K``). Raises ``ValueError`` on mismatched shapes or fewer than two classes present.
    """
    if h.ndim != 2 or y.shape != (h.shape[0],) or W.shape != (num_classes, h.shape[1]):
        raise ValueError(
            f"expected h (N, D), y (N,), W ({num_classes}, D); got h {tuple(h.shape)}, y {tuple(y.shape)}, "
            f"W {tuple(W.shape)}"
        )
    h64, w64, y = h.double(), W.to(h.device, torch.float64), y.to(h.device, torch.long)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{int(y.min())}, {int(y.max())}]")
    counts = torch.bincount(y, minlength=num_classes)  # (C,)
    present = torch.nonzero(counts).flatten()  # (K,)
    if present.numel() < 2:
        raise ValueError(f"neural collapse needs at least two classes present, got {present.numel()}")
    sums = torch.zeros(num_classes, h.shape[1], dtype=torch.float64, device=h.device).index_add_(0, y, h64)
    class_means = sums / counts.clamp_min(1)[:, None]  # (C, D), zero rows for absent classes
    means = class_means[present]  # (K, D)
    centred = means - means.mean(dim=0)  # (K, D): M
    residuals = h64 - class_means[y]  # (N, D)
    if prediction is None:
        bias = torch.zeros(num_classes, dtype=torch.float64, device=h.device) if b is None else b.double()
        prediction = (h64 @ w64.T + bias.to(h.device)).argmax(dim=1)  # (N,)
    w_present = w64[present]  # (K, D)
    out = {"nc1": _nc1(residuals, centred)}
    out.update(_equinorm_equiangular(centred, ""))
    out.update(_equinorm_equiangular(w_present, "_w"))
    out["nc3"] = float(torch.linalg.matrix_norm(_unit(w_present) - _unit(centred)) ** 2)
    out["nc4"] = _nc4(h64, means, present, prediction.to(h.device))
    out["classes"] = int(present.numel())
    return out


def _nc1(residuals: Tensor, centred: Tensor) -> float:
    """``(1/K) tr(Sigma_W Sigma_B^+) = ||R V_r S_r^-1||_F^2 / N`` (module docstring)."""
    k, d = centred.shape
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)  # s (min(K, D),), vh (min(K, D), D)
    keep = s > max(k, d) * torch.finfo(torch.float64).eps * s[0]
    keep[k - 1 :] = False  # centred means span at most K - 1 dimensions
    if not keep.any():
        return float("nan")  # no between-class variation: undefined
    projected = residuals @ vh[keep].T / s[keep]  # (N, r)
    return float((projected**2).sum() / residuals.shape[0])


def _equinorm_equiangular(rows: Tensor, suffix: str) -> dict[str, float]:
    k = rows.shape[0]
    norms = torch.linalg.vector_norm(rows, dim=1)  # (K,)
    unit = rows / norms.clamp_min(1e-300)[:, None]
    off_diagonal = ~torch.eye(k, dtype=torch.bool, device=rows.device)
    cosines = (unit @ unit.T)[off_diagonal]  # (K (K - 1),)
    return {
        f"nc2_equinorm{suffix}": float(norms.std(correction=0) / norms.mean().clamp_min(1e-300)),
        f"nc2_equiangular{suffix}": float(cosines.std(correction=0)),
        f"nc2_maxangle{suffix}": float((cosines + 1.0 / (k - 1)).abs().mean()),
    }


def _unit(matrix: Tensor) -> Tensor:
    return matrix / torch.linalg.matrix_norm(matrix).clamp_min(1e-300)


def _nc4(h: Tensor, means: Tensor, present: Tensor, prediction: Tensor) -> float:
    """Fraction of predictions that differ from the nearest class centre (``||h||^2`` is common, dropped)."""
    distances = (means**2).sum(dim=1)[None, :] - 2.0 * h @ means.T  # (N, K)
    nearest = present[distances.argmin(dim=1)]  # (N,)
    return float((nearest != prediction).double().mean())
