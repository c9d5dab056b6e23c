"""Short supervised training, for the demo and for fine-tuning pruned checkpoints.

SGD with momentum 0.9 and weight decay 5e-4, a cosine learning-rate schedule over all steps
(Loshchilov & Hutter 2017, "SGDR", without restarts), mini-batches in an order drawn from ``seed``: the
usual CIFAR recipe (e.g. He et al. 2016, section 4.2, and ShrinkBench's fine-tuning, Blalock et al. 2020).

With ``masks``, pruned weights stay exactly zero (the masked fine-tuning of Han et al. 2015, "Learning
both Weights and Connections"): masks are applied before the first step, gradients of pruned entries
are zeroed before each step (so momentum and weight decay never move them), and the masks are applied
again after each step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workers.pruning import PruningError, apply_masks

logger = logging.getLogger(__name__)

__all__ = ["train"]

MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4


def _check(model: nn.Module, x: Tensor, y: Tensor, *, epochs: int, lr: float, batch_size: int) -> None:
    if x.ndim < 1 or y.ndim != 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(
            f"x {tuple(x.shape)} and y {tuple(y.shape)} must hold the same non-zero number of samples"
        )
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"{type(model).__name__} has no trainable parameter")


def train(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epochs: int,
    lr: float = 0.05,
    batch_size: int = 128,
    seed: int = 0,
    masks: Mapping[str, Tensor] | None = None,
    device: torch.device = torch.device("cpu"),
    progress: Callable[[float, str], None] | None = None,
) -> list[float]:
    """Train ``model`` in place on ``(x, y)`` with cross-entropy; return the mean loss of each epoch.

    Args:
        model: a classifier already on ``device``; it is put in train mode and its submodules' training
            flags are restored at the end.
        x: inputs ``(N, *input_shape)``; batches are moved to ``device`` and cast to the model's dtype.
        y: integer labels ``(N,)``.
        epochs: passes over the data (0 returns ``[]`` and leaves the model as it was).
        lr: peak learning rate, annealed to 0 by a per-step cosine schedule.
        batch_size: samples per step; the last batch of an epoch may be smaller.
        seed: seeds the batch order and, inside a forked RNG, any randomness of the model (dropout), so a
            run is reproducible for a seed without touching the caller's global random state.
        masks: ``{parameter name: mask}`` (bool or 0/1 float, shaped like the parameter); masked
            entries stay exactly zero.
        device: where the steps run.
        progress: called after each epoch with the fraction done and a message.
    """
    _check(model, x, y, epochs=epochs, lr=lr, batch_size=batch_size)
    params = dict(model.named_parameters())
    mask_of: dict[str, Tensor] = {}
    for name, mask in (masks or {}).items():
        if name not in params or mask.shape != params[name].shape:
            shape = tuple(params[name].shape) if name in params else None
            raise PruningError(f"mask {name!r} {tuple(mask.shape)} does not fit parameter shape {shape}")
        mask_of[name] = mask.to(device=params[name].device, dtype=params[name].dtype)
    if epochs == 0:
        return []

    dtype = next((p.dtype for p in params.values() if p.is_floating_point()), torch.get_default_dtype())
    n = int(x.shape[0])
    steps_per_epoch = math.ceil(n / batch_size)
    trainable = [p for p in params.values() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    order_gen = torch.Generator().manual_seed(seed)
    flags = [(m, m.training) for m in model.modules()]
    fork_devices = [device] if device.type != "cpu" else []
    epoch_losses: list[float] = []
    try:
        model.train()
        apply_masks(model, mask_of)
        with torch.random.fork_rng(devices=fork_devices, device_type=device.type if fork_devices else "cuda"):
            torch.manual_seed(seed)
            for epoch in range(epochs):
                order = torch.randperm(n, generator=order_gen)  # (N,)
                total = 0.0
                for start in range(0, n, batch_size):
                    idx = order[start : start + batch_size]
                    xb = x[idx].to(device=device, dtype=dtype)  # (B, *input_shape)
                    yb = y[idx].to(device=device, dtype=torch.long)  # (B,)
                    loss = F.cross_entropy(model(xb), yb)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    for name, mask in mask_of.items():
                        grad = params[name].grad
                        if grad is not None:
                            grad.mul_(mask)
                    optimizer.step()
                    schedule.step()
                    apply_masks(model, mask_of)
                    total += float(loss.detach()) * int(idx.numel())
                epoch_losses.append(total / n)
                logger.debug("epoch %d/%d loss %.4f", epoch + 1, epochs, epoch_losses[-1])
                if progress is not None:
                    progress((epoch + 1) / epochs, f"epoch {epoch + 1}/{epochs}, loss {epoch_losses[-1]:.4f}")
    finally:
        for module, flag in flags:
            module.training = flag
    return epoch_losses
