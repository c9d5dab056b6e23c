"""Hessian-vector products against the dense Hessian of tiny float64 models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.hessian.conftest import Case, dense_hessian, flat_params, tiny_mlp
from workers.hessian.hvp import hessian_operator, pruning_mask

CPU = torch.device("cpu")


@pytest.mark.parametrize("method", ["func", "double_backward", "retained"])
def test_hvp_equals_dense_hessian_times_vector(case: Case, method):
    # batches of 5 do not divide N, so the per-batch weighting is exercised
    op = hessian_operator(
        case.model, case.x, case.y, batch_size=5, device=CPU, dtype=torch.float64, method=method
    )
    v = torch.randn(op.n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert op.n == case.hessian.shape[0]
    torch.testing.assert_close(op.matvec(v), case.hessian @ v, rtol=0, atol=1e-10)
    assert op.count == 1


def test_hvp_restricted_to_mask_is_the_principal_submatrix(mlp_case: Case):
    mask = torch.rand(mlp_case.hessian.shape[0], generator=torch.Generator().manual_seed(2)) > 0.4
    op = hessian_operator(
        mlp_case.model, mlp_case.x, mlp_case.y, batch_size=32, device=CPU, dtype=torch.float64, mask=mask
    )
    v = torch.randn(op.n, dtype=torch.float64)
    sub = mlp_case.hessian[mask][:, mask]
    assert op.n == int(mask.sum())
    torch.testing.assert_close(op.matvec(v), sub @ v, rtol=0, atol=1e-10)


def test_hvp_over_a_parameter_block_is_the_diagonal_block(cnn_case: Case):
    names = ["bn2.weight", "bn2.bias", "conv3.weight"]
    block = dense_hessian(cnn_case.model, cnn_case.x, cnn_case.y, names)
    op = hessian_operator(
        cnn_case.model, cnn_case.x, cnn_case.y, batch_size=12, device=CPU, dtype=torch.float64, names=names
    )
    v = torch.randn(op.n, dtype=torch.float64)
    torch.testing.assert_close(op.matvec(v), block @ v, rtol=0, atol=1e-10)


def test_operator_leaves_the_model_untouched():
    model, x, y = tiny_mlp(seed=3)
    model.train()
    model.fc2.eval()  # a submodule frozen on purpose stays frozen
    before = flat_params(model).clone()
    op = hessian_operator(model, x, y, batch_size=8, device=CPU, dtype=torch.float32)
    op.matvec(torch.ones(op.n))
    op.gradient()
    assert model.training and model.fc1.training and not model.fc2.training
    assert torch.equal(flat_params(model), before)
    assert all(p.dtype == torch.float64 and p.grad is None for p in model.parameters())


def test_pruning_mask_counts_zero_weights_but_not_zero_biases():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].weight[0, 1] = 0.0
        model[0].bias.zero_()
    mask = pruning_mask(model)  # weight (6) + bias (2) + bn weight (2) + bn bias (2, zeros at init)
    assert mask.tolist() == [True, False, True, True, True, True] + [True] * 6


def test_hvp_rejects_a_vector_of_the_wrong_size(mlp_case: Case):
    op = hessian_operator(mlp_case.model, mlp_case.x, mlp_case.y, batch_size=32, device=CPU)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        op.matvec(torch.ones(3))


def test_hvp_rejects_mismatched_data(mlp_case: Case):
    with pytest.raises(ValueError, match="same N"):
        hessian_operator(mlp_case.model, mlp_case.x, mlp_case.y[:3], batch_size=4, device=CPU)


def test_compiled_hvp_equals_dense_hessian_times_vector(mlp_case: Case):
    # torch.compile'd forward-over-reverse: the same products (compiled once per batch shape)
    n = mlp_case.x.shape[0]
    op = hessian_operator(
        mlp_case.model,
        mlp_case.x,
        mlp_case.y,
        batch_size=n,
        device=CPU,
        dtype=torch.float64,
        method="compiled",
    )
    for seed in (1, 2):
        v = torch.randn(op.n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        torch.testing.assert_close(op.matvec(v), mlp_case.hessian @ v, rtol=0, atol=1e-10)
    assert op.count == 2


@pytest.mark.parametrize("method", ["func", "double_backward", "retained"])
def test_matmat_equals_dense_hessian_times_each_vector(case: Case, method):
    # batches of 5 do not divide N; three vectors in one pass, restricted to a random mask
    mask = torch.rand(case.hessian.shape[0], generator=torch.Generator().manual_seed(3)) > 0.3
    op = hessian_operator(
        case.model, case.x, case.y, batch_size=5, device=CPU, dtype=torch.float64, method=method, mask=mask
    )
    vs = torch.randn(3, op.n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = op.matmat(vs)
    torch.testing.assert_close(out, vs @ case.hessian[mask][:, mask], rtol=0, atol=1e-10)
    assert op.count == 3 and not op._batched_failed


def test_matmat_rejects_vectors_of_the_wrong_size(mlp_case: Case):
    op = hessian_operator(mlp_case.model, mlp_case.x, mlp_case.y, batch_size=32, device=CPU)
    for bad in (torch.zeros(op.n), torch.zeros(2, op.n + 1)):
        with pytest.raises(ValueError, match="operator acts on"):
            op.matmat(bad)


def test_unpruned_and_restricted_match_pruning_mask_and_the_principal_submatrix(mlp_case: Case):
    model, x, y = tiny_mlp(seed=2)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(torch.rand(p.shape, generator=torch.Generator().manual_seed(p.numel())) > 0.5)
    op = hessian_operator(model, x, y, batch_size=32, device=CPU, dtype=torch.float64)
    mask = op.unpruned()
    # zeros in weight matrices count as pruned, zeros in biases do not
    assert torch.equal(mask, pruning_mask(model)) and not bool(mask.all())
    sub = op.restricted(mask)
    assert sub.n == int(mask.sum()) and sub.count == 0 and op.n == mask.numel()
    v = torch.randn(sub.n, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    torch.testing.assert_close(
        sub.matvec(v), dense_hessian(model, x, y)[mask][:, mask] @ v, rtol=0, atol=1e-10
    )
    with pytest.raises(ValueError, match="every selected coordinate is pruned"):
        op.restricted(torch.zeros_like(mask))
