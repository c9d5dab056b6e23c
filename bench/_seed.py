"""Seed a running server with a family of small CNNs on digits and run every compare-tab analysis on it.

Everything goes through the real HTTP API and the server's worker: a dense parent trained on scikit-learn's
digits, pruned children (global and layer-wise magnitude, random; several sparsities; one channel-pruned),
uploaded with ``POST /api/checkpoints``, then ``POST /api/jobs`` for each analysis, polled until finished.
Parameters are light so that 20 checkpoints take a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import io
import itertools
import json
import time

import httpx
import torch

from workers import architectures, pruning
from workers.data import digits
from workers.training import train

FAMILY = "bench-digits-cnn"
METHODS = ("global_magnitude", "layerwise_magnitude", "random")
SPARSITIES = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
LIGHT = {"max_samples": 200}
# (analysis, who: "all" or "same_shape" children, params); the interpolation target is added at submit time
JOBS = (
    ("evaluate", "all", {}),
    ("robustness", "all", {**LIGHT, "corruptions": ["gaussian_noise", "contrast"], "severities": [1, 3, 5]}),
    (
        "hessian",
        "all",
        {**LIGHT, "lanczos_iters": 30, "trace_probes": 5, "density_vectors": 1, "density_iters": 20},
    ),
    ("landscape", "all", {**LIGHT, "mode": "1d", "steps": 11}),
    ("landscape", "all", {**LIGHT, "mode": "2d", "steps": 7}),
    ("landscape", "same_shape", {**LIGHT, "mode": "interpolation", "steps": 7}),
)
TERMINAL = {"succeeded", "failed", "cancelled"}


def _state_bytes(model: torch.nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


def build_members(n_children: int, *, seed: int = 0) -> list[tuple[str, torch.nn.Module, dict]]:
    """``[(name, model, metadata)]``: the dense parent, then ``n_children`` pruned and briefly fine-tuned."""
    torch.manual_seed(seed)
    data = digits()
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    dense = architectures.build("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    train(dense, x, y, epochs=8, seed=seed)
    members = [("dense", dense.eval(), {})]
    plan = [("channel_l1", 0.5)] + list(itertools.product(METHODS, SPARSITIES))
    for method, target in plan[:n_children]:
        child = pruning.prune(dense, method, target, seed=seed)
        model = child.model  # already a copy: the parent is left unchanged
        train(model, x, y, epochs=1, lr=0.01, seed=seed, masks=child.masks or None)
        meta = {"pruning_method": method, "sparsity_target": target}
        members.append((f"{method} {int(target * 100)}%", model.eval(), meta))
    return members


def upload(client: httpx.Client, name: str, model: torch.nn.Module, meta: dict, parent_id: int | None) -> int:
    form = {
        "architecture": "small_cnn",
        "name": name,
        "num_classes": "10",
        "input_shape": "1,8,8",
        "family": FAMILY,
        "metadata": json.dumps(meta),
    }
    if parent_id is not None:
        form["parent_id"] = str(parent_id)
    r = client.post("/api/checkpoints", data=form, files={"file": ("w.pt", _state_bytes(model))}, timeout=120)
    r.raise_for_status()
    return r.json()["id"]


def submit_all(client: httpx.Client, ids: list[int], same_shape: list[int], dataset_id: int) -> list[int]:
    job_ids: list[int] = []
    for analysis, who, params in JOBS:
        targets = ids if who == "all" else [i for i in same_shape if i != ids[0]]
        if analysis == "landscape" and params["mode"] == "interpolation":
            params = {**params, "target_checkpoint_id": ids[0]}
        body = {"analysis": analysis, "checkpoint_ids": targets, "dataset_id": dataset_id, "params": params}
        r = client.post("/api/jobs", json=body, timeout=60)
        r.raise_for_status()
        job_ids += [j["id"] for j in r.json()]
    return job_ids


def wait_jobs(client: httpx.Client, job_ids: list[int], *, timeout: float = 1800) -> dict[str, int]:
    """Poll until every job is finished; the count per final status."""
    deadline = time.monotonic() + timeout
    pending = set(job_ids)
    status: dict[int, str] = {}
    while pending and time.monotonic() < deadline:
        for jid in sorted(pending):
            job = client.get(f"/api/jobs/{jid}").json()
            status[jid] = job["status"]
            if job["status"] in TERMINAL:
                pending.discard(jid)
                if job["status"] != "succeeded":
                    print(f"  job {jid} ({job['analysis']}) {job['status']}: {job.get('error')}")
        if pending:
            time.sleep(2)
    if pending:
        raise TimeoutError(f"{len(pending)} job(s) still unfinished")
    return {s: sum(1 for v in status.values() if v == s) for s in set(status.values())}


def seed(base: str, n_checkpoints: int) -> tuple[list[int], int]:
    """Upload the family and run every analysis; returns (checkpoint ids, dataset id)."""
    t0 = time.perf_counter()
    members = build_members(n_checkpoints - 1)
    with httpx.Client(base_url=base, timeout=30) as client:
        ids: list[int] = []
        shapes = []
        for name, model, meta in members:
            ids.append(upload(client, name, model, meta, ids[0] if ids else None))
            shapes.append({k: tuple(v.shape) for k, v in model.state_dict().items()})
        same_shape = [i for i, sh in zip(ids, shapes, strict=True) if sh == shapes[0]]
        r = client.post("/api/datasets", json={"builtin": "digits"})
        r.raise_for_status()
        dataset_id = r.json()["id"]
        print(f"seed: {len(ids)} checkpoints uploaded in {time.perf_counter() - t0:.1f} s")
        job_ids = submit_all(client, ids, same_shape, dataset_id)
        counts = wait_jobs(client, job_ids)
    print(f"seed: {len(job_ids)} jobs {counts} after {time.perf_counter() - t0:.1f} s")
    return ids, dataset_id
