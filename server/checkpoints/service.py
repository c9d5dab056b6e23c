"""Checkpoint rows and their blobs."""

from __future__ import annotations

import json
import logging
import unicodedata

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.checkpoints.models import Checkpoint
from server.config import get_settings
from server.errors import BadUpload, InvalidInput, NotFound
from server.storage import BlobStore, StagedFile
from workers.architectures import ArchitectureError
from workers.checkpoints import instantiate
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
    method = meta.get(PRUNING_METHOD_KEY)
    target = meta.get(SPARSITY_TARGET_KEY)
    key = store.put(staged)
    ckpt = Checkpoint(
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
