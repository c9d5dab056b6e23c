"""Reads and writes for the callbacks: open a session, call a server service, return plain dicts.

Callbacks stay a few lines long and never touch SQLAlchemy objects. Domain errors come back as
:class:`ActionError` carrying the server's human-readable message.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import flask
import numpy as np
from pydantic import ValidationError
from sqlalchemy.orm import Session

from dashboard.context import get_limiter, get_settings
from server import ratelimit, storage
from server.checkpoints import service as checkpoints
from server.checkpoints.schemas import CheckpointPublic
from server.datasets import service as datasets
from server.datasets.schemas import DatasetPublic
from server.db import session_scope
from server.errors import PruneScopeError, RateLimited
from server.jobs import service as jobs
from server.jobs.schemas import JobPublic
from server.queue import get_queue
from server.views import service as views
from server.views.schemas import ViewState
from server.views.scope import OWNER, Scope
from workers import architectures, registry
from workers.data import BUILTINS
from workers.datasets import read_dataset, verify_source

ACTIVE = ("queued", "running")
ARTIFACT_CACHE_BYTES = 512 * 2**20  # loaded artifact arrays kept in memory, least recently used dropped
DATASET_CACHE_SIZE = 1  # data sets kept in memory for the sample explorer
OVERVIEW_ANALYSES = ("evaluate", "hessian", "landscape", "robustness")  # what the overview tab reads
CKA_SAMPLES = 1000  # CKA to the parent on this many shared clean samples at most (as the robustness tab)


SCOPE_KEY = "prunescope_scope"  # flask.g attribute: what this request may read (the shared app sets it)
READ_ONLY = "this is a shared view: it is read-only"


def current_scope() -> Scope:
    """What the current request may read: the owner's everything, or a shared view's checkpoints and
    dataset (set by :mod:`dashboard.shared` for its requests). Outside a request, the owner's."""
    if flask.has_app_context():
        return flask.g.get(SCOPE_KEY, OWNER)
    return OWNER


def _dataset_ok(scope: Scope, dataset_id: int | None) -> bool:
    return dataset_id is None or scope.allows_dataset(dataset_id)


class ActionError(Exception):
    """A user action the server refused; ``str(exc)`` is the reason, fit to show."""


@contextmanager
def _session(*, write: bool = False) -> Iterator[Session]:
    try:
        with session_scope(get_settings().resolved_database_url, write=write) as session:
            yield session
    except PruneScopeError as exc:
        raise ActionError(exc.detail) from None


def _check_writable() -> None:
    """Only the owner writes. (With an API token configured, :class:`server.access.AccessGuard` lets only a
    signed-in owner reach the dashboard's own pages and callbacks; share links get the read-only app.)"""
    if not current_scope().owner:
        raise ActionError(READ_ONLY)


def _charge(group: str) -> None:
    """Count a dashboard request against the same per-client budget as the API's (429 there)."""
    try:
        client = flask.request.remote_addr or "unknown"
    except RuntimeError:  # outside a request (a script calling this module)
        return
    try:
        ratelimit.check(get_limiter(), group, client)
    except RateLimited as exc:
        raise ActionError(exc.detail) from None


def _job(job, reused: bool = False) -> dict:
    return JobPublic.model_validate(job).model_dump() | {"reused": reused}


def list_checkpoints() -> list[dict]:
    """Every checkpoint the request may read: all of them, or (a shared view) only its own, by id."""
    ids = current_scope().checkpoint_ids
    with _session() as session:
        rows = (
            checkpoints.list_all(session=session, limit=100_000)
            if ids is None
            else checkpoints.list_by_ids(session=session, ids=sorted(ids))
        )
        return [CheckpointPublic.model_validate(c).model_dump() for c in rows]


def families() -> list[str]:
    return sorted({c["family"] for c in list_checkpoints() if c["family"]})


def family_ids(family: str | None) -> list[int]:
    if not family:
        return []
    scope = current_scope()
    with _session() as session:
        return scope.checkpoints(c.id for c in checkpoints.list_all(session=session, family=family))


def list_datasets() -> list[dict]:
    scope = current_scope()
    with _session() as session:
        return [
            DatasetPublic.model_validate(d).model_dump()
            for d in datasets.list_all(session=session)
            if scope.allows_dataset(d.id)
        ]


def builtin_dataset_names() -> list[str]:
    return list(BUILTINS)


def add_builtin_dataset(name: str) -> dict:
    _check_writable()
    settings = get_settings()
    store = storage.make_store(settings.resolved_storage_url, settings.tmp_dir)
    with _session(write=True) as session:
        return DatasetPublic.model_validate(
            datasets.create_builtin(session=session, store=store, name=name)
        ).model_dump()


def analyses() -> list[dict]:
    specs = registry.specs(include_testing=get_settings().test_analyses)
    return [{"name": s.name, "title": s.title, "description": s.description} for s in specs]


def architecture_names() -> list[str]:
    return list(architectures.names())


def submit_jobs(
    analysis: str, checkpoint_ids: list[int], dataset_id: int | None, params: dict | None = None
) -> list[dict]:
    """One job per checkpoint; each dict has ``reused`` true when identical work already existed."""
    if not checkpoint_ids:
        raise ActionError("select at least one checkpoint")
    _check_writable()
    _charge("jobs")
    settings = get_settings()
    with _session(write=True) as session:
        out = jobs.submit(
            session=session,
            queue=get_queue(settings.resolved_queue_url),
            analysis=analysis,
            checkpoint_ids=checkpoint_ids,
            dataset_id=dataset_id,
            params=params or {},
            max_attempts=settings.max_attempts,
            include_testing=settings.test_analyses,
        )
        return [_job(job, reused) for job, reused in out]


def list_jobs(status: str | None = None, limit: int = 200) -> list[dict]:
    """Newest first, each with ``checkpoint_name`` and ``dataset_name`` for display."""
    scope = current_scope()
    with _session() as session:
        rows = [
            _job(j)
            for j in jobs.list_all(session=session, status=status, limit=limit)
            if scope.allows_checkpoint(j.checkpoint_id) and _dataset_ok(scope, j.dataset_id)
        ]
        names = {c.id: c.name for c in checkpoints.list_all(session=session, limit=100_000)}
        ds_names = {d.id: d.name for d in datasets.list_all(session=session)}
    for row in rows:
        row["checkpoint_name"] = names.get(row["checkpoint_id"], "")
        row["dataset_name"] = ds_names.get(row["dataset_id"], "")
    return rows


def cancel_job(job_id: int) -> dict:
    _check_writable()
    with _session(write=True) as session:
        return _job(jobs.cancel(session=session, job_id=job_id))


def results(analysis: str, checkpoint_ids: list[int], dataset_id: int | None) -> dict[int, dict]:
    """The newest succeeded result summary per checkpoint."""
    checkpoint_ids, allowed = _scoped(checkpoint_ids, dataset_id)
    if not allowed:
        return {}
    with _session() as session:
        found = jobs.latest_results(
            session=session, analysis=analysis, checkpoint_ids=checkpoint_ids, dataset_id=dataset_id
        )
        return {cid: dict(res.summary) for cid, (_job_row, res) in found.items()}


def results_by_mode(analysis: str, checkpoint_ids: list[int], dataset_id: int | None) -> dict[int, dict]:
    """The newest succeeded summary per checkpoint and ``mode`` parameter: ``{id: {mode: summary}}``
    (the landscape keeps a 2D slice and an interpolation of one checkpoint side by side)."""
    out: dict[int, dict] = {}
    checkpoint_ids, allowed = _scoped(checkpoint_ids, dataset_id)
    if not allowed:
        return out
    with _session() as session:
        found = jobs.succeeded_results(
            session=session, analysis=analysis, checkpoint_ids=checkpoint_ids, dataset_id=dataset_id
        )
        for job, res in found:  # oldest first, so newer results replace older ones
            out.setdefault(job.checkpoint_id, {})[str(res.summary.get("mode"))] = dict(res.summary)
    return out


def results_of_all(_tab: str, checkpoint_ids: list[int], dataset_id: int | None) -> dict[int, dict]:
    """Every analysis' newest summary per checkpoint, ``{id: {analysis: summary}}``; the landscape's per
    mode (:func:`results_by_mode`). For the overview tab."""
    out: dict[int, dict] = {cid: {} for cid in current_scope().checkpoints(checkpoint_ids)}
    for analysis in OVERVIEW_ANALYSES:
        if analysis == "landscape":
            continue  # per mode, below
        for cid, summary in results(analysis, checkpoint_ids, dataset_id).items():
            out[cid][analysis] = summary
    for cid, modes in results_by_mode("landscape", checkpoint_ids, dataset_id).items():
        out[cid]["landscape"] = modes
    for cid, value in cka_to_parents(list(out), dataset_id).items():
        if "robustness" in out[cid]:
            out[cid]["robustness"] = {**out[cid]["robustness"], "cka_to_parent": value}
    return out


def cka_to_parents(checkpoint_ids: list[int], dataset_id: int | None) -> dict[int, float]:
    """Linear CKA between each checkpoint's clean penultimate features and its parent's (both from their
    newest robustness results on ``dataset_id``, on their first :data:`CKA_SAMPLES` shared samples).

    Cached by the two artifacts' blob keys: content-addressed, so a value is never stale. Checkpoints
    without a parent, or whose parent (or itself) has no stored features, are left out.
    """
    ids, allowed = _scoped(checkpoint_ids, dataset_id)
    if not ids or not allowed:
        return {}
    with _session() as session:
        parents = {
            c.id: c.parent_id for c in checkpoints.list_by_ids(session=session, ids=ids) if c.parent_id
        }
    keys = artifact_keys("robustness", [*parents, *parents.values()], dataset_id, "geometry")
    out: dict[int, float] = {}
    for cid, pid in parents.items():
        pair = (keys.get(cid), keys.get(pid))
        if None in pair:
            continue
        value = _cka_cache.get(pair)
        if value is None:
            value = _features_cka(*pair)
            _cka_cache.put(pair, value, 0)
        if value == value:  # not NaN: both had features
            out[cid] = value
    return out


def _features_cka(child_key: str, parent_key: str) -> float:
    import torch

    from workers.robustness.cka import linear_cka

    found = [_arrays(key, ["clean_features"], "the robustness artifact") for key in (child_key, parent_key)]
    if any("clean_features" not in f for f in found):
        return float("nan")
    a, b = (f["clean_features"] for f in found)
    n = min(a.shape[0], b.shape[0], CKA_SAMPLES)
    return linear_cka(torch.from_numpy(a[:n].astype(np.float32)), torch.from_numpy(b[:n].astype(np.float32)))


def latest_jobs(analysis: str, checkpoint_ids: list[int], dataset_id: int | None) -> dict[int, dict]:
    """The newest job of ``analysis`` on ``dataset_id`` per checkpoint, whatever its status."""
    checkpoint_ids, allowed = _scoped(checkpoint_ids, dataset_id)
    if not allowed:
        return {}
    with _session() as session:
        found = jobs.latest_jobs(
            session=session, analysis=analysis, checkpoint_ids=checkpoint_ids, dataset_id=dataset_id
        )
        return {cid: _job(job) for cid, job in found.items()}


def _scoped(checkpoint_ids: Sequence[int], dataset_id: int | None) -> tuple[list[int], bool]:
    """The ids the current request may read, and whether it may read ``dataset_id``."""
    scope = current_scope()
    return scope.checkpoints(checkpoint_ids), _dataset_ok(scope, dataset_id)


def default_dataset(analysis: str, checkpoint_ids: list[int]) -> int | None:
    """The dataset with the most results of ``analysis`` for these checkpoints, else the first dataset."""
    all_ids = [d["id"] for d in list_datasets()]
    if not all_ids:
        return None
    counts = {ds: len(results(analysis, checkpoint_ids, ds)) for ds in all_ids} if checkpoint_ids else {}
    best = max(all_ids, key=lambda ds: (counts.get(ds, 0), -ds))
    return best


class _Cache:
    """A thread-safe LRU bounded by the ``nbytes`` of its values (arrays, or dicts of arrays)."""

    def __init__(self, max_bytes: int, max_items: int = 10_000):
        self.max_bytes, self.max_items = max_bytes, max_items
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        return None

    def put(self, key, value, nbytes: int) -> None:
        with self._lock:
            self._items[key] = (value, nbytes)
            self._items.move_to_end(key)
            # keep the newest entry even when it alone is over the bound
            while len(self._items) > 1 and (
                len(self._items) > self.max_items or sum(n for _, n in self._items.values()) > self.max_bytes
            ):
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_artifact_cache = _Cache(ARTIFACT_CACHE_BYTES)
_dataset_cache = _Cache(max_bytes=2**62, max_items=DATASET_CACHE_SIZE)
_cka_cache = _Cache(max_bytes=2**62, max_items=100_000)  # (child artifact, parent artifact) -> CKA
# the robustness tab's CKA matrices, by the artifact keys of the features they were computed from
cka_matrix_cache = _Cache(max_bytes=2**62, max_items=32)


def _store() -> storage.BlobStore:
    settings = get_settings()
    return storage.make_store(settings.resolved_storage_url, settings.tmp_dir)


def artifact_keys(
    analysis: str, checkpoint_ids: Sequence[int], dataset_id: int | None, name: str
) -> dict[int, str]:
    """``{checkpoint id: blob key}`` of artifact ``name`` of each one's newest ``analysis`` result (one
    query). Blobs are content-addressed: what is computed from an artifact can be cached by its key."""
    ids, allowed = _scoped(checkpoint_ids, dataset_id)
    if not ids or not allowed:
        return {}
    with _session() as session:
        found = jobs.latest_results(
            session=session, analysis=analysis, checkpoint_ids=ids, dataset_id=dataset_id
        )
        return {
            cid: key
            for cid, (_job_row, res) in found.items()
            if (key := next((a["key"] for a in res.artifacts or [] if a.get("name") == name), None))
        }


def result_artifact(
    analysis: str,
    checkpoint_id: int,
    dataset_id: int | None,
    name: str,
    keys: Sequence[str] | None = None,
) -> dict[str, np.ndarray] | None:
    """The arrays of artifact ``name`` of the newest succeeded ``analysis`` result, or ``None`` if absent.

    ``keys`` picks some of the arrays (the others are not even decompressed); missing keys are left out.
    Artifacts are content-addressed, so each array is cached by (blob key, array name) and never stale.
    """
    key = artifact_keys(analysis, [checkpoint_id], dataset_id, name).get(checkpoint_id)
    if key is None:
        return None
    return _arrays(key, keys, f"the {analysis} artifact {name!r}")


def result_artifacts(
    analysis: str,
    checkpoint_ids: Sequence[int],
    dataset_id: int | None,
    name: str,
    keys: Sequence[str] | None = None,
) -> dict[int, dict[str, np.ndarray]]:
    """:func:`result_artifact` of each checkpoint, their blob keys read in one query: ``{id: arrays}``, a
    checkpoint whose artifact is absent or unreadable left out. (One query per checkpoint made the
    robustness tab's 20 checkpoints 130 statements a drawing.)"""
    out = {}
    for cid, key in artifact_keys(analysis, checkpoint_ids, dataset_id, name).items():
        try:
            out[cid] = _arrays(key, keys, f"the {analysis} artifact {name!r}")
        except ActionError:
            continue
    return out


def _arrays(key: str, keys: Sequence[str] | None, what: str) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (all when ``None``) of the artifact blob ``key``, from the cache when there."""
    names = _artifact_cache.get((key, None))  # the arrays the artifact holds, once it was opened
    wanted = list(keys) if keys is not None else names
    if names is not None and wanted is not None:
        hits = {n: _artifact_cache.get((key, n)) for n in wanted if n in names}
        if all(a is not None for a in hits.values()):
            return hits
    return _load_artifact(key, wanted, what)


def _load_artifact(key: str, wanted: list[str] | None, what: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(_store().fetch(key), allow_pickle=False) as npz:
            _artifact_cache.put((key, None), list(npz.files), 0)
            for n in npz.files if wanted is None else [n for n in wanted if n in npz.files]:
                out[n] = npz[n]
                _artifact_cache.put((key, n), out[n], out[n].nbytes)
    except (OSError, ValueError, PruneScopeError) as exc:
        raise ActionError(f"{what} cannot be read: {exc}") from None
    return out


def dataset_images(dataset_id: int, indices: Sequence[int]) -> np.ndarray:
    """Pixels in [0, 1] ``(len(indices), C, H, W)`` of those samples (images only), for display."""
    if not current_scope().allows_dataset(dataset_id):
        raise ActionError(f"dataset {dataset_id} not found")
    arrays = _dataset_cache.get(dataset_id)
    if arrays is None:
        with _session() as session:
            ds = datasets.get(session=session, dataset_id=dataset_id)
            kind, source, sha256, key = ds.kind, ds.source_path, ds.sha256, ds.blob_key
            fmt, meta = ds.format, dict(ds.meta or {})
        try:
            path = verify_source(source, sha256) if kind == "path" else _store().fetch(key)
            arrays = read_dataset(path, fmt, meta)
        except (OSError, ValueError, PruneScopeError) as exc:
            raise ActionError(f"dataset {dataset_id} cannot be read: {exc}") from None
        _dataset_cache.put(dataset_id, arrays, arrays.x.nbytes)
    if arrays.x.ndim != 4:
        raise ActionError(f"dataset {dataset_id} holds vectors {tuple(arrays.x.shape[1:])}, not images")
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= len(arrays.x)):
        raise ActionError(f"sample indices out of range for dataset {dataset_id} ({len(arrays.x)} samples)")
    # uint8 formats scale to [0, 1]; an .npz keeps the pixels it was uploaded with (mean/std apply after)
    pixels = arrays.x[idx].astype(np.float32) * np.float32(arrays.scale or 1.0)
    return np.clip(pixels, 0.0, 1.0)


def clear_caches() -> None:
    """Forget loaded artifacts and data sets (tests; a server whose store was swapped)."""
    _artifact_cache.clear()
    _dataset_cache.clear()
    _cka_cache.clear()
    cka_matrix_cache.clear()


def submit_prune(checkpoint_id: int | None, dataset_id: int | None, params: dict) -> list[dict]:
    """Queue a ``prune`` job on one checkpoint (the dialog of the checkpoints page), through the same
    service as ``POST /api/jobs``: identical work comes back ``reused``. ``dataset_id`` may be None
    unless the params fine-tune or ask for follow-up analyses."""
    if checkpoint_id is None:
        raise ActionError("choose the checkpoint to prune")
    return submit_jobs("prune", [checkpoint_id], dataset_id, params)


# --- share links (the owner's; a shared view's requests are refused by _check_writable) -------------------


def create_share(state: dict, expires_in_days: float | None = None) -> dict:
    """A read-only link to ``state`` (``{"ids", "dataset", "tab", "settings"}``, the settings as the compare
    page's URL carries them): ``{"id", "token", "url", ...}``."""
    _check_writable()
    _charge("share")
    try:
        fields = ("ids", "dataset", "tab", "settings")
        parsed = ViewState.model_validate({k: state.get(k) for k in fields if state.get(k) is not None})
    except ValidationError as exc:
        raise ActionError(f"this view cannot be shared: {exc.errors()[0]['msg']}") from None
    with _session(write=True) as session:
        view, token = views.create(session=session, state=parsed, expires_in_days=expires_in_days)
        return views.public(view) | {"token": token, "url": f"/s/{token}"}


def list_shares() -> list[dict]:
    _check_writable()
    with _session() as session:
        return [views.public(v) for v in views.list_all(session=session)]


def revoke_share(view_id: int) -> dict:
    _check_writable()
    with _session(write=True) as session:
        return views.public(views.revoke_id(session=session, view_id=view_id))
