"""Dataset rows: built-in sets (materialised once as ``.npz``), uploads, and files already on the server.

An upload is kept as uploaded (its blob key is the sha256 of its bytes) once
:func:`workers.datasets.describe` has detected its format and read it completely; anything it refuses
is a 422 and the staged file is deleted. A server path is accepted only when it resolves (symlinks and
``..`` followed) to a regular file inside one of ``PRUNESCOPE_DATASET_ROOTS``; it is hashed and read in
place, never copied, and workers re-check its sha256 before reading it (``workers.datasets.verify_source``).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.config import Settings
from server.datasets.models import Dataset
from server.datasets.schemas import DatasetOptions, DatasetPathCreate
from server.errors import BadUpload, InvalidInput, NotFound
from server.storage import BlobStore, StagedFile, stage_bytes
from workers.datasets import BUILTINS, DatasetError, Described, Limits, Options, describe
from workers.datasets.formats import file_sha256


def get(*, session: Session, dataset_id: int) -> Dataset:
    ds = session.get(Dataset, dataset_id)
    if ds is None:
        raise NotFound(f"dataset {dataset_id} not found")
    return ds


def list_all(*, session: Session, limit: int = 500, offset: int = 0) -> list[Dataset]:
    return list(session.scalars(select(Dataset).order_by(Dataset.id).limit(limit).offset(offset)))


def limits(settings: Settings) -> Limits:
    return Limits(
        max_image_pixels=settings.dataset_max_image_pixels,
        max_total_pixels=settings.dataset_max_total_pixels,
        max_members=settings.dataset_max_members,
        max_unpacked_bytes=settings.dataset_max_unpacked_bytes,
    )


def _options(options: DatasetOptions) -> Options:
    return Options(split=options.split, image_size=options.image_size, mean=options.mean, std=options.std)


def _row(found: Described, *, sha256: str, size: int, key: str, **fields) -> Dataset:
    return Dataset(
        sample_count=found.sample_count,
        input_shape=found.input_shape,
        num_classes=found.num_classes,
        format=found.format,
        meta=found.meta,
        sha256=sha256,
        size_bytes=size,
        blob_key=key,
        **fields,
    )


def _check_name(name: str) -> str:
    if not name.strip() or len(name) > 200:
        raise InvalidInput("a data set needs a name of 1 to 200 characters")
    return name.strip()


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
    found = Described("npz", {}, len(arrays.y), arrays.input_shape, arrays.num_classes)
    ds = _row(
        found, sha256=staged.sha256, size=staged.size, key=key, name=name, kind="builtin", builtin_name=name
    )
    session.add(ds)
    try:
        session.commit()
    except IntegrityError:  # created concurrently by another request
        session.rollback()
        return session.scalar(select(Dataset).where(Dataset.builtin_name == name))
    return ds


def create_upload(
    *,
    session: Session,
    store: BlobStore,
    staged: StagedFile,
    name: str,
    options: DatasetOptions | None = None,
    settings: Settings | None = None,
) -> Dataset:
    """Detect, read and keep an uploaded data set; the staged file is consumed either way."""
    try:
        name = _check_name(name)
        try:
            found = describe(
                staged.path, _options(options or DatasetOptions()), limits(settings or Settings())
            )
        except DatasetError as exc:
            raise BadUpload(str(exc)) from None
    except BaseException:
        staged.discard()
        raise
    key = store.put(staged)
    ds = _row(
        found, sha256=staged.sha256, size=staged.size, key=key, name=name, kind="uploaded", builtin_name=None
    )
    session.add(ds)
    session.flush()
    return ds


def roots(settings: Settings) -> list[Path]:
    """The configured dataset roots, resolved; relative entries are refused."""
    out = []
    for raw in settings.dataset_roots.split(":"):
        if not raw.strip():
            continue
        if not os.path.isabs(raw):
            raise InvalidInput(f"PRUNESCOPE_DATASET_ROOTS entries must be absolute; {raw!r} is not")
        out.append(Path(os.path.realpath(raw)))
    return out


def resolve_under_roots(raw: str, allowed: list[Path]) -> Path:
    """``raw`` with every link and ``..`` resolved, if it is a regular file inside one of ``allowed``."""
    if not allowed:
        raise InvalidInput(
            "registering server-side data sets is off: set PRUNESCOPE_DATASET_ROOTS to the directories "
            "(absolute, colon-separated) that may be read"
        )
    if "\x00" in raw or not os.path.isabs(raw):
        raise InvalidInput("the path must be an absolute path on the server")
    resolved = Path(os.path.realpath(raw))
    if not any(resolved.is_relative_to(root) for root in allowed):
        raise InvalidInput("the path is not inside any of the configured dataset roots")
    if not resolved.is_file():
        raise InvalidInput("the path is not a regular file inside the dataset roots")
    return resolved


def create_path(*, session: Session, settings: Settings, body: DatasetPathCreate) -> Dataset:
    """Register a file already on the server, read in place (kind ``path``, nothing copied)."""
    path = resolve_under_roots(body.path, roots(settings))
    name = _check_name(body.name or path.name)
    try:
        sha256 = file_sha256(path)
        found = describe(path, _options(body), limits(settings))
    except DatasetError as exc:
        raise BadUpload(str(exc)) from None
    except OSError as exc:
        raise InvalidInput(f"the path cannot be read: {exc.strerror}") from None
    ds = _row(
        found,
        sha256=sha256,
        size=path.stat().st_size,
        key="",
        name=name,
        kind="path",
        builtin_name=None,
        source_path=str(path),
    )
    session.add(ds)
    session.flush()
    return ds
