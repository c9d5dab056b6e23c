"""Training: determinism, masks that keep pruned weights at zero, and the digits demo."""

from __future__ import annotations

import copy
import logging
import time

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from workers import architectures, pruning
from workers.analyses.evaluate import EvaluateParams, evaluate
from workers.architectures import MLP, SmallCNN
from workers.pruning import PruningError
from workers.training import train

logger = logging.getLogger(__name__)


def _blobs(n: int = 96, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian clusters as (n, 1, 4, 4) float64 images."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.randn(3, 16, generator=gen, dtype=torch.float64) * 2
    x = centres[y] + torch.randn(n, 16, generator=gen, dtype=torch.float64)
    return x.reshape(n, 1, 4, 4), y


def _mlp(seed: int = 0) -> MLP:
    gen = torch.Generator().manual_seed(seed)
    model = MLP(in_features=16, num_classes=3, hidden=(16, 8)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.3)
    return model


def test_training_lowers_the_loss_and_reports_each_epoch():
    x, y = _blobs()
    calls = []
    losses = train(_mlp(), x, y, epochs=4, batch_size=32, progress=lambda f, m: calls.append((f, m)))
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert [f for f, _ in calls] == [0.25, 0.5, 0.75, 1.0]
    assert calls[-1][1].startswith("epoch 4/4, loss ")


def test_training_is_deterministic_for_a_seed_and_leaves_the_global_rng_alone():
    x, y = _blobs()
    model = SmallCNN(in_channels=1, num_classes=3, widths=(4, 4, 4)).double()
    a, b, c = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    state = torch.random.get_rng_state()
    losses_a = train(a, x, y, epochs=2, batch_size=16, seed=5)
    losses_b = train(b, x, y, epochs=2, batch_size=16, seed=5)
    losses_c = train(c, x, y, epochs=2, batch_size=16, seed=6)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert losses_a == losses_b and losses_a != losses_c
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


@pytest.mark.parametrize("as_float", [False, True], ids=["bool-masks", "float-masks"])
def test_masked_weights_stay_exactly_zero_through_training(as_float):
    x, y = _blobs()
    model = SmallCNN(in_channels=1, num_classes=3, widths=(4, 8, 8)).double()
    masks = pruning.global_magnitude_masks(model, 0.7)
    given = {n: m.double() for n, m in masks.items()} if as_float else masks
    train(model, x, y, epochs=3, batch_size=16, masks=given)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert torch.equal(params[name][~mask], torch.zeros(int((~mask).sum()), dtype=torch.float64)), name
        assert (params[name][mask] != 0).all(), name  # the kept weights did train


def test_training_restores_each_submodules_training_flag():
    x, y = _blobs()
    model = SmallCNN(in_channels=1, num_classes=3, widths=(4, 4, 4)).double().eval()
    model.bn1.train()
    train(model, x, y, epochs=1)
    assert not model.training and model.bn1.training and not model.bn2.training


def test_zero_epochs_leaves_the_model_unchanged():
    x, y = _blobs()
    model = _mlp()
    before = copy.deepcopy(model.state_dict())
    assert train(model, x, y, epochs=0) == []
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y": torch.zeros(5, dtype=torch.long)}, r"x \(96, 1, 4, 4\) and y \(5,\)"),
        ({"y": torch.zeros(96)}, "labels must be integers"),
        ({"epochs": -1}, "epochs must be a non-negative integer"),
        ({"lr": 0.0}, "lr must be a positive number"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
    ],
)
def test_training_rejects_bad_arguments(kwargs, message):
    x, y = _blobs()
    args = {"x": x, "y": y, "epochs": 1} | kwargs
    with pytest.raises(ValueError, match=message):
        train(_mlp(), args.pop("x"), args.pop("y"), **args)


def test_training_rejects_a_mask_that_does_not_fit():
    x, y = _blobs()
    with pytest.raises(
        PruningError, match=r"mask 'fc1.weight' \(2, 2\) does not fit parameter shape \(16, 16\)"
    ):
        train(_mlp(), x, y, epochs=1, masks={"fc1.weight": torch.ones(2, 2, dtype=torch.bool)})


@pytest.fixture
def one_thread():
    """Run on one intra-op thread, restored afterwards: on a shared 2-core machine two OpenMP threads
    competing with another busy process made this test 50x slower (35 s instead of 0.5 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_small_cnn_learns_digits_to_over_90_percent_in_seconds(one_thread):
    # Given sklearn's 8x8 digits scaled to [0, 1] and a freshly initialised small_cnn (the demo),
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(digits.target)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = architectures.build("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    # when trained for a few epochs on the CPU,
    start = time.perf_counter()
    losses = train(model, x, y, epochs=6, seed=0)
    elapsed = time.perf_counter() - start
    result = evaluate(model, x, y, params=EvaluateParams(), device=torch.device("cpu"))
    logger.info(
        "digits demo: %.2f s, losses %s, train accuracy %.4f", elapsed, np.round(losses, 3), result.accuracy
    )
    # then it fits the training set well, fast (generous bound: the CI machine may be shared).
    assert result.accuracy > 0.9
    assert elapsed < 30.0
