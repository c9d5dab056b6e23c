"""Pruning baselines: magnitude and random unstructured masks, and L1 channel pruning.

The unstructured baselines are those Blalock et al. 2020 ("What is the State of Neural Network
Pruning?", MLSys; the ShrinkBench library) recommend every paper compare against:

- global magnitude pruning: remove the ``round(s * N)`` smallest-magnitude weights over all prunable
  layers together (N weights in all), so layers end up with different sparsities;
- layer-wise magnitude pruning: remove the ``round(s * n_l)`` smallest-magnitude weights of each layer;
- random pruning: remove ``round(s * n_l)`` weights of each layer chosen uniformly at random.

Prunable tensors are the ``weight`` of every ``nn.Conv1d/2d/3d`` and ``nn.Linear`` module, the classifier
head included; biases and normalization parameters are kept. Masks are boolean tensors shaped like their
weight, ``True`` where the weight is kept, keyed by parameter name (``"conv1.weight"``). Ties in magnitude
are broken by position (stable sort), so masks are deterministic. Weights that are already zero have the
smallest magnitude and are pruned first, so pruning a pruned model again extends its mask.

Structured pruning (:func:`channel_l1_prune`) follows Li et al. 2017 ("Pruning Filters for Efficient
ConvNets", ICLR), section 3.1-3.2: in each conv layer, drop the output channels whose filters have the
smallest L1 norm, norms computed on the original weights of every layer ("independent" strategy).
:func:`channel_l1_structured` does the same for every architecture :func:`channel_groups` knows (small CNN,
CIFAR ResNet, CIFAR VGG), pruning only each residual block's inner width in a ResNet (their section 4.2),
so the identity shortcuts still add matching channels; the classifier keeps its classes.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from workers import architectures
from workers.architectures import SmallCNN

logger = logging.getLogger(__name__)

__all__ = [
    "METHODS",
    "ChannelGroup",
    "PrunedChild",
    "PruningError",
    "STRUCTURED",
    "apply_masks",
    "channel_l1_keep",
    "channel_groups",
    "channel_l1_prune",
    "channel_l1_structured",
    "global_magnitude_masks",
    "layerwise_magnitude_masks",
    "mask_sparsity",
    "prunable_weights",
    "prune",
    "random_masks",
]

_PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class PruningError(ValueError):
    """Invalid pruning request: sparsity out of range, unknown parameter, mask of the wrong shape."""


def _check_sparsity(sparsity: float, *, what: str = "sparsity") -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) or not math.isfinite(sparsity):
        raise PruningError(f"{what} must be a number in [0, 1), got {sparsity!r}")
    if not 0.0 <= sparsity < 1.0:
        raise PruningError(f"{what} must be in [0, 1), got {sparsity!r}")
    return float(sparsity)


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """``{name: weight}`` of every Conv1d/2d/3d and Linear module, in module order."""
    weights = {
        f"{name}.weight" if name else "weight": module.weight
        for name, module in model.named_modules()
        if isinstance(module, _PRUNABLE)
    }
    if not weights:
        raise PruningError(f"{type(model).__name__} has no Conv or Linear layer to prune")
    return weights


def _drop_smallest(scores: Tensor, k: int) -> Tensor:
    """Boolean keep-mask shaped like ``scores`` with its ``k`` smallest entries (stable order) False."""
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)  # (n,)
    if k > 0:
        order = torch.argsort(scores.reshape(-1), stable=True)  # (n,)
        keep[order[:k]] = False
    return keep.reshape(scores.shape)


def global_magnitude_masks(model: nn.Module, sparsity: float) -> dict[str, Tensor]:
    """Masks removing the ``round(sparsity * N)`` smallest |w| over all prunable weights together."""
    s = _check_sparsity(sparsity)
    weights = prunable_weights(model)
    with torch.no_grad():
        flat = torch.cat([w.detach().abs().reshape(-1).double() for w in weights.values()])  # (N,)
        keep = _drop_smallest(flat, round(s * flat.numel()))  # (N,)
    masks, offset = {}, 0
    for name, w in weights.items():
        masks[name] = keep[offset : offset + w.numel()].reshape(w.shape).clone()  # own storage, not a view
        offset += w.numel()
    return masks


def layerwise_magnitude_masks(model: nn.Module, sparsity: float) -> dict[str, Tensor]:
    """Masks removing the ``round(sparsity * n_l)`` smallest |w| of each prunable layer."""
    s = _check_sparsity(sparsity)
    with torch.no_grad():
        return {
            name: _drop_smallest(w.detach().abs(), round(s * w.numel()))
            for name, w in prunable_weights(model).items()
        }


def random_masks(model: nn.Module, sparsity: float, *, seed: int) -> dict[str, Tensor]:
    """Masks removing ``round(sparsity * n_l)`` weights of each prunable layer uniformly at random.

    The draw uses its own CPU generator seeded with ``seed``, so it is reproducible and leaves the global
    random state alone.
    """
    s = _check_sparsity(sparsity)
    gen = torch.Generator().manual_seed(seed)
    masks = {}
    for name, w in prunable_weights(model).items():
        scores = torch.rand(w.shape, generator=gen, dtype=torch.float64)
        masks[name] = _drop_smallest(scores, round(s * w.numel())).to(w.device)
    return masks


def apply_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Multiply each named parameter by its mask, in place (pruned entries become exactly zero)."""
    params = dict(model.named_parameters())
    checked = []
    for name, mask in masks.items():
        if name not in params:
            raise PruningError(f"mask for {name!r} names no parameter of {type(model).__name__}")
        p = params[name]
        if mask.shape != p.shape:
            raise PruningError(f"mask for {name!r} has shape {tuple(mask.shape)}, parameter {tuple(p.shape)}")
        checked.append((p, mask))
    with torch.no_grad():
        for p, mask in checked:
            p.mul_(mask.to(device=p.device, dtype=p.dtype))


def _keep_channels(conv: nn.Conv2d, fraction: float) -> Tensor:
    """Sorted indices of the output channels to keep: all but the ``round(fraction * c)`` smallest L1."""
    c = conv.out_channels
    n_drop = min(round(fraction * c), c - 1)  # always keep at least one channel
    l1 = conv.weight.detach().abs().sum(dim=(1, 2, 3)).double()  # (c,)
    keep = _drop_smallest(l1, n_drop)  # (c,)
    return torch.nonzero(keep).reshape(-1)  # (c - n_drop,), ascending


def channel_l1_keep(
    model: SmallCNN, fraction: float, *, layers: Sequence[str] = ("conv1", "conv2", "conv3")
) -> dict[str, Tensor]:
    """``{conv name: ascending indices of the output channels}`` that :func:`channel_l1_prune` keeps."""
    if not isinstance(model, SmallCNN):
        raise PruningError(f"channel_l1 pruning supports small_cnn models, got {type(model).__name__}")
    f = _check_sparsity(fraction, what="fraction")
    convs = ("conv1", "conv2", "conv3")
    unknown = [name for name in layers if name not in convs]
    if unknown:
        raise PruningError(f"layers must be among {', '.join(convs)}, got {unknown[0]!r}")
    return {name: _keep_channels(getattr(model, name), f) for name in convs if name in layers}


def channel_l1_prune(
    model: SmallCNN, fraction: float, *, layers: Sequence[str] = ("conv1", "conv2", "conv3")
) -> SmallCNN:
    """A smaller ``SmallCNN`` without the ``fraction`` of each conv's output channels of lowest filter L1.

    Removing channel ``j`` of ``convK`` slices ``convK.weight[j]``, entry ``j`` of ``bnK``'s weight, bias and
    running statistics, and input channel ``j`` of the next layer (``conv{K+1}``, or the columns of
    ``head`` for ``conv3``, whose outputs are the pooled features). The head keeps its classes. Each layer
    keeps at least one channel. The input model is left unchanged; the new one has its dtype, device and
    training flag, and ``architectures.build("small_cnn", ..., state_dict=new.state_dict())`` rebuilds it.

    Args:
        model: a :class:`~workers.architectures.SmallCNN`.
        fraction: share of output channels to remove in each listed layer, in [0, 1).
        layers: which of ``conv1``, ``conv2``, ``conv3`` to prune.
    """
    f = _check_sparsity(fraction, what="fraction")
    kept = channel_l1_keep(model, f, layers=layers)
    convs = ("conv1", "conv2", "conv3")
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    consumers = {"conv1": "conv2.weight", "conv2": "conv3.weight", "conv3": "head.weight"}
    for conv_name, keep in kept.items():
        bn = "bn" + conv_name[-1]
        sd[f"{conv_name}.weight"] = sd[f"{conv_name}.weight"][keep]  # (c', c_in, 3, 3)
        for stat in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{bn}.{stat}"] = sd[f"{bn}.{stat}"][keep]  # (c',)
        nxt = consumers[conv_name]
        sd[nxt] = sd[nxt][:, keep]  # next conv (c_out, c', 3, 3) or head (classes, c')

    widths = tuple(int(sd[f"{c}.weight"].shape[0]) for c in convs)
    ref = model.conv1.weight
    pruned = SmallCNN(in_channels=model.conv1.in_channels, num_classes=model.head.out_features, widths=widths)
    pruned.to(device=ref.device, dtype=ref.dtype)
    architectures.load_weights(pruned, sd)
    pruned.train(model.training)
    logger.debug("channel L1 pruning %.3f of %s: widths %s -> %s", f, list(layers), model.widths, widths)
    return pruned


# --- one pruned child: what the ``prune`` analysis makes for each (method, sparsity) -------------------

METHODS = ("random", "global_magnitude", "layerwise_magnitude", "channel_l1")
STRUCTURED = frozenset({"channel_l1"})


@dataclass
class PrunedChild:
    """A pruned copy of a model, its masks (unstructured methods) and what pruning achieved.

    ``achieved`` is the pruned fraction in the target's unit: of prunable weights (unstructured) or of
    conv output channels (structured); ``layers`` gives it per layer as ``{"pruned", "total", "sparsity"}``.
    """

    model: nn.Module
    masks: dict[str, Tensor]
    achieved: float
    layers: dict[str, dict[str, float | int]] = field(default_factory=dict)


def mask_sparsity(masks: Mapping[str, Tensor]) -> tuple[float, dict[str, dict[str, float | int]]]:
    """Pruned fraction of the masked entries overall, and ``{name: {"pruned", "total", "sparsity"}}``."""
    layers = {}
    for name, mask in masks.items():
        total = mask.numel()
        pruned = total - int(torch.count_nonzero(mask))
        layers[name] = {"pruned": pruned, "total": total, "sparsity": pruned / total if total else 0.0}
    total = sum(int(v["total"]) for v in layers.values())
    pruned = sum(int(v["pruned"]) for v in layers.values())
    return (pruned / total if total else 0.0), layers


def _channel_sparsity(model: nn.Module, kept: Mapping[str, Tensor]) -> tuple[float, dict]:
    layers = {}
    for name, keep in kept.items():
        total = dict(model.named_modules())[name].out_channels
        pruned = total - int(keep.numel())
        layers[name] = {"pruned": pruned, "total": total, "sparsity": pruned / total}
    total = sum(int(v["total"]) for v in layers.values())
    pruned = sum(int(v["pruned"]) for v in layers.values())
    return (pruned / total if total else 0.0), layers


@dataclass(frozen=True)
class ChannelGroup:
    """Output channels of ``conv`` that can be removed together with ``bn``'s entries and the matching
    input channels of ``consumers`` (Conv2d or Linear module names)."""

    conv: str
    bn: str
    consumers: tuple[str, ...]


def channel_groups(model: nn.Module) -> list[ChannelGroup]:
    """The prunable channel groups of a small CNN, CIFAR ResNet or CIFAR VGG; the classifier is kept.

    In a ResNet only each block's inner width (``conv1`` out, ``conv2`` in) is pruned, as Li et al. 2017
    (section 4.2) do: the residual stream's channels are shared by every block of a stage through the
    identity shortcuts, so removing them independently per layer would break the additions.
    """
    from workers.architectures.cifar_resnet import CifarResNet
    from workers.architectures.vgg import CifarVGG

    if isinstance(model, SmallCNN):
        pairs = (("conv1", "conv2"), ("conv2", "conv3"), ("conv3", "head"))
        return [ChannelGroup(c, "bn" + c[-1], (nxt,)) for c, nxt in pairs]
    if isinstance(model, CifarResNet):
        blocks = [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(len(getattr(model, f"layer{s}")))]
        return [ChannelGroup(f"{b}.conv1", f"{b}.bn1", (f"{b}.conv2",)) for b in blocks]
    if isinstance(model, CifarVGG):
        convs = [f"features.{i}" for i, m in enumerate(model.trunk) if isinstance(m, nn.Conv2d)]
        first_linear = "classifier" if isinstance(model.classifier, nn.Linear) else "classifier.0"
        nexts = convs[1:] + [first_linear]
        bns = [f"features.{int(c.split('.')[1]) + 1}" for c in convs]  # conv, BN, ReLU in each trunk step
        return [ChannelGroup(c, bn, (n,)) for c, bn, n in zip(convs, bns, nexts, strict=True)]
    raise PruningError(
        f"channel pruning supports small_cnn, CIFAR ResNet and CIFAR VGG models, got {type(model).__name__}"
    )


def _sliced(module: nn.Module, keep: Tensor, *, dim: int) -> nn.Module:
    """A copy of a Conv2d, Linear or BatchNorm2d keeping only ``keep`` along ``dim`` (0: out, 1: in)."""
    ref = module.weight
    n = int(keep.numel())
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            raise PruningError("channel pruning does not support grouped convolutions")
        c_in, c_out = (module.in_channels, n) if dim == 0 else (n, module.out_channels)
        new = nn.Conv2d(
            c_in, c_out, module.kernel_size, module.stride, module.padding, module.dilation,
            bias=module.bias is not None, padding_mode=module.padding_mode,
        )  # fmt: skip
    elif isinstance(module, nn.Linear):
        new = nn.Linear(n, module.out_features, bias=module.bias is not None)
    else:
        new = nn.BatchNorm2d(n, module.eps, module.momentum, module.affine, module.track_running_stats)
    new.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        for name, value in module.state_dict().items():
            sliced = (
                value if value.ndim == 0 or (dim == 1 and value.ndim == 1) else value.index_select(dim, keep)
            )
            new.state_dict()[name].copy_(sliced)
    new.train(module.training)
    return new


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    owner = dict(model.named_modules())[parent]  # not get_submodule: CifarVGG.features is also a method
    owner._modules[leaf] = module


def channel_l1_structured(model: nn.Module, fraction: float) -> tuple[nn.Module, dict[str, Tensor]]:
    """A narrower copy of ``model`` without ``fraction`` of each group's lowest-L1 channels, and the kept
    indices by conv name (see :func:`channel_groups`; norms on the original weights, each group keeps at
    least one channel). The model is left unchanged; its state_dict rebuilds through the intake."""
    f = _check_sparsity(fraction, what="fraction")
    groups = channel_groups(model)
    modules = dict(model.named_modules())
    kept = {g.conv: _keep_channels(modules[g.conv], f) for g in groups}
    pruned = copy.deepcopy(model)
    for g in groups:
        keep = kept[g.conv].to(modules[g.conv].weight.device)
        current = dict(pruned.named_modules())
        _replace(pruned, g.conv, _sliced(current[g.conv], keep, dim=0))
        _replace(pruned, g.bn, _sliced(current[g.bn], keep, dim=0))
        for consumer in g.consumers:
            _replace(pruned, consumer, _sliced(dict(pruned.named_modules())[consumer], keep, dim=1))
    return pruned, kept


def prune(model: nn.Module, method: str, sparsity: float, *, seed: int = 0) -> PrunedChild:
    """A pruned copy of ``model`` (left unchanged) by one of :data:`METHODS` at ``sparsity``.

    Unstructured methods zero the masked weights of a deep copy and return the masks, which fine-tuning
    keeps fixed; ``channel_l1`` returns a smaller network (:func:`channel_l1_prune`) and no masks.
    """
    if method not in METHODS:
        raise PruningError(f"unknown pruning method {method!r}; known: {', '.join(METHODS)}")
    s = _check_sparsity(sparsity)
    if method == "channel_l1":
        child, kept = channel_l1_structured(model, s)
        achieved, layers = _channel_sparsity(model, kept)
        return PrunedChild(child, {}, achieved, layers)
    child = copy.deepcopy(model)
    if method == "random":
        masks = random_masks(child, s, seed=seed)
    elif method == "global_magnitude":
        masks = global_magnitude_masks(child, s)
    else:
        masks = layerwise_magnitude_masks(child, s)
    apply_masks(child, masks)
    achieved, layers = mask_sparsity(masks)
    return PrunedChild(child, masks, achieved, layers)
