"""Which device a worker computes on: CUDA when present, else CPU, unless forced."""

from __future__ import annotations

import torch


def pick_device(forced: str | None = None) -> torch.device:
    if forced:
        device = torch.device(forced)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"PRUNESCOPE_DEVICE={forced!r} but CUDA is not available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
