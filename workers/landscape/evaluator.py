"""Loss and accuracy of a working copy of a model on a fixed data set, as fast as the device allows.

:class:`PointEvaluator` copies the model once onto the device (the caller's model is never moved, cast or
written to), keeps the whole evaluation set there in full batches, and evaluates in ``eval()`` mode under
``torch.no_grad`` with the loss summed on the device, so one grid point costs one plain inference pass.
``precision="bf16"`` runs the forward under bfloat16 autocast with channels_last tensors (labelled in the
result; DESIGN.md section 8 measured 2.4 ms against 8.6 ms for a ResNet-18 on an H100); the loss is still
reduced in float32.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from workers.compile import compile_or_eager

logger = logging.getLogger(__name__)

__all__ = ["PointEvaluator", "Precision", "copy_like"]

Precision = Literal["fp32", "bf16"]


class PointEvaluator:
    """``evaluate()`` -> ``[mean loss, accuracy]`` ``(2,)`` on the device for the working copy's state.

    ``params`` and ``buffers`` are the working copy's floating-point parameters (``named_parameters()``
    order) and floating-point buffers (BatchNorm running statistics), to be moved in place by a sweep.
    """

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        device: torch.device,
        batch_size: int,
        precision: Precision = "fp32",
        channels_last: bool | None = None,
    ):
        if x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must hold the same N >= 1 samples")
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"unknown precision {precision!r}; use 'fp32' or 'bf16'")
        self.device = torch.device(device)
        self.precision = precision
        # channels_last by default for images: oneDNN and cuDNN pick faster kernels for it (1.5x for a
        # ResNet-20 forward on 2 CPU cores here) and bf16 tensor cores need it
        self.channels_last = x.ndim == 4 if channels_last is None else channels_last and x.ndim == 4
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = copy.deepcopy(model).to(device=self.device, dtype=torch.float32, memory_format=fmt)
        self.model.eval().requires_grad_(False)
        self.names = [n for n, p in self.model.named_parameters() if p.is_floating_point()]
        self.params = [p for p in self.model.parameters() if p.is_floating_point()]
        self.buffer_names = [n for n, b in self.model.named_buffers() if b.is_floating_point()]
        self.buffers = [b for b in self.model.buffers() if b.is_floating_point()]
        xs = x.to(device=self.device, dtype=torch.float32) if x.is_floating_point() else x.to(self.device)
        if self.channels_last:
            xs = xs.contiguous(memory_format=torch.channels_last)
        ys = y.to(device=self.device, dtype=torch.long)
        n = int(x.shape[0])
        self.n_samples = n
        self.batches = [(xs[i : i + batch_size], ys[i : i + batch_size]) for i in range(0, n, batch_size)]
        self.compiled = False
        self.cuda_graph = False
        self._forward = self.model
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_out: Tensor | None = None

    def use_compile(self) -> None:
        """Run the forward through ``torch.compile`` from now on (parameters stay graph inputs, so moving
        them in place needs no recompilation; an eager fallback if compilation fails)."""
        self._forward = compile_or_eager(self.model)
        self.compiled = True

    def use_cuda_graph(self) -> bool:
        """Capture one evaluation as a CUDA graph and replay it from now on; ``True`` if it worked.

        A grid point is then one replay instead of a launch per layer: eager evaluation of a ResNet-18 in
        bf16 measured 2.8 ms per point against 2.4 ms for its forward alone (DESIGN.md section 8), the
        difference being host-side launches. Parameters and buffers are moved in place between replays,
        so the captured kernels read the new values. The captured result is checked against an eager
        evaluation of the same state before it is trusted; on any failure evaluation stays eager.
        """
        if self.device.type != "cuda" or self.compiled:
            return False
        try:
            expected = self._evaluate().clone()
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(2):  # warm-up on a side stream, as capture requires
                    self._evaluate(cache=False)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self._evaluate(cache=False)
            graph.replay()
            if not torch.allclose(out, expected, rtol=1e-4, atol=1e-6):
                raise RuntimeError(f"graph replay gave {out.tolist()}, eager {expected.tolist()}")
        except Exception as exc:  # noqa: BLE001 - the eager path gives the same numbers
            logger.warning("CUDA graph capture failed (%r); evaluating eagerly", exc)
            return False
        self._graph, self._graph_out, self.cuda_graph = graph, out, True
        return True

    def time_one(self) -> float:
        """Seconds of one evaluation of the current state (after a warm-up), waiting for the device."""
        self.evaluate()
        self._sync()
        start = time.perf_counter()
        self.evaluate().cpu()
        return time.perf_counter() - start

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def state_of(self, model: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
        """Copies of another model's parameters and float buffers, laid out like the working copy's."""
        params = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        missing = [n for n in self.names if n not in params] + [
            n for n in self.buffer_names if n not in buffers
        ]
        if missing:
            raise ValueError(f"the other model lacks {missing[:5]}")
        out_p = [copy_like(params[n], p) for n, p in zip(self.names, self.params, strict=True)]
        out_b = [copy_like(buffers[n], b) for n, b in zip(self.buffer_names, self.buffers, strict=True)]
        return out_p, out_b

    def evaluate(self) -> Tensor:
        if self._graph is not None and self._graph_out is not None:
            self._graph.replay()
            return self._graph_out.clone()
        return self._evaluate()

    @torch.no_grad()
    def _evaluate(self, cache: bool = True) -> Tensor:
        loss = torch.zeros((), device=self.device, dtype=torch.float32)
        correct = torch.zeros((), device=self.device, dtype=torch.float32)
        bf16 = self.precision == "bf16"
        for xb, yb in self.batches:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=cache):
                logits = self._forward(xb)  # (B, C)
            logits = logits.float()
            loss += F.cross_entropy(logits, yb, reduction="sum")
            correct += (logits.argmax(dim=1) == yb).sum()
        return torch.stack([loss, correct]) / self.n_samples

    @torch.no_grad()
    def recompute_batchnorm(self, x: Tensor) -> None:
        """Reset every BatchNorm layer's running statistics and re-estimate them on ``x`` (cumulative
        averages over batches, as ``torch.optim.swa_utils.update_bn``), then return to eval mode."""
        layers = [m for m in self.model.modules() if isinstance(m, _BatchNorm)]
        if not layers:
            return
        momenta = [m.momentum for m in layers]
        for m in layers:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        try:
            for xb, _ in self._bn_batches(x):
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                    self.model(xb)
        finally:
            for m, momentum in zip(layers, momenta, strict=True):
                m.momentum = momentum
                m.eval()

    def _bn_batches(self, x: Tensor) -> list[tuple[Tensor, None]]:
        size = self.batches[0][0].shape[0]
        xs = x.to(device=self.device, dtype=torch.float32)
        if self.channels_last:
            xs = xs.contiguous(memory_format=torch.channels_last)
        return [(xs[i : i + size], None) for i in range(0, int(x.shape[0]), size)]


def copy_like(src: Tensor, like: Tensor) -> Tensor:
    """``src``'s values in a new tensor with ``like``'s dtype, device and memory layout."""
    if src.shape != like.shape:
        raise ValueError(f"shapes differ: {tuple(src.shape)} against {tuple(like.shape)}")
    out = torch.empty_like(like)
    out.copy_(src.detach())
    return out
