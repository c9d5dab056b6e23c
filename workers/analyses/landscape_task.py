"""Registry entry for the loss landscape (:mod:`workers.landscape`), with its parameters and defaults.

Defaults and their sources:

- ``mode`` "2d", ``steps`` 31 over ``[-1, 1]`` (issue 5); 51 for 1D; 21 points for interpolation.
- ``normalization`` "filter" with biases and BatchNorm parameters held fixed: Li et al. 2018.
- ``max_samples`` / ``batch_size`` 2048: the benchmark setting of DESIGN.md section 8, one full batch.
- ``batchnorm`` "interpolate": the statistics move with the weights (DESIGN.md section 6); "recompute"
  re-estimates them at every point, as Frankle et al. 2020 recommend for BatchNorm networks.
- ``target_checkpoint_id`` for interpolation: the checkpoint's parent (the dense model it was pruned from)
  when not given.
"""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from workers.hessian.hvp import default_method, hessian_operator
from workers.hessian.lanczos import lanczos
from workers.landscape.analysis import interpolation, slices
from workers.registry import AnalysisInputs, AnalysisOutput, AnalysisSpec, register

__all__ = ["LandscapeParams"]

DEFAULT_STEPS = {"1d": 51, "2d": 31, "interpolation": 21}
MAX_STEPS = {"1d": 2001, "2d": 201, "interpolation": 1001}


class LandscapeParams(BaseModel):
    """Parameters of the ``landscape`` analysis."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["1d", "2d", "interpolation"] = "2d"
    steps: int | None = Field(None, ge=2, description="grid points per axis (odd for 1d/2d); None: by mode")
    span: float = Field(1.0, gt=0, le=100, description="slices cover [-span, span] along each direction")
    direction: Literal["random", "hessian"] = Field(
        "random", description="hessian: the first direction is the top Hessian eigenvector"
    )
    normalization: Literal["filter", "layer", "none"] = "filter"
    include_1d: bool = Field(False, description="also move biases and BatchNorm parameters")
    masked: bool | None = Field(None, description="keep pruned weights at zero; None: when pruned")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="direction seed: equal seeds cut alike")
    target_checkpoint_id: int | None = Field(
        None, ge=1, le=2**31 - 1, description="interpolation target; None: the checkpoint's parent"
    )
    batchnorm: Literal["interpolate", "recompute"] = "interpolate"
    bn_samples: int = Field(2048, ge=1, le=100_000, description="samples to re-estimate BatchNorm on")
    max_samples: int = Field(2048, ge=1, le=100_000, description="use the first N samples")
    batch_size: int = Field(2048, ge=1, le=65536, description="samples per forward pass")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast and channels_last")
    compile: Literal["auto", "on", "off"] = Field(
        "auto", description="torch.compile the forward; auto: when the grid would take over 30 s eagerly"
    )

    @model_validator(mode="after")
    def _by_mode(self) -> Self:
        if self.steps is None:
            self.steps = DEFAULT_STEPS[self.mode]
        if self.steps > MAX_STEPS[self.mode]:
            raise ValueError(f"steps must be at most {MAX_STEPS[self.mode]} for mode {self.mode!r}")
        if self.mode == "interpolation":
            if self.direction != "random":
                raise ValueError("direction applies to 1d and 2d slices, not to interpolation")
        else:
            if self.steps % 2 == 0:
                raise ValueError(f"steps must be odd so the centre (0) is on the grid; got {self.steps}")
            if self.target_checkpoint_id is not None:
                raise ValueError("target_checkpoint_id is for mode 'interpolation'")
        return self


def _per_checkpoint(params: dict, checkpoint: dict) -> dict:
    """Interpolation without a target goes to the checkpoint's parent; a target must be another one."""
    if params.get("mode") != "interpolation":
        return params
    target = params.get("target_checkpoint_id") or checkpoint.get("parent_id")
    if target is None:
        raise ValueError(
            f"checkpoint {checkpoint['id']} has no parent to interpolate to; give target_checkpoint_id"
        )
    if target == checkpoint["id"]:
        raise ValueError(f"checkpoint {checkpoint['id']} cannot be interpolated to itself")
    return {**params, "target_checkpoint_id": target}


def _top_eigenvector(inputs: AnalysisInputs, p: LandscapeParams) -> tuple[torch.Tensor, str]:
    """The stored eigenvector of a finished hessian job, else one computed here by Lanczos (k = 1)."""
    stored = inputs.reused.get("top_eigenvector")
    if stored is not None:
        return torch.from_numpy(np.asarray(stored, dtype=np.float32)), "hessian result"
    model, device = inputs.model, inputs.device
    n = min(int(inputs.x.shape[0]), p.max_samples)
    op = hessian_operator(
        model,
        inputs.x[:n],
        inputs.y[:n],
        batch_size=min(p.batch_size, 512),
        device=device,
        method=default_method(device),
    )
    op = op.restricted(op.unpruned())  # the unpruned coordinates (all of a dense checkpoint)
    op.on_product = lambda count: inputs.progress(0.0, f"top Hessian eigenvector: HVP {count}")
    res = lanczos(
        op.matvec,
        op.n,
        k=1,
        max_iter=60,
        tol=1e-3,
        generator=torch.Generator().manual_seed(p.seed),
        dtype=op.dtype,
        device=op.device,
        want_vector=True,
    )
    return op.expand(res.top_vector).cpu(), f"computed ({op.count} HVPs)"


def _run(inputs: AnalysisInputs) -> AnalysisOutput:
    p: LandscapeParams = inputs.params
    common = dict(
        device=inputs.device,
        max_samples=p.max_samples,
        batch_size=p.batch_size,
        precision=p.precision,
        progress=inputs.progress,
    )
    if p.mode == "interpolation":
        if inputs.target is None:
            raise ValueError("interpolation needs the target checkpoint")
        result = interpolation(
            inputs.model,
            inputs.target,
            inputs.x,
            inputs.y,
            steps=p.steps,
            batchnorm=p.batchnorm,
            bn_samples=p.bn_samples,
            target_checkpoint_id=p.target_checkpoint_id,
            **common,
        )
    else:
        vector, source = _top_eigenvector(inputs, p) if p.direction == "hessian" else (None, None)
        result = slices(
            inputs.model,
            inputs.x,
            inputs.y,
            mode=p.mode,
            steps=p.steps,
            span=p.span,
            direction=p.direction,
            normalization=p.normalization,
            include_1d=p.include_1d,
            masked=p.masked,
            seed=p.seed,
            compile=p.compile,
            hessian_vector=vector,
            **common,
        )
        if source is not None:
            result.summary["hessian_vector"] = source
    return AnalysisOutput(result.summary, result.arrays, artifact="surface")


register(
    AnalysisSpec(
        name="landscape",
        version="1",
        title="Loss landscape",
        description=(
            "Loss and accuracy along 1D and 2D slices through the weights (filter-normalised Gaussian "
            "directions or the top Hessian eigenvector, masked for pruned checkpoints), or along the line "
            "to another checkpoint (interpolation, with the loss and error barriers)."
        ),
        params_model=LandscapeParams,
        run=_run,
        per_checkpoint=_per_checkpoint,
    )
)
