"""Checkpoint rows and their blobs."""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.checkpoints.models import Checkpoint
from server.config import get_settings
from server.errors import BadUpload, InvalidInput, NotFound
from server.storage import BlobStore, StagedFile
from workers.architectures import ArchitectureError
from workers.checkpoints import CheckpointInfo, instantiate
from workers.intake import CheckpointError
from workers.sandbox import LoadLimits

logger = logging.getLogger(__name__)

PRUNING_METHOD_KEY = "pruning_method"
SPARSITY_TARGET_KEY = "sparsity_target"


def parse_metadata(raw: str | None) -> dict:
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"metadata is not valid JSON: {exc.msg}") from None
    if not isinstance(meta, dict):
        raise InvalidInput("metadata must be a JSON object")
    if len(raw) > 64 * 1024:
        raise InvalidInput("metadata is larger than 64 KiB")
    return meta


def clean_name(name: str) -> str:
    """A display name as text: control and bidirectional-override characters dropped, never a path."""
    kept = (c for c in name if unicodedata.category(c) not in ("Cc", "Cf") or c == "\u200d")
    return "".join(kept).strip()


def get(*, session: Session, checkpoint_id: int) -> Checkpoint:
    ckpt = session.get(Checkpoint, checkpoint_id)
    if ckpt is None:
        raise NotFound(f"checkpoint {checkpoint_id} not found")
    return ckpt


def list_by_ids(*, session: Session, ids: list[int]) -> list[Checkpoint]:
    """The checkpoints of ``ids`` that exist, in the order of ``ids``."""
    found = {c.id: c for c in session.scalars(select(Checkpoint).where(Checkpoint.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def list_all(
    *, session: Session, family: str | None = None, limit: int = 500, offset: int = 0
) -> list[Checkpoint]:
    stmt = select(Checkpoint).order_by(Checkpoint.id)
    if family is not None:
        stmt = stmt.where(Checkpoint.family == family)
    return list(session.scalars(stmt.limit(limit).offset(offset)))


def _check_parent(session: Session, parent_id: int | None, child_id: int | None = None) -> None:
    if parent_id is None:
        return
    if session.get(Checkpoint, parent_id) is None:
        raise InvalidInput(f"parent checkpoint {parent_id} does not exist")
    seen = set()
    node = parent_id
    while node is not None and node not in seen:  # refuse cycles in the family tree
        if node == child_id:
            raise InvalidInput("a checkpoint cannot be its own ancestor")
        seen.add(node)
        node = session.scalar(select(Checkpoint.parent_id).where(Checkpoint.id == node))


def create(
    *,
    session: Session,
    store: BlobStore,
    staged: StagedFile,
    name: str | None,
    architecture: str,
    num_classes: int | None = None,
    input_shape: list[int] | None = None,
    family: str | None = None,
    parent_id: int | None = None,
    metadata: dict | None = None,
    limits: LoadLimits | None = None,
) -> Checkpoint:
    """Check ``staged`` loads into ``architecture``, store it and record it. Nothing is kept on failure.

    The file is loaded in the sandbox (:mod:`workers.sandbox`) under ``limits``; by default the
    process settings' limits, with the sandbox's scratch folder next to the staged file.
    """
    try:
        name = clean_name(name or "")
        if not name:
            raise InvalidInput("a checkpoint needs a name")
        if len(name) > 200:
            raise InvalidInput("names are at most 200 characters")
        _check_parent(session, parent_id)
        try:
            limits = limits or LoadLimits.from_settings(get_settings(), tmp_dir=staged.path.parent)
            _, info = instantiate(
                staged.path,
                architecture=architecture,
                num_classes=num_classes,
                input_shape=input_shape,
                limits=limits,
            )
        except (CheckpointError, ArchitectureError) as exc:
            raise BadUpload(str(exc)) from None
    except BaseException:
        staged.discard()
        raise
    meta = {**info.meta, **(metadata or {})}
    key = store.put(staged)
    ckpt = _row(info, meta, staged, key, name=name, family=family, parent_id=parent_id)
    session.add(ckpt)
    try:
        session.flush()
    except BaseException:
        session.rollback()
        _delete_blob_if_unused(session, store, key)
        raise
    return ckpt


def update(*, session: Session, checkpoint_id: int, changes: dict) -> Checkpoint:
    ckpt = get(session=session, checkpoint_id=checkpoint_id)
    if "parent_id" in changes:
        _check_parent(session, changes["parent_id"], child_id=checkpoint_id)
    if "name" in changes:
        if changes["name"] is None or not clean_name(changes["name"]):
            raise InvalidInput("name cannot be empty")
        changes = {**changes, "name": clean_name(changes["name"])}
    for field, value in changes.items():
        setattr(ckpt, field, value.strip() if isinstance(value, str) else value)
    session.flush()
    return ckpt


def _delete_blob_if_unused(session: Session, store: BlobStore, key: str) -> None:
    in_use = session.scalar(select(func.count()).select_from(Checkpoint).where(Checkpoint.blob_key == key))
    if not in_use:
        store.delete(key)


def delete(*, session: Session, store: BlobStore, checkpoint_id: int) -> None:
    """Delete a checkpoint, its jobs and results; its children keep their rows and lose the parent link."""
    ckpt = get(session=session, checkpoint_id=checkpoint_id)
    key = ckpt.blob_key
    session.delete(ckpt)
    session.commit()  # the row goes first: a blob without a row is garbage, a row without its blob is loss
    _delete_blob_if_unused(session, store, key)


# --- children made by a job (the ``prune`` analysis) ------------------------------------------------


def inspect_child(*, staged: StagedFile, parent: dict, limits: LoadLimits) -> CheckpointInfo:
    """Load a worker-made child through the same sandboxed intake as an upload, as its parent's architecture.

    Runs before any database work, so no transaction is held while the sandbox loads. ``parent`` holds
    the parent's ``architecture``, ``num_classes`` and ``input_shape``. Raises BadUpload, discarding
    ``staged``, when the bytes do not load.
    """
    try:
        _, info = instantiate(
            staged.path,
            architecture=parent["architecture"],
            num_classes=parent["num_classes"],
            input_shape=parent["input_shape"],
            limits=limits,
        )
    except (CheckpointError, ArchitectureError) as exc:
        staged.discard()
        raise BadUpload(str(exc)) from None
    return info


def register_child(
    *,
    session: Session,
    store: BlobStore,
    staged: StagedFile,
    info: CheckpointInfo,
    parent_id: int,
    label: str,
    metadata: dict,
    fence: Callable[[Session], bool],
) -> Checkpoint | None:
    """Record a child of ``parent_id`` made by a job, once: the same bytes under that parent reuse the row.

    ``fence(session)`` is the job's fenced write (its lease still held): it runs first, in this
    transaction, so a worker that lost its lease registers nothing and gets ``None`` (its blob stays: another
    worker may be registering the same bytes, so deleting it could lose theirs). The parent row is
    then locked (PostgreSQL) so that two jobs making the same child cannot both insert it; on SQLite the
    fence's write already serialises them. The child takes the parent's family, and its name is the
    parent's followed by ``label``. The caller commits.
    """
    key = store.put(staged)  # blob first, then the row
    if not fence(session):
        session.rollback()
        return None
    parent = session.scalar(select(Checkpoint).where(Checkpoint.id == parent_id).with_for_update())
    if parent is None:
        raise NotFound(f"parent checkpoint {parent_id} not found")
    existing = session.scalar(
        select(Checkpoint)
        .where(Checkpoint.parent_id == parent_id, Checkpoint.sha256 == staged.sha256)
        .order_by(Checkpoint.id)
        .limit(1)
    )
    if existing is not None:
        return existing
    meta = {**info.meta, **metadata}
    name = clean_name(f"{parent.name} {label}")[:200]
    ckpt = _row(info, meta, staged, key, name=name, family=parent.family, parent_id=parent.id)
    session.add(ckpt)
    session.flush()
    return ckpt


def _row(
    info, meta: dict, staged, key: str, *, name: str, family: str | None, parent_id: int | None
) -> Checkpoint:
    """The checkpoint row of an intake's ``info`` and ``meta`` (pruning method and target read from it)."""
    method, target = meta.get(PRUNING_METHOD_KEY), meta.get(SPARSITY_TARGET_KEY)
    return Checkpoint(
        name=name,
        family=family,
        parent_id=parent_id,
        format=info.format,
        architecture=info.architecture,
        num_classes=info.num_classes,
        input_shape=info.input_shape,
        parameter_count=info.parameter_count,
        sparsity=info.sparsity,
        layer_sparsity=info.layer_sparsity,
        pruning_method=str(method)[:64] if method is not None else None,
        sparsity_target=float(target) if isinstance(target, (int, float)) else None,
        meta=meta,
        sha256=staged.sha256,
        size_bytes=staged.size,
        blob_key=key,
    )
