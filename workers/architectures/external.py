"""Architectures from outside this package: torchvision and timm names, and operator entry points.

**Zoos.** When torchvision or timm is importable, ``torchvision.<name>`` (classification models of
``torchvision.models.list_models(module=torchvision.models)``, built with ``get_model(name, weights=None,
num_classes=...)``) and ``timm.<name>`` (``timm.list_models()``, built with ``timm.create_model(name,
pretrained=False, num_classes=...)``) are architectures too. Neither package is required; both are
imported on first use only. Default input shape ``(3, 224, 224)``. Widths are the zoo's own: structured
pruned copies of zoo models do not rebuild. Zoo models are wrapped in :class:`ZooModel`, which adds
``features`` and ``head`` without changing a single state_dict key.

**Entry points.** An operator installs a package declaring, in group ``prunescope.architectures``, an
entry point that loads to an :class:`Architecture`, or to a callable taking no arguments that returns one
(or an iterable of them). They are registered on the first :func:`~registry.names` or
:func:`~registry.get`; an entry point that fails to load, returns something else, or reuses a taken name
is logged as a warning and skipped, so a broken plug-in never takes the server down.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from types import ModuleType

from torch import Tensor, nn

from workers.architectures.registry import Architecture, ArchitectureError, register, show

logger = logging.getLogger(__name__)

GROUP = "prunescope.architectures"
ZOO_INPUT_SHAPE = (3, 224, 224)

_lock = threading.RLock()
_entry_points_loaded = False


# ------------------------------------------------------------------------------------------- entry points


def load_entry_points() -> None:
    """Register every ``prunescope.architectures`` entry point, once per process."""
    global _entry_points_loaded
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True  # first, so an entry point that calls names() does not recurse
        for ep in metadata.entry_points(group=GROUP):
            try:
                for arch in _architectures_from(ep.load()):
                    register(arch)
                    logger.info("registered architecture %s from entry point %s", show(arch.name), ep.value)
            except Exception as exc:  # operator code: never let it crash the server
                logger.warning(
                    "skipping architecture entry point %s (%s): %s: %s",
                    show(ep.name),
                    show(ep.value),
                    type(exc).__name__,
                    exc,
                )


def _architectures_from(obj: object) -> list[Architecture]:
    if isinstance(obj, Architecture):
        return [obj]
    if not callable(obj):
        raise TypeError(f"loads to a {type(obj).__name__}, not an Architecture or a factory of them")
    made = obj()
    archs = [made] if isinstance(made, Architecture) else list(made) if isinstance(made, Iterable) else [made]
    bad = [a for a in archs if not isinstance(a, Architecture)]
    if bad:
        raise TypeError(f"its factory returned a {type(bad[0]).__name__}, not an Architecture")
    return archs


# --------------------------------------------------------------------------------------------------- zoos


@dataclass(frozen=True)
class Zoo:
    """A third-party model library: its name prefix, import name, and how to list and create models."""

    prefix: str
    module: str
    list_models: Callable[[ModuleType], Iterable[str]]
    create: Callable[[ModuleType, str, int], nn.Module]


ZOOS = (
    Zoo(
        prefix="torchvision",
        module="torchvision.models",
        list_models=lambda m: m.list_models(module=m),
        create=lambda m, name, n: m.get_model(name, weights=None, num_classes=n),
    ),
    Zoo(
        prefix="timm",
        module="timm",
        list_models=lambda m: m.list_models(),
        create=lambda m, name, n: m.create_model(name, pretrained=False, num_classes=n),
    ),
)

_listings: dict[str, tuple[ModuleType, frozenset[str]]] = {}


def _import(zoo: Zoo) -> ModuleType | None:
    try:
        return importlib.import_module(zoo.module)
    except ImportError:
        return None
    except Exception as exc:  # a broken install must not break the registry
        logger.warning("cannot import %s: %s: %s", zoo.module, type(exc).__name__, exc)
        return None


def _models(zoo: Zoo) -> frozenset[str] | None:
    """The zoo's model names, cached per imported module object; ``None`` when it is not importable."""
    module = _import(zoo)
    if module is None:
        return None
    cached = _listings.get(zoo.prefix)
    if cached is None or cached[0] is not module:
        cached = (module, frozenset(str(n) for n in zoo.list_models(module)))
        _listings[zoo.prefix] = cached
    return cached[1]


def zoo_names() -> list[str]:
    """``<prefix>.<model>`` for every model of every importable zoo."""
    out = []
    for zoo in ZOOS:
        models = _models(zoo) or frozenset()
        out += [f"{zoo.prefix}.{m}" for m in models]
    return out


def _split(name: str) -> tuple[Zoo, str] | None:
    for zoo in ZOOS:
        if name.startswith(zoo.prefix + "."):
            return zoo, name[len(zoo.prefix) + 1 :]
    return None


def zoo_architecture(name: str) -> Architecture | None:
    """The :class:`Architecture` for a zoo name such as ``torchvision.resnet18``, or ``None``."""
    split = _split(name)
    if split is None:
        return None
    zoo, model = split
    if model not in (_models(zoo) or ()):
        return None
    return Architecture(
        name=name,
        description=f"{model} from {zoo.prefix} (third-party definition, widths fixed)",
        default_input_shape=ZOO_INPUT_SHAPE,
        factory=partial(_build_zoo_model, zoo, model),
    )


def zoo_hint(name: str) -> str:
    """A suffix for the unknown-name error: the zoo is not installed, or lacks the model."""
    split = _split(name)
    if split is None:
        return ""
    zoo, model = split
    if _models(zoo) is None:
        return f"; {zoo.prefix} is not installed"
    return f"; {zoo.prefix} has no model {show(model)}"


def _build_zoo_model(
    zoo: Zoo,
    model: str,
    *,
    num_classes: int,
    input_shape: tuple[int, ...],
    state_dict: Mapping[str, Tensor] | None,
) -> ZooModel:
    module = _import(zoo)
    if module is None:
        raise ArchitectureError(f"{zoo.prefix} is not installed")
    return ZooModel(zoo.create(module, model, num_classes))


class ZooModel(nn.Module):
    """A third-party classifier with ``features(x) -> (B, D)`` and ``head`` added, keys unchanged.

    ``head`` is the last ``nn.Linear`` in the network's module order (the classifier of torchvision and
    timm classification models); ``features(x)`` runs the network and returns the input of ``head``,
    flattened. ``forward(x) == head(features(x))`` holds when nothing follows that Linear.

    The wrapper shares the network's parameter, buffer and child tables instead of registering it as a
    child, so ``state_dict()``, ``named_parameters()`` and loading see exactly the network's own keys
    (``fc.weight``, not ``net.fc.weight``), and ``.to()``/``.double()``/``eval()`` reach every layer.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        paths = [path for path, m in net.named_modules() if isinstance(m, nn.Linear)]
        if not paths:
            raise ArchitectureError(f"{type(net).__name__} has no nn.Linear head")
        object.__setattr__(self, "net", net)
        object.__setattr__(self, "head_path", paths[-1])
        self._parameters = net._parameters
        self._buffers = net._buffers
        self._non_persistent_buffers_set = net._non_persistent_buffers_set
        self._modules = net._modules

    @property
    def head(self) -> nn.Linear:
        return self.net.get_submodule(self.head_path)  # type: ignore[return-value]

    def train(self, mode: bool = True) -> ZooModel:
        super().train(mode)
        self.net.training = mode
        return self

    def features(self, x: Tensor) -> Tensor:
        """The input of ``head`` for inputs ``x``, as ``(B, D)``."""
        seen: list[Tensor] = []
        handle = self.head.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        try:
            self.net(x)
        finally:
            handle.remove()
        return seen[-1].flatten(1)  # (B, D)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
