"""Penultimate features, head weights and ReLU dead rates of a classifier, from one forward pass.

The robustness geometry (Li et al., "Understanding Robustness Lottery", arXiv 2206.07918; DESIGN.md
section 6) decomposes the final Linear ``z = W h + b`` over the penultimate features ``h``: the input of
that Linear, after global pooling. :func:`penultimate` returns a function ``x -> (h, z)`` that gets both
from one forward pass:

- registry architectures (:mod:`workers.architectures`) expose a method ``features(x) -> (B, D)`` and
  ``head``, the final ``nn.Linear``, with ``forward(x) == head(features(x))``: ``h = features(x)``,
  ``z = head(h)``;
- any other model, :class:`~workers.architectures.ZooModel` included: a forward hook on the last
  ``nn.Linear`` in module order records its input and output while the model runs. That Linear must be the
  model's final operation: on every call its output must equal the model's output exactly, otherwise a
  ``ValueError`` names the model class (a Softmax or a residual addition after it, a Linear applied per
  token, ...).

Neither path changes the model's mode: call it in ``eval()`` (DESIGN.md section 6) and under
``torch.no_grad()`` as the analysis needs.

:func:`relu_dead_rates` counts, per ``nn.ReLU`` (and ``nn.ReLU6``) module, the fraction of its outputs
that are exactly zero. A ReLU applied as a function (``F.relu``, ``torch.relu``, ``x.clamp(min=0)``) has
no module and cannot be hooked, so it is not counted. All the built-in architectures (``mlp``,
``small_cnn``, the CIFAR ResNets, the VGGs) use ``nn.ReLU`` modules for every ReLU.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import torch
from torch import Tensor, nn

from workers.architectures import ZooModel

__all__ = ["DeadRates", "head_weights", "penultimate", "relu_dead_rates"]

Penultimate = Callable[[Tensor], tuple[Tensor, Tensor]]


def penultimate(model: nn.Module) -> Penultimate:
    """A function ``x -> (h (B, D), z (B, C))``: penultimate features and logits from one forward pass.

    Raises ``ValueError`` (naming the model class) when the model has neither ``features``/``head`` nor an
    ``nn.Linear``; the hook path also raises, at call time, when that Linear is not the final operation.
    """
    head, features = getattr(model, "head", None), getattr(model, "features", None)
    # A ``features`` submodule (torchvision's VGG, Swin) is a trunk, not the penultimate-features method;
    # a zoo network is checked through the hook instead.
    method = callable(features) and not isinstance(features, nn.Module)
    if isinstance(head, nn.Linear) and method and not isinstance(model, ZooModel):
        return _features_then_head(model, head)
    return _hooked_last_linear(model, _last_linear(model))


def head_weights(model: nn.Module) -> tuple[Tensor, Tensor]:
    """``(W (C, D), b (C,))`` of the final Linear (``model.head``, else the last ``nn.Linear``), detached.

    A Linear without bias gets ``b = 0``.
    """
    head = getattr(model, "head", None)
    linear = head if isinstance(head, nn.Linear) else _last_linear(model)
    weight = linear.weight.detach()  # (C, D)
    bias = linear.bias.detach() if linear.bias is not None else weight.new_zeros(weight.shape[0])  # (C,)
    return weight, bias


def _features_then_head(model: nn.Module, head: nn.Linear) -> Penultimate:
    def run(x: Tensor) -> tuple[Tensor, Tensor]:
        h = model.features(x)  # (B, D)
        if h.ndim != 2 or h.shape[1] != head.in_features:
            raise ValueError(
                f"{type(model).__name__}.features returned {tuple(h.shape)}, expected (B, {head.in_features})"
            )
        return h, head(h)  # (B, D), (B, C)

    return run


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            f"{type(model).__name__} has no nn.Linear and no features()/head: its penultimate features "
            "cannot be found"
        )
    return linears[-1]


def _hooked_last_linear(model: nn.Module, linear: nn.Linear) -> Penultimate:
    name = type(model).__name__

    def run(x: Tensor) -> tuple[Tensor, Tensor]:
        seen: list[tuple[Tensor, Tensor]] = []
        handle = linear.register_forward_hook(lambda _m, args, out: seen.append((args[0], out)))
        try:
            z = model(x)
        finally:
            handle.remove()
        if not seen:
            raise ValueError(f"the last nn.Linear of {name} did not run in its forward pass")
        h, out = seen[-1]  # the last call, if the Linear is reused
        if not isinstance(z, Tensor) or h.ndim != 2 or out.shape != z.shape or not torch.equal(out, z):
            raise ValueError(
                f"the last nn.Linear of {name} is not its final operation (its output "
                f"{tuple(out.shape)} differs from the model's output): penultimate features need a model "
                "whose logits are that Linear's output, or features()/head"
            )
        return h, z  # (B, D), (B, C)

    return run


class DeadRates:
    """Forward hooks on every ``nn.ReLU``/``nn.ReLU6`` of a model counting its zero outputs.

    Use as a context manager (hooks are removed on exit)::

        with relu_dead_rates(model) as dead:
            for x in batches:
                model(x)
        dead.rates()  # {"layer1.0.relu1": 0.41, ...}

    For each module (keyed by its qualified name) the rate is the number of zero outputs over the number of
    outputs, summed over every call: the fraction of zero units per input, averaged over the inputs (and,
    for a module called several times per forward pass, over its calls). Functional ReLUs are invisible.
    Counts stay on the model's device until :meth:`rates` reads them.
    """

    def __init__(self, model: nn.Module) -> None:
        self._relus = {name: m for name, m in model.named_modules() if isinstance(m, nn.ReLU | nn.ReLU6)}
        self._zeros: dict[str, Tensor] = {}
        self._counts: dict[str, int] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> DeadRates:
        for name, module in self._relus.items():
            self._handles.append(module.register_forward_hook(self._recorder(name)))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _recorder(self, name: str) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
        def record(_module: nn.Module, _args: tuple[Tensor, ...], out: Tensor) -> None:
            zeros = (out == 0).sum()  # int64 on the device, read lazily
            self._zeros[name] = self._zeros[name] + zeros if name in self._zeros else zeros
            self._counts[name] = self._counts.get(name, 0) + out.numel()

        return record

    def rates(self) -> dict[str, float]:
        """Fraction of zero outputs per ReLU module that ran, in module order."""
        return {
            name: int(self._zeros[name].item()) / self._counts[name]
            for name in self._relus
            if self._counts.get(name)
        }

    def reset(self) -> None:
        """Forget the counts (hooks stay registered)."""
        self._zeros.clear()
        self._counts.clear()


def relu_dead_rates(model: nn.Module) -> DeadRates:
    """A :class:`DeadRates` recorder for ``model``; enter it to register the hooks."""
    return DeadRates(model)
