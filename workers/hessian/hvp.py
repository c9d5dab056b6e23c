"""Hessian-vector products of the mean cross-entropy over an evaluation set, in ``eval()`` mode.

The loss is ``L(theta) = 1/N sum_i CE(f(x_i; theta), y_i)`` over the whole evaluation set, evaluated with
BatchNorm running statistics and dropout off (DESIGN.md section 6). The data are cut into batches and the
Hessian-vector product is the sum of the per-batch products of the summed losses, divided by ``N`` (the
same as weighting each batch's mean-loss product by ``B_b / N``).

Four ways to compute ``H v``, all through :func:`torch.func.functional_call` over one flat parameter
vector, so the caller's module is never written to, moved or cast:

- ``"func"``: forward-over-reverse, ``jvp(grad(L), (theta,), (v,))`` (the recommended HVP of the
  ``torch.func`` documentation; Pearlmutter 1994, "Fast Exact Multiplication by the Hessian"). On CUDA
  each pass runs eagerly once and is then replayed as a CUDA graph (:mod:`workers.hessian.graphs`).
- ``"compiled"``: the same, through ``torch.compile`` (one compilation per batch shape and block size,
  about a minute for a ResNet-18 on the lent H100). On CUDA each compiled pass is also recorded once as a
  CUDA graph and replayed (``mode="reduce-overhead"``): a pass of 2 products took 36.3-36.8 ms there
  against 37.8-39.7 ms launched kernel by kernel, and the device sat idle about 2 ms per Lanczos step
  instead of 5-8 ms (``bench/hessian.py --profile``).
- ``"double_backward"``: reverse-over-reverse, ``grad(<grad(L), v>)``, each product recomputing the
  forward pass and the gradient.
- ``"retained"``: reverse-over-reverse with each batch's gradient graph built once and kept
  (``retain_graph=True``), as PyHessian does for a single batch: every product is then one backward pass
  through the gradient's graph, at the cost of holding all batches' graphs in memory.

Which is faster depends on the device: on an H100 the ``torch.func`` one took 1.3x a gradient and
double backward 3.2x (DESIGN.md section 6); ``bench/hessian.py`` measures both on the machine at hand.

Pruned checkpoints: with a boolean ``mask`` over the flat parameters, the operator acts on the ``n =
mask.sum()`` unpruned coordinates only, i.e. it is ``P H P^T`` with ``P`` the ``(n, D)`` selection of those
coordinates: the principal submatrix of ``H`` on them. Its spectrum is that of the loss restricted to the
pruned subspace.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp, vmap

from workers.analyses.evaluate import eval_mode
from workers.compile import compile_or_eager
from workers.hessian.graphs import GraphedPasses
from workers.landscape.directions import weight_masks

with warnings.catch_warnings():
    # torch.func.jvp scripts its decompositions on first use, and torch 2.13 warns there that
    # torch.jit.script is deprecated: a warning about torch's internals, raised once, silenced here.
    warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
    import torch._decomp.decompositions_for_jvp  # noqa: F401

logger = logging.getLogger(__name__)

__all__ = [
    "HVPMethod",
    "HessianOperator",
    "default_block",
    "default_method",
    "hessian_operator",
    "pruning_mask",
]

HVPMethod = Literal["func", "compiled", "double_backward", "retained"]


def default_method(device: torch.device) -> HVPMethod:
    """``"func"`` on CUDA (1.3x a gradient against 3.2x for double backward on an H100, DESIGN.md section 6),
    ``"double_backward"`` elsewhere: on 2 CPU cores it measured faster than ``"func"`` for ResNet-20
    (``bench/hessian.py``); ``"retained"`` was faster still but holds every batch's graph, so it is opt-in.
    """
    return "func" if torch.device(device).type == "cuda" else "double_backward"


def default_block(device: torch.device, method: HVPMethod = "func") -> int:
    """Products per Lanczos step (:mod:`workers.hessian.block_lanczos`), computed in one pass, for
    ``method`` on ``device``: the block size that took the least time in ``bench/hessian.py``.

    On an H100 (torchvision ResNet-18, 2,048 CIFAR-shaped samples), one pass of ``b`` products cost, in
    single products: compiled 1.6x for 2, 2.5x for 4, 4.4x for 8; eager ``func`` 1.16x for 2, 1.3x for 4,
    1.9x for 8. A block needs more products for the same top-5 (19 single, 22 in blocks of 2, 32 in
    blocks of 4, 48 in blocks of 8), so blocks of 2 were fastest compiled and blocks of 4 eager.

    With ``func`` passes replayed as CUDA graphs, a pass of 1, 2 and 4 products took 39.9, 61.0 and 97.2
    ms (69.3, 78.9 and 104.6 ms launched kernel by kernel, same run). The top-5 at tol 1e-4, each run
    paying its own recording, took 1.01 s one product at a time, 0.90 s in blocks of 2 and 1.01 s in
    blocks of 4; at tol 1e-2 blocks of 4 were fastest (0.76 s against 0.81 s). The trace and density,
    the rest of a job's products, are unmeasured by block there, so ``func`` keeps 4. Double backward is
    unmeasured there and gets 2. On the CPU (ResNet-20, 512 samples, 2 cores) a pass of 2
    double-backward products cost 1.92x one and of 4 4.9x: nothing saved, so 1.
    """
    if torch.device(device).type == "cpu":
        return 1
    return BLOCK_ON_ACCELERATOR.get(method, 2)


BLOCK_ON_ACCELERATOR: dict[str, int] = {"compiled": 2, "func": 4}


@dataclass
class HessianOperator:
    """``v -> H v`` on the selected (and unpruned) coordinates, with a count of products computed.

    ``theta`` is the flat vector of the selected parameters ``(D,)``; ``index`` the positions of the ``n``
    unpruned coordinates in it (``None``: all ``D``). Vectors given to :meth:`matvec` are ``(n,)`` in
    ``dtype`` on ``device``.
    """

    n: int
    dtype: torch.dtype
    device: torch.device
    theta: Tensor = field(repr=False)  # (D,)
    index: Tensor | None = field(repr=False)  # (n,) int64 or None
    _batch_hvp: Callable[[Tensor, int], Tensor] = field(repr=False)  # (vector, batch index) -> H_b v
    _batch_hvps: Callable[[Tensor, int], Tensor] = field(repr=False)  # ((b, D), batch index) -> (b, D)
    _batch_grad: Callable[[Tensor, Tensor], Tensor] = field(repr=False)
    _logits: Callable[[Tensor, Tensor], Tensor] = field(repr=False)  # (theta, x) -> logits
    _batches: list[tuple[Tensor, Tensor]] = field(repr=False)
    _model: nn.Module = field(repr=False)
    _shapes: list[tuple[int, ...]] = field(repr=False)  # of the selected parameters, in theta's order
    n_samples: int = 0
    count: int = 0  # Hessian-vector products computed so far
    seconds: float = 0.0  # time spent in them
    on_product: Callable[[int], None] | None = field(default=None, repr=False)
    _batched_failed: bool = field(default=False, repr=False)

    def matvec(self, v: Tensor) -> Tensor:
        """``H v`` for ``v`` of shape ``(n,)``."""
        if v.shape != (self.n,):
            raise ValueError(f"vector has shape {tuple(v.shape)}, the operator acts on ({self.n},)")
        return self._products(v, self._batch_hvp, 1)

    __call__ = matvec

    def matmat(self, vs: Tensor) -> Tensor:
        """``H V`` for ``b`` vectors at once, ``(b, n) -> (b, n)``: one pass over the data for all of them.

        The forward-over-reverse methods ``vmap`` the tangent, so the primal forward and backward are
        shared and only the tangent work grows with ``b``; double backward batches its second backward
        (``is_grads_batched``). Counted as ``b`` products. Where a model's operators cannot be batched
        this way, the products are computed one by one instead (logged once).
        """
        if vs.ndim != 2 or vs.shape[1] != self.n:
            raise ValueError(f"vectors have shape {tuple(vs.shape)}, the operator acts on (b, {self.n})")
        if not self._batched_failed and vs.shape[0] > 1:
            try:
                return self._products(vs, self._batch_hvps, vs.shape[0])
            except Exception as exc:  # noqa: BLE001 - an operator without a batching rule: the same maths, looped
                logger.warning("batched Hessian-vector products failed (%r); computing them one by one", exc)
                self._batched_failed = True
        return torch.stack([self.matvec(v) for v in vs])

    def _products(self, v: Tensor, batch_fn: Callable[[Tensor, int], Tensor], products: int) -> Tensor:
        """``batch_fn`` summed over the batches, for ``v`` ``(..., n)``; counted as ``products`` products, and
        timed with the device's queue drained (the products' time, not their launch's)."""
        start = time.perf_counter()
        full = self.expand(v.to(device=self.device, dtype=self.dtype))  # (..., D)
        with eval_mode(self._model):
            out = batch_fn(full, 0)
            for i in range(1, len(self._batches)):
                out += batch_fn(full, i)
        out /= self.n_samples
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.count += products
        self.seconds += time.perf_counter() - start
        if self.on_product is not None:
            self.on_product(self.count)
        return self._restrict(out)

    def gradient(self) -> Tensor:
        """Gradient of the mean loss on the operator's coordinates, ``(n,)`` (not counted as a product)."""
        out = torch.zeros_like(self.theta)
        with eval_mode(self._model):
            for xb, yb in self._batches:
                out += self._batch_grad(xb, yb)
        return self._restrict(out / self.n_samples)

    def num_outputs(self) -> int:
        """Size of the model's output (its classes), from one sample through it on the operator's device."""
        with eval_mode(self._model), torch.no_grad():
            return int(self._logits(self.theta, self._batches[0][0][:1]).shape[-1])

    def unpruned(self) -> Tensor:
        """:func:`pruning_mask` of the operator's own copy of the weights, ``(D,)`` bool on its device."""
        return _flat_mask(self.theta.split([math.prod(s) for s in self._shapes]), self._shapes)

    def restricted(self, mask: Tensor) -> HessianOperator:
        """The same Hessian on the coordinates where ``mask`` ``(D,)`` is ``True``: ``P H P^T``."""
        if mask.shape != self.theta.shape or mask.dtype != torch.bool:
            raise ValueError(
                f"mask must be bool of shape {tuple(self.theta.shape)}, got {mask.dtype} {tuple(mask.shape)}"
            )
        if bool(mask.all()):
            return replace(self, index=None, n=self.theta.numel(), count=0, seconds=0.0)
        index = torch.nonzero(mask.to(self.device)).squeeze(1)  # (n,)
        if index.numel() == 0:
            raise ValueError("every selected coordinate is pruned: the restricted Hessian is empty")
        return replace(self, index=index, n=int(index.numel()), count=0, seconds=0.0)

    def expand(self, v: Tensor) -> Tensor:
        """``(..., n)`` operator coordinates to the flat selected parameters ``(..., D)``, zeros at pruned
        ones."""
        if self.index is None:
            return v
        full = v.new_zeros((*v.shape[:-1], self.theta.numel()))
        full[..., self.index] = v
        return full

    def _restrict(self, w: Tensor) -> Tensor:
        return w if self.index is None else w[..., self.index]


def pruning_mask(
    model: nn.Module, names: Sequence[str] | None = None, *, device: torch.device | str | None = None
) -> Tensor:
    """Flat boolean mask, over the named parameters in order, of the coordinates that are not pruned.

    The rule of :func:`workers.landscape.directions.weight_masks`: an entry counts as pruned when it is
    exactly zero in a weight of two or more dimensions (convolution and linear weights); biases and
    normalisation parameters always count as unpruned, since a zero there (a freshly initialised BatchNorm
    bias, say) is a value, not a removed connection. Built on ``device`` (default the CPU).
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    params = dict(model.named_parameters())
    chosen = [params[name].detach() for name in (list(names) if names is not None else list(params))]
    if not chosen:
        return torch.zeros(0, dtype=torch.bool, device=device)
    return _flat_mask([p.to(device).reshape(-1) for p in chosen], [tuple(p.shape) for p in chosen])


def _flat_mask(flat: Sequence[Tensor], shapes: Sequence[tuple[int, ...]]) -> Tensor:
    """:func:`workers.landscape.directions.weight_masks` of the tensors ``flat`` (each flattened, of
    ``shapes``), concatenated: ``(sum of numels,)``."""
    views = [t.view(shape) for t, shape in zip(flat, shapes, strict=True)]
    return torch.cat([m.reshape(-1) for m in weight_masks(views)])


def hessian_operator(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    names: Sequence[str] | None = None,
    mask: Tensor | None = None,
    method: HVPMethod = "func",
    cuda_graphs: bool = True,
) -> HessianOperator:
    """The Hessian of the mean cross-entropy of ``model`` on ``(x, y)`` as a matrix-free operator.

    Args:
        model: classifier mapping ``(B, *input_shape)`` to logits ``(B, C)``; left untouched (copies of its
            parameters and buffers, cast to ``dtype`` on ``device``, are passed to ``functional_call``).
        x: inputs ``(N, *input_shape)``, moved to ``device`` once, in batches of ``batch_size``.
        y: integer labels ``(N,)``.
        names: the parameters the Hessian is taken over (a block of it; the others stay fixed). Default all.
        mask: boolean ``(D,)`` over the flat selected parameters; ``True`` marks unpruned coordinates.
        method: ``"func"`` (forward-over-reverse), ``"compiled"`` (the same, compiled), ``"double_backward"``
            or ``"retained"`` (double backward through gradient graphs kept from the first product: fastest
            on the CPU, most memory).
        cuda_graphs: on CUDA, replay each ``"func"`` pass as a CUDA graph after its first run
            (:class:`workers.hessian.graphs.GraphedPasses`) and compile ``"compiled"`` ones with
            ``mode="reduce-overhead"``; ``False`` launches every kernel each time.
    """
    if x.shape[0] != y.shape[0] or y.ndim != 1 or x.shape[0] == 0:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must hold the same N >= 1 samples")
    if method not in ("func", "compiled", "double_backward", "retained"):
        raise ValueError(
            f"unknown HVP method {method!r}; use 'func', 'compiled', 'double_backward' or 'retained'"
        )
    all_params = dict(model.named_parameters())
    chosen = list(names) if names is not None else list(all_params)
    unknown = [n for n in chosen if n not in all_params]
    if unknown or not chosen:
        raise ValueError(f"parameters {unknown} are not in the model (or none chosen)")

    def cast(t: Tensor) -> Tensor:
        t = t.detach()
        return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device=device)

    fixed = {k: cast(v) for k, v in all_params.items() if k not in set(chosen)}
    fixed.update({k: cast(v) for k, v in model.named_buffers()})
    shapes = [tuple(all_params[k].shape) for k in chosen]
    numels = [all_params[k].numel() for k in chosen]
    theta = torch.cat([cast(all_params[k]).reshape(-1) for k in chosen])  # (D,)

    def logits_fn(flat: Tensor, xb: Tensor) -> Tensor:
        tensors = {k: t.view(s) for k, t, s in zip(chosen, flat.split(numels), shapes, strict=True)}
        return functional_call(model, {**fixed, **tensors}, (xb,))  # (B, C)

    def loss_fn(flat: Tensor, xb: Tensor, yb: Tensor) -> Tensor:
        logits = logits_fn(flat, xb)  # (B, C)
        if logits.ndim != 2 or logits.shape[0] != xb.shape[0]:
            raise ValueError(f"model returned logits {tuple(logits.shape)} for inputs {tuple(xb.shape)}")
        return F.cross_entropy(logits, yb, reduction="sum")

    grad_fn = grad(loss_fn)

    def batch_grad(xb: Tensor, yb: Tensor) -> Tensor:
        return grad_fn(theta, xb, yb)

    xs = x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device=device)
    ys = y.to(device=device, dtype=torch.long)
    batches = [
        (xs[i : i + batch_size], ys[i : i + batch_size]) for i in range(0, int(x.shape[0]), batch_size)
    ]

    def fwd_over_rev(t: Tensor, v: Tensor, xb: Tensor, yb: Tensor) -> Tensor:
        return jvp(lambda s: grad_fn(s, xb, yb), (t,), (v,))[1]  # (D,)

    def fwd_over_rev_many(t: Tensor, vs: Tensor, xb: Tensor, yb: Tensor) -> Tensor:
        return vmap(lambda v: fwd_over_rev(t, v, xb, yb))(vs)  # (b, D)

    graphed = cuda_graphs and torch.device(device).type == "cuda"  # only the forward-over-reverse methods
    if method == "func":

        def eager_hvp(v: Tensor, i: int) -> Tensor:
            return fwd_over_rev(theta, v, *batches[i])

        def eager_hvps(vs: Tensor, i: int) -> Tensor:
            return fwd_over_rev_many(theta, vs, *batches[i])

        batch_hvp = GraphedPasses(eager_hvp) if graphed else eager_hvp
        batch_hvps = GraphedPasses(eager_hvps) if graphed else eager_hvps

    elif method == "compiled":
        # On CUDA each compiled pass is also recorded as a CUDA graph and replayed ("reduce-overhead"):
        # one launch instead of about a thousand, and no host work inside the pass. A replay writes its
        # output where the previous one did, so each is copied out before the next call.
        mode = "reduce-overhead" if graphed else None
        compiled = compile_or_eager(fwd_over_rev, mode=mode)
        compiled_many = compile_or_eager(fwd_over_rev_many, mode=mode)  # per batch shape and block size

        def owned(out: Tensor) -> Tensor:
            return out.clone() if graphed else out

        def batch_hvp(v: Tensor, i: int) -> Tensor:
            return owned(compiled(theta, v, *batches[i]))

        def batch_hvps(vs: Tensor, i: int) -> Tensor:
            return owned(compiled_many(theta, vs, *batches[i]))

    elif method == "double_backward":

        def batch_hvp(v: Tensor, i: int) -> Tensor:
            return batch_hvps(v[None], i)[0]

        def batch_hvps(vs: Tensor, i: int) -> Tensor:
            with torch.enable_grad():
                t = theta.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(loss_fn(t, *batches[i]), t, create_graph=True)
                if vs.shape[0] == 1:
                    (hv,) = torch.autograd.grad(g, t, grad_outputs=vs[0])
                    return hv[None]
                (hv,) = torch.autograd.grad(g, t, grad_outputs=vs, is_grads_batched=True)
            return hv  # (b, D)

    else:
        leaf = theta.detach().requires_grad_(True)
        graphs: dict[int, Tensor] = {}

        def batch_hvp(v: Tensor, i: int) -> Tensor:
            return batch_hvps(v[None], i)[0]

        def batch_hvps(vs: Tensor, i: int) -> Tensor:
            with torch.enable_grad():
                if i not in graphs:
                    (graphs[i],) = torch.autograd.grad(loss_fn(leaf, *batches[i]), leaf, create_graph=True)
                if vs.shape[0] == 1:
                    (hv,) = torch.autograd.grad(graphs[i], leaf, grad_outputs=vs[0], retain_graph=True)
                    return hv[None]
                (hv,) = torch.autograd.grad(
                    graphs[i], leaf, grad_outputs=vs, retain_graph=True, is_grads_batched=True
                )
            return hv  # (b, D)

    op = HessianOperator(
        n=theta.numel(),
        dtype=dtype,
        device=torch.device(device),
        theta=theta,
        index=None,
        _batch_hvp=batch_hvp,
        _batch_hvps=batch_hvps,
        _batch_grad=batch_grad,
        _logits=logits_fn,
        _batches=batches,
        _model=model,
        _shapes=shapes,
        n_samples=int(x.shape[0]),
    )
    return op if mask is None else op.restricted(mask)
