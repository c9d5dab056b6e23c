"""CIFAR ResNets and VGGs, structured-pruned rebuilds, third-party zoos and operator entry points."""

from __future__ import annotations

import io
import logging
import sys
import types
from importlib import metadata

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workers import architectures
from workers.architectures import Architecture, ArchitectureError, ZooModel, external, registry

CIFAR = (3, 32, 32)
RESNETS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9}


def _seeded(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """float64, random weights and non-trivial BatchNorm statistics, deterministic for ``seed``, eval mode."""
    gen = torch.Generator().manual_seed(seed)
    model = model.double()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            values = torch.randn(tensor.shape, generator=gen, dtype=torch.float64)
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            tensor.copy_(values * 0.5)
    return model.eval()


def _inputs(shape=CIFAR, *, n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _rebuild(name: str, state_dict, *, num_classes: int = 10, input_shape=CIFAR) -> nn.Module:
    """build() sizes and loads in float32; reload in float64 so outputs compare to 1e-12."""
    model = architectures.build(name, num_classes=num_classes, input_shape=input_shape, state_dict=state_dict)
    model = model.double()
    architectures.load_weights(model, state_dict)
    return model.eval()


def _resnet_parameters(blocks: int, classes: int) -> int:
    """Closed form: stem conv + BN, each block two 3x3 convs + two BNs, linear head (no shortcut weights)."""
    total = 3 * 16 * 9 + 2 * 16
    previous = 16
    for width in (16, 32, 64):
        for _ in range(blocks):
            total += 9 * previous * width + 2 * width + 9 * width * width + 2 * width
            previous = width
    return total + 64 * classes + classes


def _option_a_reference(sd: dict, x: torch.Tensor, blocks: int) -> torch.Tensor:
    """akamaster/pytorch_resnet_cifar10's forward written functionally on its state_dict keys."""

    def bn(t, key):
        return F.batch_norm(
            t, sd[f"{key}.running_mean"], sd[f"{key}.running_var"], sd[f"{key}.weight"], sd[f"{key}.bias"]
        )

    out = F.relu(bn(F.conv2d(x, sd["conv1.weight"], padding=1), "bn1"))
    for stage in (1, 2, 3):
        for b in range(blocks):
            key, stride = f"layer{stage}.{b}", (2 if stage > 1 and b == 0 else 1)
            y = F.relu(bn(F.conv2d(out, sd[f"{key}.conv1.weight"], stride=stride, padding=1), f"{key}.bn1"))
            y = bn(F.conv2d(y, sd[f"{key}.conv2.weight"], padding=1), f"{key}.bn2")
            planes = y.shape[1]
            if (
                stride == 2
            ):  # LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes//4, planes//4)))
                out = F.pad(out[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))
            out = F.relu(y + out)
    out = F.avg_pool2d(out, out.size(3)).flatten(1)
    return F.linear(out, sd["linear.weight"], sd["linear.bias"])


# ------------------------------------------------------------------------------------------------ resnets


@pytest.mark.parametrize(
    ("name", "classes", "expected"),
    [
        ("resnet20", 10, 269_722),
        ("resnet32", 10, 464_154),
        ("resnet44", 10, 658_586),
        ("resnet56", 10, 853_018),
        ("resnet20", 100, 275_572),
        ("resnet32", 100, 470_004),
        ("resnet44", 100, 664_436),
        ("resnet56", 100, 858_868),
    ],
)
def test_cifar_resnet_parameter_counts_match_the_paper(name, classes, expected):
    model = architectures.build(name, num_classes=classes, input_shape=CIFAR)
    assert (
        sum(p.numel() for p in model.parameters()) == expected == _resnet_parameters(RESNETS[name], classes)
    )


@pytest.mark.parametrize("name", sorted(RESNETS))
def test_cifar_resnet_forward_is_linear_head_of_64_pooled_features(name):
    assert architectures.get(name).default_input_shape == CIFAR
    model = _seeded(architectures.build(name, num_classes=10, input_shape=CIFAR))
    x = _inputs(n=2)
    features = model.features(x)
    assert features.shape == (2, 64)
    assert model.head is model.linear
    torch.testing.assert_close(model(x), model.linear(features), rtol=0, atol=0)


def test_resnet20_keys_are_the_akamaster_layout_with_parameter_free_shortcuts():
    keys = set(architectures.build("resnet20", num_classes=10, input_shape=CIFAR).state_dict())
    assert {"conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer3.2.bn2.bias"} <= keys
    assert {"linear.weight", "linear.bias"} <= keys
    assert not [k for k in keys if "shortcut" in k or "downsample" in k or k.startswith("layer4")]


@pytest.mark.parametrize(("name", "shape"), [("resnet20", CIFAR), ("resnet32", (3, 20, 20))])
def test_cifar_resnet_matches_an_option_a_reference_forward(name, shape):
    model = _seeded(architectures.build(name, num_classes=10, input_shape=shape))
    x = _inputs(shape)
    expected = _option_a_reference(model.state_dict(), x, RESNETS[name])
    torch.testing.assert_close(model(x), expected, rtol=1e-12, atol=1e-12)


def test_data_parallel_resnet20_checkpoint_loads_back_with_identical_outputs():
    source = _seeded(architectures.build("resnet20", num_classes=10, input_shape=CIFAR))
    buffer = io.BytesIO()
    torch.save({"module." + k: v for k, v in source.state_dict().items()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    assert architectures.infer_num_classes(checkpoint) == 10
    assert architectures.infer_input_shape("resnet20", checkpoint) == CIFAR
    x = _inputs()
    torch.testing.assert_close(_rebuild("resnet20", checkpoint)(x), source(x), rtol=0, atol=0)


def _prune_inner_widths(model: nn.Module, keep: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Slice each block's inner channels; return (pruned state_dict, dense state_dict with them zeroed)."""
    pruned, zeroed = dict(model.state_dict()), {k: v.clone() for k, v in model.state_dict().items()}
    for block, kept in keep.items():
        dropped = torch.ones(zeroed[f"{block}.bn1.weight"].shape[0], dtype=torch.bool)
        dropped[kept] = False
        pruned[f"{block}.conv1.weight"] = pruned[f"{block}.conv1.weight"][kept]
        for stat in ("weight", "bias", "running_mean", "running_var"):
            pruned[f"{block}.bn1.{stat}"] = pruned[f"{block}.bn1.{stat}"][kept]
        pruned[f"{block}.conv2.weight"] = pruned[f"{block}.conv2.weight"][:, kept]
        zeroed[f"{block}.conv1.weight"][dropped] = 0.0
        zeroed[f"{block}.bn1.weight"][dropped] = 0.0
        zeroed[f"{block}.bn1.bias"][dropped] = 0.0
    return pruned, zeroed


def test_channel_pruned_resnet20_rebuilds_and_matches_the_dense_model_with_those_channels_zeroed():
    # Given a resnet20 whose every block keeps a different, non-contiguous subset of its inner channels
    source = _seeded(architectures.build("resnet20", num_classes=10, input_shape=CIFAR))
    gen = torch.Generator().manual_seed(3)
    keep = {}
    for stage, w in zip((1, 2, 3), (16, 32, 64), strict=True):
        for b in range(3):
            keep[f"layer{stage}.{b}"] = torch.randperm(w, generator=gen)[: w // 2 + b].sort().values
    pruned, zeroed = _prune_inner_widths(source, keep)
    # When both are rebuilt from their state_dicts
    small, dense = _rebuild("resnet20", pruned), _rebuild("resnet20", zeroed)
    # Then the pruned one has the smaller layers and computes the same function
    assert small.layer2[1].conv1.out_channels == 17 and small.layer2[1].conv2.in_channels == 17
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in dense.parameters())
    x = _inputs()
    torch.testing.assert_close(small(x), dense(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(small.features(x), dense.features(x), rtol=1e-10, atol=1e-10)


def test_resnet_stage_pruned_to_the_same_width_on_both_sides_of_a_downsampling_block():
    # Option A places layer2's 32 channels in the middle of layer3's 64 (16 zero channels each side).
    # Removing those 32 padding channels from the whole layer3 stream leaves an identity shortcut.
    source = _seeded(architectures.build("resnet20", num_classes=10, input_shape=CIFAR))
    keep = torch.arange(16, 48)
    pad = torch.ones(64, dtype=torch.bool)
    pad[keep] = False
    pruned, zeroed = dict(source.state_dict()), {k: v.clone() for k, v in source.state_dict().items()}
    for b in range(3):
        key = f"layer3.{b}"
        pruned[f"{key}.conv2.weight"] = pruned[f"{key}.conv2.weight"][keep]
        for stat in ("weight", "bias", "running_mean", "running_var"):
            pruned[f"{key}.bn2.{stat}"] = pruned[f"{key}.bn2.{stat}"][keep]
        zeroed[f"{key}.bn2.weight"][pad] = 0.0
        zeroed[f"{key}.bn2.bias"][pad] = 0.0
        if b > 0:
            pruned[f"{key}.conv1.weight"] = pruned[f"{key}.conv1.weight"][:, keep]
    pruned["linear.weight"] = pruned["linear.weight"][:, keep]
    small = _rebuild("resnet20", pruned)
    assert small.layer3[0].shortcut.before == small.layer3[0].shortcut.after == 0
    assert small.features(_inputs()).shape == (3, 32)
    x = _inputs()
    torch.testing.assert_close(small(x), _rebuild("resnet20", zeroed)(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    ("key", "keep"),
    [("layer2.1.conv2.weight", 30), ("layer3.0.conv2.weight", 31), ("layer3.0.conv2.weight", 16)],
    ids=["identity-block-narrower", "odd-padding", "downsampling-narrower"],
)
def test_resnet_widths_the_option_a_shortcut_cannot_add_raise_naming_the_key(key, keep):
    sd = dict(architectures.build("resnet20", num_classes=10, input_shape=CIFAR).state_dict())
    block = key.rsplit(".", 2)[0]
    sd[key] = sd[key][:keep]
    for stat in ("weight", "bias", "running_mean", "running_var"):
        sd[f"{block}.bn2.{stat}"] = sd[f"{block}.bn2.{stat}"][:keep]
    with pytest.raises(ArchitectureError, match=rf"at '{key}': a block with {keep} output channels"):
        architectures.build("resnet20", num_classes=10, input_shape=CIFAR, state_dict=sd)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"num_classes": 100},
            r"shape mismatch at 'linear.weight': checkpoint \(10, 64\), architecture \(100, 64\)",
        ),
        (
            {"input_shape": (1, 32, 32)},
            r"shape mismatch at 'conv1.weight': checkpoint \(16, 3, 3, 3\), architecture \(16, 1, 3, 3\)",
        ),
    ],
)
def test_resnet_shape_mismatch_names_the_key_and_both_shapes(kwargs, expected):
    checkpoint = architectures.build("resnet20", num_classes=10, input_shape=CIFAR).state_dict()
    args = {"num_classes": 10, "input_shape": CIFAR, **kwargs}
    with pytest.raises(ArchitectureError, match=expected):
        architectures.build("resnet20", state_dict=checkpoint, **args)


def test_resnet56_checkpoint_does_not_load_as_resnet20():
    checkpoint = architectures.build("resnet56", num_classes=10, input_shape=CIFAR).state_dict()
    with pytest.raises(ArchitectureError, match=r"lacks, first 'layer1.3.conv1.weight'"):
        architectures.build("resnet20", num_classes=10, input_shape=CIFAR, state_dict=checkpoint)


# --------------------------------------------------------------------------------------------------- vggs


def _kuangliu(state_dict: dict) -> dict:
    """The same trunk with kuangliu/pytorch-cifar's single ``classifier`` Linear(512, C)."""
    out = {k: v for k, v in state_dict.items() if not k.startswith("classifier.")}
    out["classifier.weight"] = state_dict["classifier.6.weight"][:, :512].clone()
    out["classifier.bias"] = state_dict["classifier.6.bias"].clone()
    return out


@pytest.mark.parametrize(
    ("name", "classes", "chenyaofo", "kuangliu"),
    [
        ("vgg11_bn", 10, 9_756_426, 9_231_114),
        ("vgg16_bn", 10, 15_253_578, 14_728_266),
        ("vgg11_bn", 100, 9_802_596, 9_277_284),
        ("vgg16_bn", 100, 15_299_748, 14_774_436),
    ],
)
def test_vgg_parameter_counts_for_both_layouts(name, classes, chenyaofo, kuangliu):
    # chenyaofo/pytorch-cifar-models lists 9.76M and 15.25M parameters for its CIFAR-10 vgg11_bn and vgg16_bn.
    model = architectures.build(name, num_classes=classes, input_shape=CIFAR)
    assert sum(p.numel() for p in model.parameters()) == chenyaofo
    single = architectures.build(
        name, num_classes=classes, input_shape=CIFAR, state_dict=_kuangliu(model.state_dict())
    )
    assert isinstance(single.classifier, nn.Linear)
    assert sum(p.numel() for p in single.parameters()) == kuangliu


@pytest.mark.parametrize("name", ["vgg11_bn", "vgg16_bn"])
def test_vgg_features_are_the_input_of_the_last_linear_and_keys_are_features_n(name):
    model = _seeded(architectures.build(name, num_classes=10, input_shape=CIFAR))
    keys = list(model.state_dict())
    assert keys[0] == "features.0.weight" and keys[-1] == "classifier.6.bias"
    assert model.head is model.classifier[6] and isinstance(model.trunk, nn.Sequential)
    x = _inputs(n=2)
    torch.testing.assert_close(model(x), model.head(model.features(x)), rtol=0, atol=0)
    assert model.features(x).shape == (2, 512)
    # At 32x32 the trunk leaves 1x1 maps, so global pooling equals the original's plain flatten.
    torch.testing.assert_close(model(x), model.classifier(model.trunk(x).flatten(1)), rtol=0, atol=0)


def test_kuangliu_vgg_layout_is_detected_and_reproduces_its_outputs():
    dense = _seeded(architectures.build("vgg11_bn", num_classes=10, input_shape=CIFAR))
    sd = _kuangliu(dense.state_dict())
    model = _rebuild("vgg11_bn", sd)
    x = _inputs(n=2)
    expected = F.linear(dense.trunk(x).flatten(1), sd["classifier.weight"], sd["classifier.bias"])
    torch.testing.assert_close(model(x), expected, rtol=1e-12, atol=1e-12)
    assert model.head is model.classifier and model.features(x).shape == (2, 512)


def test_channel_pruned_vgg_rebuilds_with_the_widths_of_its_state_dict():
    sd = dict(_seeded(architectures.build("vgg11_bn", num_classes=10, input_shape=CIFAR)).state_dict())
    keep = torch.arange(0, 128, 2)  # halve the second conv (features.4), feeding features.8
    sd["features.4.weight"], sd["features.4.bias"] = (
        sd["features.4.weight"][keep],
        sd["features.4.bias"][keep],
    )
    for stat in ("weight", "bias", "running_mean", "running_var"):
        sd[f"features.5.{stat}"] = sd[f"features.5.{stat}"][keep]
    sd["features.8.weight"] = sd["features.8.weight"][:, keep]
    sd["classifier.0.weight"], sd["classifier.0.bias"] = (
        sd["classifier.0.weight"][:100],
        sd["classifier.0.bias"][:100],
    )
    sd["classifier.3.weight"] = sd["classifier.3.weight"][:, :100]
    model = _rebuild("vgg11_bn", sd)
    assert model.trunk[4].out_channels == 64 and model.trunk[8].in_channels == 64
    assert model.classifier[0].out_features == 100
    assert model(_inputs(n=2)).shape == (2, 10)


def test_vgg_needs_images_of_at_least_32_pixels():
    with pytest.raises(ArchitectureError, match=r"vgg16_bn needs input_shape \(C, H, W\) with H, W >= 32"):
        architectures.build("vgg16_bn", num_classes=10, input_shape=(3, 16, 16))


# ------------------------------------------------------------------------------------------- inference


@pytest.mark.parametrize(
    ("name", "state_dict", "expected"),
    [
        ("resnet20", {"conv1.weight": torch.zeros(16, 1, 3, 3)}, (1, 32, 32)),
        ("vgg16_bn", {"module.features.0.weight": torch.zeros(64, 3, 3, 3)}, (3, 32, 32)),
        ("small_cnn", {"conv1.weight": torch.zeros(16, 3, 3, 3)}, (3, 8, 8)),
        ("mlp", {"fc1.weight": torch.zeros(128, 64)}, (1, 8, 8)),
        ("mlp", {"fc1.weight": torch.zeros(128, 3072)}, (3, 32, 32)),
        ("mlp", {"fc1.weight": torch.zeros(128, 50)}, None),
        ("resnet20", {"linear.weight": torch.zeros(10, 64)}, None),
    ],
    ids=[
        "resnet-gray",
        "vgg-prefixed",
        "small-cnn-rgb",
        "mlp-digits",
        "mlp-cifar",
        "mlp-not-square",
        "no-conv",
    ],
)
def test_infer_input_shape_reads_the_first_layer(name, state_dict, expected):
    assert architectures.infer_input_shape(name, state_dict) == expected


@pytest.mark.parametrize("name", ["resnet56", "vgg16_bn"])
def test_infer_num_classes_reads_cifar_heads_in_sorted_key_order(name):
    sd = architectures.build(name, num_classes=100, input_shape=CIFAR).state_dict()
    assert architectures.infer_num_classes(dict(sorted(sd.items()))) == 100


def test_unknown_architecture_error_lists_every_built_in_name():
    pattern = (
        r"unknown architecture 'resnet21'; known: mlp, resnet20, resnet32, resnet44, resnet56, small_cnn, "
    )
    with pytest.raises(ArchitectureError, match=pattern + r"vgg11_bn, vgg16_bn"):
        architectures.get("resnet21")


# -------------------------------------------------------------------------------------- entry points


def _plugin_factory(*, num_classes: int, input_shape: tuple[int, ...], state_dict=None) -> nn.Module:
    return architectures.MLP(in_features=4, num_classes=num_classes, hidden=(3, 3))


PLUGIN = Architecture(
    name="plugin_mlp", description="operator's", default_input_shape=(4,), factory=_plugin_factory
)
NOT_AN_ARCHITECTURE = 42
CLASHING = Architecture(
    name="resnet20", description="impostor", default_input_shape=(4,), factory=_plugin_factory
)


def _plugin_pair() -> list[Architecture]:
    return [
        Architecture(name=n, description="pair", default_input_shape=(4,), factory=_plugin_factory)
        for n in ("plugin_a", "plugin_b")
    ]


@pytest.fixture
def entry_points(monkeypatch):
    """Install fake ``prunescope.architectures`` entry points; registrations are undone afterwards."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(external, "_entry_points_loaded", False)

    def install(**values: str) -> None:
        points = [metadata.EntryPoint(name, value, external.GROUP) for name, value in values.items()]

        def fake(*, group: str):
            return [ep for ep in points if ep.group == group]

        monkeypatch.setattr(metadata, "entry_points", fake)

    return install


def test_entry_point_architectures_register_at_the_first_lookup(entry_points):
    entry_points(plugin=f"{__name__}:PLUGIN", pair=f"{__name__}:_plugin_pair")
    assert {"plugin_mlp", "plugin_a", "plugin_b", "resnet20"} <= set(architectures.names())
    model = architectures.build("plugin_mlp", num_classes=2, input_shape=(4,))
    assert model(torch.zeros(1, 4)).shape == (1, 2)
    assert architectures.get("plugin_b").description == "pair"


def test_broken_entry_points_are_skipped_with_a_warning(entry_points, caplog):
    entry_points(
        missing="prunescope_no_such_plugin:ARCH",
        number=f"{__name__}:NOT_AN_ARCHITECTURE",
        clash=f"{__name__}:CLASHING",
        good=f"{__name__}:PLUGIN",
    )
    with caplog.at_level(logging.WARNING, logger=external.__name__):
        assert "plugin_mlp" in architectures.names()
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(skipped) == 3
    assert "'missing'" in skipped[0] and "ModuleNotFoundError" in skipped[0]
    assert "'number'" in skipped[1] and "not an Architecture" in skipped[1]
    assert "'clash'" in skipped[2] and "already registered" in skipped[2]
    assert architectures.get("resnet20").description != "impostor"


# ---------------------------------------------------------------------------------------------- zoos


class _TinyZooNet(nn.Module):
    """Stands in for a torchvision/timm classifier: a ``features`` child (as in torchvision's VGG), ``fc``."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.scale = nn.Parameter(torch.ones(()))
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1) * self.scale)


def _install_fake_zoos(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    tv, tv_models, timm = (types.ModuleType(n) for n in ("torchvision", "torchvision.models", "timm"))
    tv_models.list_models = lambda module=None: ["tiny"]

    def get_model(name, *, weights, num_classes):
        calls.append(("torchvision", name, weights, num_classes))
        return _TinyZooNet(num_classes)

    def create_model(name, *, pretrained, num_classes):
        calls.append(("timm", name, pretrained, num_classes))
        return _TinyZooNet(num_classes)

    tv_models.get_model, tv.models = get_model, tv_models
    timm.list_models, timm.create_model = lambda: ["tiny_vit"], create_model
    for module in (tv, tv_models, timm):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    return calls


def test_zoo_names_are_listed_only_when_the_package_imports(monkeypatch):
    for missing in ("torchvision", "torchvision.models", "timm"):
        monkeypatch.setitem(sys.modules, missing, None)  # import raises ImportError, installed or not
    assert not [n for n in architectures.names() if n.startswith(("torchvision.", "timm."))]
    with pytest.raises(
        ArchitectureError, match=r"unknown architecture 'torchvision.tiny'.*torchvision is not installed"
    ):
        architectures.get("torchvision.tiny")
    _install_fake_zoos(monkeypatch)
    assert {"torchvision.tiny", "timm.tiny_vit"} <= set(architectures.names())
    assert architectures.get("timm.tiny_vit").default_input_shape == (3, 224, 224)
    with pytest.raises(ArchitectureError, match=r"timm has no model 'nope'"):
        architectures.get("timm.nope")


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("torchvision.tiny", ("torchvision", "tiny", None, 5)),
        ("timm.tiny_vit", ("timm", "tiny_vit", False, 5)),
    ],
)
def test_zoo_models_gain_features_and_head_with_their_own_state_dict_keys(monkeypatch, name, call):
    calls = _install_fake_zoos(monkeypatch)
    source = _seeded(_TinyZooNet(5))
    model = architectures.build(name, num_classes=5, input_shape=(3, 8, 8), state_dict=source.state_dict())
    assert calls == [call] and isinstance(model, ZooModel)
    assert list(model.state_dict()) == list(source.state_dict())  # no wrapper prefix
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in source.named_parameters()]
    model = model.double().eval()
    architectures.load_weights(model, source.state_dict())  # build() loaded float32
    assert not model.net.training and not model.net.features[1].training
    x = _inputs((3, 8, 8))
    torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)
    assert model.head is model.net.fc and model.features(x).shape == (3, 4)
    torch.testing.assert_close(model.head(model.features(x)), model(x), rtol=0, atol=0)
