"""The demo's small networks: ``mlp`` (flattened inputs) and ``small_cnn`` (small images).

Both expose ``features(x) -> (B, D)`` and their final Linear as ``head``; ``forward = head(features)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from torch import Tensor, nn

from workers.architectures.registry import (
    Architecture,
    channels_then_default,
    flat_image_shape,
    image_shape,
    register,
    width,
)


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
    hidden = (width(state_dict, "fc1.weight", 128), width(state_dict, "fc2.weight", 128))
    return MLP(in_features=in_features, num_classes=num_classes, hidden=hidden)


def _mlp_input_shape(state_dict: Mapping[str, Tensor]) -> tuple[int, ...] | None:
    """fc1's in_features as ``(C, S, S)`` for 1 or 3 channels when it is such a square, else ``None``."""
    in_features = width(state_dict, "fc1.weight", 0, dim=1)
    return flat_image_shape(in_features) if in_features else None


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
    channels, _, _ = image_shape("small_cnn", input_shape, min_side=2)
    widths = (
        width(state_dict, "conv1.weight", 16),
        width(state_dict, "conv2.weight", 32),
        width(state_dict, "conv3.weight", 64),
    )
    return SmallCNN(in_channels=channels, num_classes=num_classes, widths=widths)


register(
    Architecture(
        name="mlp",
        description="MLP with two hidden ReLU layers (128 units each by default) for small flattened inputs",
        default_input_shape=(1, 8, 8),
        factory=_mlp,
        input_shape_from=_mlp_input_shape,
    )
)
register(
    Architecture(
        name="small_cnn",
        description="3-layer conv-BN-ReLU CNN (16/32/64 channels) with global average pooling, small images",
        default_input_shape=(1, 8, 8),
        factory=_small_cnn,
        input_shape_from=channels_then_default("conv1.weight", (1, 8, 8)),
    )
)
