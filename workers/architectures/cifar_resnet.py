"""CIFAR ResNet-20/32/44/56 (He et al. 2016, section 4.2) with option-A identity shortcuts.

The layout and state_dict keys are those of the most widely shared CIFAR-10 checkpoints
(akamaster/pytorch_resnet_cifar10): a 3x3 stem ``conv1``/``bn1`` with 16 channels; three stages
``layer1``..``layer3`` of ``n`` basic blocks (``n`` = 3, 5, 7, 9) with 16, 32, 64 channels, each block
``conv1``/``bn1``/``conv2``/``bn2``; global average pooling; head ``linear``. Convolutions have no bias.
The shortcut is parameter-free: the first block of stages 2 and 3 subsamples ``x[:, :, ::2, ::2]`` and
zero-pads the channels equally on both sides (akamaster pads ``planes // 4`` each side). Parameter counts
with 10 classes: 269,722 / 464,154 / 658,586 / 853,018 (0.27M / 0.46M / 0.66M / 0.85M).

With a state_dict, every layer takes the width found there (structured pruning): a block's inner width
(``conv1`` out = ``conv2`` in) may shrink freely; its output width must equal its input width, or, in a
downsampling block, exceed it by an even number of channels (zero-padded equally on both sides, which
is option A's rule). Anything else cannot pass through a parameter-free shortcut and raises
:class:`ArchitectureError` naming the block's ``conv2`` key.

``features(x)`` is the pooled ``(B, width of layer3)`` vector; the head is ``linear`` (also ``head``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from workers.architectures.registry import (
    Architecture,
    ArchitectureError,
    channels_then_default,
    image_shape,
    register,
    show,
    width,
)

_DEPTHS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9}
_STAGE_WIDTHS = (16, 32, 64)
_STEM_WIDTH = 16
_INPUT_SHAPE = (3, 32, 32)


@dataclass(frozen=True)
class BlockWidths:
    """Channels into a block, inside it (``conv1`` out), out of it (``conv2`` out), and its stride."""

    inp: int
    mid: int
    out: int
    stride: int


class OptionAShortcut(nn.Module):
    """Parameter-free shortcut: subsample by ``stride``, then zero-pad ``(before, after)`` channels."""

    def __init__(self, *, stride: int, before: int, after: int) -> None:
        super().__init__()
        self.stride, self.before, self.after = stride, before, after

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]  # (B, C, ceil(H/s), ceil(W/s))
        if self.before or self.after:
            x = F.pad(x, (0, 0, 0, 0, self.before, self.after))  # (B, C + before + after, H', W')
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad=({self.before}, {self.after})"


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the option-A shortcut, then ReLU."""

    def __init__(self, w: BlockWidths) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(w.inp, w.mid, 3, stride=w.stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w.mid)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(w.mid, w.out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(w.out)
        pad = w.out - w.inp
        self.shortcut = OptionAShortcut(stride=w.stride, before=pad // 2, after=pad - pad // 2)
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))  # (B, mid, H/s, W/s)
        out = self.bn2(self.conv2(out))  # (B, out, H/s, W/s)
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem, three stages of :class:`BasicBlock`, global average pooling, ``linear`` head."""

    def __init__(
        self, *, in_channels: int, num_classes: int, stem: int, stages: list[list[BlockWidths]]
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, stem, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(*(BasicBlock(w) for w in stages[0]))
        self.layer2 = nn.Sequential(*(BasicBlock(w) for w in stages[1]))
        self.layer3 = nn.Sequential(*(BasicBlock(w) for w in stages[2]))
        self.linear = nn.Linear(stages[2][-1].out, num_classes)

    @property
    def head(self) -> nn.Linear:
        """The final Linear, ``linear`` (the name CIFAR checkpoints use)."""
        return self.linear

    def features(self, x: Tensor) -> Tensor:
        """Globally pooled features ``(B, D)`` of images ``(B, C, H, W)``; ``D`` is layer3's width."""
        x = self.relu(self.bn1(self.conv1(x)))  # (B, 16, H, W)
        x = self.layer3(self.layer2(self.layer1(x)))  # (B, 64, H/4, W/4)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)  # (B, 64)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.features(x))  # (B, num_classes)


def plan_widths(blocks: int, state_dict: Mapping[str, Tensor] | None) -> tuple[int, list[list[BlockWidths]]]:
    """Stem width and every block's widths, from ``state_dict`` where it has them, else the defaults."""
    stream = width(state_dict, "conv1.weight", _STEM_WIDTH)
    stem, stages = stream, []
    for s, default in enumerate(_STAGE_WIDTHS, start=1):
        stage = []
        for b in range(blocks):
            key = f"layer{s}.{b}"
            stride = 2 if s > 1 and b == 0 else 1
            mid = width(state_dict, f"{key}.conv1.weight", default)
            out = width(state_dict, f"{key}.conv2.weight", default)
            _check_shortcut(f"{key}.conv2.weight", inp=stream, out=out, stride=stride)
            stage.append(BlockWidths(inp=stream, mid=mid, out=out, stride=stride))
            stream = out
        stages.append(stage)
    return stem, stages


def _check_shortcut(key: str, *, inp: int, out: int, stride: int) -> None:
    if out == inp or (stride > 1 and out > inp and (out - inp) % 2 == 0):
        return
    raise ArchitectureError(
        f"at {show(key)}: a block with {out} output channels cannot add its {inp} input channels through "
        "the parameter-free option-A shortcut (it needs equal widths, or in a downsampling block a wider "
        "output by an even number of channels)"
    )


def _factory(blocks: int):
    def factory(
        *, num_classes: int, input_shape: tuple[int, ...], state_dict: Mapping[str, Tensor] | None
    ) -> CifarResNet:
        channels, _, _ = image_shape(f"resnet{6 * blocks + 2}", input_shape)
        stem, stages = plan_widths(blocks, state_dict)
        return CifarResNet(in_channels=channels, num_classes=num_classes, stem=stem, stages=stages)

    return factory


for _name, _blocks in _DEPTHS.items():
    register(
        Architecture(
            name=_name,
            description=f"CIFAR ResNet-{6 * _blocks + 2} (He et al. 2016, option-A shortcuts; "
            "akamaster/pytorch_resnet_cifar10 keys, head 'linear')",
            default_input_shape=_INPUT_SHAPE,
            factory=_factory(_blocks),
            input_shape_from=channels_then_default("conv1.weight", _INPUT_SHAPE),
        )
    )
