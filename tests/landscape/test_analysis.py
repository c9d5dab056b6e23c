"""Slices and interpolation on real small models: centres and endpoints equal plain evaluation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import update_bn

from workers.architectures import build
from workers.landscape.analysis import interpolation, slices

CPU = torch.device("cpu")


def _model(seed: int, zero_fraction: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    with torch.no_grad():
        # non-trivial BatchNorm statistics, so eval mode differs from train mode
        model.train()
        model(torch.randn(256, 1, 8, 8) * 2 + 0.5)
        if zero_fraction:
            for p in model.parameters():
                if p.ndim >= 2:
                    p[torch.rand(p.shape) < zero_fraction] = 0.0
    model.train()  # the caller's mode, which the analysis must restore
    return model


def _data(n: int = 200):
    gen = torch.Generator().manual_seed(5)
    return torch.randn(n, 1, 8, 8, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def _plain(model: torch.nn.Module, x, y) -> tuple[float, float]:
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        logits = m(x)
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


@pytest.mark.parametrize("mode", ["1d", "2d"])
def test_centre_equals_plain_evaluation_and_the_model_is_untouched(mode):
    model, (x, y) = _model(0), _data()
    before = copy.deepcopy(model.state_dict())
    res = slices(model, x, y, device=CPU, mode=mode, steps=7, batch_size=64)
    loss, acc = _plain(model, x, y)
    s = res.summary
    assert s["center_loss"] == pytest.approx(loss, rel=1e-5)
    assert s["center_accuracy"] == pytest.approx(acc)
    grid = np.asarray(s["loss"])
    assert grid.shape == ((7,) if mode == "1d" else (7, 7))
    assert np.isfinite(grid).all() and grid.max() > loss  # the slice leaves the centre
    assert s["points"] == (7 if mode == "1d" else 49) and s["masked"] is False
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    if mode == "2d":
        assert np.asarray(s["loss"])[3, 3] == s["center_loss"] and s["beta"] == s["alpha"]
        assert len(s["curvature"]) == 2


def test_pruned_checkpoint_is_masked_by_default_and_equal_seeds_repeat():
    model, (x, y) = _model(1, zero_fraction=0.5), _data()
    a = slices(model, x, y, device=CPU, mode="1d", steps=9, seed=3).summary
    b = slices(model, x, y, device=CPU, mode="1d", steps=9, seed=3).summary
    c = slices(model, x, y, device=CPU, mode="1d", steps=9, seed=3, masked=False).summary
    assert a["masked"] is True and c["masked"] is False
    assert a["loss"] == b["loss"]  # deterministic for a seed
    assert a["loss"] != c["loss"]


def test_bf16_mode_is_labelled_and_close_to_fp32():
    model, (x, y) = _model(2), _data()
    fp32 = slices(model, x, y, device=CPU, mode="1d", steps=9).summary
    bf16 = slices(model, x, y, device=CPU, mode="1d", steps=9, precision="bf16").summary
    assert bf16["precision"] == "bf16"
    np.testing.assert_allclose(bf16["loss"], fp32["loss"], rtol=2e-2)


def test_interpolation_endpoints_equal_each_checkpoints_plain_evaluation():
    a, b, (x, y) = _model(3), _model(4), _data()
    res = interpolation(a, b, x, y, device=CPU, steps=5, target_checkpoint_id=9).summary
    assert res["loss"][0] == pytest.approx(_plain(a, x, y)[0], rel=1e-5)
    assert res["loss"][-1] == pytest.approx(_plain(b, x, y)[0], rel=1e-5)
    assert res["accuracy"][-1] == pytest.approx(_plain(b, x, y)[1])
    assert res["alpha"] == [0.0, 0.25, 0.5, 0.75, 1.0] and res["target_checkpoint_id"] == 9
    expected = max(res["loss"]) - 0.5 * (res["loss"][0] + res["loss"][-1])
    assert res["barrier"] == pytest.approx(expected)
    err = [1 - v for v in res["accuracy"]]
    assert res["error_barrier"] == pytest.approx(max(err) - 0.5 * (err[0] + err[-1]))


def test_interpolation_can_recompute_batchnorm_statistics():
    a, b, (x, y) = _model(3), _model(4), _data()
    res = interpolation(a, b, x, y, device=CPU, steps=3, batchnorm="recompute", bn_samples=128, batch_size=64)
    ref = copy.deepcopy(a)
    update_bn([(xb,) for xb in x[:128].split(64)], ref)  # torch's own re-estimation
    assert res.summary["loss"][0] == pytest.approx(_plain(ref, x, y)[0], rel=1e-4)
    assert res.summary["batchnorm"] == "recompute" and res.summary["bn_samples"] == 128


def test_interpolation_refuses_a_target_of_another_shape():
    a = _model(0)
    torch.manual_seed(0)
    other = build("small_cnn", num_classes=7, input_shape=(1, 8, 8))
    x, y = _data()
    with pytest.raises(ValueError, match="does not match"):
        interpolation(a, other, x, y, device=CPU, steps=3)


def test_compiled_forward_gives_the_eager_surface():
    model, (x, y) = _model(6), _data(64)
    eager = slices(model, x, y, device=CPU, mode="1d", steps=5, compile="off").summary
    compiled = slices(model, x, y, device=CPU, mode="1d", steps=5, compile="on").summary
    assert compiled["compiled"] is True and eager["compiled"] is False
    np.testing.assert_allclose(compiled["loss"], eager["loss"], rtol=1e-4)
    assert compiled["eval_seconds"] > 0 and compiled["channels_last"] is True
