"""Passes of Hessian-vector products recorded once as CUDA graphs and replayed.

An eager ``torch.func`` pass over a ResNet-18 launches about a thousand small kernels, and on an H100 the
host could not launch them as fast as the device ran them. Recorded as a CUDA graph, the same pass is one
launch. On the lent H100 (torchvision ResNet-18, 2,048 CIFAR-shaped samples, measured by hand with
``torch.cuda.graph``; issue 4's notes) a pass of 1, 2 and 4 products took 102, 126 and 111 ms eagerly and
39.8, 60.6 and 96.6 ms replayed.

Recording costs one pass's launches on the host (150-180 ms there) and no device time. In the benchmark
run that timed both ways in one process, a replay saved 29, 18 and 7 ms per pass of 1, 2 and 4 products
(``bench/hessian.py --graphs-ab``), so recording pays back after about 6, 9 and 20 passes of a shape:
a Lanczos run, a trace or a density takes tens of passes.

The wrapped function must read nothing but its vector argument and tensors that stay where they are for
the wrapper's life (the operator's parameters and batches): a replay reads the addresses it was recorded
with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

__all__ = ["GraphedPasses"]

Key = tuple[tuple[int, ...], torch.dtype, int]


class GraphedPasses:
    """``fn(v, i)`` (batch ``i``'s products for ``v``), recorded per vector shape and batch at its second
    call and replayed after; every call returns a tensor of its own.

    The first call of each shape and batch runs eagerly: it warms up the libraries' lazy set-up (cuBLAS
    and cuDNN handles) outside the recording, and a shape used once is never recorded. Graphs of one
    vector shape share a memory pool: they run one after another on one stream, and each output is
    copied out before the next replay, so no replay writes over a result still in use. Where a recording
    fails (a model that reads a value back to the host mid-pass, say), the products run eagerly from
    then on, logged once.
    """

    def __init__(self, fn: Callable[[Tensor, int], Tensor]) -> None:
        self._fn = fn
        self._seen: set[Key] = set()
        self._graphs: dict[Key, tuple[torch.cuda.CUDAGraph, Tensor, Tensor]] = {}
        self._pools: dict[tuple[tuple[int, ...], torch.dtype], object] = {}
        self.failed = False

    @property
    def recorded(self) -> int:
        """Graphs recorded so far."""
        return len(self._graphs)

    def __call__(self, v: Tensor, i: int) -> Tensor:
        key = (tuple(v.shape), v.dtype, i)
        if self.failed:
            return self._fn(v, i)
        entry = self._graphs.get(key)
        if entry is None:
            if key not in self._seen:
                self._seen.add(key)
                return self._fn(v, i)
            entry = self._record(key, v, i)
            if entry is None:
                return self._fn(v, i)
        graph, static_in, static_out = entry
        static_in.copy_(v)
        graph.replay()
        return static_out.clone()  # the next replay writes over static_out

    def _record(self, key: Key, v: Tensor, i: int) -> tuple[torch.cuda.CUDAGraph, Tensor, Tensor] | None:
        static_in = v.clone()
        graph = torch.cuda.CUDAGraph()
        pool = self._pools.get(key[:2])
        try:
            # thread_local: a worker's heartbeat thread may touch CUDA while this thread records
            with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
                static_out = self._fn(static_in, i)
        except Exception as exc:  # noqa: BLE001 - anything the recording refuses runs eagerly instead
            logger.warning("recording the products as a CUDA graph failed (%r); running them eagerly", exc)
            self.failed = True
            self._graphs.clear()
            return None
        self._pools.setdefault(key[:2], graph.pool())
        self._graphs[key] = (graph, static_in, static_out)
        return self._graphs[key]
