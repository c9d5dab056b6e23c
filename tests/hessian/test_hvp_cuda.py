"""Products on CUDA, where each pass is recorded once as a CUDA graph and replayed: ``"compiled"`` through
``torch.compile(mode="reduce-overhead")``, ``"func"`` through :class:`workers.hessian.graphs.GraphedPasses`.

A replay writes its output into the same memory as the one before, and the analysis keeps the products of
earlier steps (the Lanczos basis, a sum over batches), so every product is checked while later ones have
run. Ground truth is the dense float64 Hessian, as in ``test_hvp.py``. These run only where CUDA is
present (the lent GPU machine; ``bench/hessian.py`` measures the speed there).
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch import Tensor, nn

from tests.hessian.conftest import dense_hessian, tiny_cnn
from workers.hessian.block_lanczos import block_lanczos
from workers.hessian.graphs import GraphedPasses
from workers.hessian.hvp import hessian_operator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")


@pytest.mark.parametrize("method", ["compiled", "func"])
def test_graphed_products_equal_the_dense_hessian_after_later_replays(method):
    model, x, y = tiny_cnn()  # 12 samples: two batches of 6, summed over two replays per product
    h = dense_hessian(model, x, y)  # (D, D)
    cuda = torch.device("cuda")
    op = hessian_operator(model, x, y, batch_size=6, device=cuda, dtype=torch.float64, method=method)
    gen = torch.Generator().manual_seed(0)
    blocks = [torch.randn(2, op.n, generator=gen, dtype=torch.float64) for _ in range(4)]
    singles = [torch.randn(op.n, generator=gen, dtype=torch.float64) for _ in range(3)]
    # the first calls compile and record; the later ones replay over the same output memory
    block_out = [op.matmat(v.to(cuda)) for v in blocks]
    single_out = [op.matvec(v.to(cuda)) for v in singles]
    for v, out in zip(blocks + singles, block_out + single_out, strict=True):
        torch.testing.assert_close(out.cpu(), v @ h, rtol=0, atol=1e-10)
    assert op.count == 11 and not op._batched_failed
    if method == "func":  # one graph per batch for blocks of 2, and for single products
        assert isinstance(op._batch_hvps, GraphedPasses) and op._batch_hvps.recorded == 2
        assert op._batch_hvp.recorded == 2 and not op._batch_hvps.failed

    mask = torch.rand(op.n, generator=gen) > 0.4  # a pruned model: the same recorded graphs, restricted
    sub = op.restricted(mask.to(cuda))
    vs = torch.randn(2, sub.n, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(sub.matmat(vs.to(cuda)).cpu(), vs @ h[mask][:, mask], rtol=0, atol=1e-10)

    kw = dict(k=3, block=2, tol=1e-10, max_iter=300, dtype=torch.float64, device=cuda)
    top = block_lanczos(sub.matmat, sub.n, **kw)
    expected = torch.linalg.eigvalsh(h[mask][:, mask]).flip(0)[:3]
    torch.testing.assert_close(top.top, expected, rtol=1e-6, atol=0)


class ReadsBack(nn.Module):
    """A classifier whose forward reads a value back to the host: a pass that cannot be recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))

    def forward(self, x: Tensor) -> Tensor:
        if float(x.abs().sum()) < 0:  # never true; the read is the point
            raise AssertionError
        return self.net(x)


def test_a_pass_that_cannot_be_recorded_runs_eagerly_with_the_same_products(caplog):
    torch.manual_seed(0)
    model = ReadsBack().double()
    x, y = torch.randn(10, 5, dtype=torch.float64), torch.randint(0, 3, (10,))
    h = dense_hessian(model, x, y)
    cuda = torch.device("cuda")
    op = hessian_operator(model, x, y, batch_size=10, device=cuda, dtype=torch.float64, method="func")
    vs = torch.randn(3, 2, op.n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with caplog.at_level(logging.WARNING, logger="workers.hessian.graphs"):
        outs = [op.matmat(v.to(cuda)).cpu() for v in vs]  # the second call tries to record
    for v, out in zip(vs, outs, strict=True):
        torch.testing.assert_close(out, v @ h, rtol=0, atol=1e-10)
    assert op._batch_hvps.failed and op._batch_hvps.recorded == 0
    assert "running them eagerly" in caplog.text
