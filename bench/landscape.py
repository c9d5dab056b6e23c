"""Loss-landscape engine against loss-landscapes on one checkpoint, data set, grid and pair of directions.

Usage: python bench/landscape.py [--device cpu|cuda] [--model resnet20] [--samples 512] [--steps 21]
                                 [--precisions fp32,bf16] [--compile auto|on|off] [--no-loss-landscapes]

The issue's settings: on the CPU ``--model resnet20 --samples 512 --steps 21``; on a GPU
``--device cuda --model torchvision.resnet18 --samples 2048 --steps 41``, and a 51x51 surface with
``--model resnet20 --samples 10000 --steps 51 --no-loss-landscapes``.

Both tools walk the same grid along the same two filter-normalised Gaussian directions (PruneScope's,
biases and BatchNorm parameters held fixed) on a randomly initialised model in eval mode:

- loss-landscapes (PyPI) ``random_plane(model, Loss(...), distance, steps, normalization=None)``, with its
  direction sampler replaced by one returning these directions: that is the only patch, and it also stops
  the released version from failing on a GPU (it draws its directions on the CPU). Its grid is
  reconstructed exactly (it starts at ``-steps/2`` and shifts every other column by one step), so
  PruneScope's sweep evaluates the very same points and the two surfaces are compared point by point.
- PruneScope: :class:`workers.landscape.evaluator.PointEvaluator` and :func:`workers.landscape.grid.sweep`,
  as the ``landscape`` analysis runs them (channels_last; the forward compiled when the sweep would take
  over ``COMPILE_AFTER_SECONDS`` eagerly, compile time included, else a CUDA graph on a GPU), in each
  precision.

"One plain evaluation pass" is what a user would write: ``cross_entropy(model(x), y).item()`` in eval mode
under ``no_grad``, fp32, contiguous. The last line is ``landscape_speedup_vs_loss_landscapes: <ratio>`` of
loss-landscapes' seconds to the fastest PruneScope mode's (each mode's ratio is printed above it).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from workers.architectures import build
from workers.landscape.analysis import accelerate
from workers.landscape.directions import random_direction
from workers.landscape.evaluator import PointEvaluator, copy_like
from workers.landscape.grid import sweep


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_pass_seconds(model, x, y, device, repeat: int = 5) -> float:
    with torch.no_grad():
        F.cross_entropy(model(x), y).item()
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            F.cross_entropy(model(x), y).item()
            best = min(best, time.perf_counter() - start)
    return best


def loss_landscapes_grid(
    model, x, y, dirs, steps: int, distance: float
) -> tuple[np.ndarray, float, np.ndarray]:
    """Run loss-landscapes' random_plane along ``dirs``; its surface ``(steps, steps)``, seconds, and the
    coordinates ``(steps*steps, 2)`` of its points in units of ``dirs`` (row-major as its matrix)."""
    import loss_landscapes
    import loss_landscapes.main as ll_main
    from loss_landscapes.metrics import Loss
    from loss_landscapes.model_interface.model_parameters import ModelParameters

    given = [ModelParameters([t.clone() for t in d]) for d in dirs]
    ll_main.rand_u_like = lambda example: given[0]
    ll_main.orthogonal_to = lambda vector: given[1]
    # its scaling of each direction, computed as it does (main.random_plane)
    start = ModelParameters([p.detach() for p in model.parameters()])
    scales = [float(((start.model_norm() / distance) / steps) / g.model_norm()) for g in given]
    metric = Loss(torch.nn.CrossEntropyLoss(), x, y)
    _sync(x.device)
    started = time.perf_counter()
    surface = loss_landscapes.random_plane(model, metric, distance=distance, steps=steps, normalization=None)
    _sync(x.device)
    seconds = time.perf_counter() - started
    i, j = np.meshgrid(np.arange(steps), np.arange(steps), indexing="ij")
    a = (i - steps / 2) * scales[0]
    b = (j + (i % 2 == 0) - steps / 2) * scales[1]  # even columns are walked after a first step
    return np.asarray(surface, dtype=np.float64), seconds, np.stack([a.ravel(), b.ravel()], axis=1)


def prunescope_grid(
    model, x, y, dirs, coords, device, precision: str, compile_mode: str
) -> tuple[np.ndarray, float, dict]:
    _sync(device)
    started = time.perf_counter()
    ev = PointEvaluator(model, x, y, device=device, batch_size=x.shape[0], precision=precision)
    params = [p.detach() for p in ev.params]
    moved = [[copy_like(t, p) for t, p in zip(d, params, strict=True)] for d in dirs]
    base = [p.clone() for p in params]
    one = ev.time_one()
    accelerate(ev, one, coords.shape[0], compile_mode)
    out = sweep(ev.params, base, moved, coords, ev.evaluate, chunk=64)
    _sync(device)
    seconds = time.perf_counter() - started
    info = {"compiled": ev.compiled, "cuda_graph": ev.cuda_graph, "channels_last": ev.channels_last}
    return out[:, 0], seconds, info


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--steps", type=int, default=21)
    parser.add_argument("--distance", type=float, default=1.0, help="loss-landscapes' distance argument")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--compile", default="auto", choices=["auto", "on", "off"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-loss-landscapes", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)

    torch.manual_seed(args.seed)
    model = build(args.model, num_classes=args.num_classes, input_shape=(3, 32, 32)).eval()
    gen = torch.Generator().manual_seed(args.seed)
    x_cpu = torch.randn(args.samples, 3, 32, 32, generator=gen)  # (N, 3, 32, 32)
    y_cpu = torch.randint(0, args.num_classes, (args.samples,), generator=gen)  # (N,)
    params = [p.detach() for p in model.parameters()]
    dirs = [random_direction(params, gen, "filter") for _ in range(2)]
    points = args.steps**2
    print(
        f"{args.model} on {args.samples} samples, {args.steps}x{args.steps} plane, device {device}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}",
        flush=True,
    )

    ref_model = copy.deepcopy(model).to(device).eval()
    x, y = x_cpu.to(device), y_cpu.to(device)
    plain = plain_pass_seconds(ref_model, x, y, device)
    print(
        f"one plain evaluation pass: {plain * 1e3:.1f} ms; {points} of them: {plain * points:.1f} s",
        flush=True,
    )

    rows = [("tool", "seconds", "ms/point", "x plain pass", "max rel. diff", "notes")]
    ll = None
    if not args.no_loss_landscapes:
        ll_model = copy.deepcopy(model).to(device).eval()
        ll_dirs = [[t.to(device) for t in d] for d in dirs]
        surface, seconds, coords = loss_landscapes_grid(ll_model, x, y, ll_dirs, args.steps, args.distance)
        ll = (surface.ravel(), seconds)
        rows.append(
            (
                "loss-landscapes",
                f"{seconds:.1f}",
                f"{seconds / points * 1e3:.1f}",
                f"{seconds / points / plain:.2f}",
                "ref.",
                "",
            )
        )
    else:
        span = 1.0
        axis = np.linspace(-span, span, args.steps)
        a, b = np.meshgrid(axis, axis, indexing="ij")
        coords = np.stack([a.ravel(), b.ravel()], axis=1)
    print(
        f"grid: alpha in [{coords[:, 0].min():.3g}, {coords[:, 0].max():.3g}], "
        f"beta in [{coords[:, 1].min():.3g}, {coords[:, 1].max():.3g}] (units of the directions)",
        flush=True,
    )

    fp32_surface = None
    speedups: dict[str, float] = {}
    for precision in args.precisions.split(","):
        surface, seconds, info = prunescope_grid(
            model, x_cpu, y_cpu, dirs, coords, device, precision, args.compile
        )
        if precision == "fp32":
            fp32_surface = surface
        ref = ll[0] if ll else fp32_surface
        diff = float(np.max(np.abs(surface - ref) / np.abs(ref))) if ref is not None else float("nan")
        notes = ", ".join(
            [
                f"compiled={info['compiled']}",
                f"cuda_graph={info['cuda_graph']}",
                f"channels_last={info['channels_last']}",
            ]
            + (
                [f"vs fp32 {np.max(np.abs(surface - fp32_surface) / np.abs(fp32_surface)):.2e}"]
                if precision != "fp32" and fp32_surface is not None
                else []
            )
        )
        rows.append(
            (
                f"PruneScope {precision}",
                f"{seconds:.1f}",
                f"{seconds / points * 1e3:.1f}",
                f"{seconds / points / plain:.2f}",
                f"{diff:.2e}",
                notes,
            )
        )
        if ll:
            speedups[precision] = ll[1] / seconds
        print(" | ".join(rows[-1]), flush=True)

    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, width, strict=True)))
    for precision, ratio in speedups.items():
        print(f"landscape_speedup_vs_loss_landscapes_{precision}: {ratio:.2f}")
    best = max(speedups.values()) if speedups else float("nan")
    print(f"landscape_speedup_vs_loss_landscapes: {best:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
