"""Plain evaluation: loss, accuracy, confusion matrix and calibration of a classifier on a data subset.

The evaluation runs in ``eval()`` mode (BatchNorm running statistics, dropout off; DESIGN.md section 6)
under ``torch.inference_mode`` on the first ``max_samples`` samples, and restores every submodule's
training flag afterwards.

Calibration is the expected calibration error of Guo et al. 2017, "On Calibration of Modern Neural
Networks" (ICML), eq. 3: confidences (max softmax probability) fall in ``M`` equal-width bins
``B_m = ((m-1)/M, m/M]`` and ``ECE = sum_m |B_m|/n * |acc(B_m) - conf(B_m)|``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

logger = logging.getLogger(__name__)

__all__ = ["EvaluateParams", "EvaluateResult", "eval_mode", "evaluate", "expected_calibration_error"]

Progress = Callable[[float, str], None]


class EvaluateParams(BaseModel):
    """Parameters of :func:`evaluate`."""

    model_config = ConfigDict(extra="forbid")

    max_samples: int = Field(10000, ge=1, le=1_000_000, description="evaluate the first N samples")
    batch_size: int = Field(1024, ge=1, le=65536, description="samples per forward pass")
    calibration_bins: int = Field(
        15, ge=2, le=100, description="equal-width confidence bins (Guo et al. 2017)"
    )


@dataclass
class EvaluateResult:
    """Aggregate metrics plus per-sample arrays (length ``n_samples``)."""

    loss: float  # mean cross-entropy
    accuracy: float
    n_samples: int
    num_classes: int
    per_class_accuracy: list[float | None]  # None for classes absent from the labels
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    ece: float
    reliability: dict[str, list[Any]]  # per bin: "edges" (M+1), "count", "accuracy", "confidence"
    predictions: np.ndarray = field(repr=False)  # (N,) int64
    labels: np.ndarray = field(repr=False)  # (N,) int64
    confidence: np.ndarray = field(repr=False)  # (N,) float64, max softmax probability
    losses: np.ndarray = field(repr=False)  # (N,) float64, per-sample cross-entropy

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable metrics, without the per-sample arrays."""
        return {
            "loss": self.loss,
            "accuracy": self.accuracy,
            "n_samples": self.n_samples,
            "num_classes": self.num_classes,
            "per_class_accuracy": list(self.per_class_accuracy),
            "confusion": [list(row) for row in self.confusion],
            "ece": self.ece,
            "reliability": {k: list(v) for k, v in self.reliability.items()},
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """Per-sample arrays, for an ``.npz`` artifact."""
        return {
            "predictions": self.predictions,
            "labels": self.labels,
            "confidence": self.confidence,
            "losses": self.losses,
        }


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode, then restore each submodule's own training flag.

    Restoring per submodule (not ``model.train(flag)``) keeps layers a caller froze on purpose, such as
    BatchNorm kept in eval mode during fine-tuning, as they were.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, *, bins: int
) -> tuple[float, dict[str, list[Any]]]:
    """ECE of Guo et al. 2017 (eq. 3) over ``bins`` equal-width bins ``((m-1)/M, m/M]``.

    Returns the ECE and the reliability diagram: bin ``edges``, and per bin ``count``, ``accuracy`` and
    mean ``confidence`` (``None`` for empty bins).
    """
    conf = np.asarray(confidence, dtype=np.float64)  # (N,)
    ok = np.asarray(correct, dtype=np.float64)  # (N,)
    if conf.shape != ok.shape or conf.ndim != 1:
        raise ValueError(f"confidence {conf.shape} and correct {ok.shape} must be 1-D of equal length")
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)  # (N,) bin of each sample
    count = np.bincount(idx, minlength=bins)  # (M,)
    acc_sum = np.bincount(idx, weights=ok, minlength=bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    n = max(conf.size, 1)
    ece = float(np.abs(acc_sum - conf_sum).sum() / n)  # sum_m |B_m|/n |acc - conf| = sum_m |S_acc - S_conf|/n
    nonempty = count > 0
    reliability = {
        "edges": np.linspace(0.0, 1.0, bins + 1).tolist(),
        "count": count.tolist(),
        "accuracy": [float(a / c) if e else None for a, c, e in zip(acc_sum, count, nonempty, strict=True)],
        "confidence": [
            float(s / c) if e else None for s, c, e in zip(conf_sum, count, nonempty, strict=True)
        ],
    }
    return ece, reliability


def _param_dtype(model: nn.Module, fallback: torch.dtype) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return fallback


def _check_data(x: Tensor, y: Tensor) -> None:
    if x.ndim < 1 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x {tuple(x.shape)} and y {tuple(y.shape)} disagree: need y 1-D with one label per row of x"
        )
    if x.shape[0] == 0:
        raise ValueError(f"cannot evaluate on an empty dataset: x {tuple(x.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if int(y.min()) < 0:
        raise ValueError(f"labels must be non-negative, got min {int(y.min())}")


def evaluate(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    params: EvaluateParams,
    device: torch.device,
    progress: Progress | None = None,
) -> EvaluateResult:
    """Evaluate ``model`` on the first ``params.max_samples`` samples of ``(x, y)``.

    Args:
        model: a classifier already on ``device``, mapping ``(B, *input_shape)`` to logits ``(B, C)``.
        x: inputs ``(N, *input_shape)``; batches are moved to ``device`` and cast to the model's dtype.
        y: integer labels ``(N,)`` in ``[0, C)``.
        params: subset size, batch size and calibration bins.
        device: where the forward passes run.
        progress: called after each batch with the fraction done and a message.

    Raises:
        ValueError: ``x`` and ``y`` sizes disagree, labels are not non-negative integers, the logits are not
            ``(B, C)``, or ``C`` is smaller than the largest label + 1.
    """
    _check_data(x, y)
    n = min(int(x.shape[0]), params.max_samples)
    x, y = x[:n], y[:n]
    dtype = _param_dtype(model, x.dtype if x.is_floating_point() else torch.get_default_dtype())
    max_label = int(y.max())

    preds, confs, losses = [], [], []
    num_classes = 0
    with eval_mode(model), torch.inference_mode():
        for start in range(0, n, params.batch_size):
            xb = x[start : start + params.batch_size].to(device=device, dtype=dtype)  # (B, *input_shape)
            yb = y[start : start + params.batch_size].to(device=device, dtype=torch.long)  # (B,)
            logits = model(xb)  # (B, C)
            if logits.ndim != 2 or logits.shape[0] != xb.shape[0]:
                raise ValueError(f"model returned logits {tuple(logits.shape)} for inputs {tuple(xb.shape)}")
            num_classes = int(logits.shape[1])
            if num_classes < max_label + 1:
                raise ValueError(
                    f"logits {tuple(logits.shape)} have {num_classes} classes but labels go up to {max_label}"
                )
            losses.append(F.cross_entropy(logits, yb, reduction="none").double().cpu())  # (B,)
            prob_max, pred = torch.softmax(logits.double(), dim=1).max(dim=1)  # (B,), (B,)
            confs.append(prob_max.cpu())
            preds.append(pred.cpu())
            done = min(start + params.batch_size, n)
            if progress is not None:
                progress(done / n, f"evaluated {done}/{n} samples")

    labels = y.to(torch.long).cpu().numpy()
    result = _summarize(
        predictions=torch.cat(preds).numpy(),
        labels=labels,
        confidence=torch.cat(confs).numpy(),
        losses=torch.cat(losses).numpy(),
        num_classes=num_classes,
        bins=params.calibration_bins,
    )
    logger.debug("evaluated %d samples: loss %.4f accuracy %.4f", n, result.loss, result.accuracy)
    return result


def _summarize(
    *,
    predictions: np.ndarray,
    labels: np.ndarray,
    confidence: np.ndarray,
    losses: np.ndarray,
    num_classes: int,
    bins: int,
) -> EvaluateResult:
    correct = predictions == labels  # (N,)
    confusion = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes)  # (C, C) rows true, columns predicted
    support = confusion.sum(axis=1)  # (C,)
    per_class = [float(confusion[c, c] / support[c]) if support[c] else None for c in range(num_classes)]
    ece, reliability = expected_calibration_error(confidence, correct, bins=bins)
    return EvaluateResult(
        loss=float(losses.mean()),
        accuracy=float(correct.mean()),
        n_samples=int(labels.size),
        num_classes=num_classes,
        per_class_accuracy=per_class,
        confusion=confusion.tolist(),
        ece=ece,
        reliability=reliability,
        predictions=predictions.astype(np.int64),
        labels=labels.astype(np.int64),
        confidence=confidence.astype(np.float64),
        losses=losses.astype(np.float64),
    )
