"""The demo family: a small CNN trained on scikit-learn's digits, and its pruned children.

Everything is generated here (no download): a dense parent, global-magnitude and random
unstructured children at 50/80/90% sparsity, and one structured child with half of each
convolution's channels removed. Each child is registered with its parent, method and target
through the same intake path as an upload, then every analysis is queued for the whole family.
"""

from __future__ import annotations

import copy
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from server.checkpoints import service as checkpoints
from server.config import Settings
from server.datasets import service as datasets
from server.db import session_scope
from server.jobs import service as jobs
from server.queue import get_queue
from server.storage import make_store, stage_bytes
from workers import architectures, pruning
from workers.data import digits
from workers.training import train

logger = logging.getLogger(__name__)

FAMILY = "demo-digits-cnn"
SPARSITIES = (0.5, 0.8, 0.9)


@dataclass
class Member:
    name: str
    state_dict: dict
    method: str | None = None
    target: float | None = None
    meta: dict = field(default_factory=dict)


def build_family(
    *,
    epochs: int = 15,
    finetune_epochs: int = 2,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
):
    """Train the dense parent and derive its children. Returns ``[parent, *children]``.

    Each child is fine-tuned briefly with its mask fixed (pruned weights stay exactly zero), as
    pruning pipelines do; without it, BatchNorm statistics no longer match and most children
    fall to chance, which hides the differences between methods that the demo is meant to show.
    """
    torch.manual_seed(seed)
    data = digits()
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    model = architectures.build("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    train(model, x, y, epochs=epochs, seed=seed, progress=progress)
    model.eval()
    members = [Member("dense", model.state_dict(), meta={"epochs": epochs})]
    for target in SPARSITIES:
        for method, make_masks in (
            ("global_magnitude", lambda m, s: pruning.global_magnitude_masks(m, s)),
            ("random", lambda m, s: pruning.random_masks(m, s, seed=seed)),
        ):
            child = copy.deepcopy(model)
            masks = make_masks(child, target)
            pruning.apply_masks(child, masks)
            train(child, x, y, epochs=finetune_epochs, lr=0.01, seed=seed, masks=masks)
            members.append(
                Member(
                    f"{method} {int(target * 100)}%",
                    child.eval().state_dict(),
                    method,
                    target,
                    {"finetune_epochs": finetune_epochs},
                )
            )
    structured = pruning.channel_l1_prune(model, 0.5)
    train(structured, x, y, epochs=finetune_epochs, lr=0.01, seed=seed)
    members.append(
        Member(
            "channel_l1 50%",
            structured.eval().state_dict(),
            "channel_l1",
            0.5,
            {"finetune_epochs": finetune_epochs},
        )
    )
    return members


def _to_bytes(state_dict: dict) -> bytes:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, buf)
    return buf.getvalue()


# What the demo queues, in order (a few minutes on 2 CPU cores): every compare tab has data to show.
DEMO_JOBS = (
    ("evaluate", "all", {}),
    ("robustness", "all", {}),
    ("landscape", "all", {"mode": "2d"}),
    ("landscape", "children", {"mode": "interpolation"}),  # each unstructured child back to the parent
    # 512 samples and fewer probes: about 20 s a checkpoint on 2 cores instead of 2 minutes
    ("hessian", "all", {"max_samples": 512, "trace_probes": 10, "density_vectors": 2, "density_iters": 30}),
)


def load_demo(settings: Settings, *, progress: Callable[[float, str], None] | None = None) -> list[int]:
    """Train, register the family and queue :data:`DEMO_JOBS` on digits. Returns the checkpoint ids."""
    members = build_family(progress=progress)
    store = make_store(settings.resolved_storage_url, settings.tmp_dir)
    url = settings.resolved_database_url
    ids: list[int] = []
    with session_scope(url) as session:
        parent_id = None
        for member in members:
            meta = dict(member.meta, demo=True)
            if member.method:
                meta.update(pruning_method=member.method, sparsity_target=member.target)
            ckpt = checkpoints.create(
                session=session,
                store=store,
                staged=stage_bytes(_to_bytes(member.state_dict), store.tmp_dir),
                name=f"demo {member.name}",
                architecture="small_cnn",
                num_classes=10,
                input_shape=[1, 8, 8],
                family=FAMILY,
                parent_id=parent_id,
                metadata=meta,
            )
            ids.append(ckpt.id)
            parent_id = parent_id or ckpt.id
    shapes = [{k: tuple(v.shape) for k, v in m.state_dict.items()} for m in members]
    same_shape = [i for i, sh in zip(ids, shapes, strict=True) if sh == shapes[0]]  # not channel-pruned
    with session_scope(url) as session:
        dataset = datasets.create_builtin(session=session, store=store, name="digits")
        queue = get_queue(settings.resolved_queue_url)
        for analysis, members, params in DEMO_JOBS:
            jobs.submit(
                session=session,
                queue=queue,
                analysis=analysis,
                checkpoint_ids=ids if members == "all" else same_shape[1:],
                dataset_id=dataset.id,
                params=params,
                max_attempts=settings.max_attempts,
            )
    logger.info("demo family %s registered: checkpoints %s", FAMILY, ids)
    return ids


def database_is_empty(settings: Settings) -> bool:
    with session_scope(settings.resolved_database_url) as session:
        return not checkpoints.list_all(session=session, limit=1)
