"""Registry entry for :mod:`workers.analyses.evaluate`."""

from __future__ import annotations

from workers.analyses.evaluate import EvaluateParams, evaluate
from workers.registry import AnalysisInputs, AnalysisOutput, AnalysisSpec, register


def _run(inputs: AnalysisInputs) -> AnalysisOutput:
    result = evaluate(
        inputs.model, inputs.x, inputs.y, params=inputs.params, device=inputs.device, progress=inputs.progress
    )
    return AnalysisOutput(result.summary(), result.arrays())


register(
    AnalysisSpec(
        name="evaluate",
        version="1",
        title="Evaluate",
        description="Loss, accuracy, per-class accuracy, confusion matrix and calibration error (ECE).",
        params_model=EvaluateParams,
        run=_run,
    )
)
