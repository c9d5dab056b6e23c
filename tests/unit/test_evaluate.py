"""Plain evaluation against metrics computed by hand in numpy, in float64."""

from __future__ import annotations

import json

import numpy as np
import pydantic
import pytest
import torch
from torch import nn

from workers.analyses.evaluate import EvaluateParams, eval_mode, evaluate, expected_calibration_error
from workers.architectures import SmallCNN

CPU = torch.device("cpu")

# Eight samples whose logits are the inputs themselves (identity weights, zero bias), three classes;
# class 2 never occurs in the labels. Confidences stay away from the 0.2-wide bin edges.
LOGITS = np.array(
    [
        [2.0, 0.0, -1.0],  # predicted 0, true 0
        [0.1, 0.3, 0.0],  # predicted 1, true 0
        [-1.0, 3.0, 0.5],  # predicted 1, true 1
        [0.0, 0.2, 1.5],  # predicted 2, true 1
        [4.0, 1.0, 0.0],  # predicted 0, true 0
        [0.5, 0.4, 0.45],  # predicted 0, true 1
        [-2.0, -1.0, 1.0],  # predicted 2, true 0
        [1.0, 2.5, -0.5],  # predicted 1, true 1
    ]
)
LABELS = np.array([0, 0, 1, 1, 0, 1, 0, 1])


def _identity_model() -> nn.Module:
    model = nn.Linear(3, 3).double()
    with torch.no_grad():
        model.weight.copy_(torch.eye(3, dtype=torch.float64))
        model.bias.zero_()
    return model


def _by_hand(logits: np.ndarray, labels: np.ndarray, bins: int) -> dict:
    shifted = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    losses = -np.log(prob[np.arange(len(labels)), labels])
    pred = prob.argmax(axis=1)
    conf = prob.max(axis=1)
    correct = pred == labels
    ece = 0.0
    for m in range(bins):
        lo, hi = m / bins, (m + 1) / bins
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    confusion = np.zeros((logits.shape[1], logits.shape[1]), dtype=int)
    for t, p in zip(labels, pred, strict=True):
        confusion[t, p] += 1
    return {
        "losses": losses,
        "pred": pred,
        "conf": conf,
        "correct": correct,
        "ece": ece,
        "confusion": confusion,
    }


def test_evaluate_matches_hand_computed_loss_accuracy_confusion_and_ece():
    expected = _by_hand(LOGITS, LABELS, bins=5)
    calls = []
    result = evaluate(
        _identity_model(),
        torch.tensor(LOGITS),
        torch.tensor(LABELS),
        params=EvaluateParams(batch_size=3, calibration_bins=5),
        device=CPU,
        progress=lambda fraction, message: calls.append((fraction, message)),
    )
    assert result.n_samples == 8 and result.num_classes == 3
    assert result.loss == pytest.approx(expected["losses"].mean(), rel=1e-12)
    assert result.accuracy == 4 / 8
    assert result.confusion == [[2, 1, 1], [1, 2, 1], [0, 0, 0]]
    assert result.confusion == expected["confusion"].tolist()
    assert result.per_class_accuracy == [0.5, 0.5, None]
    assert result.ece == pytest.approx(expected["ece"], rel=1e-12)
    np.testing.assert_array_equal(result.predictions, expected["pred"])
    np.testing.assert_array_equal(result.labels, LABELS)
    np.testing.assert_allclose(result.confidence, expected["conf"], rtol=1e-12)
    np.testing.assert_allclose(result.losses, expected["losses"], rtol=1e-12)
    assert [f for f, _ in calls] == [3 / 8, 6 / 8, 1.0]
    assert calls[-1][1] == "evaluated 8/8 samples"


def test_evaluate_uses_only_the_first_max_samples():
    expected = _by_hand(LOGITS[:5], LABELS[:5], bins=15)
    result = evaluate(
        _identity_model(),
        torch.tensor(LOGITS),
        torch.tensor(LABELS),
        params=EvaluateParams(max_samples=5),
        device=CPU,
    )
    assert result.n_samples == 5
    assert result.loss == pytest.approx(expected["losses"].mean(), rel=1e-12)
    assert result.accuracy == 3 / 5


def test_evaluate_casts_float32_inputs_to_the_model_dtype():
    result = evaluate(
        _identity_model(),
        torch.tensor(LOGITS, dtype=torch.float32),
        torch.tensor(LABELS, dtype=torch.uint8),
        params=EvaluateParams(),
        device=CPU,
    )
    assert result.accuracy == 0.5


def test_summary_is_json_serialisable_and_arrays_are_per_sample():
    result = evaluate(
        _identity_model(), torch.tensor(LOGITS), torch.tensor(LABELS), params=EvaluateParams(), device=CPU
    )
    summary = json.loads(json.dumps(result.summary()))
    assert summary["accuracy"] == 0.5 and summary["per_class_accuracy"][2] is None
    assert "predictions" not in summary and "losses" not in summary
    assert sum(summary["reliability"]["count"]) == 8 and len(summary["reliability"]["edges"]) == 16
    arrays = result.arrays()
    assert set(arrays) == {"predictions", "labels", "confidence", "losses"}
    assert all(a.shape == (8,) for a in arrays.values())


def test_evaluate_runs_in_eval_mode_and_leaves_training_flags_and_batchnorm_stats_untouched():
    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, num_classes=4).double().train()
    model.bn2.eval()  # a caller froze this layer on purpose
    with torch.no_grad():
        model.bn1.running_mean.fill_(0.3)
        model.bn1.running_var.fill_(2.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(10, 1, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (10,), generator=gen)

    result = evaluate(model, x, y, params=EvaluateParams(batch_size=4), device=CPU)

    assert model.training and model.bn1.training and not model.bn2.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    with eval_mode(model), torch.no_grad():
        reference = nn.functional.cross_entropy(model(x), y)
    assert result.loss == pytest.approx(reference.item(), rel=1e-12)


def test_eval_mode_restores_flags_after_an_exception():
    model = SmallCNN(in_channels=1, num_classes=2).train()
    with pytest.raises(RuntimeError), eval_mode(model):
        assert not model.training
        raise RuntimeError("boom")
    assert all(m.training for m in model.modules())


def test_evaluate_rejects_mismatched_x_and_y_with_shapes():
    with pytest.raises(ValueError, match=r"x \(8, 3\) and y \(7,\) disagree"):
        evaluate(
            _identity_model(),
            torch.tensor(LOGITS),
            torch.tensor(LABELS[:7]),
            params=EvaluateParams(),
            device=CPU,
        )


def test_evaluate_rejects_labels_beyond_the_logits():
    labels = torch.tensor(LABELS)
    labels[3] = 5
    with pytest.raises(ValueError, match=r"logits \(8, 3\) have 3 classes but labels go up to 5"):
        evaluate(_identity_model(), torch.tensor(LOGITS), labels, params=EvaluateParams(), device=CPU)


@pytest.mark.parametrize(
    ("labels", "message"),
    [(torch.tensor([0.0, 1.0]), "labels must be integers"), (torch.tensor([0, -1]), "non-negative")],
)
def test_evaluate_rejects_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        evaluate(
            _identity_model(),
            torch.zeros(2, 3, dtype=torch.float64),
            labels,
            params=EvaluateParams(),
            device=CPU,
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_samples": 0},
        {"batch_size": 70000},
        {"calibration_bins": 1},
        {"calibration_bins": 101},
        {"seed": 1},
    ],
)
def test_params_enforce_bounds_and_forbid_unknown_fields(kwargs):
    with pytest.raises(pydantic.ValidationError):
        EvaluateParams(**kwargs)


def test_params_defaults():
    assert EvaluateParams().model_dump() == {"max_samples": 10000, "batch_size": 1024, "calibration_bins": 15}


def test_ece_is_zero_when_confidence_matches_accuracy_in_every_bin():
    conf = np.array([0.75, 0.75, 0.75, 0.75, 0.25, 0.25, 0.25, 0.25])
    correct = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    ece, reliability = expected_calibration_error(conf, correct, bins=4)
    assert ece == pytest.approx(0.0, abs=1e-15)
    assert reliability["count"] == [4, 0, 4, 0]
    assert reliability["accuracy"] == [0.25, None, 0.75, None]


def test_ece_of_an_overconfident_model_is_the_gap():
    ece, _ = expected_calibration_error(np.full(10, 0.95), np.array([1] * 6 + [0] * 4), bins=10)
    assert ece == pytest.approx(0.35, rel=1e-12)


def test_ece_bins_are_closed_on_the_right():
    # 0.5 belongs to ((0, 0.5]] with two bins; 1.0 to the last bin.
    _, reliability = expected_calibration_error(np.array([0.5, 1.0]), np.array([1, 1]), bins=2)
    assert reliability["count"] == [1, 1]
