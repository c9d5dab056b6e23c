"""Robustness analysis throughput against plain inference on the same model, data and device.

Usage: python bench/robustness.py [--device cpu|cuda] [--model resnet20] [--samples 1000] [--batch-size 500]
                                  [--corruptions gaussian_noise,...] [--severities 1,2,3,4,5]

The issue's GPU setting: ``--device cuda --model resnet20 --samples 10000 --batch-size 1000`` (14 corruptions
x 5 severities). Images are uniform random pixels in [0, 1], normalised with CIFAR-10's mean and std, on a
randomly initialised model in eval mode.

- plain inference: ``model(x)`` over the samples in batches, eval mode, ``no_grad`` (images per second);
- the analysis: :func:`workers.robustness.analysis.robustness` over the clean images and every
  (corruption, severity), corruption on the device included (images per second, all conditions counted);
- per corruption, the seconds to corrupt one batch at severity 3 (where a slow one would show).

The last line is ``robustness_throughput_ratio: <analysis / inference>`` (target: at least 0.7).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from workers.architectures import build
from workers.robustness.analysis import robustness
from workers.robustness.corruptions import CORRUPTIONS, corrupt

CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32).reshape(3, 1, 1)
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32).reshape(3, 1, 1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--corruptions", default=",".join(CORRUPTIONS))
    parser.add_argument("--severities", default="1,2,3,4,5")
    args = parser.parse_args()
    device = torch.device(args.device)
    corruptions = [c for c in args.corruptions.split(",") if c]
    severities = [int(s) for s in args.severities.split(",")]

    torch.manual_seed(0)
    model = build(args.model, num_classes=10, input_shape=(3, 32, 32)).eval()
    gen = torch.Generator().manual_seed(0)
    pixels = torch.rand(args.samples, 3, 32, 32, generator=gen)
    x = (pixels - torch.from_numpy(CIFAR_MEAN)) / torch.from_numpy(CIFAR_STD)
    y = torch.randint(0, 10, (args.samples,), generator=gen)
    conditions = 1 + len(corruptions) * len(severities)
    print(
        f"{args.model}, {args.samples} samples x {conditions} conditions, batch {args.batch_size}, "
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}",
        flush=True,
    )

    dev_model = model.to(device)
    xd = x.to(device)
    with torch.no_grad():
        dev_model(xd[: args.batch_size])  # warm-up
        _sync(device)
        start = time.perf_counter()
        for _ in range(3):
            for i in range(0, args.samples, args.batch_size):
                dev_model(xd[i : i + args.batch_size]).argmax(1)
        _sync(device)
    inference = 3 * args.samples / (time.perf_counter() - start)
    print(f"plain inference: {inference:,.0f} images/s", flush=True)

    batch = pixels[: args.batch_size].to(device)
    for name in corruptions:
        g = torch.Generator(device=device).manual_seed(1)
        corrupt(batch, name, 3, generator=g)  # warm-up
        _sync(device)
        start = time.perf_counter()
        corrupt(batch, name, 3, generator=g)
        _sync(device)
        ms = (time.perf_counter() - start) * 1e3
        print(f"  corrupt {name:18s} severity 3: {ms:8.1f} ms / {len(batch)} images")

    result = robustness(
        model,
        x,
        y,
        device=device,
        normalization=(CIFAR_MEAN, CIFAR_STD),
        corruptions=corruptions,
        severities=severities,
        max_samples=args.samples,
        batch_size=args.batch_size,
        keep_features=True,
    )
    analysis = result.summary["images_per_second"]
    print(
        f"analysis: {result.summary['images']:,} images in {result.summary['seconds']:.1f} s = "
        f"{analysis:,.0f} images/s (clean accuracy {result.summary['clean']['accuracy']:.3f})"
    )
    print(f"robustness_throughput_ratio: {analysis / inference:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
