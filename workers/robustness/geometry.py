"""Per-sample geometry of the last layer (Li et al., "Understanding Robustness Lottery", arXiv 2206.07918).

For penultimate features ``h`` and the final Linear ``z_c = w_c . h + b_c = ||w_c|| ||h|| cos(theta_c) + b_c``
(DESIGN.md section 6), per sample ``(h, y)``:

- ``prediction`` ``argmax_c z_c``; ``correct`` ``prediction == y``;
- ``loss``: cross-entropy of ``z`` against ``y``;
- ``angle``: ``theta_y`` in radians, between ``h`` and the true-class row ``w_y``;
- ``feature_norm``: ``||h||``;
- ``margin``: the signed distance of ``h`` to the nearest decision boundary of its true class,
  ``min_{c != y} ((w_y - w_c) . h + b_y - b_c) / ||w_y - w_c||``, positive exactly when ``y`` is the
  unique largest logit (so ``margin > 0`` iff ``correct``, up to exact ties of the logits, where ``argmax``
  takes the first index and the margin is 0);
- ``el2n``: ``||softmax(z) - onehot(y)||`` (Paul et al. 2021, "Deep Learning on a Data Diet").

Numerics: everything is computed in float64. The margin's numerator is taken from the given logits,
``z_y - z_c`` (equal to ``(w_y - w_c) . h + b_y - b_c`` when ``z = W h + b``), so its sign agrees with the
prediction even where float32 logits and a float64 recomputation would round differently. A class whose row
equals the true class's (``||w_y - w_c|| = 0``, e.g. two fully pruned head rows) has no boundary with it:
the class is skipped when ``y`` wins the comparison (``+inf``, the brief's rule) and gives ``-inf`` when it
loses (the sample is on the wrong side everywhere), 0 for an exact tie; this keeps the margin's sign equal to
correctness. Pairs whose squared distance is below ``64 eps (||w_y||^2 + ||w_c||^2)`` count as equal.
The angle is ``acos`` of the float64 cosine, clamped to ``[-1, 1]`` (resolution ~1.5e-8 rad near 0 and pi,
far below float32 features' own precision); a zero ``h`` or ``w_y`` gets ``pi / 2`` (cosine 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["GEOMETRY_KEYS", "sample_geometry", "summarize"]

GEOMETRY_KEYS = ("prediction", "correct", "loss", "angle", "feature_norm", "margin", "el2n")
_MEANS = {  # summary key -> geometry key
    "accuracy": "correct",
    "loss": "loss",
    "mean_angle": "angle",
    "mean_feature_norm": "feature_norm",
    "mean_margin": "margin",
    "mean_el2n": "el2n",
}
_CHUNK = 4096  # rows of h per gathered (chunk, D) block of true-class weights


def sample_geometry(h: Tensor, z: Tensor, y: Tensor, W: Tensor, b: Tensor) -> dict[str, Tensor]:
    """Per-sample geometry of features ``h (N, D)``, logits ``z (N, C)``, labels ``y (N,)``, head ``W, b``.

    ``W (C, D)`` and ``b (C,)`` are the final Linear's weight and bias (:func:`.features.head_weights`), and
    ``z`` its output on ``h``. Returns the keys of :data:`GEOMETRY_KEYS`, each ``(N,)`` on ``h``'s device:
    ``prediction`` int64, ``correct`` bool, the others float64.
    """
    _check_shapes(h, z, y, W, b)
    h64, z64, w64 = h.double(), z.double(), W.to(h.device, torch.float64)
    y = y.to(h.device, torch.long)
    prediction = z.argmax(dim=1)  # (N,)
    feature_norm = torch.linalg.vector_norm(h64, dim=1)  # (N,)
    weight_norm = torch.linalg.vector_norm(w64, dim=1)  # (C,)
    denom = feature_norm * weight_norm[y]  # (N,)
    cosine = torch.where(denom > 0, _true_class_dot(h64, w64, y) / denom.clamp_min(1e-300), 0.0)
    probs = torch.softmax(z64, dim=1)  # (N, C)
    return {
        "prediction": prediction,
        "correct": prediction == y,
        "loss": F.cross_entropy(z64, y, reduction="none"),
        "angle": torch.acos(cosine.clamp(-1.0, 1.0)),
        "feature_norm": feature_norm,
        "margin": _margin(z64, y, w64, weight_norm),
        "el2n": torch.linalg.vector_norm(probs - F.one_hot(y, z.shape[1]).double(), dim=1),
    }


def summarize(geometry: dict[str, Tensor], y: Tensor, num_classes: int) -> dict:
    """Overall and per-class means of :func:`sample_geometry`'s output, as plain Python numbers.

    Returns ``count``, ``accuracy``, ``loss``, ``mean_angle``, ``mean_feature_norm``, ``mean_margin``,
    ``mean_el2n``, ``infinite_margins`` (margins are averaged over their finite values only) and
    ``per_class``: the same means (and ``count``) as lists of length ``num_classes``, ``None`` for a class
    without samples. Means of nothing are ``None``.
    """
    y = y.to(geometry["correct"].device, torch.long)
    if y.ndim != 1 or y.shape[0] != geometry["correct"].shape[0]:
        raise ValueError(f"y has shape {tuple(y.shape)}, the geometry {tuple(geometry['correct'].shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{int(y.min())}, {int(y.max())}]")
    counts = torch.bincount(y, minlength=num_classes)  # (K,)
    margin = geometry["margin"]
    finite = torch.isfinite(margin)
    out: dict = {"count": int(y.numel())}
    per_class: dict = {"count": counts.tolist()}
    for name, key in _MEANS.items():
        values = geometry[key].double()
        keep = finite if key == "margin" else torch.ones_like(finite)
        out[name] = _mean(values[keep])
        per_class[name] = _class_means(values[keep], y[keep], num_classes)
    out["infinite_margins"] = int((~finite).sum())
    out["per_class"] = per_class
    return out


def _check_shapes(h: Tensor, z: Tensor, y: Tensor, W: Tensor, b: Tensor) -> None:
    ok = h.ndim == 2 and z.ndim == 2 and y.ndim == 1
    c = z.shape[1] if ok else -1
    if not (ok and h.shape[0] == z.shape[0] == y.shape[0] and W.shape == (c, h.shape[1]) and b.shape == (c,)):
        raise ValueError(
            f"expected h (N, D), z (N, C), y (N,), W (C, D), b (C,); got h {tuple(h.shape)}, z "
            f"{tuple(z.shape)}, y {tuple(y.shape)}, W {tuple(W.shape)}, b {tuple(b.shape)}"
        )
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= c):
        raise ValueError(f"labels must lie in [0, {c}), got [{int(y.min())}, {int(y.max())}]")


def _true_class_dot(h: Tensor, W: Tensor, y: Tensor) -> Tensor:
    """``w_{y_i} . h_i`` for every row ``(N,)``, gathering ``W[y]`` in chunks to bound memory."""
    return torch.cat(
        [
            (h[i : i + _CHUNK] * W[y[i : i + _CHUNK]]).sum(dim=1)  # (chunk,)
            for i in range(0, h.shape[0], _CHUNK)
        ]
        or [h.new_zeros(0)]
    )


def _margin(z: Tensor, y: Tensor, W: Tensor, weight_norm: Tensor) -> Tensor:
    """``min_{c != y} (z_y - z_c) / ||w_y - w_c||`` with the zero-distance rule of the module docstring."""
    sq = weight_norm[:, None] ** 2 + weight_norm[None, :] ** 2  # (C, C)
    dist_sq = (sq - 2.0 * W @ W.T).clamp_min(0.0)
    dist_sq[dist_sq <= 64 * torch.finfo(torch.float64).eps * sq] = 0.0
    dist = dist_sq.sqrt()[y]  # (N, C): ||w_y - w_c||
    numerator = z.gather(1, y[:, None]) - z  # (N, C): z_y - z_c
    ratio = torch.where(dist > 0, numerator / dist.clamp_min(1e-300), numerator.sign() * math.inf)
    ratio = torch.nan_to_num(ratio, nan=0.0, posinf=math.inf, neginf=-math.inf)  # 0 * inf of a tie
    ratio.scatter_(1, y[:, None], math.inf)  # c = y is not a competitor
    return ratio.min(dim=1).values  # (N,)


def _mean(values: Tensor) -> float | None:
    return float(values.mean()) if values.numel() else None


def _class_means(values: Tensor, y: Tensor, num_classes: int) -> list[float | None]:
    sums = torch.zeros(num_classes, dtype=torch.float64, device=values.device).index_add_(0, y, values)
    counts = torch.bincount(y, minlength=num_classes)
    return [float(s) / int(n) if n else None for s, n in zip(sums.tolist(), counts.tolist(), strict=True)]
