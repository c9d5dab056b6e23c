"""Architecture registry: building, rebuilding pruned checkpoints, strict loading with clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workers import architectures
from workers.architectures import MLP, Architecture, ArchitectureError, SmallCNN


def _seeded(model: nn.Module, *, dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Module:
    """Random weights and non-trivial BatchNorm statistics, deterministic for ``seed``, in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    model = model.to(dtype)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            values = torch.randn(tensor.shape, generator=gen, dtype=torch.float64)
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            tensor.copy_(values * 0.5)
    return model.eval()


def _inputs(shape: tuple[int, ...], *, n: int = 6, seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_registry_lists_builtin_architectures_with_default_shapes():
    assert {"mlp", "small_cnn"} <= set(architectures.names())
    assert architectures.names() == sorted(architectures.names())
    assert architectures.get("mlp").default_input_shape == (1, 8, 8)
    assert architectures.get("small_cnn").default_input_shape == (1, 8, 8)


def test_unknown_architecture_error_lists_known_names_and_reprs_the_name():
    with pytest.raises(ArchitectureError, match=r"unknown architecture 'nope\\n'; known: .*mlp.*small_cnn"):
        architectures.get("nope\n")


def test_register_refuses_a_second_architecture_under_the_same_name():
    clash = Architecture(name="mlp", description="other", default_input_shape=(4,), factory=MLP)
    with pytest.raises(ArchitectureError, match="already registered"):
        architectures.register(clash)
    arch = architectures.get("mlp")
    assert architectures.register(arch) is arch  # re-registering the same entry is harmless


@pytest.mark.parametrize(
    ("name", "input_shape", "feature_dim"),
    [
        ("mlp", (1, 8, 8), 128),
        ("mlp", (3, 4, 4), 128),
        ("small_cnn", (1, 8, 8), 64),
        ("small_cnn", (3, 32, 32), 64),
    ],
)
def test_forward_is_head_of_penultimate_features(name, input_shape, feature_dim):
    model = _seeded(architectures.build(name, num_classes=7, input_shape=input_shape))
    x = _inputs(input_shape)
    features = model.features(x)
    assert features.shape == (6, feature_dim)
    torch.testing.assert_close(model(x), model.head(features), rtol=0, atol=0)
    assert model(x).shape == (6, 7)


@pytest.mark.parametrize("name", ["mlp", "small_cnn"])
def test_build_from_state_dict_reproduces_outputs(name):
    # build() makes float32 modules, so the source is float32 too and outputs must agree bit for bit.
    original = _seeded(architectures.build(name, num_classes=10, input_shape=(1, 8, 8)), dtype=torch.float32)
    rebuilt = architectures.build(
        name, num_classes=10, input_shape=(1, 8, 8), state_dict=original.state_dict()
    )
    x = _inputs((1, 8, 8), dtype=torch.float32)
    torch.testing.assert_close(rebuilt.eval()(x), original(x), rtol=0, atol=0)


def test_build_takes_layer_widths_from_a_channel_pruned_small_cnn_checkpoint():
    pruned = _seeded(SmallCNN(in_channels=3, num_classes=10, widths=(5, 7, 9)), dtype=torch.float32)
    rebuilt = architectures.build(
        "small_cnn", num_classes=10, input_shape=(3, 16, 16), state_dict=pruned.state_dict()
    )
    assert rebuilt.widths == (5, 7, 9)
    x = _inputs((3, 16, 16), dtype=torch.float32)
    torch.testing.assert_close(rebuilt.eval()(x), pruned(x), rtol=0, atol=0)


def test_build_takes_hidden_widths_from_a_pruned_mlp_checkpoint():
    pruned = _seeded(MLP(in_features=64, num_classes=10, hidden=(17, 9)))
    rebuilt = architectures.build(
        "mlp", num_classes=10, input_shape=(1, 8, 8), state_dict=pruned.state_dict()
    )
    assert (rebuilt.fc1.out_features, rebuilt.fc2.out_features) == (17, 9)


def test_build_with_the_wrong_input_shape_names_key_and_both_shapes():
    checkpoint = MLP(in_features=16, num_classes=10).state_dict()
    expected = r"shape mismatch at 'fc1.weight': checkpoint \(128, 16\), architecture \(128, 64\)"
    with pytest.raises(ArchitectureError, match=expected):
        architectures.build("mlp", num_classes=10, input_shape=(1, 8, 8), state_dict=checkpoint)


def test_build_with_the_wrong_number_of_classes_reports_the_head_shapes():
    checkpoint = SmallCNN(in_channels=1, num_classes=10).state_dict()
    expected = r"shape mismatch at 'head.weight': checkpoint \(10, 64\), architecture \(5, 64\)"
    with pytest.raises(ArchitectureError, match=expected):
        architectures.build("small_cnn", num_classes=5, input_shape=(1, 8, 8), state_dict=checkpoint)


def test_load_weights_shape_mismatch_names_key_and_both_shapes():
    model = SmallCNN(in_channels=1, num_classes=10, widths=(32, 32, 64))
    checkpoint = SmallCNN(in_channels=1, num_classes=10).state_dict()
    expected = r"shape mismatch at 'conv1.weight': checkpoint \(16, 1, 3, 3\), architecture \(32, 1, 3, 3\)"
    with pytest.raises(ArchitectureError, match=expected):
        architectures.load_weights(model, checkpoint)


def test_load_weights_reports_the_first_missing_key():
    checkpoint = MLP(in_features=64, num_classes=10).state_dict()
    del checkpoint["fc2.bias"]
    with pytest.raises(ArchitectureError, match=r"checkpoint lacks 'fc2.bias'"):
        architectures.load_weights(MLP(in_features=64, num_classes=10), checkpoint)


def test_load_weights_reports_unexpected_keys_with_escaped_names():
    checkpoint = MLP(in_features=64, num_classes=10).state_dict()
    checkpoint["evil\nkey"] = torch.zeros(1)
    with pytest.raises(ArchitectureError, match=r"1 key\(s\) the architecture lacks, first 'evil\\nkey'"):
        architectures.load_weights(MLP(in_features=64, num_classes=10), checkpoint)


def test_load_weights_rejects_non_tensor_values():
    checkpoint = dict(MLP(in_features=64, num_classes=10).state_dict())
    checkpoint["head.bias"] = [0.0] * 10
    with pytest.raises(ArchitectureError, match=r"'head.bias' is a list, not a tensor"):
        architectures.load_weights(MLP(in_features=64, num_classes=10), checkpoint)


def test_load_weights_ignores_prune_masks_and_tolerates_missing_num_batches_tracked():
    source = _seeded(SmallCNN(in_channels=1, num_classes=3))
    checkpoint = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    checkpoint["conv1.weight_mask"] = torch.ones_like(checkpoint["conv1.weight"])
    target = SmallCNN(in_channels=1, num_classes=3).double()
    architectures.load_weights(target, checkpoint)
    torch.testing.assert_close(target.conv1.weight, source.conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(target.bn3.running_var, source.bn3.running_var, rtol=0, atol=0)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "_orig_mod.module."])
def test_wrapper_prefixes_are_stripped_before_loading(prefix):
    source = _seeded(MLP(in_features=64, num_classes=10), dtype=torch.float32)
    checkpoint = {prefix + k: v for k, v in source.state_dict().items()}
    rebuilt = architectures.build("mlp", num_classes=10, input_shape=(1, 8, 8), state_dict=checkpoint)
    x = _inputs((1, 8, 8), dtype=torch.float32)
    torch.testing.assert_close(rebuilt(x), source(x), rtol=0, atol=0)


def test_data_parallel_state_dict_loads():
    source = MLP(in_features=64, num_classes=10)
    checkpoint = nn.DataParallel(source).state_dict()
    assert all(k.startswith("module.") for k in checkpoint)
    rebuilt = architectures.build("mlp", num_classes=10, input_shape=(1, 8, 8), state_dict=checkpoint)
    torch.testing.assert_close(rebuilt.head.weight, source.head.weight, rtol=0, atol=0)


def test_normalize_keys_refuses_keys_that_collide_after_stripping():
    with pytest.raises(ArchitectureError, match="collide"):
        architectures.normalize_keys({"fc.weight": torch.zeros(1), "module.fc.weight": torch.zeros(1)})


@pytest.mark.parametrize(
    ("state_dict", "expected"),
    [
        (MLP(in_features=64, num_classes=10).state_dict(), 10),
        ({"module." + k: v for k, v in SmallCNN(in_channels=3, num_classes=7).state_dict().items()}, 7),
        # Sorted keys, as safetensors returns them: the head is not the last 2-D weight.
        (
            {
                "fc.weight": torch.zeros(100, 8),
                "fc.bias": torch.zeros(100),
                "layer1.weight": torch.zeros(8, 8),
            },
            100,
        ),
        # VGG-style classifier: the last by natural order, even with two-digit indices.
        ({f"classifier.{i}.weight": torch.zeros(o, 4) for i, o in [(10, 5), (3, 4), (6, 4)]}, 5),
        ({"head.weight_orig": torch.zeros(4, 3), "head.weight_mask": torch.ones(4, 3)}, 4),
        ({"conv.weight": torch.zeros(8, 3, 3, 3), "bn.weight": torch.zeros(8)}, None),
    ],
    ids=["mlp", "small-cnn-data-parallel", "resnet-sorted", "vgg-classifier", "prune-orig", "no-linear"],
)
def test_infer_num_classes_reads_the_head(state_dict, expected):
    assert architectures.infer_num_classes(state_dict) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 0, "input_shape": (1, 8, 8)}, "num_classes must be a positive integer"),
        ({"num_classes": True, "input_shape": (1, 8, 8)}, "num_classes must be a positive integer"),
        ({"num_classes": 10, "input_shape": ()}, "input_shape must be a non-empty tuple"),
        ({"num_classes": 10, "input_shape": (1, 0, 8)}, "input_shape must be a non-empty tuple"),
    ],
)
def test_build_validates_its_arguments(kwargs, message):
    with pytest.raises(ArchitectureError, match=message):
        architectures.build("mlp", **kwargs)


def test_small_cnn_needs_a_three_dimensional_image_shape():
    with pytest.raises(ArchitectureError, match=r"small_cnn needs input_shape \(C, H, W\).*\(64,\)"):
        architectures.build("small_cnn", num_classes=10, input_shape=(64,))
