"""Robustness figures, the robustness tab and its data helpers, from synthetic summaries and artifacts
(built here with numpy, with known answers) and once end to end on the digits data set."""

from __future__ import annotations

import base64
import importlib
import io

import numpy as np
import pytest
from dash import html
from dash.development.base_component import Component
from PIL import Image

from dashboard import data, state
from dashboard.components import robustness as view
from dashboard.figures import robustness as figs
from dashboard.figures.common import CheckpointSummary, checkpoint_colors

CORRUPTIONS = ("gaussian_noise", "contrast")
SEVERITIES = (1, 3, 5)


def walk(node):
    if isinstance(node, (list, tuple)):
        for child in node:
            yield from walk(child)
    elif isinstance(node, Component):
        yield node
        yield from walk(getattr(node, "children", None))


def ids_in(tree) -> set:
    return {getattr(c, "id", None) for c in walk(tree)} - {None}


def summary(clean=0.9, drop=0.1, **extra) -> dict:
    """Accuracy ``clean - drop * severity`` for gaussian noise, ``clean - drop`` for contrast."""
    table = {
        "gaussian_noise": {str(s): {"accuracy": clean - drop * s, "mean_margin": 1.0} for s in SEVERITIES},
        "contrast": {str(s): {"accuracy": clean - drop} for s in SEVERITIES},
    }
    return {
        "clean": {"accuracy": clean, "mean_margin": 2.0, "mean_angle": 0.5},
        "corruptions": table,
        "corruption_names": list(CORRUPTIONS),
        "severities": list(SEVERITIES),
        "mean_corruption_accuracy": clean - drop * 2,
        "relative_robustness": 0.8,
        "neural_collapse": {"nc1": 0.5, "nc3": 0.2, "classes": 3},
        "dead_relu_rate": {"relu1": 0.25, "relu2": 0.5},
        "robust_samples": 10,
        "fragile_samples": 5,
        "n_samples": 30,
        "images_per_second": 1234.5,
        "seed": 0,
        **extra,
    }


def entries(*summaries: dict) -> list[CheckpointSummary]:
    return [CheckpointSummary(i + 1, f"c{i + 1}", s) for i, s in enumerate(summaries)]


def geometry(n=30, seed=0, classes=3, conditions=("clean", "gaussian_noise/3", "contrast/1")) -> dict:
    """A geometry artifact: angle and norm encode the sample index, so a click can be checked."""
    rng = np.random.default_rng(seed)
    k = len(conditions)
    idx = np.arange(n, dtype=np.float32)
    margin = rng.normal(size=(k, n)).astype(np.float32)
    return {
        "labels": np.arange(n) % classes,
        "conditions": np.array(conditions),
        "prediction": np.zeros((k, n), dtype=np.int16),
        "correct": margin > 0,
        "angle": np.radians(np.tile(idx, (k, 1)) + 10 * np.arange(k)[:, None]).astype(np.float32),
        "feature_norm": np.tile(idx / 10, (k, 1)).astype(np.float32),
        "margin": margin,
        "clean_features": rng.normal(size=(n, 4)).astype(np.float16),
    }


# ----------------------------------------------------------------------------------------- summaries


def test_heatmap_cells_are_the_mean_over_severities_or_the_chosen_one():
    es = entries(summary(0.9, 0.1), summary(0.8, 0.05))
    fig = figs.accuracy_heatmap(es)
    heat = fig.data[0]
    assert list(heat.x) == ["clean", *CORRUPTIONS]
    assert heat.z[0][0] == pytest.approx(0.9)
    assert heat.z[0][1] == pytest.approx(np.mean([0.9 - 0.1 * s for s in SEVERITIES]))
    assert heat.z[1][1] == pytest.approx(np.mean([0.8 - 0.05 * s for s in SEVERITIES]))
    at5 = figs.accuracy_heatmap(es, severity=5).data[0]
    assert at5.z[0][1] == pytest.approx(0.9 - 0.5) and at5.z[0][0] == pytest.approx(0.9)


def test_heatmap_skips_missing_values_and_leaves_gaps():
    s = summary()
    s["corruptions"]["gaussian_noise"]["3"]["accuracy"] = None
    s["corruptions"]["contrast"] = {"1": {"accuracy": None}}
    z = figs.accuracy_heatmap(entries(s)).data[0].z[0]
    assert z[1] == pytest.approx(np.mean([0.9 - 0.1, 0.9 - 0.5])) and z[2] is None


def test_severity_curves_draw_one_line_per_checkpoint_per_corruption_from_clean():
    es = entries(summary(0.9, 0.1), summary(0.7, 0.1), summary(0.5, 0.0))
    fig = figs.severity_curves(es)
    assert len(fig.data) == len(es) * len(CORRUPTIONS)
    first = [t for t in fig.data if t.legendgroup == "1"]
    assert len(first) == len(CORRUPTIONS) and sum(bool(t.showlegend) for t in first) == 1
    noise = first[0]
    assert list(noise.x) == [0, *SEVERITIES]
    assert list(noise.y) == pytest.approx([0.9] + [0.9 - 0.1 * s for s in SEVERITIES])


def test_collapse_bars_show_the_float_keys_and_dead_relus_every_layer():
    es = entries(summary(), summary(neural_collapse={"nc1": None, "nc4": 0.1}, dead_relu_rate={"relu3": 1.0}))
    bars = figs.collapse_bars(es)
    assert [t.y for t in bars.data] == [(0.5, None), (0.2, None), (None, 0.1)]  # nc1, nc3, nc4; no classes
    dead = figs.dead_relu_heatmap(es).data[0]
    assert list(dead.x) == ["relu1", "relu2", "relu3"] and list(dead.z[1]) == [None, None, 1.0]


@pytest.mark.parametrize(
    "make",
    [
        lambda: figs.accuracy_heatmap([]),
        lambda: figs.severity_curves(entries({"clean": None, "corruptions": None})),
        lambda: figs.collapse_bars(entries({"neural_collapse": None})),
        lambda: figs.dead_relu_heatmap(entries({})),
        lambda: figs.angle_norm_grid(None, "contrast/1", "x"),
        lambda: figs.difference_scatter(geometry(), None, "clean", "a", "b"),
        lambda: figs.difference_scatter(geometry(), geometry(), "fog/9", "a", "b"),
        lambda: figs.checkpoint_embedding({}, {}, {}),
        lambda: figs.cka_heatmap(None, []),
    ],
)
def test_figures_without_data_say_so(make):
    fig = make()
    assert not fig.data and fig.layout.annotations[0].text


# ----------------------------------------------------------------------------------------- per sample


def test_angle_norm_panels_carry_the_sample_index_of_each_point():
    arrays = geometry(n=30, classes=3)
    fig = figs.angle_norm_grid(arrays, "contrast/1", "c1")
    assert len(fig.data) == 3 * 2  # clean and corrupted per class
    for trace in fig.data:
        idx = np.asarray(trace.customdata)[:, 0].astype(int)
        k = 0 if trace.name == "clean" else 2
        assert np.all(arrays["labels"][idx] == idx[0] % 3)
        assert np.allclose(trace.x, idx / 10) and np.allclose(trace.y, idx + 10 * k, atol=1e-3)
        assert np.array_equal(np.asarray(trace.customdata)[:, 1], arrays["correct"][k, idx])


def test_angle_norm_panels_hold_at_most_the_point_budget_and_the_same_samples_twice():
    arrays = geometry(n=3000, classes=2)
    fig = figs.angle_norm_grid(arrays, "gaussian_noise/3", "c1", max_points=200, max_classes=1)
    assert len(fig.data) == 2 and "first 1 of 2 classes" in fig.layout.title.text
    clean, other = (np.asarray(t.customdata)[:, 0] for t in fig.data)
    assert len(clean) + len(other) == 200 and np.array_equal(clean, other)


def test_flip_types_name_who_is_correct():
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    assert figs.flip_types(a, b).tolist() == [0, 1, 2, 3]
    assert [figs.FLIP_NAMES[t] for t in figs.flip_types(a, b)] == list(figs.FLIP_NAMES)


def test_difference_scatter_keeps_every_flip_and_counts_them():
    a, b = geometry(n=500, seed=1), geometry(n=400, seed=2)  # B ran on fewer samples: shared prefix
    fig = figs.difference_scatter(a, b, "contrast/1", "A", "B", max_points=300)
    types = figs.flip_types(a["correct"][2, :400], b["correct"][2, :400])
    flips = np.flatnonzero((types == 1) | (types == 2))
    shown = {int(t.customdata[0][1]): np.asarray(t.customdata)[:, 0] for t in fig.data if len(t.x)}
    assert 0 < len(flips) < 300 < 400
    assert sorted(np.concatenate([shown.get(1, []), shown.get(2, [])]).tolist()) == flips.tolist()
    assert sum(len(v) for v in shown.values()) == 300
    for t, trace in enumerate(fig.data):
        assert trace.name.endswith(f"({np.sum(types == t):,})")
        idx = np.asarray(trace.customdata)[:, 0].astype(int) if len(trace.x) else np.array([], int)
        assert np.allclose(trace.x, a["margin"][2, idx]) and np.allclose(trace.y, b["margin"][2, idx])


def test_pca_of_identical_checkpoints_collapses_to_one_point():
    vector = np.random.default_rng(0).normal(size=50)
    coords, method, _ = figs.embed_2d(np.stack([vector] * 4), "pca")
    assert method == "PCA" and np.allclose(coords, coords[0])
    fig = figs.checkpoint_embedding({i: vector for i in (1, 2, 3)}, {1: "a", 2: "b", 3: "c"}, {}, "margin")
    assert len({(t.x[0], t.y[0]) for t in fig.data}) == 1
    assert [t.customdata[0] for t in fig.data] == [1, 2, 3]


def test_pca_places_points_by_their_distances():
    # three points on a line: the middle one lies halfway, the second axis carries nothing
    coords, _, explained = figs.embed_2d(np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0]]), "pca")
    assert np.allclose(coords[:, 1], 0) and explained[0] == pytest.approx(1.0)
    assert np.linalg.norm(coords[0] - coords[1]) == pytest.approx(np.sqrt(5))
    assert np.allclose(coords[1], (coords[0] + coords[2]) / 2)


def test_pca_equals_the_svd_of_the_centred_matrix():
    matrix = np.random.default_rng(3).normal(size=(7, 300)) * np.linspace(3, 1, 300)
    coords, _, explained = figs.embed_2d(matrix, "pca")
    centred = matrix - matrix.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    assert np.allclose(np.abs(coords), np.abs(u[:, :2] * s[:2]))
    assert explained == pytest.approx(list(s[:2] ** 2 / np.sum(s**2)))


def test_sample_vectors_use_the_shared_conditions_and_samples():
    a = geometry(n=20, conditions=("clean", "contrast/1", "gaussian_noise/3"))
    b = geometry(n=10, conditions=("clean", "gaussian_noise/3"))
    vectors = figs.sample_vectors({1: a, 2: b}, "angle")
    assert vectors[1].shape == vectors[2].shape == (2 * 10,)
    assert np.allclose(vectors[1], np.concatenate([a["angle"][0, :10], a["angle"][2, :10]]))


def test_cka_is_one_on_the_diagonal_and_for_a_rotated_copy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    features = [x, 3 * x @ q, rng.normal(size=(200, 9))]  # widths differ; the last has fewer samples
    matrix = figs.cka_from_features(features, max_samples=150)
    assert matrix.shape == (3, 3) and np.allclose(np.diag(matrix), 1) and np.allclose(matrix, matrix.T)
    assert matrix[0, 1] == pytest.approx(1, abs=1e-5) and matrix[0, 2] < 0.5
    heat = figs.cka_heatmap(matrix, ["a", "b", "c"], 150)
    assert "150 clean samples" in heat.layout.title.text


def test_rank_samples_puts_the_most_flipped_first_and_the_widest_margins_among_the_robust():
    # 5 samples, 2 checkpoints, clean + 3 corrupted conditions
    correct = np.ones((2, 4, 5), dtype=bool)
    correct[:, 1:, 0] = False  # sample 0: 6 flips
    correct[0, 1:, 1] = False  # sample 1: 3 flips
    correct[:, :, 2] = False  # sample 2: never correct, so never flips
    margin = np.where(correct, 1.0, -1.0)
    margin[:, :, 3] = 5.0  # among the always-correct, 3 has the widest margin, then 4
    margin[:, :, 4] = 2.0
    fragile, robust = figs.rank_samples(list(correct), list(margin), count=3)
    assert [e["index"] for e in fragile] == [0, 1] and [e["flips"] for e in fragile] == [6, 3]
    assert [e["index"] for e in robust] == [3, 4, 1]
    assert robust[0]["correct"] == robust[0]["pairs"] == 8


# ----------------------------------------------------------------------------------------- the tab


def ckpt(cid: int, name: str = "c") -> dict:
    return {"id": cid, "name": name, "sparsity": 0.5}


def test_robustness_view_shows_the_table_figures_and_explorer():
    checkpoints = {1: ckpt(1, "dense"), 2: ckpt(2, "half"), 3: ckpt(3, "other")}
    tree = view.robustness_view([1, 2, 3, 99], checkpoints, {1: summary(), 2: summary(0.7)}, {})
    found = ids_in(tree)
    for needed in (
        "robustness-summary",
        view.HEATMAP_FIG_ID,
        view.ANGLE_FIG_ID,
        view.DIFF_FIG_ID,
        view.EMBED_FIG_ID,
        view.CKA_FIG_ID,
        view.SAMPLE_STORE,
        view.CONDITION_ID,
        "compare-queue",  # checkpoint 3 has no result
    ):
        assert needed in found
    text = str(tree)
    assert "99" in text and "dense (#1)" in text and "other (#3)" in text
    condition = next(c for c in walk(tree) if getattr(c, "id", None) == view.CONDITION_ID)
    assert condition.value == "gaussian_noise/3" and condition.options[0] == "clean"


def controls(tree) -> dict:
    return {c.id: c for c in walk(tree) if isinstance(getattr(c, "id", None), str)}


def test_robustness_view_sets_its_controls_from_the_settings_of_the_url():
    checkpoints = {1: ckpt(1, "dense"), 2: ckpt(2, "half"), 3: ckpt(3, "third")}
    summaries = {1: summary(), 2: summary(0.7), 3: summary(0.6)}
    settings = {"severity": 3, "a": 2, "b": 1, "condition": "contrast/5", "quantity": "angle", "sample": 17}
    found = controls(view.robustness_view([1, 2, 3], checkpoints, summaries, {}, settings=settings))
    assert found[view.SEVERITY_ID].value == 3
    assert (found[view.A_ID].value, found[view.B_ID].value) == (2, 1)
    assert found[view.CONDITION_ID].value == "contrast/5"
    assert found[view.QUANTITY_ID].value == "angle"
    assert found[view.INDEX_ID].value == 17 and found[view.SAMPLE_STORE].data == 17
    assert found[view.HEATMAP_FIG_ID].figure == figs.accuracy_heatmap(
        [CheckpointSummary(c, checkpoints[c]["name"], summaries[c]) for c in (1, 2, 3)], 3
    )


def test_robustness_view_falls_back_to_defaults_for_settings_its_controls_do_not_offer():
    checkpoints = {1: ckpt(1, "dense"), 2: ckpt(2, "half")}
    settings = {"severity": 2, "a": 7, "b": 9, "condition": "fog/3", "quantity": "weights"}
    tree = view.robustness_view([1, 2], checkpoints, {1: summary(), 2: summary()}, {}, settings=settings)
    found = controls(tree)
    assert found[view.SEVERITY_ID].value == "mean"  # severity 2 was not computed
    assert (found[view.A_ID].value, found[view.B_ID].value) == (1, 2)
    assert found[view.CONDITION_ID].value == "gaussian_noise/3"
    assert found[view.QUANTITY_ID].value == "correct"
    assert found[view.INDEX_ID].value is None and found[view.SAMPLE_STORE].data is None


def test_the_url_parsers_know_the_robustness_quantities_and_clean_condition():
    assert state.QUANTITIES == tuple(figs.QUANTITIES) and state.CLEAN == figs.CLEAN


def test_robustness_view_without_results_shows_only_what_is_missing():
    tree = view.robustness_view([1], {1: ckpt(1)}, {}, {})
    assert view.HEATMAP_FIG_ID not in ids_in(tree) and "compare-queue" in ids_in(tree)


def test_a_click_opens_the_sample_in_customdata():
    fig = figs.angle_norm_grid(geometry(), "contrast/1", "c1")
    point = {"points": [{"customdata": list(fig.data[1].customdata[2])}]}
    assert view.clicked_sample(point) == int(fig.data[1].customdata[2][0])
    assert view.clicked_sample({"points": [{"customdata": 7}]}) == 7
    assert view.clicked_sample(None) is None and view.clicked_sample({"points": []}) is None


@pytest.mark.parametrize(
    ("shape", "asked", "mode", "size"),
    [((1, 8, 8), 50, "L", 48), ((3, 32, 32), 64, "RGB", 64), ((3, 100, 100), 64, "RGB", 64)],
)
def test_thumbnails_are_pngs_upscaled_by_whole_pixels_or_shrunk(shape, asked, mode, size):
    pixels = np.random.default_rng(0).random(shape).astype(np.float32)
    uri = view.thumbnail(pixels, asked)
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert image.mode == mode and image.size == (size, size)
    factor = size // shape[1]
    if factor > 1:  # nearest: each source pixel fills a factor x factor block
        block = np.asarray(image)[:factor, :factor]
        assert (block == block[0, 0]).all() and not (np.asarray(image) == block[0, 0]).all()


def test_the_explorer_redraws_corruptions_and_lists_each_checkpoint():
    pixels = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    noisy = view.corrupted(pixels, "gaussian_noise/3", seed=1)
    assert noisy.shape == pixels.shape and not np.allclose(noisy, pixels)
    assert view.corrupted(pixels, "fog/3") is None
    artifacts = {1: geometry(seed=1), 2: geometry(n=10, seed=2)}
    rows = view.sample_rows(artifacts, {1: "a", 2: "b"}, {}, 5, "contrast/1")
    assert len(rows) == 2 and rows[0]["corrupted_angle"] == "25.0°"
    assert len(view.sample_rows(artifacts, {1: "a", 2: "b"}, {}, 20, "contrast/1")) == 1
    detail = view.sample_detail(5, artifacts, {1: "a", 2: "b"}, {}, "contrast/1", [("clean", "data:,")])
    assert "true class 2" in str(detail) and "contrast/1 margin" in str(detail)


def test_ranked_samples_align_conditions_across_checkpoints():
    a = geometry(n=20, seed=3, conditions=("clean", "contrast/1", "gaussian_noise/3"))
    b = geometry(n=20, seed=4, conditions=("gaussian_noise/3", "clean"))
    fragile, robust = view.ranked_samples({1: a, 2: b})
    shared_correct = [a["correct"][[0, 2]], b["correct"][[1, 0]]]
    shared_margin = [a["margin"][[0, 2]], b["margin"][[1, 0]]]
    assert (fragile, robust) == figs.rank_samples(shared_correct, shared_margin, view.LIST_COUNT)


def test_the_artifact_cache_is_bounded_by_bytes():
    cache = data._Cache(max_bytes=100)
    for key in "abc":
        cache.put(key, key, 40)
    assert cache.get("a") is None and cache.get("b") == "b" and cache.get("c") == "c"
    cache.put("big", "big", 1000)  # over the bound alone: kept, the rest dropped
    assert cache.get("big") == "big" and cache.get("c") is None


# ----------------------------------------------------------------------------------------- end to end


def prop(component: str, name: str, value=None) -> dict:
    return {"id": component, "property": name, "value": value}


def update(client, output: dict, inputs: list, changed: str, state=()) -> dict:
    """What Dash answers a browser whose ``changed`` property fired the callback of ``output``."""
    body = {
        "output": f"{output['id']}.{output['property']}",
        "outputs": {"id": output["id"], "property": output["property"]},
        "inputs": inputs,
        "changedPropIds": [changed],
        "state": list(state),
    }
    resp = client.post("/_dash-update-component", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()["response"]


def test_the_robustness_tab_end_to_end_on_digits(settings):
    from fastapi.testclient import TestClient

    from server.app import create_app
    from tests.conftest import state_dict_bytes
    from workers.datasets.builtin import digits
    from workers.runner import Worker

    # Given two checkpoints with robustness results on 300 digits
    data.clear_caches()
    with TestClient(create_app(settings)) as client:
        ids = []
        for seed in (0, 1):
            resp = client.post(
                "/api/checkpoints",
                data={"architecture": "small_cnn", "name": f"net{seed}"},
                files={"file": ("w.pt", state_dict_bytes(seed=seed))},
            )
            ids.append(resp.json()["id"])
        ds = data.add_builtin_dataset("digits")
        params = {"corruptions": ["gaussian_noise", "contrast"], "severities": [2, 4], "max_samples": 300}
        worker = Worker(settings)
        for job in data.submit_jobs("robustness", ids, ds["id"], params):
            assert worker.run_one(job["id"]) == "succeeded"
        # When a point of the angle panels is clicked, then its sample opens in the explorer
        click = {"points": [{"customdata": [17, 1]}]}
        inputs = [prop(view.ANGLE_FIG_ID, "clickData", click), prop(view.DIFF_FIG_ID, "clickData", None)]
        inputs += [[], prop(view.INDEX_ID, "value", None)]
        picked = update(client, prop(view.SAMPLE_STORE, "data"), inputs, f"{view.ANGLE_FIG_ID}.clickData")
        assert picked == {view.SAMPLE_STORE: {"data": 17}}
        inputs = [prop(view.SAMPLE_STORE, "data", 17), prop(view.CONDITION_ID, "value", "contrast/4")]
        state = [prop("compare-state", "data", {"ids": ids, "dataset": ds["id"]})]
        shown = update(client, prop(view.DETAIL_ID, "children"), inputs, f"{view.SAMPLE_STORE}.data", state)
        assert "Sample #17, true class 7" in str(shown)
    # Then the artifact, a part of it (cached), and the pixels are read back
    full = data.result_artifact("robustness", ids[0], ds["id"], "geometry")
    assert full["angle"].shape == (5, 300) and list(full["conditions"])[:2] == ["clean", "gaussian_noise/2"]
    part = data.result_artifact("robustness", ids[0], ds["id"], "geometry", ["margin", "nothing"])
    assert list(part) == ["margin"] and part["margin"] is full["margin"]
    assert data.result_artifact("robustness", ids[0], ds["id"] + 1, "geometry") is None
    assert np.allclose(data.dataset_images(ds["id"], [3, 0]), digits().x[[3, 0]])
    # And the tab renders, with the artifact figures and the explorer from the real arrays
    compare = importlib.import_module("dashboard.pages.compare")
    content, pending = compare.view_content({"ids": ids, "dataset": ds["id"], "tab": "robustness"})
    assert not pending and view.HEATMAP_FIG_ID in ids_in(content)
    state = {"ids": ids, "dataset": ds["id"]}
    entries_, colors, dataset_id = view._context(state)
    embedding, cka = view.overview_figures(entries_, colors, dataset_id, "correct")
    assert len(embedding.data) == 2 and np.allclose(np.diag(cka.data[0].z), 1)
    detail = view.explorer_detail(entries_, colors, dataset_id, 7, "contrast/4")
    images = [c.src for c in walk(detail) if isinstance(c, html.Img)]
    assert len(images) == 3 and all(src.startswith("data:image/png;base64,") for src in images)
    assert str(detail).count("net0 (#") == 1 and str(detail).count("net1 (#") == 1
    assert colors == checkpoint_colors(ids)
