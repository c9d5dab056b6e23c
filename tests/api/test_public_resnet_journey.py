"""Issue 3's acceptance path: a CIFAR ResNet-20 as researchers share it, its magnitude-pruned copy made
with ``torch.nn.utils.prune``, and a channel-pruned copy, uploaded as files through the API."""

from __future__ import annotations

import io

import pytest
import torch
from torch.nn.utils import prune

from tests.api.conftest import upload
from workers.architectures import build


def _trained_like_resnet20(seed: int = 0) -> torch.nn.Module:
    """A resnet20 with no exact zero anywhere (as a trained checkpoint has), in eval mode."""
    torch.manual_seed(seed)
    model = build("resnet20", num_classes=10, input_shape=(3, 32, 32))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p) + 1e-3)
    return model.eval()


def _save(obj, *, legacy: bool) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_public_resnet20_checkpoint_wrapped_and_module_prefixed(client, legacy):
    # the layout of the widely shared CIFAR-10 ResNet-20 files: a dict with the weights under
    # "state_dict", keys prefixed by DataParallel's "module.", and the best accuracy alongside
    sd = {f"module.{k}": v for k, v in _trained_like_resnet20().state_dict().items()}
    data = _save({"state_dict": sd, "best_prec1": 91.73}, legacy=legacy)
    resp = upload(client, data, architecture="resnet20", filename="resnet20-12fca82f.th")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["format"] == "torch_zip" if not legacy else body["format"] != "torch_zip"
    assert body["parameter_count"] == 269_722
    assert body["num_classes"] == 10 and body["input_shape"] == [3, 32, 32]
    assert body["sparsity"] == 0.0
    assert body["metadata"]["best_prec1"] == pytest.approx(91.73)


def test_magnitude_pruned_copy_shows_true_sparsity_per_layer(client):
    model = _trained_like_resnet20()
    convs = [(m, "weight") for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    prune.global_unstructured(convs, pruning_method=prune.L1Unstructured, amount=0.7)
    sd = model.state_dict()
    assert any(k.endswith("weight_mask") for k in sd)  # the file holds weight_orig + weight_mask
    resp = upload(client, _save(sd, legacy=False), architecture="resnet20", name="gm70")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["metadata"]["mask"] == "from torch.nn.utils.prune"
    conv_weights = {k: v for k, v in body["layer_sparsity"].items() if k.endswith("conv1.weight")}
    total_zeros = sum(int((m.weight == 0).sum()) for m, _ in convs)
    assert sum(v["zeros"] for k, v in body["layer_sparsity"].items() if "conv" in k) == total_zeros
    assert conv_weights and all(0.0 < v["sparsity"] < 1.0 for v in conv_weights.values())
    conv_total = sum(m.weight.numel() for m, _ in convs)
    assert body["sparsity"] == pytest.approx(total_zeros / 269_722, abs=1e-6)
    assert total_zeros == round(0.7 * conv_total)


def test_channel_pruned_copy_loads_with_its_smaller_layers(client):
    model = _trained_like_resnet20()
    sd = dict(model.state_dict())
    for block in [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]:
        width = sd[f"{block}.conv1.weight"].shape[0]
        kept = torch.arange(width // 2)  # remove half of each block's inner channels
        sd[f"{block}.conv1.weight"] = sd[f"{block}.conv1.weight"][kept]
        for part in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{block}.bn1.{part}"] = sd[f"{block}.bn1.{part}"][kept]
        sd[f"{block}.conv2.weight"] = sd[f"{block}.conv2.weight"][:, kept]
    resp = upload(client, _save(sd, legacy=False), architecture="resnet20", name="channels50")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["parameter_count"] < 269_722 * 0.6
    assert body["layer_sparsity"]["layer1.0.conv1.weight"]["numel"] == 8 * 16 * 9
