"""The registry itself: register, look up, build and load, with errors that name the bad key.

Users upload weights, never code (DESIGN.md section 5): a checkpoint names one of the architectures
registered here, and :func:`build` instantiates it from code the server trusts.

When :func:`build` is given a state_dict, hidden widths are read from the state_dict's tensor shapes, so
checkpoints whose channels or hidden units were removed by structured pruning (for example Torch-Pruning,
or :func:`workers.pruning.channel_l1_prune`) rebuild with their smaller layers. The number of classes and
the input shape come from the caller (:func:`infer_num_classes` and :func:`infer_input_shape` guess them
from a state_dict), and a disagreement with the checkpoint is reported by :func:`load_weights` as a shape
mismatch naming the key and both shapes.

Lookups also see third-party names (``torchvision.<name>``, ``timm.<name>``) and operator-installed entry
points; both live in :mod:`workers.architectures.external` and are consulted lazily.
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
    is the per-sample shape without the batch dimension, e.g. ``(1, 8, 8)``. ``input_shape_from``, when
    given, guesses the input shape from a (normalized) state_dict or returns ``None``.
    """

    name: str
    description: str
    default_input_shape: tuple[int, ...]
    factory: Callable[..., nn.Module]
    input_shape_from: Callable[[Mapping[str, Tensor]], tuple[int, ...] | None] | None = None


_REGISTRY: dict[str, Architecture] = {}


def show(key: object) -> str:
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
        raise ArchitectureError(f"architecture {show(arch.name)} is already registered")
    _REGISTRY[arch.name] = arch
    return arch


def _external():
    # Imported late: external imports this module, and entry points load on the first lookup.
    from workers.architectures import external

    external.load_entry_points()
    return external


def get(name: str) -> Architecture:
    """Return the architecture called ``name``: registered, from an entry point, or a zoo name."""
    external = _external()
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    arch = external.zoo_architecture(name) if isinstance(name, str) else None
    if arch is not None:
        return arch
    known = ", ".join(sorted(_REGISTRY))
    hint = external.zoo_hint(name) if isinstance(name, str) else ""
    raise ArchitectureError(f"unknown architecture {show(name)}; known: {known}{hint}") from None


def names() -> list[str]:
    """Architecture names, sorted: registered ones, entry points, and importable zoos' names."""
    external = _external()
    return sorted({*_REGISTRY, *external.zoo_names()})


def normalize_keys(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip wrapper prefixes from every key: ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile).

    Prefixes are stripped repeatedly from the start of a key, so ``_orig_mod.module.fc.weight`` becomes
    ``fc.weight``. Two keys that collide after stripping raise :class:`ArchitectureError`.
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise ArchitectureError(f"state_dict keys must be strings, got {show(key)}")
        short = key
        while short.startswith(_WRAPPER_PREFIXES):
            short = short.split(".", 1)[1]
        if short in out:
            raise ArchitectureError(
                f"keys collide after removing wrapper prefixes: {show(key)} -> {show(short)}"
            )
        out[short] = value
    return out


def natural_key(name: str) -> list[object]:
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
    key = max(named, key=natural_key) if named else linear[-1]
    return int(sd[key].shape[0])


def infer_input_shape(name: str, state_dict: Mapping[str, Tensor]) -> tuple[int, ...] | None:
    """Per-sample input shape that ``state_dict`` implies for architecture ``name``, or ``None``.

    Uses the architecture's own rule when it has one (``input_shape_from``: e.g. ``mlp`` reads fc1's
    in_features, the CNNs their first convolution's in_channels); otherwise the first 4-D weight in natural
    key order gives the channels and the architecture's default input shape gives the spatial size.
    """
    arch = get(name)
    sd = normalize_keys(state_dict)
    if arch.input_shape_from is not None:
        return arch.input_shape_from(sd)
    convs = [k for k, v in sd.items() if isinstance(v, Tensor) and v.ndim == 4 and k.endswith("weight")]
    if not convs or len(arch.default_input_shape) != 3:
        return None
    first = min(convs, key=natural_key)
    return (int(sd[first].shape[1]), *arch.default_input_shape[1:])


def channels_then_default(key: str, default: tuple[int, ...]):
    """An ``input_shape_from`` rule: in_channels of conv ``key`` with the default spatial size."""

    def rule(state_dict: Mapping[str, Tensor]) -> tuple[int, ...] | None:
        value = state_dict.get(key, state_dict.get(key + "_orig"))  # _orig: torch.nn.utils.prune, unfolded
        if not isinstance(value, Tensor) or value.ndim != 4:
            return None
        return (int(value.shape[1]), *default[1:])

    return rule


def flat_image_shape(in_features: int, channels: tuple[int, ...] = (1, 3)) -> tuple[int, int, int] | None:
    """``(C, S, S)`` with ``C * S * S == in_features`` for the first ``C`` in ``channels``, else ``None``."""
    for c in channels:
        if in_features % c:
            continue
        side = math.isqrt(in_features // c)
        if side * side == in_features // c and side > 0:
            return (c, side, side)
    return None


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
            raise ArchitectureError(f"checkpoint lacks {show(key)}, which the architecture needs")
        value = sd[key]
        if not isinstance(value, Tensor):
            raise ArchitectureError(
                f"checkpoint value at {show(key)} is a {type(value).__name__}, not a tensor"
            )
        if value.shape != target.shape:
            raise ArchitectureError(
                f"shape mismatch at {show(key)}: checkpoint {_shape(value)}, architecture {_shape(target)}"
            )
        full[key] = value
    unexpected = [k for k in sd if k not in expected]
    if unexpected:
        raise ArchitectureError(
            f"checkpoint has {len(unexpected)} key(s) the architecture lacks, first {show(unexpected[0])}"
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
        name: an architecture name (see :func:`names`).
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


def width(state_dict: Mapping[str, Tensor] | None, key: str, default: int, *, dim: int = 0) -> int:
    """Size of ``state_dict[key]`` along ``dim``, or ``default`` when absent (load_weights reports it)."""
    if state_dict is None:
        return default
    value = state_dict.get(key)
    if not isinstance(value, Tensor) or value.ndim <= dim or value.shape[dim] < 1:
        return default
    return int(value.shape[dim])


def image_shape(name: str, input_shape: tuple[int, ...], *, min_side: int = 1) -> tuple[int, int, int]:
    """``input_shape`` as ``(C, H, W)`` with ``H, W >= min_side``, or :class:`ArchitectureError`."""
    if len(input_shape) != 3 or input_shape[1] < min_side or input_shape[2] < min_side:
        raise ArchitectureError(
            f"{name} needs input_shape (C, H, W) with H, W >= {min_side}, got {input_shape!r}"
        )
    return input_shape  # type: ignore[return-value]
