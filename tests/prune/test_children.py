"""The prune analysis's children: achieved sparsity, fixed masks, structured equivalence, determinism.

The analysis runs for real; only ``add_checkpoint`` (the worker's database boundary) is a plain function
that keeps what it is given.
"""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load as load_safetensors

from tests.unit.test_pruning import _randomized
from workers import architectures, pruning
from workers.analyses.prune_task import PruneParams, prune_family
from workers.architectures import MLP, SmallCNN
from workers.registry import AnalysisInputs, NewCheckpoint, RegisteredCheckpoint

CPU = torch.device("cpu")


def _small_cnn(seed: int = 0) -> SmallCNN:
    return _randomized(SmallCNN(in_channels=1, num_classes=10, widths=(6, 10, 14)), seed)


def _data(n: int = 64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=gen, dtype=torch.float64), torch.arange(n) % 10


class Kept:
    """The boundary fake for ``add_checkpoint``: keeps each child and hands out ids."""

    def __init__(self):
        self.children: list[NewCheckpoint] = []

    def __call__(self, new: NewCheckpoint) -> RegisteredCheckpoint:
        self.children.append(new)
        return RegisteredCheckpoint(100 + len(self.children), [])


def _run(model, params: dict, data=None) -> tuple[dict, Kept, list[tuple[float, str]]]:
    x, y = data if data is not None else (torch.empty(0), torch.empty(0))
    kept, reports = Kept(), []
    out = prune_family(
        AnalysisInputs(
            model=model,
            x=x,
            y=y,
            device=CPU,
            params=PruneParams.model_validate(params),
            progress=lambda f, m: reports.append((f, m)),
            add_checkpoint=kept,
        )
    )
    return out.summary, kept, reports


def _weights(new: NewCheckpoint) -> dict[str, torch.Tensor]:
    return load_safetensors(new.data)


# ----------------------------------------------------------------------------------------- sparsity


@pytest.mark.parametrize("method", ["random", "layerwise_magnitude"])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.77, 0.9])
def test_per_layer_methods_reach_the_target_within_one_weight_per_layer(method, sparsity):
    model = _small_cnn()
    child = pruning.prune(model, method, sparsity, seed=4)
    for name, w in pruning.prunable_weights(child.model).items():
        zeros = int((w == 0).sum())
        assert abs(zeros - sparsity * w.numel()) <= 1, name
        assert child.layers[name]["pruned"] == zeros


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_global_magnitude_reaches_the_target_within_one_weight_overall(sparsity):
    child = pruning.prune(_small_cnn(), "global_magnitude", sparsity)
    weights = pruning.prunable_weights(child.model).values()
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert abs(zeros - sparsity * total) <= 1
    assert child.achieved == pytest.approx(zeros / total)


@pytest.mark.parametrize("sparsity", [0.0, 0.25, 0.5, 0.8])
def test_channel_l1_removes_the_target_share_of_channels_within_one_per_layer(sparsity):
    model = _small_cnn()
    child = pruning.prune(model, "channel_l1", sparsity)
    for before, after in zip(model.widths, child.model.widths, strict=True):
        assert abs((before - after) - sparsity * before) <= 1
    assert child.masks == {}
    assert child.achieved == pytest.approx(1 - sum(child.model.widths) / sum(model.widths))


def test_pruning_leaves_the_parent_unchanged():
    model = _small_cnn()
    before = copy.deepcopy(model.state_dict())
    for method in pruning.METHODS:
        pruning.prune(model, method, 0.5, seed=1)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_structured_methods_refuse_architectures_they_do_not_know():
    mlp = MLP(in_features=64, num_classes=10, hidden=(16, 8))
    with pytest.raises(
        pruning.PruningError, match="supports small_cnn, CIFAR ResNet and CIFAR VGG models, got MLP"
    ):
        pruning.prune(mlp, "channel_l1", 0.5)
    with pytest.raises(pruning.PruningError, match="unknown pruning method 'magic'"):
        pruning.prune(mlp, "magic", 0.5)


# ------------------------------------------------------------------------------ structured equivalence


STRUCTURED = [("small_cnn", (1, 8, 8)), ("resnet20", (3, 8, 8)), ("vgg11_bn", (3, 32, 32))]


@pytest.mark.parametrize(("architecture", "input_shape"), STRUCTURED, ids=[a for a, _ in STRUCTURED])
def test_structured_child_equals_the_parent_with_those_channels_zeroed(architecture, input_shape):
    # Given a float64 network with random weights and BatchNorm statistics,
    model = _randomized(architectures.build(architecture, num_classes=10, input_shape=input_shape), seed=2)
    groups = pruning.channel_groups(model)
    _, kept = pruning.channel_l1_structured(model, 0.5)
    # when its channel-pruned child is serialized by the analysis and rebuilt from the bytes alone,
    _, out, _ = _run(model, {"methods": ["channel_l1"], "sparsities": [0.5]})
    state = _weights(out.children[0])
    child = architectures.build(architecture, num_classes=10, input_shape=input_shape, state_dict=state)
    architectures.load_weights(child.double().eval(), state)  # built in float32: load again in float64
    # then each pruned layer lost half its channels, within one,
    modules = dict(model.named_modules())
    for g in groups:
        c = modules[g.conv].out_channels
        assert abs((c - kept[g.conv].numel()) - 0.5 * c) <= 1, g.conv
        assert dict(child.named_modules())[g.conv].out_channels == kept[g.conv].numel()
    # and it computes what the parent computes with the removed channels' filters and BN scale and shift
    # zeroed (their outputs are then 0 after ReLU, so the next layer's weights on them do not matter).
    zeroed = copy.deepcopy(model)
    zmods = dict(zeroed.named_modules())
    with torch.no_grad():
        for g in groups:
            drop = torch.ones(zmods[g.conv].out_channels, dtype=torch.bool)
            drop[kept[g.conv]] = False
            zmods[g.conv].weight[drop] = 0
            if zmods[g.conv].bias is not None:
                zmods[g.conv].bias[drop] = 0
            zmods[g.bn].weight[drop] = 0
            zmods[g.bn].bias[drop] = 0
    x = torch.randn(4, *input_shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(child(x), zeroed(x), rtol=1e-10, atol=1e-10)
        assert not torch.allclose(child(x), model(x))  # the pruning did change the function
    assert sum(p.numel() for p in child.parameters()) < sum(p.numel() for p in model.parameters())


def test_resnet_channel_pruning_keeps_the_residual_stream_and_the_classifier():
    model = architectures.build("resnet20", num_classes=10, input_shape=(3, 8, 8))
    child, _ = pruning.channel_l1_structured(model, 0.75)
    pruned = dict(child.named_modules())
    for name, module in model.named_modules():
        if name.endswith("conv2"):  # each block's output: the residual stream keeps its width
            assert pruned[name].out_channels == module.out_channels, name
            assert pruned[name].in_channels == module.in_channels // 4, name
        if name in ("conv1", "linear"):  # the stem and the classifier
            assert pruned[name].weight.shape == module.weight.shape, name


# ---------------------------------------------------------------------------------- fine-tuning, recipe


@pytest.mark.parametrize("method", ["random", "global_magnitude", "layerwise_magnitude"])
def test_masked_weights_stay_exactly_zero_through_fine_tuning(method):
    model = _small_cnn()
    expected = pruning.prune(model, method, 0.6, seed=3).masks
    summary, out, _ = _run(
        model,
        {"methods": [method], "sparsities": [0.6], "finetune_epochs": 2, "seed": 3, "batch_size": 16},
        _data(),
    )
    state = _weights(out.children[0])
    for name, mask in expected.items():
        assert torch.all(state[name][~mask] == 0), name
        assert torch.count_nonzero(state[name][mask]) == int(mask.sum()), name  # the rest trained, non-zero
    assert len(summary["children"][0]["finetune_losses"]) == 2


def test_each_child_is_registered_with_its_method_target_achieved_sparsity_and_recipe():
    summary, out, reports = _run(
        _small_cnn(),
        {"methods": ["channel_l1", "random"], "sparsities": [0.8, 0.5], "finetune_epochs": 1},
        _data(),
    )
    made = [(c.metadata["pruning_method"], c.metadata["sparsity_target"]) for c in out.children]
    assert made == [("random", 0.5), ("random", 0.8), ("channel_l1", 0.5), ("channel_l1", 0.8)]
    assert summary["checkpoint_ids"] == [101, 102, 103, 104]
    assert [c["checkpoint_id"] for c in summary["children"]] == summary["checkpoint_ids"]
    for new in out.children:
        meta = new.metadata
        assert abs(meta["achieved_sparsity"] - meta["sparsity_target"]) < 0.1
        assert meta["recipe"]["method"] == meta["pruning_method"] and meta["recipe"]["finetune_epochs"] == 1
        assert meta["sparsity_unit"] == ("channels" if meta["pruning_method"] == "channel_l1" else "weights")
    assert out.children[0].label == "random 50% ft 1 ep"
    # progress: once per child and once per fine-tune epoch, rising to 1
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert sum("epoch 1/1" in m for _, m in reports) == 4


def test_the_same_seed_makes_the_same_bytes_and_another_seed_other_random_masks():
    params = {"methods": ["random", "global_magnitude"], "sparsities": [0.5], "finetune_epochs": 1}
    first = [c.data for c in _run(_small_cnn(), {**params, "seed": 7}, _data())[1].children]
    again = [c.data for c in _run(_small_cnn(), {**params, "seed": 7}, _data())[1].children]
    other = [c.data for c in _run(_small_cnn(), {**params, "seed": 8}, _data())[1].children]
    assert first == again
    assert first[0] != other[0]  # random masks and batch order follow the seed


def test_fine_tuning_without_data_is_refused():
    with pytest.raises(ValueError, match="fine-tuning needs a dataset"):
        _run(_small_cnn(), {"finetune_epochs": 1})
