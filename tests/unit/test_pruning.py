"""Pruning baselines, channel pruning and the sparsity report."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from workers import architectures, pruning
from workers.architectures import MLP, SmallCNN
from workers.pruning import PruningError
from workers.sparsity import sparsity_report

SPARSITIES = [0.0, 0.1, 0.37, 0.5, 0.9, 0.99]


def _randomized(model: nn.Module, seed: int) -> nn.Module:
    """``model`` in float64 with random weights and BatchNorm statistics from its own generator, eval mode."""
    gen = torch.Generator().manual_seed(seed)
    model = model.double()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                values = torch.randn(tensor.shape, generator=gen, dtype=torch.float64)
                tensor.copy_(values.abs() + 0.5 if name.endswith("running_var") else values)
    return model.eval()


def _small_cnn(seed: int = 0, *, widths=(16, 32, 64)) -> SmallCNN:
    return _randomized(SmallCNN(in_channels=1, num_classes=10, widths=widths), seed)


def _mlp(seed: int = 0) -> MLP:
    return _randomized(MLP(in_features=64, num_classes=10, hidden=(32, 16)), seed)


def _masks(method: str, model: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    if method == "random":
        return pruning.random_masks(model, sparsity, seed=3)
    return {"global": pruning.global_magnitude_masks, "layerwise": pruning.layerwise_magnitude_masks}[method](
        model, sparsity
    )


def _images(n: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------------- unstructured masks


@pytest.mark.parametrize("method", ["global", "layerwise", "random"])
@pytest.mark.parametrize("make", [_small_cnn, _mlp], ids=["small_cnn", "mlp"])
def test_masks_cover_every_conv_and_linear_weight_including_the_head(method, make):
    model = make()
    masks = _masks(method, model, 0.5)
    expected = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    assert set(masks) == expected and "head.weight" in masks
    params = dict(model.named_parameters())
    assert all(mask.dtype == torch.bool and mask.shape == params[name].shape for name, mask in masks.items())


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("method", ["layerwise", "random"])
def test_per_layer_methods_hit_the_target_within_one_weight_per_layer(method, sparsity):
    model = _small_cnn()
    for name, mask in _masks(method, model, sparsity).items():
        pruned = int((~mask).sum())
        assert abs(pruned - sparsity * mask.numel()) <= 1, (name, pruned, mask.numel())


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_global_magnitude_hits_the_target_within_one_weight_overall(sparsity):
    model = _small_cnn()
    masks = pruning.global_magnitude_masks(model, sparsity)
    pruning.apply_masks(model, masks)
    total = sum(m.numel() for m in masks.values())
    zeros = sum(int((dict(model.named_parameters())[n] == 0).sum()) for n in masks)
    assert abs(zeros - sparsity * total) <= 1


def test_global_magnitude_keeps_the_largest_weights_across_layers():
    model = _small_cnn()
    with torch.no_grad():
        model.head.weight.mul_(10.0)  # a layer of larger weights should keep more of them
    params = dict(model.named_parameters())
    masks = pruning.global_magnitude_masks(model, 0.6)
    kept = torch.cat([params[n].detach().abs()[m] for n, m in masks.items()])
    dropped = torch.cat([params[n].detach().abs()[~m] for n, m in masks.items()])
    assert kept.min() >= dropped.max()
    assert (
        float((~masks["head.weight"]).double().mean()) < 0.2 < float((~masks["conv2.weight"]).double().mean())
    )


def test_layerwise_magnitude_keeps_the_largest_weights_of_each_layer():
    model = _small_cnn()
    params = dict(model.named_parameters())
    for name, mask in pruning.layerwise_magnitude_masks(model, 0.6).items():
        w = params[name].detach().abs()
        assert w[mask].min() >= w[~mask].max()


def test_magnitude_pruning_a_pruned_model_extends_its_mask():
    model = _small_cnn()
    first = pruning.global_magnitude_masks(model, 0.5)
    pruning.apply_masks(model, first)
    second = pruning.global_magnitude_masks(model, 0.75)
    for name in first:
        assert not (second[name] & ~first[name]).any()  # nothing pruned before comes back


def test_random_masks_are_reproducible_for_a_seed_and_differ_across_seeds():
    model = _small_cnn()
    state = torch.random.get_rng_state()
    a = pruning.random_masks(model, 0.5, seed=7)
    b = pruning.random_masks(model, 0.5, seed=7)
    c = pruning.random_masks(model, 0.5, seed=8)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, math.nan, True, "0.5"])
@pytest.mark.parametrize("method", ["global", "layerwise", "random"])
def test_sparsity_outside_zero_to_one_is_refused(method, bad):
    with pytest.raises(PruningError, match=r"sparsity must be .*\[0, 1\)"):
        _masks(method, _mlp(), bad)


def test_a_model_without_conv_or_linear_layers_is_refused():
    with pytest.raises(PruningError, match="no Conv or Linear layer"):
        pruning.layerwise_magnitude_masks(nn.Sequential(nn.ReLU()), 0.5)


def test_apply_masks_zeroes_exactly_the_masked_entries():
    model = _mlp()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    masks = pruning.random_masks(model, 0.3, seed=0)
    pruning.apply_masks(model, masks)
    for name, p in model.named_parameters():
        if name in masks:
            assert torch.equal(p[~masks[name]], torch.zeros_like(p[~masks[name]]))
            assert torch.equal(p[masks[name]], before[name][masks[name]])
        else:
            assert torch.equal(p, before[name])


def test_apply_masks_reports_wrong_shapes_and_unknown_names():
    model = _mlp()
    with pytest.raises(PruningError, match=r"'fc1.weight' has shape \(3, 3\), parameter \(32, 64\)"):
        pruning.apply_masks(model, {"fc1.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(PruningError, match=r"'fc9.weight' names no parameter"):
        pruning.apply_masks(model, {"fc9.weight": torch.ones(3, dtype=torch.bool)})


# ----------------------------------------------------------------------------------- channel pruning


def test_channel_pruning_removes_the_lowest_l1_filters_and_slices_the_next_layers():
    model = _small_cnn()
    pruned = pruning.channel_l1_prune(model, 0.25)
    assert pruned.widths == (12, 24, 48)
    assert pruned.head.out_features == 10 and pruned.conv1.in_channels == 1
    keep = torch.sort(model.conv1.weight.abs().sum(dim=(1, 2, 3)).argsort(descending=True)[:12]).values
    torch.testing.assert_close(pruned.conv1.weight, model.conv1.weight[keep], rtol=0, atol=0)
    torch.testing.assert_close(pruned.bn1.running_mean, model.bn1.running_mean[keep], rtol=0, atol=0)
    assert pruned.conv2.weight.shape == (24, 12, 3, 3) and pruned.head.weight.shape == (10, 48)
    assert model.widths == (16, 32, 64)  # the input model is untouched


def test_channel_pruned_state_dict_rebuilds_with_identical_outputs():
    pruned = pruning.channel_l1_prune(_small_cnn(), 0.5)
    rebuilt = architectures.build(
        "small_cnn", num_classes=10, input_shape=(1, 8, 8), state_dict=pruned.state_dict()
    )
    rebuilt = rebuilt.double()
    architectures.load_weights(rebuilt, pruned.state_dict())  # build() made float32; reload in float64
    x = _images()
    torch.testing.assert_close(rebuilt.eval()(x), pruned(x), rtol=0, atol=0)


def test_channel_pruning_at_zero_fraction_keeps_the_outputs():
    model = _small_cnn()
    pruned = pruning.channel_l1_prune(model, 0.0)
    x = _images()
    torch.testing.assert_close(pruned(x), model(x), rtol=0, atol=0)


def test_removing_dead_channels_does_not_change_the_outputs():
    # Given channels whose filter and BatchNorm affine are zero, their eval-mode output is exactly zero,
    # when they are the lowest-L1 quarter of each layer, then removing them changes nothing.
    model = _small_cnn()
    with torch.no_grad():
        for k, (conv, bn) in enumerate(
            [(model.conv1, model.bn1), (model.conv2, model.bn2), (model.conv3, model.bn3)]
        ):
            dead = torch.arange(conv.out_channels)[k::4][: conv.out_channels // 4]
            conv.weight[dead] = 0.0
            bn.weight[dead] = 0.0
            bn.bias[dead] = 0.0
    pruned = pruning.channel_l1_prune(model, 0.25)
    assert pruned.widths == (12, 24, 48)
    x = _images()
    torch.testing.assert_close(pruned(x), model(x), rtol=1e-12, atol=1e-12)


def test_channel_pruning_can_be_limited_to_some_layers_and_keeps_one_channel():
    model = _small_cnn(widths=(4, 8, 8))
    assert pruning.channel_l1_prune(model, 0.5, layers=("conv2",)).widths == (4, 4, 8)
    assert pruning.channel_l1_prune(model, 0.99).widths == (1, 1, 1)


def test_channel_pruning_keeps_dtype_and_training_flag():
    model = _small_cnn().train()
    pruned = pruning.channel_l1_prune(model, 0.5)
    assert pruned.training and pruned.conv1.weight.dtype == torch.float64


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (_mlp, {"fraction": 0.5}, "supports small_cnn models, got MLP"),
        (_small_cnn, {"fraction": 1.0}, r"fraction must be in \[0, 1\), got 1.0"),
        (_small_cnn, {"fraction": 0.5, "layers": ("head",)}, "layers must be among conv1, conv2, conv3"),
    ],
)
def test_channel_pruning_refuses_bad_requests(make, kwargs, message):
    with pytest.raises(PruningError, match=message):
        pruning.channel_l1_prune(make(), **kwargs)


# ----------------------------------------------------------------------------------- sparsity report


def test_sparsity_report_counts_parameters_and_skips_batchnorm_statistics():
    state_dict = {
        "conv.weight": torch.tensor([[0.0, 1.0], [-0.0, 2.0]]),
        "bn.weight": torch.tensor([1.0, 0.0]),
        "bn.bias": torch.tensor([0.0, 0.0]),
        "bn.running_mean": torch.zeros(2),
        "bn.running_var": torch.zeros(2),
        "bn.num_batches_tracked": torch.tensor(0),
        "index": torch.zeros(3, dtype=torch.long),
        "head.bias": torch.tensor([float("nan"), 1.0]),
    }
    overall, per_layer = sparsity_report(state_dict)
    assert set(per_layer) == {"conv.weight", "bn.weight", "bn.bias", "head.bias"}
    assert per_layer["conv.weight"] == {"numel": 4, "zeros": 2, "sparsity": 0.5}  # -0.0 counts as zero
    assert per_layer["head.bias"]["zeros"] == 0  # NaN does not
    assert overall == 5 / 10


def test_sparsity_report_folds_torch_prune_masks():
    state_dict = {
        "fc.weight_orig": torch.tensor([1.0, 2.0, 3.0, 0.0]),
        "fc.weight_mask": torch.tensor([1.0, 0.0, 1.0, 1.0]),
        "fc.bias": torch.tensor([1.0]),
        "stray_mask": torch.zeros(3),
    }
    overall, per_layer = sparsity_report(state_dict)
    assert per_layer == {
        "fc.weight": {"numel": 4, "zeros": 2, "sparsity": 0.5},
        "fc.bias": {"numel": 1, "zeros": 0, "sparsity": 0.0},
    }
    assert overall == 2 / 5


def test_sparsity_report_matches_pruned_weights():
    model = _small_cnn()
    masks = pruning.layerwise_magnitude_masks(model, 0.5)
    pruning.apply_masks(model, masks)
    overall, per_layer = sparsity_report(model.state_dict())
    for name, mask in masks.items():
        assert per_layer[name]["zeros"] == int((~mask).sum())
    n_params = sum(p.numel() for p in model.parameters())
    assert sum(v["numel"] for v in per_layer.values()) == n_params
    assert overall == pytest.approx(sum(int((~m).sum()) for m in masks.values()) / n_params)


def test_sparsity_report_of_an_empty_state_dict_is_zero():
    assert sparsity_report({}) == (0.0, {})
