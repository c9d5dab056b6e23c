from __future__ import annotations

from dashboard.figures.sparsity import layer_sparsity_heatmap, weight_layers


def _ckpt(cid, name, layers):
    return {"id": cid, "name": name, "layer_sparsity": layers}


DENSE = _ckpt(
    1,
    "dense",
    {
        "conv1.weight": {"numel": 100, "zeros": 0, "sparsity": 0.0},
        "bn1.weight": {"numel": 1, "zeros": 0, "sparsity": 0.0},
        "head.weight": {"numel": 50, "zeros": 0, "sparsity": 0.0},
        "head.bias": {"numel": 5, "zeros": 0, "sparsity": 0.0},
    },
)
PRUNED = _ckpt(
    2,
    "<b>pruned</b>",
    {
        "conv1.weight": {"numel": 100, "zeros": 80, "sparsity": 0.8},
        "head.weight": {"numel": 50, "zeros": 25, "sparsity": 0.5},
        "extra.weight": {"numel": 10, "zeros": 0, "sparsity": 0.0},
    },
)


def test_rows_are_weight_tensors_in_first_seen_order():
    assert weight_layers([DENSE, PRUNED]) == ["conv1.weight", "head.weight", "extra.weight"]


def test_heatmap_has_one_column_per_checkpoint_a_fixed_scale_and_blank_for_absent_layers():
    fig = layer_sparsity_heatmap([DENSE, PRUNED])
    heat = fig.data[0]
    assert (heat.zmin, heat.zmax) == (0.0, 1.0)
    assert list(heat.x) == ["dense (#1)", "&lt;b&gt;pruned&lt;/b&gt; (#2)"]
    assert [list(r) for r in heat.z] == [[0.0, 0.8], [0.0, 0.5], [None, 0.0]]
    assert heat.text[0][1] == "80 of 100 zero" and heat.text[2][0] == "absent"


def test_nothing_to_show_gives_a_placeholder():
    fig = layer_sparsity_heatmap([])
    assert not fig.data and "no per-layer sparsity" in fig.layout.annotations[0].text
