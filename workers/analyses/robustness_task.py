"""Registry entry for the robustness geometry (:mod:`workers.robustness`), with its parameters.

Corruptions are generated on the device, or read from a stored CIFAR-10-C / CIFAR-100-C set
(``corrupted_dataset_id``) whose slices hold the clean data set's samples in order.

Defaults: all 14 generated corruptions at severities 1-5 (Hendrycks & Dietterich 2019), the first 10,000
samples (DESIGN.md section 6: the CIFAR-10 test set), batches of 1,000 images.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workers.registry import AnalysisInputs, AnalysisOutput, AnalysisSpec, register
from workers.robustness.analysis import robustness
from workers.robustness.corruptions import CORRUPTIONS

__all__ = ["RobustnessParams"]


class RobustnessParams(BaseModel):
    """Parameters of the ``robustness`` analysis."""

    model_config = ConfigDict(extra="forbid")

    corruptions: list[str] | None = Field(
        None, max_length=100, description="corruptions to apply; None: all 14 (or all of a stored set)"
    )
    severities: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5], min_length=1, max_length=5)
    max_samples: int = Field(10_000, ge=1, le=100_000, description="use the first N samples")
    batch_size: int = Field(1000, ge=1, le=65536, description="images per forward pass")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="corruption randomness")
    keep_features: bool = Field(True, description="store clean penultimate features (for CKA)")
    corrupted_dataset_id: int | None = Field(
        None, ge=1, le=2**31 - 1, description="read corruptions from this CIFAR-10-C / CIFAR-100-C set"
    )

    @field_validator("severities")
    @classmethod
    def _levels(cls, value: list[int]) -> list[int]:
        if any(not 1 <= s <= 5 for s in value):
            raise ValueError("severities must be between 1 and 5")
        return sorted(set(value))

    @model_validator(mode="after")
    def _names(self) -> Self:
        if self.corruptions is None:
            if self.corrupted_dataset_id is None:
                self.corruptions = list(CORRUPTIONS)
            return self
        if self.corrupted_dataset_id is None:
            unknown = [c for c in self.corruptions if c not in CORRUPTIONS]
            if unknown:
                raise ValueError(f"unknown corruptions {unknown}; known: {', '.join(CORRUPTIONS)}")
        order = {name: i for i, name in enumerate(CORRUPTIONS)}
        # one order, so equal requests share a cache key
        self.corruptions = sorted(set(self.corruptions), key=lambda c: (order.get(c, len(order)), c))
        return self


def _run(inputs: AnalysisInputs) -> AnalysisOutput:
    p: RobustnessParams = inputs.params
    corruptions = p.corruptions
    if inputs.corrupted is not None:
        available = list(inputs.corrupted.meta.get("corruptions", []))
        corruptions = corruptions if corruptions is not None else available
        missing = [c for c in corruptions if c not in available]
        if missing:
            raise ValueError(f"the corrupted set has no {missing}; it holds {', '.join(available)}")
    result = robustness(
        inputs.model,
        inputs.x,
        inputs.y,
        device=inputs.device,
        normalization=inputs.normalization,
        corruptions=corruptions,
        severities=p.severities,
        max_samples=p.max_samples,
        batch_size=p.batch_size,
        seed=p.seed,
        keep_features=p.keep_features,
        read_slice=inputs.corrupted.read if inputs.corrupted is not None else None,
        progress=inputs.progress,
    )
    return AnalysisOutput(result.summary, result.arrays, artifact="geometry")


register(
    AnalysisSpec(
        name="robustness",
        version="1",
        title="Robustness geometry",
        description=(
            "Accuracy, loss, angle to the class direction, feature norm and margin of every sample, clean "
            "and under 14 corruptions at 5 severities generated on the device; neural collapse, EL2N and "
            "dead-ReLU rates from the same pass."
        ),
        params_model=RobustnessParams,
        run=_run,
    )
)
