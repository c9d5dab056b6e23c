"""Tiny float64 models and their dense Hessians (``torch.func.hessian`` over the flat parameters).

The dense Hessian is the brute-force ground truth of curvlinops' tests: the whole ``(D, D)`` matrix of the
mean cross-entropy in eval mode, then ``torch.linalg.eigvalsh``. Each costs seconds, so they are built
once per session.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from workers.analyses.evaluate import eval_mode
from workers.architectures import MLP, SmallCNN


@dataclass
class Case:
    name: str
    model: nn.Module
    x: Tensor  # (N, ...)
    y: Tensor  # (N,)
    hessian: Tensor  # (D, D)
    eigenvalues: Tensor  # (D,) ascending


def flat_params(model: nn.Module, names: list[str] | None = None) -> Tensor:
    params = dict(model.named_parameters())
    return torch.cat([params[n].detach().reshape(-1) for n in (names or list(params))])


def dense_hessian(model: nn.Module, x: Tensor, y: Tensor, names: list[str] | None = None) -> Tensor:
    """``(D, D)`` Hessian of the mean cross-entropy over the named parameters (default all), eval mode."""
    params = dict(model.named_parameters())
    chosen = names or list(params)
    shapes = [params[n].shape for n in chosen]
    numels = [params[n].numel() for n in chosen]
    fixed = {k: v.detach() for k, v in params.items() if k not in chosen}
    fixed.update(dict(model.named_buffers()))

    def loss(flat: Tensor) -> Tensor:
        tensors = {n: t.view(s) for n, t, s in zip(chosen, flat.split(numels), shapes, strict=True)}
        return F.cross_entropy(functional_call(model, {**fixed, **tensors}, (x,)), y)

    with eval_mode(model):
        return torch.func.hessian(loss)(flat_params(model, chosen))


def make_case(name: str, model: nn.Module, x: Tensor, y: Tensor) -> Case:
    h = dense_hessian(model, x, y)
    return Case(name, model, x, y, h, torch.linalg.eigvalsh(h))


def tiny_mlp(seed: int = 0) -> tuple[nn.Module, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = MLP(in_features=16, num_classes=4, hidden=(40, 40)).double()  # D = 2484
    x = torch.randn(32, 16, generator=g, dtype=torch.float64)  # (N, F)
    y = torch.randint(0, 4, (32,), generator=g)  # (N,)
    return model, x, y


def tiny_cnn(seed: int = 0) -> tuple[nn.Module, Tensor, Tensor]:
    """A small CNN with BatchNorm whose running statistics differ from the batch's, so eval mode matters."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = SmallCNN(in_channels=1, num_classes=3, widths=(6, 12, 16)).double()  # D = 2549
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
            m.weight.data.uniform_(0.5, 1.5, generator=g)
            m.bias.data.normal_(0, 0.1, generator=g)
    x = torch.randn(12, 1, 6, 6, generator=g, dtype=torch.float64)  # (N, C, H, W)
    y = torch.randint(0, 3, (12,), generator=g)  # (N,)
    return model, x, y


@pytest.fixture(scope="session")
def mlp_case() -> Case:
    return make_case("mlp", *tiny_mlp())


@pytest.fixture(scope="session")
def cnn_case() -> Case:
    return make_case("cnn", *tiny_cnn())


@pytest.fixture(params=["mlp", "cnn"])
def case(request) -> Case:
    return request.getfixturevalue(f"{request.param}_case")
