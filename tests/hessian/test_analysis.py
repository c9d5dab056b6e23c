"""The ``hessian`` analysis end to end: through the registry, on pruned models, and its guarantees."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import Tensor, nn

from tests.hessian.conftest import Case, dense_hessian, tiny_mlp
from workers import registry
from workers.analyses.hessian_task import HessianParams
from workers.hessian.analysis import hessian_spectrum
from workers.hessian.hvp import default_block, pruning_mask

CPU = torch.device("cpu")
SUMMARY_KEYS = {
    "top_eigenvalues",
    "negative_eigenvalues",
    "residuals",
    "trace",
    "trace_stderr",
    "density",
    "outliers",
    "bulk_edge",
    "subspace",
    "n_params",
    "hvp_count",
    "seconds",
    "num_classes",
}
EXACT = dict(dtype=torch.float64, tol=1e-10, lanczos_iters=400, batch_size=16)


def _run(model: nn.Module, x: Tensor, y: Tensor, progress=None, **params) -> registry.AnalysisOutput:
    return registry.get("hessian").run(
        registry.AnalysisInputs(
            model=model,
            x=x,
            y=y,
            device=CPU,
            params=HessianParams(**params),
            progress=progress or (lambda fraction, message: None),
        )
    )


def test_registry_runs_the_analysis_end_to_end(cnn_case: Case):
    # Given a float32 run through the registry, as a worker would start it
    messages: list[tuple[float, str]] = []
    out = _run(
        cnn_case.model,
        cnn_case.x,
        cnn_case.y,
        progress=lambda f, m: messages.append((f, m)),
        lanczos_iters=40,
        trace_probes=6,
        density_vectors=2,
        density_iters=10,
    )
    s = out.summary
    # Then the summary holds the documented keys and is plain JSON
    assert SUMMARY_KEYS <= set(s)
    json.dumps(s, allow_nan=False)
    assert s["subspace"] == "all" and s["n_params"] == cnn_case.hessian.shape[0] and s["num_classes"] == 3
    assert len(s["top_eigenvalues"]) == 3 + 5 and s["top_eigenvalues"] == sorted(s["top_eigenvalues"])[::-1]
    assert len(s["negative_eigenvalues"]) == 3 and len(s["residuals"]) == 8
    assert len(s["density"]["x"]) == len(s["density"]["y"]) == 1000
    assert s["hvp_count"] == s["lanczos_iterations"] + 6 + 20
    # float32 is still close to the float64 truth
    np.testing.assert_allclose(s["top_eigenvalues"][0], float(cnn_case.eigenvalues[-1]), rtol=1e-4)
    # And progress came once per product, with its phase named
    assert len(messages) == s["hvp_count"]
    assert messages[0][1].startswith("HVP 1/") and messages[0][1].endswith("(Lanczos)")
    assert messages[-1][1].endswith("(density)") and 0 < messages[-1][0] <= 1
    assert out.arrays["top_eigenvector"].shape == (s["n_params"],)
    assert out.arrays["top_eigenvector"].dtype == np.float32


def test_float64_results_match_the_dense_hessian(case: Case):
    res = hessian_spectrum(case.model, case.x, case.y, device=CPU, trace_probes=40, **EXACT)
    k = res.num_classes + 5
    np.testing.assert_allclose(
        res.top_eigenvalues, case.eigenvalues.flip(0)[:k].numpy(), rtol=1e-6, atol=1e-9
    )
    np.testing.assert_allclose(res.negative_eigenvalues, case.eigenvalues[:3].numpy(), rtol=1e-6, atol=1e-9)
    assert abs(res.trace - float(case.hessian.trace())) < 4 * res.trace_stderr
    assert res.converged and res.outliers and res.bulk_edge in res.top_eigenvalues


def test_pruned_model_spectrum_is_that_of_the_unpruned_submatrix():
    # Given an MLP with half of each weight matrix set exactly to zero
    model, x, y = tiny_mlp(seed=1)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.mul_(torch.rand(p.shape, generator=gen) > 0.5)
    mask = pruning_mask(model)
    sub = dense_hessian(model, x, y)[mask][:, mask]
    expected = torch.linalg.eigvalsh(sub)
    # When analysed with the default subspace
    res = hessian_spectrum(model, x, y, device=CPU, trace_probes=40, trace_method="hutchpp", **EXACT)
    # Then the spectrum is that of the Hessian restricted to the unpruned coordinates
    assert res.subspace == "unpruned" and res.n_params == int(mask.sum()) < mask.numel()
    np.testing.assert_allclose(res.top_eigenvalues, expected.flip(0)[:9].numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.negative_eigenvalues, expected[:3].numpy(), rtol=1e-6, atol=1e-9)
    assert abs(res.trace - float(sub.trace())) < 4 * res.trace_stderr
    # the top eigenvector comes back over all parameters, zero where pruned
    u = res.top_eigenvector.double()
    assert u.shape == mask.shape and bool((u[~mask] == 0).all())
    assert float(torch.linalg.vector_norm(sub @ u[mask] - res.top_eigenvalues[0] * u[mask])) < 1e-5
    # and forcing "all" takes every coordinate
    full = hessian_spectrum(
        model, x, y, device=CPU, subspace="all", lanczos_iters=5, trace_probes=0, density_vectors=0
    )
    assert full.subspace == "all" and full.n_params == mask.numel()


def test_top_eigenvalues_are_largest_algebraic_despite_a_larger_negative_one():
    # PyHessian's pitfall: power iteration returns the largest *magnitude* eigenvalue, here -10.
    class Saddle(nn.Module):
        """Logits (0, sum_i c_i p_i^2); at p = 0 with label 0 the Hessian is diag(c) (CE' = 1/2)."""

        def __init__(self) -> None:
            super().__init__()
            self.p = nn.Parameter(torch.zeros(6, dtype=torch.float64))
            self.register_buffer(
                "c", torch.tensor([-10.0, 1.0, 0.5, 0.25, 0.125, 0.0625], dtype=torch.float64)
            )

        def forward(self, x: Tensor) -> Tensor:
            z = (self.c * self.p**2).sum() + 0 * x.sum(1)  # (B,)
            return torch.stack([torch.zeros_like(z), z], 1)  # (B, 2)

    model = Saddle()
    x, y = torch.zeros(4, 3, dtype=torch.float64), torch.zeros(4, dtype=torch.long)
    np.testing.assert_allclose(
        torch.linalg.eigvalsh(dense_hessian(model, x, y)).numpy(), sorted(model.c.tolist()), atol=1e-12
    )
    res = hessian_spectrum(
        model, x, y, device=CPU, top_k=3, n_negative=1, trace_probes=0, density_vectors=0, **EXACT
    )
    np.testing.assert_allclose(res.top_eigenvalues, [1.0, 0.5, 0.25], atol=1e-10)
    np.testing.assert_allclose(res.negative_eigenvalues, [-10.0], atol=1e-10)


def test_same_seed_gives_the_same_result_and_another_seed_does_not(mlp_case: Case):
    kw = dict(device=CPU, lanczos_iters=15, trace_probes=5, density_vectors=2, density_iters=8)
    a = hessian_spectrum(mlp_case.model, mlp_case.x, mlp_case.y, seed=3, **kw).summary()
    b = hessian_spectrum(mlp_case.model, mlp_case.x, mlp_case.y, seed=3, **kw).summary()
    c = hessian_spectrum(mlp_case.model, mlp_case.x, mlp_case.y, seed=4, **kw).summary()
    for s in (a, b, c):
        s.pop("seconds"), s.pop("hvp_seconds"), s.pop("phase_seconds")
    assert a == b
    assert a["trace"] != c["trace"]


def test_model_training_flags_and_parameters_are_unchanged():
    model, x, y = tiny_mlp(seed=2)
    model.train()
    model.fc1.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hessian_spectrum(
        model, x, y, device=CPU, lanczos_iters=5, trace_probes=2, density_vectors=1, density_iters=3
    )
    assert model.training and not model.fc1.training and model.fc2.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_per_layer_spectra_are_the_diagonal_blocks(mlp_case: Case):
    res = hessian_spectrum(
        mlp_case.model,
        mlp_case.x,
        mlp_case.y,
        device=CPU,
        per_layer=True,
        top_k=2,
        n_negative=0,
        trace_probes=0,
        density_vectors=0,
        **EXACT,
    )
    assert set(res.per_layer) == {"fc1", "fc2", "head"}
    block = dense_hessian(mlp_case.model, mlp_case.x, mlp_case.y, ["fc2.weight", "fc2.bias"])
    expected = torch.linalg.eigvalsh(block).flip(0)[:2].numpy()
    np.testing.assert_allclose(res.per_layer["fc2"]["top_eigenvalues"], expected, rtol=1e-6)
    assert res.hvp_count == res.lanczos_iterations + sum(v["hvp_count"] for v in res.per_layer.values())


def test_max_samples_takes_the_first_samples(mlp_case: Case):
    res = hessian_spectrum(
        mlp_case.model,
        mlp_case.x,
        mlp_case.y,
        device=CPU,
        max_samples=8,
        top_k=1,
        n_negative=0,
        trace_probes=0,
        density_vectors=0,
        **EXACT,
    )
    top = torch.linalg.eigvalsh(dense_hessian(mlp_case.model, mlp_case.x[:8], mlp_case.y[:8]))[-1]
    assert res.n_samples == 8
    np.testing.assert_allclose(res.top_eigenvalues, [float(top)], rtol=1e-6)


@pytest.mark.parametrize(
    "bad", [{"trace_method": "power"}, {"top_k": 0}, {"tol": 0}, {"subspace": "pruned"}, {"dtype": "half"}]
)
def test_params_reject_out_of_range_values(bad):
    with pytest.raises(ValidationError):
        HessianParams(**bad)


def test_params_defaults_follow_the_design():
    p = HessianParams()
    assert (p.max_samples, p.top_k, p.n_negative, p.subspace, p.per_layer) == (2048, None, 3, "auto", False)
    assert registry.get("hessian").describe()["defaults"]["trace_method"] == "hutchinson"


def test_block_lanczos_results_match_the_dense_hessian(mlp_case: Case):
    res = hessian_spectrum(
        mlp_case.model,
        mlp_case.x,
        mlp_case.y,
        device=CPU,
        lanczos_block=3,
        trace_probes=0,
        density_vectors=0,
        **EXACT,
    )
    k = res.num_classes + 5
    np.testing.assert_allclose(
        res.top_eigenvalues, mlp_case.eigenvalues.flip(0)[:k].numpy(), rtol=1e-6, atol=1e-9
    )
    np.testing.assert_allclose(
        res.negative_eigenvalues, mlp_case.eigenvalues[:3].numpy(), rtol=1e-6, atol=1e-9
    )
    assert res.converged and res.lanczos_block == 3 and res.lanczos_iterations % 3 == 0
    arrays = res.arrays()
    j = res.lanczos_iterations
    assert arrays["lanczos_projection"].shape == (j, j) and arrays["lanczos_alpha"].size == 0
    assert isinstance(arrays["top_eigenvector"], np.ndarray)
    json.dumps(res.summary())  # the arrays stay out of the summary


def test_default_block_is_one_on_the_cpu_and_measured_per_method_elsewhere():
    assert default_block(CPU, "double_backward") == default_block(CPU, "compiled") == 1
    cuda = torch.device("cuda")
    assert (
        default_block(cuda, "compiled"),
        default_block(cuda, "func"),
        default_block(cuda, "retained"),
    ) == (2, 4, 2)
    assert HessianParams().lanczos_block is None
    for bad in (0, 17):
        with pytest.raises(ValidationError):
            HessianParams(lanczos_block=bad)


def test_blocks_change_neither_the_trace_nor_the_density(cnn_case: Case):
    # the same probes and SLQ starts, multiplied two at a time: the same numbers up to rounding
    kw = dict(device=CPU, trace_probes=5, density_vectors=3, density_iters=10, n_negative=0, **EXACT)
    one = hessian_spectrum(cnn_case.model, cnn_case.x, cnn_case.y, lanczos_block=1, **kw)
    two = hessian_spectrum(cnn_case.model, cnn_case.x, cnn_case.y, lanczos_block=2, **kw)
    assert two.trace == pytest.approx(one.trace, rel=1e-9)
    np.testing.assert_allclose(two.density["y"], one.density["y"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(two.top_eigenvalues, one.top_eigenvalues, rtol=1e-6, atol=1e-9)
