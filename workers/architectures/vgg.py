"""VGG-11 and VGG-16 with BatchNorm for 32x32 CIFAR images.

Two public layouts share the convolutional keys ``features.N`` (conv with bias, BatchNorm, ReLU per
entry, ``MaxPool2d(2)`` for each ``M``; configurations A and D of Simonyan & Zisserman 2015):

- chenyaofo/pytorch-cifar-models (torch.hub ``cifar10_vgg11_bn`` ... with released CIFAR-10/100 weights),
  the default: ``classifier`` = Linear(512, 512)-ReLU-Dropout-Linear(512, 512)-ReLU-Dropout-Linear(512, C),
  keys ``classifier.0``, ``classifier.3``, ``classifier.6``. The hidden widths come from the state_dict,
  so huyvnphan/PyTorch_CIFAR10's 4096-wide variant of the same keys loads too.
- kuangliu/pytorch-cifar: a single ``classifier`` Linear(512, C), chosen when the state_dict has the key
  ``classifier.weight``.

The trunk ends with a global average pooling (identity at 32x32, where the trunk leaves 1x1 maps and the
originals flatten), so larger inputs also work. Channel widths come from the state_dict for
channel-pruned copies.

``features(x)`` is the input of the last Linear, ``(B, D)``: the pooled trunk output for the single-Linear
layout, the second hidden layer's (post-ReLU, post-Dropout) output for the three-Linear one. The last
Linear is ``head`` (``classifier`` or ``classifier[6]``). The ``features.N`` modules are held in
``_modules["features"]`` (the checkpoints' key) and reached as ``trunk``, because ``features`` is the method.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from workers.architectures.registry import (
    Architecture,
    channels_then_default,
    image_shape,
    register,
    width,
)

_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11_bn": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16_bn": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
}
_INPUT_SHAPE = (3, 32, 32)
_HIDDEN = 512


def _trunk(in_channels: int, widths: list[int | str]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in widths:
        if w == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers += [nn.Conv2d(in_channels, int(w), 3, padding=1), nn.BatchNorm2d(int(w)), nn.ReLU()]
        in_channels = int(w)
    return nn.Sequential(*layers)


class CifarVGG(nn.Module):
    """Conv-BN-ReLU trunk (``features.N``), global average pooling, ``classifier``."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        widths: list[int | str],
        hidden: tuple[int, int] | None = (_HIDDEN, _HIDDEN),
    ) -> None:
        super().__init__()
        # Registered directly: the key must be "features" while ``features`` names the method below.
        self._modules["features"] = _trunk(in_channels, widths)
        last = [w for w in widths if w != "M"][-1]
        if hidden is None:
            self.classifier: nn.Module = nn.Linear(int(last), num_classes)
        else:
            self.classifier = nn.Sequential(
                nn.Linear(int(last), hidden[0]),
                nn.ReLU(),
                nn.Dropout(),
                nn.Linear(hidden[0], hidden[1]),
                nn.ReLU(),
                nn.Dropout(),
                nn.Linear(hidden[1], num_classes),
            )

    @property
    def trunk(self) -> nn.Sequential:
        """The convolutional layers, saved under the key ``features``."""
        return self._modules["features"]  # type: ignore[return-value]

    @property
    def head(self) -> nn.Linear:
        """The final Linear: ``classifier`` or ``classifier[6]``."""
        return self.classifier if isinstance(self.classifier, nn.Linear) else self.classifier[-1]

    def features(self, x: Tensor) -> Tensor:
        """The input ``(B, D)`` of the final Linear for images ``(B, C, H, W)``."""
        x = F.adaptive_avg_pool2d(self.trunk(x), 1).flatten(1)  # (B, 512)
        if isinstance(self.classifier, nn.Sequential):
            for layer in list(self.classifier)[:-1]:
                x = layer(x)  # (B, hidden)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, num_classes)


def _widths(config: tuple[int | str, ...], state_dict: Mapping[str, Tensor] | None) -> list[int | str]:
    """The configuration with each conv's width read from ``features.N.weight`` where present."""
    out: list[int | str] = []
    index = 0
    for w in config:
        out.append(w if w == "M" else width(state_dict, f"features.{index}.weight", int(w)))
        index += 1 if w == "M" else 3
    return out


def _hidden(state_dict: Mapping[str, Tensor] | None) -> tuple[int, int] | None:
    if state_dict is not None and "classifier.weight" in state_dict:
        return None  # kuangliu/pytorch-cifar: one Linear
    return (
        width(state_dict, "classifier.0.weight", _HIDDEN),
        width(state_dict, "classifier.3.weight", _HIDDEN),
    )


def _factory(name: str):
    def factory(
        *, num_classes: int, input_shape: tuple[int, ...], state_dict: Mapping[str, Tensor] | None
    ) -> CifarVGG:
        channels, _, _ = image_shape(name, input_shape, min_side=32)
        widths = _widths(_CONFIGS[name], state_dict)
        return CifarVGG(
            in_channels=channels, num_classes=num_classes, widths=widths, hidden=_hidden(state_dict)
        )

    return factory


for _name in _CONFIGS:
    register(
        Architecture(
            name=_name,
            description=f"{_name[:-3].upper()}-BN for CIFAR (chenyaofo/pytorch-cifar-models keys; "
            "kuangliu/pytorch-cifar's single-Linear classifier detected)",
            default_input_shape=_INPUT_SHAPE,
            factory=_factory(_name),
            input_shape_from=channels_then_default("features.0.weight", _INPUT_SHAPE),
        )
    )
