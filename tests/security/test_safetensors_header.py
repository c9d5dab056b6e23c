"""Property tests of the safetensors header validator: only CheckpointError, bounded memory, exact answers."""

from __future__ import annotations

import json
import struct
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.intake import (
    SAFETENSORS_ITEMSIZE,
    CheckpointError,
    check_safetensors,
    validate_safetensors_header,
)

MAX_ELEMENTS = 10**6


def _validate(raw: bytes, data_size: int):
    try:
        return validate_safetensors_header(raw, data_size, max_elements=MAX_ELEMENTS)
    except CheckpointError:
        return None


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=256), data_size=st.integers(0, 2**64))
def test_random_bytes_raise_only_checkpoint_error(raw, data_size):
    _validate(raw, data_size)


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=8)
)
entries = st.fixed_dictionaries(
    {
        "dtype": st.one_of(st.sampled_from(sorted(SAFETENSORS_ITEMSIZE)), json_scalars),
        "shape": st.one_of(st.lists(st.integers(-2, 2**64), max_size=5), json_scalars),
        "data_offsets": st.one_of(st.lists(st.integers(-2, 2**64), min_size=0, max_size=3), json_scalars),
    },
    optional={"extra": json_scalars},
)
headers = st.dictionaries(st.text(max_size=10), st.one_of(entries, json_scalars), max_size=6)


@settings(max_examples=3_000, deadline=None)
@given(header=headers, data_size=st.integers(0, 2**20))
def test_structured_random_headers_raise_only_checkpoint_error(header, data_size):
    result = _validate(json.dumps(header).encode(), data_size)
    assert result is None or result == data_size


@settings(max_examples=500, deadline=None)
@given(shapes=st.lists(st.lists(st.integers(0, 50), max_size=3), min_size=1, max_size=5))
def test_well_formed_headers_are_accepted_and_any_gap_refused(shapes):
    header, offset = {}, 0
    for i, shape in enumerate(shapes):
        n = 4
        for s in shape:
            n *= s
        header[f"t{i}"] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    assert validate_safetensors_header(raw, offset, max_elements=MAX_ELEMENTS) == offset
    assert _validate(raw, offset + 1) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(length=st.integers(0, 2**64 - 1), body=st.binary(max_size=512))
def test_reading_any_file_allocates_little(tmp_path, length, body):
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", length) + b"{" + body)
    tracemalloc.start()
    try:
        check_safetensors(path, max_elements=MAX_ELEMENTS)
    except CheckpointError:
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64 * 1024
