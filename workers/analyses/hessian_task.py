"""Registry entry for :func:`workers.hessian.analysis.hessian_spectrum`, with its parameters and defaults.

Defaults and their sources:

- ``max_samples`` 2048: the evaluation subset of the benchmark in DESIGN.md section 8.
- ``top_k`` ``None`` = classes + 5, ``n_negative`` 3: DESIGN.md section 6 (the ``C`` outliers of Papyan 2020
  plus enough of the bulk to place its edge; a few negative ones to show non-convexity).
- ``lanczos_iters`` 100: PyHessian's ``maxIter=100`` (Yao et al. 2020), here a cap on one Krylov space.
- ``lanczos_block`` ``None``: :func:`workers.hessian.hvp.default_block`, 1 on the CPU and 2 to 4 on a GPU,
  where the products of one block share a forward and backward pass (block Lanczos).
- ``trace_probes`` 30: enough for a standard error from the probes' spread; PyHessian stops on a relative
  change of 1e-3 instead (often after a few probes).
- ``tol`` 1e-4 on the residual relative to the spectral norm: tighter than PyHessian's ``tol=1e-3`` on the
  relative change of an estimate, which bounds no error.
- ``density_vectors`` 3, ``density_iters`` 40: Papyan 2020 and Ghorbani et al. 2019 report densities from
  a few vectors; PyHessian's ``density(iter=100, n_v=1)`` uses one vector of 100 steps.
- ``density_sigma`` 1.6e-3 of the spectral width: the variance 1e-5 of Ghorbani et al. 2019 and PyHessian on
  a spectrum rescaled to [-1, 1].
- ``hvp_method`` "auto": :func:`workers.hessian.hvp.default_method` (forward-over-reverse on CUDA, double
  backward on the CPU); "retained" keeps each batch's gradient graph (fastest on the CPU, most memory).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from workers.hessian.analysis import hessian_spectrum
from workers.hessian.hvp import default_method
from workers.registry import AnalysisInputs, AnalysisOutput, AnalysisSpec, register

__all__ = ["HessianParams"]


class HessianParams(BaseModel):
    """Parameters of the ``hessian`` analysis."""

    model_config = ConfigDict(extra="forbid")

    max_samples: int = Field(2048, ge=1, le=100_000, description="use the first N samples")
    batch_size: int = Field(512, ge=1, le=65536, description="samples per forward/backward pass")
    top_k: int | None = Field(None, ge=1, le=200, description="largest eigenvalues; None: classes + 5")
    n_negative: int = Field(3, ge=0, le=50, description="most negative eigenvalues")
    lanczos_iters: int = Field(100, ge=2, le=2000, description="most Hessian-vector products for Lanczos")
    lanczos_block: int | None = Field(
        None, ge=1, le=16, description="products per Lanczos step, in one pass; None: the device's best"
    )
    tol: float = Field(1e-4, gt=0, le=0.1, description="residual tolerance, relative to the spectral norm")
    trace_probes: int = Field(30, ge=0, le=1000, description="products spent on the trace (0: skip)")
    trace_method: Literal["hutchinson", "hutchpp"] = "hutchinson"
    density_vectors: int = Field(3, ge=0, le=50, description="SLQ random vectors (0: skip the density)")
    density_iters: int = Field(40, ge=2, le=1000, description="Lanczos steps per SLQ vector")
    density_sigma: float = Field(1.6e-3, gt=0, le=0.5, description="Gaussian width, fraction of the spectrum")
    density_grid: int = Field(1000, ge=10, le=100_000, description="density grid points")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    subspace: Literal["auto", "all", "unpruned"] = Field(
        "auto", description="auto: unpruned coordinates when weights hold exact zeros, else all"
    )
    dtype: Literal["float32", "float64"] = "float32"
    per_layer: bool = Field(False, description="also the top eigenvalues of each parameter group")
    hvp_method: Literal["auto", "func", "compiled", "double_backward", "retained"] = "auto"


def _run(inputs: AnalysisInputs) -> AnalysisOutput:
    p: HessianParams = inputs.params
    method = default_method(inputs.device) if p.hvp_method == "auto" else p.hvp_method
    result = hessian_spectrum(
        inputs.model,
        inputs.x,
        inputs.y,
        device=inputs.device,
        max_samples=p.max_samples,
        batch_size=p.batch_size,
        top_k=p.top_k,
        n_negative=p.n_negative,
        lanczos_iters=p.lanczos_iters,
        lanczos_block=p.lanczos_block,
        tol=p.tol,
        trace_probes=p.trace_probes,
        trace_method=p.trace_method,
        density_vectors=p.density_vectors,
        density_iters=p.density_iters,
        density_sigma=p.density_sigma,
        density_grid=p.density_grid,
        seed=p.seed,
        subspace=p.subspace,
        dtype=getattr(torch, p.dtype),
        per_layer=p.per_layer,
        hvp_method=method,
        progress=inputs.progress,
    )
    return AnalysisOutput(result.summary(), result.arrays(), artifact="spectrum")


register(
    AnalysisSpec(
        name="hessian",
        version="1",
        title="Hessian spectrum",
        description=(
            "Top and most negative Hessian eigenvalues (Lanczos, with residuals), trace (Hutchinson or "
            "Hutch++), spectral density (stochastic Lanczos quadrature) and outliers beyond the bulk edge, "
            "restricted to unpruned weights for pruned checkpoints."
        ),
        params_model=HessianParams,
        run=_run,
    )
)
