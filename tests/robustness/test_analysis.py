"""The robustness analysis on a small real model: clean equals plain evaluation, margins, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workers.analyses.evaluate import EvaluateParams, evaluate
from workers.architectures import build
from workers.datasets.builtin import digits
from workers.robustness.analysis import robustness

CPU = torch.device("cpu")
PICK = ["gaussian_noise", "contrast", "pixelate"]


@pytest.fixture(scope="module")
def setup():
    arrays = digits()
    x, y = torch.from_numpy(arrays.normalized_x()[:300]), torch.from_numpy(arrays.y[:300])
    torch.manual_seed(0)
    model = build("small_cnn", num_classes=10, input_shape=(1, 8, 8)).eval()
    return model, x, y


def test_clean_condition_equals_plain_evaluation_and_margins_match_correctness(setup):
    model, x, y = setup
    res = robustness(model, x, y, device=CPU, corruptions=PICK, severities=[1, 5], batch_size=128)
    plain = evaluate(model, x, y, device=CPU, params=EvaluateParams(batch_size=300))
    s, a = res.summary, res.arrays
    assert s["clean"]["accuracy"] == pytest.approx(plain.accuracy, abs=1e-12)
    assert s["clean"]["loss"] == pytest.approx(plain.loss, rel=1e-5)
    assert list(a["conditions"]) == ["clean"] + [f"{c}/{k}" for c in PICK for k in (1, 5)]
    assert a["correct"].shape == (7, 300) and a["clean_features"].shape[0] == 300
    np.testing.assert_array_equal(a["margin"] > 0, a["correct"])  # positive exactly when correct
    np.testing.assert_array_equal(a["correct"][0], a["prediction"][0] == a["labels"])
    for name in PICK:
        table = s["corruptions"][name]
        assert set(table) == {"1", "5"}
        assert table["1"]["accuracy"] == pytest.approx(a["correct"][1 + 2 * PICK.index(name)].mean())
    assert s["images"] == 7 * 300 and s["n_samples"] == 300
    correct = a["correct"]
    assert s["robust_samples"] == int(correct.all(axis=0).sum())
    fragile = correct[0] & ((~correct[1:]).sum(axis=0) * 2 >= correct.shape[0] - 1)
    assert s["fragile_samples"] == int(fragile.sum())
    # noise at severity 5 hurts more than at severity 1 (more samples lose their margin)
    assert (
        s["corruptions"]["gaussian_noise"]["5"]["mean_margin"]
        < s["corruptions"]["gaussian_noise"]["1"]["mean_margin"]
    )


def test_results_are_deterministic_for_a_seed_and_independent_of_batch_size(setup):
    model, x, y = setup
    one = robustness(
        model, x, y, device=CPU, corruptions=["gaussian_noise"], severities=[3], seed=1, batch_size=100
    )
    two = robustness(
        model, x, y, device=CPU, corruptions=["gaussian_noise"], severities=[3], seed=1, batch_size=100
    )
    other = robustness(
        model, x, y, device=CPU, corruptions=["gaussian_noise"], severities=[3], seed=2, batch_size=100
    )
    np.testing.assert_array_equal(one.arrays["margin"], two.arrays["margin"])
    assert not np.array_equal(one.arrays["margin"][1], other.arrays["margin"][1])
    np.testing.assert_array_equal(one.arrays["margin"][0], other.arrays["margin"][0])  # clean is clean


def test_images_outside_unit_range_and_non_images_are_refused(setup):
    model, x, y = setup
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        robustness(model, x * 10 - 3, y, device=CPU, corruptions=PICK, severities=[1])
    with pytest.raises(ValueError, match="images"):
        robustness(model, x.flatten(1), y, device=CPU, corruptions=PICK, severities=[1])
    with pytest.raises(ValueError, match="unknown corruptions"):
        robustness(model, x, y, device=CPU, corruptions=["fog"], severities=[1])
