"""The robustness analysis: geometry of every sample under every corruption, in one pass over the data.

For each batch of the evaluation set (on the device), for the clean images and each (corruption,
severity): corrupt the pixels on the device (:mod:`.corruptions`), normalise, run one forward that yields
penultimate features and logits (:mod:`.features`), and keep per sample the prediction, correctness, loss,
angle to the true-class weight, feature norm, margin and EL2N (:mod:`.geometry`). Results stay on the device
until the end, so nothing waits on the host between batches. From the clean pass also: neural collapse
(:mod:`.collapse`), dead-ReLU rates per layer, and the clean features themselves (for CKA between
checkpoints, :mod:`.cka`).

Images: corruptions are defined on pixels in [0, 1]; the samples arrive normalised as
``(pixels - mean) / std`` with the data set's ``(mean, std)`` (either may be ``None``), so they are mapped
back first, and refused with a clear message if they do not lie in [0, 1].
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from workers.analyses.evaluate import eval_mode
from workers.robustness.collapse import neural_collapse
from workers.robustness.corruptions import CORRUPTIONS, corrupt
from workers.robustness.features import head_weights, penultimate, relu_dead_rates
from workers.robustness.geometry import sample_geometry, summarize

__all__ = ["PER_SAMPLE", "RobustnessResult", "conditions", "robustness"]

Progress = Callable[[float, str], None]
SliceReader = Callable[[str, int], tuple[Tensor, Tensor]]  # (corruption, severity) -> normalised x, y
PER_SAMPLE = ("prediction", "correct", "loss", "angle", "feature_norm", "margin", "el2n")
PIXEL_SLACK = 1e-3  # normalisation round trips leave values a hair outside [0, 1]
RESIDENT_BYTES = 2 << 30  # images up to this size (float32) are copied to an accelerator once


@dataclass
class RobustnessResult:
    summary: dict[str, Any]
    arrays: dict[str, np.ndarray]


def conditions(corruptions: Sequence[str], severities: Sequence[int]) -> list[tuple[str, int]]:
    """``("clean", 0)`` then every ``(corruption, severity)``, corruption-major."""
    return [("clean", 0)] + [(c, s) for c in corruptions for s in severities]


def _stats(value: np.ndarray | None, channels: int, device: torch.device) -> Tensor | None:
    """A data set's mean or std as ``(1, C, 1, 1)`` (per channel) or a scalar tensor."""
    if value is None:
        return None
    t = torch.as_tensor(np.asarray(value, dtype=np.float32), device=device)
    if t.numel() == channels:
        return t.reshape(1, channels, 1, 1)
    if t.numel() == 1:
        return t.reshape(())
    return t.reshape(1, *t.shape[-3:]) if t.ndim >= 3 else t  # per-pixel statistics


def robustness(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    device: torch.device,
    normalization: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
    corruptions: Sequence[str] = CORRUPTIONS,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    max_samples: int = 10_000,
    batch_size: int = 1000,
    seed: int = 0,
    keep_features: bool = True,
    read_slice: SliceReader | None = None,
    progress: Progress | None = None,
) -> RobustnessResult:
    """Per-sample geometry of ``model`` on ``x`` clean and under every (corruption, severity).

    Args:
        x: normalised images ``(N, C, H, W)`` (``(pixels - mean) / std``), y: labels ``(N,)``.
        normalization: the data set's ``(mean, std)``, to recover pixels in [0, 1].
        read_slice: read corrupted images from a stored set (CIFAR-10-C) instead of generating them;
            ``corruptions`` then name that set's corruptions, and its slices must hold the clean samples.
        seed: corruption randomness; batch ``b`` of condition ``k`` draws from its own generator seeded
            from ``(seed, k, b)``, so results do not depend on the batch order or size of other batches.
    """
    started = time.perf_counter()
    if x.ndim != 4:
        raise ValueError(
            f"corruptions need images (N, C, H, W); this data set has samples of shape {tuple(x.shape[1:])}"
        )
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    if unknown and read_slice is None:
        raise ValueError(f"unknown corruptions {unknown}; known: {', '.join(CORRUPTIONS)}")
    bad = [s for s in severities if not 1 <= int(s) <= 5]
    if bad:
        raise ValueError(f"severities must be 1 to 5, got {bad}")
    device = torch.device(device)
    n = min(int(x.shape[0]), max_samples)
    x, y = x[:n], y[:n].to(torch.long)
    channels = int(x.shape[1])
    mean, std = (_stats(v, channels, device) for v in normalization)
    conds = conditions(list(corruptions), [int(s) for s in severities])
    work = copy_model(model, device)
    forward = penultimate(work)
    w, b = head_weights(work)
    w, b = w.detach().float(), b.detach().float()
    num_classes = int(w.shape[0])
    if int(y.max()) >= num_classes:
        raise ValueError(f"labels reach {int(y.max())} but the model predicts {num_classes} classes")

    _check_pixels(x, mean, std)
    if device.type != "cpu" and x.numel() * 4 <= RESIDENT_BYTES:
        # one copy to the device instead of one per batch and condition (71 per batch by default)
        x = x.to(device=device, dtype=torch.float32)
    labels = y.to(device)
    outputs: dict[str, list[list[Tensor]]] = {k: [[] for _ in conds] for k in PER_SAMPLE}  # per condition
    features: list[Tensor] = []
    total = len(conds) * n
    done = 0
    last = time.monotonic()
    dead = relu_dead_rates(work)  # counts the clean passes only: hooks are on while those run
    with eval_mode(work), torch.no_grad():
        for k, (name, severity) in enumerate(conds):
            stored = (
                _read_matching(read_slice, name, severity, y, x.shape[1:])
                if name != "clean" and read_slice
                else None
            )
            for start in range(0, n, batch_size):
                end = min(start + batch_size, n)
                xb = x[start:end].to(device=device, dtype=torch.float32)
                if name == "clean":
                    with dead:
                        h, z = forward(xb)
                elif stored is not None:
                    h, z = forward(stored[start:end].to(device=device, dtype=torch.float32))
                else:
                    gen = torch.Generator(device=device).manual_seed(_seed(seed, k, start // batch_size))
                    pixels = _to_pixels(xb, mean, std)
                    h, z = forward(_normalize(corrupt(pixels, name, severity, generator=gen), mean, std))
                geometry = sample_geometry(h.float(), z.float(), labels[start:end], w, b)
                for key in PER_SAMPLE:
                    outputs[key][k].append(geometry[key])
                if name == "clean" and keep_features:
                    features.append(h.detach().to(torch.float16))
                done += end - start
                now = time.monotonic()
                if progress is not None and now - last > 0.5:
                    progress(done / total, f"{name} {severity}: {done}/{total} images")
                    last = now
    dead_rates = dead.rates()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    stacked = {key: torch.stack([torch.cat(parts) for parts in outputs[key]]) for key in PER_SAMPLE}  # (K, N)
    by_condition = [
        summarize({key: stacked[key][k] for key in PER_SAMPLE}, labels, num_classes)
        for k in range(len(conds))
    ]
    clean = by_condition[0]
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for (name, severity), summary in zip(conds[1:], by_condition[1:], strict=True):
        table.setdefault(name, {})[str(severity)] = _overall(summary)
    h_clean = torch.cat(features).float() if features else None
    present = int(torch.unique(labels).numel())
    collapse = (
        neural_collapse(h_clean, labels, w, num_classes, b=b, prediction=stacked["prediction"][0])
        if h_clean is not None and present >= 2
        else {}
    )
    corrupted_acc = [s["accuracy"] for s in by_condition[1:]]
    correct = stacked["correct"]  # (K, N) bool
    summary: dict[str, Any] = {
        "clean": _overall(clean),
        "per_class": {
            "accuracy": clean.get("per_class", {}).get("accuracy"),
            "mean_margin": clean.get("per_class", {}).get("mean_margin"),
        },
        "corruptions": table,
        "mean_corruption_accuracy": float(np.mean(corrupted_acc)) if corrupted_acc else None,
        "relative_robustness": (float(np.mean(corrupted_acc)) / clean["accuracy"])
        if corrupted_acc and clean["accuracy"]
        else None,
        "neural_collapse": collapse,
        "dead_relu_rate": dead_rates,
        # robust: right clean and under every corruption; fragile: right clean, wrong under at least half
        "robust_samples": int(correct.all(dim=0).sum()),
        "fragile_samples": _fragile(correct),
        "corruption_names": list(dict.fromkeys(c for c, _ in conds[1:])),
        "severities": [int(s) for s in severities],
        "source": "stored" if read_slice is not None else "generated",
        "seed": seed,
        "n_samples": n,
        "num_classes": num_classes,
        "feature_dim": int(w.shape[1]),
        "images": total,
        "seconds": seconds,
        "images_per_second": total / seconds if seconds > 0 else None,
        "device": device.type,
    }
    arrays: dict[str, np.ndarray] = {
        "labels": y.numpy().astype(np.int64),
        "conditions": np.array([f"{c}/{s}" if c != "clean" else "clean" for c, s in conds]),
        **{key: _numpy(stacked[key]) for key in PER_SAMPLE},
    }
    if h_clean is not None:
        arrays["clean_features"] = h_clean.to(torch.float16).cpu().numpy()
    return RobustnessResult(summary, arrays)


def copy_model(model: nn.Module, device: torch.device) -> nn.Module:
    """A float32 copy on ``device`` (the cached model is shared with other jobs and must not change)."""
    return copy.deepcopy(model).to(device=device, dtype=torch.float32)


def _fragile(correct: Tensor) -> int:
    """Samples right on clean images (row 0) but wrong under at least half of the corrupted conditions."""
    if correct.shape[0] < 2:
        return 0
    wrong = (~correct[1:]).sum(dim=0)  # (N,)
    return int((correct[0] & (2 * wrong >= correct.shape[0] - 1)).sum())


def _seed(seed: int, condition: int, batch: int) -> int:
    return (seed * 1_000_003 + condition * 10_007 + batch) % (2**62)


def _unnormalize(x: Tensor, mean: Tensor | None, std: Tensor | None) -> Tensor:
    """``x * std + mean``: the pixels the data set's normalisation was applied to."""
    pixels = x * std if std is not None else x
    return pixels + mean if mean is not None else pixels


def _to_pixels(x: Tensor, mean: Tensor | None, std: Tensor | None) -> Tensor:
    return _unnormalize(x, mean, std).clamp(0.0, 1.0)


def _check_pixels(x: Tensor, mean: Tensor | None, std: Tensor | None) -> None:
    """Refuse data whose images do not lie in [0, 1] once the normalisation is undone (checked once)."""
    device = next((t.device for t in (mean, std) if t is not None), x.device)
    lo, hi = math.inf, -math.inf
    for chunk in x.split(4096):
        low, high = torch.aminmax(_unnormalize(chunk.to(device=device, dtype=torch.float32), mean, std))
        lo, hi = min(lo, float(low)), max(hi, float(high))
    if lo < -PIXEL_SLACK or hi > 1 + PIXEL_SLACK:
        raise ValueError(
            f"corruptions need pixels in [0, 1], but this data set's images span [{lo:.3g}, {hi:.3g}] after "
            "undoing its normalisation; upload images as uint8 pixels or floats in [0, 1] with mean/std"
        )


def _read_matching(read_slice: SliceReader, name: str, severity: int, y: Tensor, shape: tuple) -> Tensor:
    """One stored (corruption, severity) slice, checked to hold the same samples as the clean set."""
    xs, ys = read_slice(name, severity)
    n = int(y.shape[0])
    if xs.shape[0] < n or not torch.equal(ys[:n].to(torch.long), y.cpu()):
        raise ValueError(
            f"the corrupted set's {name} (severity {severity}) does not hold the clean data set's samples in "
            "order (labels differ): pair CIFAR-10-C with the CIFAR-10 test set, in its original order"
        )
    if tuple(xs.shape[1:]) != tuple(shape):
        raise ValueError(
            f"the corrupted set's images have shape {tuple(xs.shape[1:])}, the clean set's {tuple(shape)}"
        )
    return xs[:n]


def _normalize(pixels: Tensor, mean: Tensor | None, std: Tensor | None) -> Tensor:
    x = pixels - mean if mean is not None else pixels
    return x / std if std is not None else x


def _overall(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "per_class"}


def _numpy(t: Tensor) -> np.ndarray:
    if t.dtype == torch.bool:
        return t.cpu().numpy()
    if t.dtype in (torch.int64, torch.int32):
        return t.to(torch.int16).cpu().numpy()
    return t.float().cpu().numpy()
