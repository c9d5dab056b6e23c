"""The compiled products on CUDA, where each pass is recorded once as a CUDA graph and replayed.

A replay writes its output into the same memory as the one before, and the analysis keeps the products of
earlier steps (the Lanczos basis, a sum over batches), so every product is checked while later ones have
run. Ground truth is the dense float64 Hessian, as in ``test_hvp.py``. These run only where CUDA is
present (the lent GPU machine; ``bench/hessian.py`` measures the speed there).
"""

from __future__ import annotations

import pytest
import torch

from tests.hessian.conftest import dense_hessian, tiny_cnn
from workers.hessian.block_lanczos import block_lanczos
from workers.hessian.hvp import hessian_operator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")


def test_graphed_products_equal_the_dense_hessian_after_later_replays():
    model, x, y = tiny_cnn()  # 12 samples: two batches of 6, summed over two replays per product
    h = dense_hessian(model, x, y)  # (D, D)
    cuda = torch.device("cuda")
    op = hessian_operator(model, x, y, batch_size=6, device=cuda, dtype=torch.float64, method="compiled")
    gen = torch.Generator().manual_seed(0)
    blocks = [torch.randn(2, op.n, generator=gen, dtype=torch.float64) for _ in range(4)]
    singles = [torch.randn(op.n, generator=gen, dtype=torch.float64) for _ in range(3)]
    # the first calls compile and record; the later ones replay over the same output memory
    block_out = [op.matmat(v.to(cuda)) for v in blocks]
    single_out = [op.matvec(v.to(cuda)) for v in singles]
    for v, out in zip(blocks + singles, block_out + single_out, strict=True):
        torch.testing.assert_close(out.cpu(), v @ h, rtol=0, atol=1e-10)
    assert op.count == 11 and not op._batched_failed

    mask = torch.rand(op.n, generator=gen) > 0.4  # a pruned model: the same recorded graphs, restricted
    sub = op.restricted(mask.to(cuda))
    vs = torch.randn(2, sub.n, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(sub.matmat(vs.to(cuda)).cpu(), vs @ h[mask][:, mask], rtol=0, atol=1e-10)

    kw = dict(k=3, block=2, tol=1e-10, max_iter=300, dtype=torch.float64, device=cuda)
    top = block_lanczos(sub.matmat, sub.n, **kw)
    expected = torch.linalg.eigvalsh(h[mask][:, mask]).flip(0)[:3]
    torch.testing.assert_close(top.top, expected, rtol=1e-6, atol=0)
