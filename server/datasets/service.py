"""Dataset rows: built-in sets (materialised once as ``.npz``) and ``.npz`` uploads."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.datasets.models import Dataset
from server.errors import BadUpload, InvalidInput, NotFound
from server.storage import BlobStore, StagedFile, stage_bytes
from workers.data import BUILTINS, DatasetArrays, DatasetError, read_npz


def get(*, session: Session, dataset_id: int) -> Dataset:
    ds = session.get(Dataset, dataset_id)
    if ds is None:
        raise NotFound(f"dataset {dataset_id} not found")
    return ds


def list_all(*, session: Session, limit: int = 500, offset: int = 0) -> list[Dataset]:
    return list(session.scalars(select(Dataset).order_by(Dataset.id).limit(limit).offset(offset)))


def _row(arrays: DatasetArrays, staged: StagedFile, key: str, **fields) -> Dataset:
    return Dataset(
        sample_count=len(arrays.y),
        input_shape=arrays.input_shape,
        num_classes=arrays.num_classes,
        sha256=staged.sha256,
        size_bytes=staged.size,
        blob_key=key,
        **fields,
    )


def create_builtin(*, session: Session, store: BlobStore, name: str) -> Dataset:
    """The built-in set ``name``, created on first use and returned as is afterwards."""
    existing = session.scalar(select(Dataset).where(Dataset.builtin_name == name))
    if existing is not None:
        return existing
    make = BUILTINS.get(name)
    if make is None:
        raise InvalidInput(f"unknown built-in data set {name!r}; known: {', '.join(BUILTINS)}")
    arrays = make()
    staged = stage_bytes(arrays.to_npz_bytes(), store.tmp_dir)
    key = store.put(staged)
    ds = _row(arrays, staged, key, name=name, kind="builtin", builtin_name=name)
    session.add(ds)
    try:
        session.commit()
    except IntegrityError:  # created concurrently by another request
        session.rollback()
        return session.scalar(select(Dataset).where(Dataset.builtin_name == name))
    return ds


def create_upload(*, session: Session, store: BlobStore, staged: StagedFile, name: str) -> Dataset:
    try:
        if not name.strip() or len(name) > 200:
            raise InvalidInput("a data set needs a name of 1 to 200 characters")
        try:
            arrays = read_npz(staged.path)
        except DatasetError as exc:
            raise BadUpload(str(exc)) from None
    except BaseException:
        staged.discard()
        raise
    key = store.put(staged)
    ds = _row(arrays, staged, key, name=name.strip(), kind="uploaded", builtin_name=None)
    session.add(ds)
    session.flush()
    return ds
