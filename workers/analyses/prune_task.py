"""The ``prune`` analysis: a dense checkpoint becomes a family of pruned children, one per (method, sparsity).

Each child is made by :func:`workers.pruning.prune`, optionally fine-tuned by :func:`workers.training.train`
(SGD with momentum and a cosine schedule, masks fixed, so pruned weights stay exactly zero), serialized as
safetensors and handed to ``inputs.add_checkpoint``, which registers it under the job's checkpoint (fenced
by the job's lease) and queues the follow-up analyses. Children are registered as they finish, so the
family page fills in while the job runs.

Defaults and their sources:

- ``lr`` 0.01: fine-tuning at a fifth of the training rate (0.05, :func:`workers.training.train`), as the
  demo's children are fine-tuned; Han et al. 2015 fine-tune at the final, small rate of training.
- ``rewind``: learning-rate rewinding (Renda et al. 2020, "Comparing Rewinding and Fine-tuning in Neural
  Network Pruning", ICLR): the fine-tuning schedule starts from the original training's peak rate
  ``rewind_lr`` (default 0.05, :func:`workers.training.train`'s default) instead of from ``lr``, its cosine
  compressed to ``finetune_epochs``.
- ``batch_size`` 128: :func:`workers.training.train`'s default (the usual CIFAR recipe).
- at most :data:`MAX_CHILDREN` children per job, so one submission cannot flood the checkpoint table.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from safetensors.torch import save as safetensors_bytes

from workers import pruning
from workers.registry import AnalysisInputs, AnalysisOutput, AnalysisSpec, NewCheckpoint, register
from workers.training import train

__all__ = ["FOLLOWUPS", "MAX_CHILDREN", "PruneParams", "child_label", "prune_family"]

MAX_CHILDREN = 24
FOLLOWUPS = ("evaluate", "robustness", "hessian", "landscape")

Method = Literal["random", "global_magnitude", "layerwise_magnitude", "channel_l1"]
Sparsity = Annotated[float, Field(ge=0.0, lt=1.0)]


class PruneParams(BaseModel):
    """Parameters of the ``prune`` analysis. Methods and sparsities are kept unique and in a canonical order,
    so the same work written differently has the same cache key."""

    model_config = ConfigDict(extra="forbid")

    methods: list[Method] = Field(["global_magnitude"], min_length=1, description="pruning methods")
    sparsities: list[Sparsity] = Field(
        [0.5], min_length=1, description="targets in [0, 1): share of weights (or channels) removed"
    )
    finetune_epochs: int = Field(0, ge=0, le=200, description="masked fine-tuning epochs (needs a dataset)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="random masks and fine-tuning batch order")
    lr: float = Field(0.01, gt=0, le=1.0, description="peak fine-tuning rate (cosine to 0)")
    rewind: bool = Field(False, description="learning-rate rewinding: start from rewind_lr instead")
    rewind_lr: float = Field(0.05, gt=0, le=1.0, description="the original training's peak rate")
    batch_size: int = Field(128, ge=1, le=65536)
    then: list[Literal["evaluate", "robustness", "hessian", "landscape"]] = Field(
        [], description="analyses queued for each child on the job's dataset, with default parameters"
    )

    @field_validator("methods")
    @classmethod
    def _canonical_methods(cls, methods: list[str]) -> list[str]:
        return [m for m in pruning.METHODS if m in methods]

    @field_validator("sparsities")
    @classmethod
    def _canonical_sparsities(cls, sparsities: list[float]) -> list[float]:
        return sorted(set(sparsities))

    @field_validator("then")
    @classmethod
    def _canonical_then(cls, then: list[str]) -> list[str]:
        return [a for a in FOLLOWUPS if a in then]

    @model_validator(mode="after")
    def _bounded(self) -> PruneParams:
        n = len(self.methods) * len(self.sparsities)
        if n > MAX_CHILDREN:
            raise ValueError(
                f"{len(self.methods)} methods x {len(self.sparsities)} sparsities make {n} children; "
                f"at most {MAX_CHILDREN} per job"
            )
        return self


def needs_dataset(params: dict) -> str | None:
    """Fine-tuning and follow-up analyses need a dataset; pruning alone does not."""
    if params.get("finetune_epochs", 0) > 0:
        return "fine-tuning (finetune_epochs > 0) needs a dataset_id"
    if params.get("then"):
        return "follow-up analyses ('then') need a dataset_id"
    return None


def child_label(method: str, sparsity: float, p: PruneParams) -> str:
    """``global_magnitude 50%``, with the fine-tuning when there is one (``ft 3 ep``, ``rewind``)."""
    label = f"{method} {sparsity * 100:g}%"
    if p.finetune_epochs:
        label += f" ft {p.finetune_epochs} ep" + (" rewind" if p.rewind else "")
    return label


def _recipe(method: str, sparsity: float, p: PruneParams) -> dict:
    return {
        "method": method,
        "sparsity": sparsity,
        "seed": p.seed,
        "finetune_epochs": p.finetune_epochs,
        "lr": p.rewind_lr if p.rewind else p.lr,
        "rewind": p.rewind,
        "batch_size": p.batch_size,
        "optimizer": "SGD momentum 0.9, weight decay 5e-4, cosine schedule",
    }


def _to_safetensors(model: torch.nn.Module) -> bytes:
    return safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})


def _fine_tune(child: pruning.PrunedChild, inputs: AnalysisInputs, report) -> list[float]:
    """Train the child in place with its masks fixed; the mean loss of each epoch ([] without epochs)."""
    p: PruneParams = inputs.params
    if not p.finetune_epochs:
        return []
    return train(
        child.model,
        inputs.x,
        inputs.y,
        epochs=p.finetune_epochs,
        lr=p.rewind_lr if p.rewind else p.lr,
        batch_size=p.batch_size,
        seed=p.seed,
        masks=child.masks,
        device=inputs.device,
        progress=report,
    )


def prune_family(inputs: AnalysisInputs) -> AnalysisOutput:
    """Make, fine-tune and register each child in turn; the summary lists them and their checkpoint ids."""
    p: PruneParams = inputs.params
    pairs = [(m, s) for m in p.methods for s in p.sparsities]
    if p.finetune_epochs and inputs.x.shape[0] == 0:
        raise ValueError("fine-tuning needs a dataset")
    children = []
    for i, (method, sparsity) in enumerate(pairs):
        base, step = i / len(pairs), f"child {i + 1}/{len(pairs)}"
        inputs.progress(base, f"{step}: {method} at {sparsity:g}")
        child = pruning.prune(inputs.model, method, sparsity, seed=p.seed)

        def report(fraction: float, message: str, base=base, step=step) -> None:
            inputs.progress(base + 0.9 * fraction / len(pairs), f"{step}: {message}")

        losses = _fine_tune(child, inputs, report)
        child.model.eval()
        facts = {
            "pruning_method": method,
            "sparsity_target": sparsity,
            "achieved_sparsity": child.achieved,
            "sparsity_unit": "channels" if method in pruning.STRUCTURED else "weights",
            "finetune_losses": losses,
        }
        registered = inputs.add_checkpoint(
            NewCheckpoint(
                data=_to_safetensors(child.model),
                label=child_label(method, sparsity, p),
                metadata={**facts, "layer_achieved": child.layers, "recipe": _recipe(method, sparsity, p)},
                followups=list(p.then),
            )
        )
        children.append(
            {
                "checkpoint_id": registered.checkpoint_id,
                "followup_job_ids": registered.followup_job_ids,
                **facts,
            }
        )
    inputs.progress(1.0, f"{len(children)} children registered")
    return AnalysisOutput({"children": children, "checkpoint_ids": [c["checkpoint_id"] for c in children]})


register(
    AnalysisSpec(
        name="prune",
        version="1",
        title="Prune",
        description=(
            "A family of pruned children of the checkpoint: random, global or layer-wise magnitude "
            "(unstructured) or L1 channel pruning (structured) at each sparsity, optionally fine-tuned with "
            "the mask fixed and followed by analyses of each child."
        ),
        params_model=PruneParams,
        run=prune_family,
        needs_dataset=needs_dataset,
    )
)
