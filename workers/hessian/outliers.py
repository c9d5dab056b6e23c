"""Outliers of a Hessian spectrum: the top eigenvalues that stand apart from the bulk.

Sagun et al. 2017 ("Empirical Analysis of the Hessian of Over-Parametrized Neural Networks") and Papyan
2020 observe a bulk of eigenvalues near zero and, above it, outliers, about one per class. DESIGN.md
section 6 places the bulk edge at the largest relative gap among the top eigenvalues: with the positive
top eigenvalues in descending order ``l_1 >= ... >= l_p > 0``, the gap after ``l_i`` is
``(l_i - l_{i+1}) / l_i`` (the fraction by which the spectrum drops, scale-free and in ``[0, 1)``); the
outliers are ``l_1..l_i*`` for the ``i*`` with the largest gap and the bulk edge is ``l_{i*+1}``, the
largest eigenvalue judged to be in the bulk.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["split_outliers"]


def split_outliers(top: Sequence[float]) -> tuple[list[float], float | None]:
    """``(outliers, bulk_edge)`` from the top eigenvalues (any order); ``([], None)`` with fewer than two
    positive eigenvalues, since then no gap among them can be measured."""
    pos = sorted((float(v) for v in top if v > 0), reverse=True)
    if len(pos) < 2:
        return [], None
    gaps = [(pos[i] - pos[i + 1]) / pos[i] for i in range(len(pos) - 1)]
    cut = max(range(len(gaps)), key=gaps.__getitem__)  # first index of the largest gap
    return pos[: cut + 1], pos[cut + 1]
