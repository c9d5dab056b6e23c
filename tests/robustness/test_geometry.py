"""Last-layer geometry, neural collapse, dead rates and CKA against closed forms and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workers.architectures import ZooModel, build
from workers.robustness.cka import cka_matrix, linear_cka
from workers.robustness.collapse import neural_collapse
from workers.robustness.features import head_weights, penultimate, relu_dead_rates
from workers.robustness.geometry import GEOMETRY_KEYS, sample_geometry, summarize

SQRT2 = math.sqrt(2.0)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def hand_built_linear() -> nn.Linear:
    """``z = W h + b`` with ``w_0 = (1, 0)``, ``w_1 = (0, 1)``, ``w_2 = (-1, 0)``, ``b = (0.5, 0, -1)``."""
    linear = nn.Linear(2, 3).double()
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
        linear.bias.copy_(torch.tensor([0.5, 0.0, -1.0]))
    return linear


def brute_force_margin(h: Tensor, y: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """``min_{c != y} ((w_y - w_c) . h + b_y - b_c) / ||w_y - w_c||`` by a loop over samples and classes."""
    out = []
    for hi, yi in zip(h, y, strict=True):
        values = [
            float(((W[yi] - W[c]) @ hi + b[yi] - b[c]) / torch.linalg.vector_norm(W[yi] - W[c]))
            for c in range(W.shape[0])
            if c != yi
        ]
        out.append(min(values))
    return torch.tensor(out, dtype=torch.float64)


# --- sample_geometry -------------------------------------------------------------------------------------


def test_hand_built_linear_model_matches_closed_form() -> None:
    # Given a linear model z = W h + b whose inputs are the features (the hook path of penultimate)
    model = nn.Sequential(hand_built_linear())
    x = torch.tensor([[3.0, 4.0], [3.0, 4.0], [-2.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    y = torch.tensor([1, 0, 2, 1])
    h, z = penultimate(model)(x)
    W, b = head_weights(model)
    geometry = sample_geometry(h, z, y, W, b)

    # Then every quantity equals its value worked out by hand
    # z = (3.5, 4, -4), (3.5, 4, -4), (-1.5, 0, 1), (0.5, -1, -1)
    assert torch.equal(h, x)
    assert geometry["prediction"].tolist() == [1, 1, 2, 0]
    assert geometry["correct"].tolist() == [True, False, True, False]
    torch.testing.assert_close(
        geometry["feature_norm"], torch.tensor([5.0, 5.0, 2.0, 1.0], dtype=torch.float64)
    )
    angles = torch.tensor([math.acos(0.8), math.acos(0.6), 0.0, math.pi], dtype=torch.float64)
    torch.testing.assert_close(geometry["angle"], angles, atol=1e-12, rtol=0)
    # sample 0, y=1: vs c=0 (4 - 3.5)/sqrt2, vs c=2 (4 + 4)/sqrt2; sample 1, y=0: vs c=1 (3.5 - 4)/sqrt2;
    # sample 2, y=2: vs c=0 (1 + 1.5)/2, vs c=1 (1 - 0)/sqrt2; sample 3, y=1: vs c=0 (-1 - 0.5)/sqrt2
    margins = torch.tensor([0.5 / SQRT2, -0.5 / SQRT2, 1.0 / SQRT2, -1.5 / SQRT2], dtype=torch.float64)
    torch.testing.assert_close(geometry["margin"], margins, atol=1e-12, rtol=0)
    probs = torch.softmax(z, dim=1)
    expected_loss = -probs.log()[torch.arange(4), y]
    torch.testing.assert_close(geometry["loss"], expected_loss)
    expected_el2n = torch.linalg.vector_norm(probs - F.one_hot(y, 3), dim=1)
    torch.testing.assert_close(geometry["el2n"], expected_el2n)


def test_margin_is_the_distance_to_the_decision_boundary() -> None:
    # Moving h by |margin| along the unit normal of its nearest boundary lands on that boundary.
    linear = hand_built_linear()
    W, b = linear.weight.detach(), linear.bias.detach()
    h = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    geometry = sample_geometry(h, linear(h).detach(), torch.tensor([1]), W, b)
    normal = (W[1] - W[0]) / torch.linalg.vector_norm(W[1] - W[0])
    on_boundary = linear(h - geometry["margin"] * normal).detach()
    torch.testing.assert_close(on_boundary[0, 1], on_boundary[0, 0])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_margin_positive_exactly_when_correct(dtype: torch.dtype) -> None:
    g = generator(1)
    n, d, c = 4000, 16, 10
    h = torch.randn(n, d, generator=g, dtype=dtype)
    W = torch.randn(c, d, generator=g, dtype=dtype)
    b = torch.randn(c, generator=g, dtype=dtype)
    y = torch.randint(0, c, (n,), generator=g)
    z = h @ W.T + b
    geometry = sample_geometry(h, z, y, W, b)
    assert 0.05 < geometry["correct"].double().mean() < 0.95  # both signs occur
    assert torch.equal(geometry["margin"] > 0, geometry["correct"])
    sample = slice(0, 200)
    torch.testing.assert_close(
        geometry["margin"][sample],
        brute_force_margin(h[sample].double(), y[sample], W.double(), b.double()),
        atol=1e-4 if dtype == torch.float32 else 1e-10,
        rtol=0,
    )


def test_identical_head_rows_keep_margin_sign_equal_to_correctness() -> None:
    # Given two fully pruned head rows (w_0 = w_1 = 0) with different biases, no boundary separates them
    W = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    h = torch.tensor([[-1.0, -1.0], [-1.0, -1.0], [-1.0, -1.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    geometry = sample_geometry(h, h @ W.T + b, y, W, b)
    assert geometry["correct"].tolist() == [True, False, False]
    # class 0 beats class 1 everywhere (+inf skipped), and its margin against class 2 is finite
    assert geometry["margin"][0] == pytest.approx((0 + 1 - (-2)) / SQRT2)
    assert geometry["margin"][1] == -math.inf
    assert torch.equal(geometry["margin"] > 0, geometry["correct"])


def test_zero_features_have_right_angle_and_finite_values() -> None:
    W = torch.eye(3, dtype=torch.float64)
    b = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    h = torch.zeros(2, 3, dtype=torch.float64)
    geometry = sample_geometry(h, h @ W.T + b, torch.tensor([1, 0]), W, b)
    torch.testing.assert_close(geometry["angle"], torch.full((2,), math.pi / 2, dtype=torch.float64))
    assert all(torch.isfinite(geometry[key]).all() for key in GEOMETRY_KEYS)


def test_sample_geometry_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"W \(3, 4\)"):
        sample_geometry(
            torch.zeros(5, 2),
            torch.zeros(5, 3),
            torch.zeros(5, dtype=torch.long),
            torch.zeros(3, 4),
            torch.zeros(3),
        )
    with pytest.raises(ValueError, match="labels"):
        sample_geometry(
            torch.zeros(1, 2), torch.zeros(1, 3), torch.tensor([3]), torch.zeros(3, 2), torch.zeros(3)
        )


# --- summarize -------------------------------------------------------------------------------------------


def test_summarize_means_overall_and_per_class_with_absent_classes() -> None:
    geometry = {
        "prediction": torch.tensor([0, 1, 0, 1]),
        "correct": torch.tensor([True, False, False, True]),
        "loss": torch.tensor([1.0, 2.0, 3.0, 6.0], dtype=torch.float64),
        "angle": torch.tensor([0.1, 0.2, 0.3, 0.6], dtype=torch.float64),
        "feature_norm": torch.tensor([1.0, 1.0, 2.0, 4.0], dtype=torch.float64),
        "margin": torch.tensor([1.0, -1.0, math.inf, 2.0], dtype=torch.float64),
        "el2n": torch.tensor([0.0, 0.5, 1.0, 0.5], dtype=torch.float64),
    }
    y = torch.tensor([0, 0, 2, 2])
    summary = summarize(geometry, y, num_classes=3)
    assert summary["count"] == 4
    assert summary["accuracy"] == pytest.approx(0.5)
    assert summary["loss"] == pytest.approx(3.0)
    assert summary["mean_angle"] == pytest.approx(0.3)
    assert summary["mean_feature_norm"] == pytest.approx(2.0)
    assert summary["mean_margin"] == pytest.approx(2.0 / 3)  # the infinite margin is left out
    assert summary["infinite_margins"] == 1
    assert summary["mean_el2n"] == pytest.approx(0.5)
    per_class = summary["per_class"]
    assert per_class["count"] == [2, 0, 2]
    assert per_class["accuracy"] == [pytest.approx(0.5), None, pytest.approx(0.5)]
    assert per_class["loss"] == [pytest.approx(1.5), None, pytest.approx(4.5)]
    assert per_class["mean_margin"] == [pytest.approx(0.0), None, pytest.approx(2.0)]
    assert all(len(v) == 3 for v in per_class.values())


def test_summarize_of_sample_geometry_agrees_with_the_tensors() -> None:
    g = generator(2)
    h, W, b = torch.randn(300, 8, generator=g), torch.randn(4, 8, generator=g), torch.randn(4, generator=g)
    y = torch.randint(0, 4, (300,), generator=g)
    geometry = sample_geometry(h, h @ W.T + b, y, W, b)
    summary = summarize(geometry, y, num_classes=4)
    assert summary["accuracy"] == pytest.approx(float(geometry["correct"].double().mean()))
    for k in range(4):
        members = y == k
        assert summary["per_class"]["mean_margin"][k] == pytest.approx(
            float(geometry["margin"][members].mean())
        )


# --- penultimate, head_weights ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "input_shape"),
    [("mlp", (1, 8, 8)), ("small_cnn", (1, 8, 8)), ("resnet20", (3, 32, 32)), ("vgg11_bn", (3, 32, 32))],
)
def test_penultimate_of_registry_architectures_is_features_and_head(name: str, input_shape: tuple) -> None:
    torch.manual_seed(0)
    model = build(name, num_classes=10, input_shape=input_shape).double().eval()
    x = torch.randn(3, *input_shape, dtype=torch.float64)
    with torch.no_grad():
        h, z = penultimate(model)(x)
        torch.testing.assert_close(h, model.features(x))
        torch.testing.assert_close(z, model(x))
    assert h.shape == (3, model.head.in_features) and z.shape == (3, 10)
    W, b = head_weights(model)
    assert torch.equal(W, model.head.weight) and torch.equal(b, model.head.bias)


def plain_mlp() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 4))


def test_penultimate_hooks_the_last_linear_of_a_plain_model() -> None:
    torch.manual_seed(0)
    model = plain_mlp()
    x = torch.randn(5, 3, 4)
    h, z = penultimate(model)(x)
    torch.testing.assert_close(h, model[2](model[1](x.flatten(1))))
    assert torch.equal(z, model(x))
    W, b = head_weights(model)
    assert W is not None and torch.equal(W, model[3].weight) and torch.equal(b, model[3].bias)
    assert not model[3]._forward_hooks  # the hook is gone after the call


def test_penultimate_of_a_zoo_model_goes_through_the_checked_hook() -> None:
    torch.manual_seed(0)
    model = ZooModel(plain_mlp())
    x = torch.randn(5, 12)
    h, z = penultimate(model)(x)
    torch.testing.assert_close(h, model.features(x))
    assert torch.equal(z, model(x))


class TrunkNamedFeatures(nn.Module):
    """torchvision's layout: ``features`` is a trunk module, pooling follows it, then ``head``."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
        self.head = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def test_penultimate_hooks_the_head_when_features_is_a_trunk_module() -> None:
    torch.manual_seed(0)
    model = TrunkNamedFeatures()
    x = torch.randn(2, 1, 6, 6)
    h, z = penultimate(model)(x)
    torch.testing.assert_close(h, model.features(x).mean(dim=(2, 3)))
    assert torch.equal(z, model(x))


class AddsAfterLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x) + 1.0


@pytest.mark.parametrize(
    "model",
    [nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)), AddsAfterLinear()],
    ids=["softmax", "adds"],
)
def test_penultimate_rejects_a_model_whose_last_operation_is_not_the_linear(model: nn.Module) -> None:
    run = penultimate(model)
    with pytest.raises(ValueError, match=type(model).__name__):
        run(torch.randn(2, 4))


def test_penultimate_rejects_a_model_without_linear() -> None:
    with pytest.raises(ValueError, match="Sequential has no nn.Linear"):
        penultimate(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()))


def test_head_without_bias_gets_zero_bias() -> None:
    _, b = head_weights(nn.Sequential(nn.Linear(4, 3, bias=False)))
    assert torch.equal(b, torch.zeros(3))


# --- relu_dead_rates -------------------------------------------------------------------------------------


def test_dead_rates_of_known_units() -> None:
    # Given a first ReLU after a Linear with a large negative bias (always dead) and a second after a Linear
    # whose inputs are then zero and whose bias is positive (never dead)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 3))
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
        model[0].weight.uniform_(-0.1, 0.1)
        model[2].bias.fill_(1.0)
    with relu_dead_rates(model) as dead:
        model(torch.rand(10, 4))
        model(torch.rand(7, 4))
    assert dead.rates() == {"1": 1.0, "3": 0.0}
    assert not model[1]._forward_hooks and not model[3]._forward_hooks


def test_dead_rate_is_the_fraction_of_zero_outputs() -> None:
    model = nn.Sequential(nn.ReLU())
    with relu_dead_rates(model) as dead:
        model(torch.tensor([[1.0, -1.0, 2.0, -2.0], [1.0, 1.0, 1.0, 0.0]]))  # 2/4 and 1/4 zero
    assert dead.rates() == {"0": pytest.approx(3 / 8)}
    dead.reset()
    assert dead.rates() == {}


class FunctionalRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(F.relu(x))


def test_functional_relus_are_not_counted() -> None:
    model = FunctionalRelu()
    with relu_dead_rates(model) as dead:
        model(torch.randn(4, 3))
    assert dead.rates() == {}


@pytest.mark.parametrize(("name", "relus"), [("mlp", 2), ("small_cnn", 3), ("resnet20", 19)])
def test_every_relu_of_the_builtin_architectures_is_counted(name: str, relus: int) -> None:
    shape = (3, 32, 32) if name == "resnet20" else (1, 8, 8)
    model = build(name, num_classes=10, input_shape=shape).eval()
    with torch.no_grad(), relu_dead_rates(model) as dead:
        model(torch.randn(2, *shape))
    rates = dead.rates()
    assert len(rates) == relus and all(0.0 <= r <= 1.0 for r in rates.values())


# --- neural_collapse -------------------------------------------------------------------------------------


def collapsed(num_classes: int = 6, present: int = 5, dim: int = 16) -> tuple[Tensor, Tensor, Tensor]:
    """Features at simplex-ETF class means plus an offset, no within-class spread, ``W`` = 2 x centred means.

    Classes ``present..num_classes-1`` are absent; counts are unbalanced (3, 4, 5, ...).
    """
    g = generator(3)
    basis, _ = torch.linalg.qr(torch.randn(dim, present + 1, generator=g, dtype=torch.float64))
    etf = math.sqrt(present / (present - 1)) * (torch.eye(present) - 1.0 / present).double()  # (K, K)
    centred = 3.0 * etf @ basis[:, :present].T  # (K, D), rows sum to zero
    means = centred + 5.0 * basis[:, present]  # offset orthogonal to the means' span
    y = torch.cat([torch.full((3 + k,), k) for k in range(present)])
    W = torch.randn(num_classes, dim, generator=g, dtype=torch.float64)
    W[:present] = 2.0 * centred
    return means[y], y, W


def test_neural_collapse_is_zero_on_collapsed_features() -> None:
    h, y, W = collapsed()
    metrics = neural_collapse(h, y, W, num_classes=6)
    assert metrics["classes"] == 5
    for key, value in metrics.items():
        if key != "classes":
            assert abs(value) < 1e-10, key


def test_neural_collapse_is_far_from_zero_on_random_features() -> None:
    g = generator(4)
    h = torch.randn(400, 16, generator=g)
    y = torch.randint(0, 5, (400,), generator=g)
    W = torch.randn(5, 16, generator=g)
    metrics = neural_collapse(h, y, W, num_classes=5)
    assert metrics["nc1"] > 1.0
    assert metrics["nc2_equiangular"] > 0.05 and metrics["nc2_maxangle"] > 0.05
    assert metrics["nc3"] > 0.5 and metrics["nc4"] > 0.3


def test_nc1_and_nc4_match_brute_force() -> None:
    g = generator(5)
    n, d, k = 300, 12, 4
    y = torch.randint(0, k, (n,), generator=g)
    h = torch.randn(n, d, generator=g, dtype=torch.float64) + 2.0 * torch.randn(k, d, generator=g).double()[y]
    W = torch.randn(k, d, generator=g, dtype=torch.float64)
    b = torch.randn(k, generator=g, dtype=torch.float64)
    metrics = neural_collapse(h, y, W, num_classes=k, b=b)

    means = torch.stack([h[y == c].mean(dim=0) for c in range(k)])  # (K, D)
    centred = means - means.mean(dim=0)
    residuals = h - means[y]
    sigma_w = residuals.T @ residuals / n
    sigma_b = centred.T @ centred / k
    nc1 = torch.trace(sigma_w @ torch.linalg.pinv(sigma_b, hermitian=True)) / k
    assert metrics["nc1"] == pytest.approx(float(nc1), rel=1e-8)
    nearest = torch.cdist(h, means).argmin(dim=1)
    prediction = (h @ W.T + b).argmax(dim=1)
    assert metrics["nc4"] == pytest.approx(float((nearest != prediction).double().mean()))
    assert neural_collapse(h, y, W, k, prediction=prediction)["nc4"] == metrics["nc4"]


def test_neural_collapse_needs_two_classes() -> None:
    with pytest.raises(ValueError, match="two classes"):
        neural_collapse(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.randn(2, 3), num_classes=2)


# --- CKA -------------------------------------------------------------------------------------------------


def hsic_cka(a: Tensor, b: Tensor) -> float:
    """Kornblith et al.'s HSIC form with centred linear Grams ``H K H``, ``H L H``."""
    n = a.shape[0]
    centring = torch.eye(n, dtype=torch.float64) - 1.0 / n
    k = centring @ a.double() @ a.double().T @ centring
    l_ = centring @ b.double() @ b.double().T @ centring
    return float((k * l_).sum() / (torch.linalg.matrix_norm(k) * torch.linalg.matrix_norm(l_)))


def test_cka_of_a_representation_with_itself_is_one() -> None:
    a = torch.randn(500, 32, generator=generator(6))
    assert linear_cka(a, a) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling() -> None:
    g = generator(7)
    a = torch.randn(400, 20, generator=g, dtype=torch.float64)
    b = a[:, :10] @ torch.randn(10, 30, generator=g, dtype=torch.float64) + 0.5 * torch.randn(
        400, 30, generator=g, dtype=torch.float64
    )
    q, _ = torch.linalg.qr(torch.randn(30, 30, generator=g, dtype=torch.float64))
    reference = linear_cka(a, b)
    assert 0.1 < reference < 0.99
    assert linear_cka(a, 3.7 * b @ q) == pytest.approx(reference, abs=1e-12)
    assert linear_cka(0.01 * a, b) == pytest.approx(reference, abs=1e-12)
    assert linear_cka(a, b) == pytest.approx(linear_cka(b, a), abs=1e-14)


@pytest.mark.parametrize(("n", "d1", "d2"), [(200, 8, 24), (20, 50, 70)], ids=["feature-form", "sample-form"])
def test_cka_matches_the_hsic_form(n: int, d1: int, d2: int) -> None:
    g = generator(8)
    a = torch.randn(n, d1, generator=g) + 1.0
    b = torch.randn(n, d2, generator=g) + torch.cat([a, a, a, a, a, a, a, a, a], dim=1)[:, :d2]
    assert linear_cka(a, b) == pytest.approx(hsic_cka(a, b), rel=1e-10)


def test_cka_of_independent_features_is_small() -> None:
    g = generator(9)
    assert linear_cka(torch.randn(4000, 10, generator=g), torch.randn(4000, 12, generator=g)) < 0.02


def test_cka_matrix_is_symmetric_with_unit_diagonal() -> None:
    g = generator(10)
    a = torch.randn(300, 16, generator=g)
    features = [
        a,
        a @ torch.randn(16, 40, generator=g),
        torch.randn(300, 8, generator=g),
        a.reshape(300, 4, 4),
    ]
    matrix = cka_matrix(features)
    assert matrix.shape == (4, 4)
    np.testing.assert_allclose(matrix, matrix.T)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    assert matrix[0, 1] == pytest.approx(linear_cka(a, features[1]))
    assert matrix[0, 3] == pytest.approx(1.0)


def test_cka_of_a_constant_representation_is_nan_and_sample_counts_must_agree() -> None:
    assert math.isnan(linear_cka(torch.ones(10, 3), torch.randn(10, 2)))
    with pytest.raises(ValueError, match="different"):
        linear_cka(torch.randn(10, 3), torch.randn(11, 3))
