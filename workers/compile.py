"""``torch.compile`` with a safety net, shared by the analyses that compile their hot loop."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

logger = logging.getLogger(__name__)

__all__ = ["compile_or_eager"]


@contextmanager
def _quiet_torch_jit() -> Iterator[None]:
    """Silence torch's own deprecation warnings about ``torch.jit``, raised while inductor imports."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.", DeprecationWarning)
        yield


def compile_or_eager(fn: Callable[..., Any], *, mode: str | None = None) -> Callable[..., Any]:
    """``torch.compile(fn, mode=mode)`` (one graph per batch shape), or ``fn`` itself where compilation fails.

    Where the backend cannot compile (no C++ compiler on a CPU machine, an operator dynamo does not trace)
    the eager function runs instead, logged, so a result never depends on compilation succeeding.
    Compilation happens at the first call for each input shape and is cached per process (dynamo keys
    it on the code, so a second model of the same architecture reuses it).
    """
    with _quiet_torch_jit():
        state = {"fn": torch.compile(fn, dynamic=False, mode=mode)}

    def call(*args: Any) -> Any:
        with _quiet_torch_jit():
            try:
                return state["fn"](*args)
            except Exception as exc:  # noqa: BLE001 - any compiler failure falls back to the same maths
                if state["fn"] is fn:
                    raise
                logger.warning("torch.compile failed (%r); running eagerly", exc)
                state["fn"] = fn
                return fn(*args)

    return call
