"""Reading ``.npy`` headers without trusting them: a header can declare any shape, so callers compare it
with the member's real size before numpy allocates anything."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
import numpy.lib.format as npy

from workers.datasets.arrays import DatasetError

_MAX_HEADER = 10_000


def read_header(f: BinaryIO, what: str, *, fortran_ok: bool = False) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and header length of an ``.npy`` stream, refusing object dtypes and Fortran order."""
    try:
        version = npy.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(f, max_header_size=_MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(f, max_header_size=_MAX_HEADER)
        else:
            raise DatasetError(f"{what} uses .npy format version {version}; versions 1.0 and 2.0 are read")
    except DatasetError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"{what} is not a valid .npy array: {exc}") from None
    if dtype.hasobject:
        raise DatasetError(f"{what} holds Python objects (dtype {dtype}); only numeric arrays are read")
    if fortran and not fortran_ok:
        raise DatasetError(f"{what} is stored in Fortran order; save it with numpy's default C order")
    return tuple(int(d) for d in shape), dtype, f.tell()


def check_member(f: BinaryIO, name: str, size: int) -> None:
    """Refuse an ``.npy`` member whose header declares more (or fewer) bytes than it holds."""
    shape, dtype, header = read_header(f, repr(name), fortran_ok=True)
    if header + int(np.prod(shape, dtype=object)) * dtype.itemsize != size:
        raise DatasetError(f"{name!r} declares shape {shape} of {dtype}, which does not match its size")
