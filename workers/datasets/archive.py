"""Reading members of zip and tar archives without extracting anything to disk.

Every member name is checked before use (no ``..``, absolute path, drive letter, backslash or NUL;
no duplicates); member count and declared uncompressed size are bounded by :class:`Limits`. Members
are read into memory by name from the archive, never written out, so a hostile name cannot land
anywhere. macOS metadata (``__MACOSX/``, dot files) is skipped.
"""

from __future__ import annotations

import re
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from workers.datasets.arrays import DatasetError, Limits

_DRIVE = re.compile(r"^[A-Za-z]:")
MAX_RATIO = 200  # declared / compressed bytes: images and pixel arrays compress far less; zip bombs far more
_RATIO_FLOOR = 1024 * 1024  # small members may compress as they like


def check_name(name: str) -> str:
    """``name`` if it is a safe relative member name, else :class:`DatasetError`."""
    bad = (
        not name
        or "\x00" in name
        or "\\" in name
        or name.startswith("/")
        or _DRIVE.match(name)
        or any(part in ("..", ".") for part in name.rstrip("/").split("/"))
        or "//" in name
    )
    if bad:
        raise DatasetError(f"the archive holds an unsafe member name {name!r}; refusing it")
    return name


def is_ignored(name: str) -> bool:
    """macOS resource forks and hidden files that archivers add."""
    return any(part == "__MACOSX" or part.startswith(".") for part in name.split("/"))


@dataclass(frozen=True)
class Member:
    name: str
    size: int  # declared uncompressed size


class Archive:
    """A zip or tar archive opened for reading its regular members by name."""

    kind: str
    members: list[Member]

    def open(self, name: str) -> BinaryIO:
        raise NotImplementedError

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def files(self) -> list[Member]:
        return [m for m in self.members if not is_ignored(m.name)]


def _check_totals(members: list[Member], limits: Limits) -> None:
    if len(members) > limits.max_members:
        raise DatasetError(f"the archive holds {len(members)} members; at most {limits.max_members} allowed")
    total = sum(m.size for m in members)
    if total > limits.max_unpacked_bytes:
        raise DatasetError(
            f"the archive declares {total} uncompressed bytes; at most {limits.max_unpacked_bytes} allowed"
        )


class ZipArchive(Archive):
    kind = "zip"

    def __init__(self, zf: zipfile.ZipFile, limits: Limits):
        self.zf = zf
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise DatasetError(
                f"the archive holds {len(infos)} members; at most {limits.max_members} allowed"
            )
        seen: set[str] = set()
        self.members = []
        for info in infos:
            check_name(info.orig_filename)  # zipfile cuts `filename` at a NUL; the original keeps it
            if info.filename in seen:
                raise DatasetError(f"the archive holds the member {info.filename!r} twice")
            seen.add(info.filename)
            if info.flag_bits & 0x1:
                raise DatasetError(f"the archive member {info.filename!r} is encrypted")
            if info.file_size > _RATIO_FLOOR and info.file_size > MAX_RATIO * info.compress_size:
                raise DatasetError(
                    f"the archive member {info.filename!r} inflates more than {MAX_RATIO}:1 (a zip bomb?)"
                )
            if not info.is_dir():
                self.members.append(Member(info.filename, info.file_size))
        _check_totals(self.members, limits)

    def open(self, name: str) -> BinaryIO:
        return self.zf.open(name)


class TarArchive(Archive):
    kind = "tar"

    def __init__(self, tf: tarfile.TarFile, limits: Limits, file_size: int):
        self.tf = tf
        self._infos: dict[str, tarfile.TarInfo] = {}
        self.members = []
        count = 0
        for info in tf:
            count += 1
            if count > limits.max_members:
                raise DatasetError(f"the archive holds more than {limits.max_members} members")
            check_name(info.name)
            if info.isdir():
                continue
            if not info.isfile():
                raise DatasetError(
                    f"the archive member {info.name!r} is a link or device; only files allowed"
                )
            if info.name in self._infos:
                raise DatasetError(f"the archive holds the member {info.name!r} twice")
            self._infos[info.name] = info
            self.members.append(Member(info.name, info.size))
            if tf.offset > _RATIO_FLOOR + MAX_RATIO * file_size:
                raise DatasetError(f"the archive inflates more than {MAX_RATIO}:1 (a gzip bomb?)")
        _check_totals(self.members, limits)

    def open(self, name: str) -> BinaryIO:
        f = self.tf.extractfile(self._infos[name])
        assert f is not None  # regular files only
        return f


GZIP_MAGIC = b"\x1f\x8b"


def is_tar(head: bytes) -> bool:
    return head[257:262] == b"ustar"


@contextmanager
def open_archive(path: Path, limits: Limits) -> Iterator[Archive]:
    """A zip, tar or tar.gz archive, detected from its bytes."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(512)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                yield ZipArchive(zf, limits)
        elif head.startswith(GZIP_MAGIC) or is_tar(head):
            mode = "r:gz" if head.startswith(GZIP_MAGIC) else "r:"
            with tarfile.open(path, mode) as tf:
                yield TarArchive(tf, limits, path.stat().st_size)
        else:
            raise DatasetError("not a zip or tar archive")
    except DatasetError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, ValueError, KeyError) as exc:
        raise DatasetError(f"could not read the archive: {exc}") from None


def common_root(names: list[str]) -> str:
    """``"top/"`` when every name lies under one top-level folder, else ``""``."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        return tops.pop() + "/"
    return ""
