"""Analyses that exist only for the reliability tests (``PRUNESCOPE_TEST_ANALYSES=1``)."""

from __future__ import annotations

import os
import time

from pydantic import BaseModel, ConfigDict, Field

from workers.registry import AnalysisInputs, AnalysisOutput, AnalysisSpec, register


class SleepParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(1.0, ge=0, le=600)
    steps: int = Field(10, ge=1, le=1000)
    tag: str = Field("", max_length=100)  # makes otherwise identical jobs distinct


def _sleep(inputs: AnalysisInputs) -> AnalysisOutput:
    p = inputs.params
    started = time.time()
    for step in range(p.steps):
        time.sleep(p.seconds / p.steps)
        inputs.progress((step + 1) / p.steps, f"slept {step + 1}/{p.steps}")
    return AnalysisOutput({"pid": os.getpid(), "started": started, "finished": time.time(), "tag": p.tag})


class CrashParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field("deliberate crash", max_length=200)


def _crash(inputs: AnalysisInputs) -> AnalysisOutput:
    raise RuntimeError(inputs.params.message)


register(AnalysisSpec("_sleep", "1", "Sleep", "Sleeps, reporting progress.", SleepParams, _sleep, True))
register(AnalysisSpec("_crash", "1", "Crash", "Raises every time.", CrashParams, _crash, True))
