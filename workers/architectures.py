"""Registry of trusted plain-PyTorch architectures.

Users upload weights, never code (DESIGN.md section 5): a checkpoint names one of the architectures
registered here, and :func:`build` instantiates it from code the server trusts.

When :func:`build` is given a state_dict, every hidden width is read from the state_dict's tensor shapes,
so checkpoints whose channels or hidden units were removed by structured pruning (for example Torch-Pruning,
or :func:`workers.pruning.channel_l1_prune`) rebuild with their smaller layers. The number of classes and
the input shape come from the caller, and a disagreement with the checkpoint is reported by
:func:`load_weights` as a shape mismatch naming the key and both shapes.

Every model here exposes its penultimate features (after global pooling) as ``features(x) -> (B, D)``,
and ``forward(x) == head(features(x))`` with ``head`` an ``nn.Linear(D, num_classes)``: the robustness
geometry of Li et al. (arXiv 2206.07918) decomposes ``head`` over these features.

A factory is called as ``factory(num_classes=..., input_shape=..., state_dict=...)`` with ``state_dict``
already passed through :func:`normalize_keys` (or ``None``), and returns an untrained module; :func:`build`
loads the weights.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

__all__ = [
    "MLP",
    "Architecture",
    "ArchitectureError",
    "SmallCNN",
    "build",
    "get",
    "infer_num_classes",
    "load_weights",
    "names",
    "normalize_keys",
    "register",
]

# Prefixes that wrappers add to every key: nn.DataParallel / DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Keys torch.nn.utils.prune adds next to ``<name>_orig``; folded elsewhere, ignored by load_weights.
_MASK_SUFFIX = "_mask"
# First component of a classifier's module path in common model zoos (timm, torchvision, CIFAR repos).
_HEAD_NAMES = frozenset({"head", "fc", "classifier", "linear", "last_linear", "output", "out"})
_MAX_SHOWN = 200


class ArchitectureError(ValueError):
    """An architecture is unknown, or a state_dict does not fit it."""


@dataclass(frozen=True)
class Architecture:
    """A trusted network definition.

    ``factory(num_classes=, input_shape=, state_dict=)`` builds the module; ``default_input_shape``
    is the per-sample shape without the batch dimension, e.g. ``(1, 8, 8)``.
    """

    name: str
    description: str
    default_input_shape: tuple[int, ...]
    factory: Callable[..., nn.Module]


_REGISTRY: dict[str, Architecture] = {}


def _show(key: object) -> str:
    """Render an untrusted key as text: repr (escapes control characters), truncated."""
    text = str(key)
    if len(text) > _MAX_SHOWN:
        return repr(text[:_MAX_SHOWN]) + "..."
    return repr(text)


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def register(arch: Architecture, *, replace: bool = False) -> Architecture:
    """Add ``arch`` to the registry and return it.

    Registering the same name twice raises :class:`ArchitectureError` unless ``replace=True`` or the
    entry is the identical object.
    """
    existing = _REGISTRY.get(arch.name)
    if existing is not None and existing is not arch and not replace:
        raise ArchitectureError(f"architecture {_show(arch.name)} is already registered")
    _REGISTRY[arch.name] = arch
    return arch


def get(name: str) -> Architecture:
    """Return the registered architecture called ``name``."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(names())
        raise ArchitectureError(f"unknown architecture {_show(name)}; known: {known}") from None


def names() -> list[str]:
    """Registered architecture names, sorted."""
    return sorted(_REGISTRY)


def normalize_keys(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip wrapper prefixes from every key: ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile).

    Prefixes are stripped repeatedly from the start of a key, so ``_orig_mod.module.fc.weight`` becomes
    ``fc.weight``. Two keys that collide after stripping raise :class:`ArchitectureError`.
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise ArchitectureError(f"state_dict keys must be strings, got {_show(key)}")
        short = key
        while short.startswith(_WRAPPER_PREFIXES):
            short = short.split(".", 1)[1]
        if short in out:
            raise ArchitectureError(
                f"keys collide after removing wrapper prefixes: {_show(key)} -> {_show(short)}"
            )
        out[short] = value
    return out


def _natural_key(name: str) -> list[object]:
    """Sort ``classifier.10`` after ``classifier.6`` (state_dicts from safetensors come back sorted)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def infer_num_classes(state_dict: Mapping[str, Tensor]) -> int | None:
    """Number of classes from the classifier head, or ``None`` when no Linear weight is found.

    The head is the 2-D ``*.weight`` (or ``*.weight_orig``) whose module path starts with a usual head
    name (``head``, ``fc``, ``classifier``, ``linear``, ...), the last one in natural order when several
    match (``classifier.6`` in VGG); without such a name, the last 2-D weight in the state_dict's order.
    Its first dimension is the number of classes.
    """
    sd = normalize_keys(state_dict)
    linear: list[str] = []
    for key, value in sd.items():
        if not isinstance(value, Tensor) or value.ndim != 2:
            continue
        if key.endswith(".weight") or key.endswith(".weight_orig") or key in ("weight", "weight_orig"):
            linear.append(key)
    if not linear:
        return None
    named = [k for k in linear if k.split(".", 1)[0] in _HEAD_NAMES]
    key = max(named, key=_natural_key) if named else linear[-1]
    return int(sd[key].shape[0])


def load_weights(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Load ``state_dict`` into ``model`` strictly, with errors that name the first bad key.

    Keys are normalized first (:func:`normalize_keys`). Keys ending in ``_mask`` (left by
    ``torch.nn.utils.prune``) are ignored here; folding ``weight_orig * weight_mask`` is the loader's job.
    A missing BatchNorm ``num_batches_tracked`` (checkpoints from before PyTorch 0.4.1) keeps the model's
    value. Values are copied, and cast to the model's dtypes.

    Raises:
        ArchitectureError: a key is missing or unexpected, a value is not a tensor, or a shape differs,
            e.g. ``shape mismatch at 'conv1.weight': checkpoint (16, 1, 3, 3), architecture (32, 1, 3, 3)``.
    """
    sd = {k: v for k, v in normalize_keys(state_dict).items() if not k.endswith(_MASK_SUFFIX)}
    expected = model.state_dict()
    full: dict[str, Tensor] = {}
    for key, target in expected.items():
        if key not in sd:
            if key.endswith("num_batches_tracked"):
                full[key] = target
                continue
            raise ArchitectureError(f"checkpoint lacks {_show(key)}, which the architecture needs")
        value = sd[key]
        if not isinstance(value, Tensor):
            raise ArchitectureError(
                f"checkpoint value at {_show(key)} is a {type(value).__name__}, not a tensor"
            )
        if value.shape != target.shape:
            raise ArchitectureError(
                f"shape mismatch at {_show(key)}: checkpoint {_shape(value)}, architecture {_shape(target)}"
            )
        full[key] = value
    unexpected = [k for k in sd if k not in expected]
    if unexpected:
        raise ArchitectureError(
            f"checkpoint has {len(unexpected)} key(s) the architecture lacks, first {_show(unexpected[0])}"
        )
    with torch.no_grad():
        model.load_state_dict(full, strict=True)


def build(
    name: str,
    *,
    num_classes: int,
    input_shape: tuple[int, ...],
    state_dict: Mapping[str, Tensor] | None = None,
) -> nn.Module:
    """Instantiate architecture ``name``; with ``state_dict``, size hidden layers from it and load it.

    Args:
        name: a registered architecture name.
        num_classes: outputs of the head.
        input_shape: per-sample input shape without the batch dimension, e.g. ``(1, 8, 8)``.
        state_dict: optional weights; hidden widths are taken from its shapes, then loaded strictly
            (:func:`load_weights`).
    """
    arch = get(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ArchitectureError(f"num_classes must be a positive integer, got {num_classes!r}")
    shape = tuple(input_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ArchitectureError(f"input_shape must be a non-empty tuple of positive integers, got {shape!r}")
    sd = normalize_keys(state_dict) if state_dict is not None else None
    model = arch.factory(num_classes=num_classes, input_shape=shape, state_dict=sd)
    if sd is not None:
        load_weights(model, sd)
    logger.debug("built %s for input %s with %d classes", name, shape, num_classes)
    return model


def _width(state_dict: Mapping[str, Tensor] | None, key: str, default: int, *, dim: int = 0) -> int:
    """Size of ``state_dict[key]`` along ``dim``, or ``default`` when absent (load_weights reports it)."""
    if state_dict is None:
        return default
    value = state_dict.get(key)
    if not isinstance(value, Tensor) or value.ndim <= dim or value.shape[dim] < 1:
        return default
    return int(value.shape[dim])


# --------------------------------------------------------------------------------------------------- mlp


class MLP(nn.Module):
    """Two hidden ReLU layers: flatten -> ``fc1`` -> ReLU -> ``fc2`` -> ReLU -> ``head``."""

    def __init__(self, *, in_features: int, num_classes: int, hidden: tuple[int, int] = (128, 128)) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden[0])
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.relu2 = nn.ReLU()
        self.head = nn.Linear(hidden[1], num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(B, hidden[1])`` of inputs ``(B, *input_shape)``."""
        x = x.flatten(1)  # (B, F)
        x = self.relu1(self.fc1(x))  # (B, H1)
        return self.relu2(self.fc2(x))  # (B, H2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, C)


def _mlp(*, num_classes: int, input_shape: tuple[int, ...], state_dict: Mapping[str, Tensor] | None) -> MLP:
    in_features = math.prod(input_shape)
    hidden = (_width(state_dict, "fc1.weight", 128), _width(state_dict, "fc2.weight", 128))
    return MLP(in_features=in_features, num_classes=num_classes, hidden=hidden)


# --------------------------------------------------------------------------------------------- small_cnn


class SmallCNN(nn.Module):
    """Three 3x3 conv-BN-ReLU blocks, a 2x2 max-pool after the second, global average pool, linear head.

    Sized for small images (1x8x8 digits, 3x32x32 CIFAR) so the demo trains in seconds on a CPU.
    Convolutions have no bias (BatchNorm follows each).
    """

    def __init__(
        self, *, in_channels: int, num_classes: int, widths: tuple[int, int, int] = (16, 32, 64)
    ) -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.conv1 = nn.Conv2d(in_channels, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(c3)
        self.relu3 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c3, num_classes)

    @property
    def widths(self) -> tuple[int, int, int]:
        return (self.conv1.out_channels, self.conv2.out_channels, self.conv3.out_channels)

    def features(self, x: Tensor) -> Tensor:
        """Globally pooled features ``(B, widths[2])`` of images ``(B, C, H, W)``."""
        x = self.relu1(self.bn1(self.conv1(x)))  # (B, c1, H, W)
        x = self.pool(self.relu2(self.bn2(self.conv2(x))))  # (B, c2, H/2, W/2)
        x = self.relu3(self.bn3(self.conv3(x)))  # (B, c3, H/2, W/2)
        return self.gap(x).flatten(1)  # (B, c3)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, num_classes)


def _small_cnn(
    *, num_classes: int, input_shape: tuple[int, ...], state_dict: Mapping[str, Tensor] | None
) -> SmallCNN:
    if len(input_shape) != 3 or input_shape[1] < 2 or input_shape[2] < 2:
        raise ArchitectureError(f"small_cnn needs input_shape (C, H, W) with H, W >= 2, got {input_shape!r}")
    widths = (
        _width(state_dict, "conv1.weight", 16),
        _width(state_dict, "conv2.weight", 32),
        _width(state_dict, "conv3.weight", 64),
    )
    return SmallCNN(in_channels=input_shape[0], num_classes=num_classes, widths=widths)


register(
    Architecture(
        name="mlp",
        description="MLP with two hidden ReLU layers (128 units each by default) for small flattened inputs",
        default_input_shape=(1, 8, 8),
        factory=_mlp,
    )
)
register(
    Architecture(
        name="small_cnn",
        description="3-layer conv-BN-ReLU CNN (16/32/64 channels) with global average pooling, small images",
        default_input_shape=(1, 8, 8),
        factory=_small_cnn,
    )
)
