"""Detection from bytes and reading of every data set format, straight through ``workers.datasets``."""

from __future__ import annotations

import numpy as np
import pytest

from tests.datasets import factories as f
from workers.datasets import (
    DatasetError,
    Limits,
    Options,
    describe,
    read_corruption,
    read_dataset,
)


def _write(tmp_path, data: bytes, name: str = "upload"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_cifar10_batch_is_detected_and_read_in_channel_planes(tmp_path):
    path = _write(tmp_path, f.cifar_batch(20), "whatever.npz")  # the name is never looked at
    found = describe(path)
    assert (found.format, found.sample_count, found.input_shape) == ("cifar10-binary", 20, [3, 32, 32])
    assert found.meta["container"] == "raw" and found.meta["classes"][0] == "airplane"
    arrays = read_dataset(path, found.format, found.meta)
    x, y = f.cifar_records(20)
    assert arrays.x.dtype == np.uint8 and np.array_equal(arrays.x, x) and np.array_equal(arrays.y, y)
    assert np.allclose(arrays.normalized_x(), x / 255.0)


@pytest.mark.parametrize(("split", "count"), [(None, 5), ("test", 5), ("train", 6), ("all", 11)])
def test_cifar10_tar_gz_selects_the_split(tmp_path, split, count):
    batches = {
        "data_batch_1.bin": f.cifar_batch(3, seed=1),
        "data_batch_2.bin": f.cifar_batch(3, seed=2),
        "test_batch.bin": f.cifar_batch(5, seed=9),
    }
    path = _write(tmp_path, f.cifar_tar_gz(batches))
    found = describe(path, Options(split=split))
    assert found.format == "cifar10-binary" and found.sample_count == count
    assert found.meta["container"] == "tar" and found.meta["split"] == (split or "test")
    arrays = read_dataset(path, found.format, found.meta)
    if split == "all":  # natural order: data_batch_1, data_batch_2, test_batch
        assert np.array_equal(arrays.x[-5:], f.cifar_records(5, seed=9)[0])


def test_cifar10_zip_of_batches_and_normalisation(tmp_path):
    path = _write(tmp_path, f.zip_of({"b/test_batch.bin": f.cifar_batch(4)}))
    found = describe(path, Options(mean=[0.5, 0.5, 0.5], std=[0.25]))
    assert found.meta["container"] == "zip" and found.meta["normalization"] == {
        "mean": [0.5] * 3,
        "std": [0.25],
    }
    arrays = read_dataset(path, found.format, found.meta)
    assert np.allclose(arrays.normalized_x(), (f.cifar_records(4)[0] / 255.0 - 0.5) / 0.25, atol=1e-5)


@pytest.mark.parametrize("root", ["", "CIFAR-10-C/"])
def test_cifar_c_zip_records_corruptions_and_reads_one_slice(tmp_path, root):
    source = f.cifar_c_arrays(("fog", "brightness"), n=4)
    path = _write(tmp_path, f.cifar_c_zip(source, root))
    found = describe(path)
    assert found.format == "cifar-c" and found.input_shape == [3, 32, 32]
    assert found.meta["corruptions"] == ["brightness", "fog"] and found.meta["severities"] == [1, 2, 3, 4, 5]
    assert found.meta["samples_per_slice"] == 4 and found.sample_count == 2 * 5 * 4
    part = read_corruption(path, found.meta, "fog", 3)
    assert np.array_equal(part.x, source["fog"][8:12].transpose(0, 3, 1, 2))
    assert np.array_equal(part.y, source["labels"][8:12])
    everything = read_dataset(path, found.format, found.meta)
    assert everything.x.shape == (40, 3, 32, 32)
    assert np.array_equal(everything.x[:4], source["brightness"][:4].transpose(0, 3, 1, 2))
    with pytest.raises(DatasetError, match="unknown corruption"):
        read_corruption(path, found.meta, "snow", 1)
    with pytest.raises(DatasetError, match="severity"):
        read_corruption(path, found.meta, "fog", 6)


def test_imagefolder_zip_sorts_classes_and_resizes_to_the_most_common_size(tmp_path):
    path = _write(tmp_path, f.zip_of(f.imagefolder_members()))
    found = describe(path)
    assert found.format == "imagefolder" and found.meta["classes"] == ["bird", "cat", "dog"]
    assert found.meta["image_size"] == [16, 16] and found.input_shape == [3, 16, 16]
    arrays = read_dataset(path, found.format, found.meta)
    assert arrays.y.tolist() == [0, 0, 0, 1, 1, 2, 2]  # members sorted: bird/1.jpeg, bird/2.png, ...
    assert arrays.x.shape == (7, 3, 16, 16) and arrays.x.dtype == np.uint8
    assert arrays.x[0, 1].mean() > 200  # bird/1.jpeg is green, decoded as RGB
    resized = describe(path, Options(image_size=[8, 12]))
    assert resized.input_shape == [3, 8, 12]


def test_imagefolder_under_one_top_folder(tmp_path):
    members = {f"train/{k}": v for k, v in f.imagefolder_members().items()}
    found = describe(_write(tmp_path, f.zip_of(members)))
    assert found.meta["classes"] == ["bird", "cat", "dog"]


def _object_npy_zip() -> bytes:
    arrays = f.cifar_c_arrays(("fog",), n=1)
    members = {"labels.npy": f.npy(arrays["labels"]), "fog.npy": f.npy(np.array([{}, 1], dtype=object))}
    return f.zip_of(members)


def _labels_mismatch_zip() -> bytes:
    arrays = f.cifar_c_arrays(("fog", "snow"), n=4)
    arrays["labels"] = arrays["labels"][:7]
    return f.cifar_c_zip(arrays)


def _wrong_shape_zip() -> bytes:
    arrays = f.cifar_c_arrays(("fog",), n=4)
    arrays["fog"] = arrays["fog"][:19]
    return f.cifar_c_zip(arrays)


REFUSED = {
    "truncated batch": (f.cifar_batch(20)[:-100], "whole number of 3073-byte records"),
    "record of 3074 bytes": (b"\x01" * (3074 * 20), "whole number of 3073-byte records"),
    "label byte over 9": (b"\x0c" * 3073 * 2, "not an .npz"),
    "truncated batch in a tar.gz": (
        f.cifar_tar_gz({"test_batch.bin": f.cifar_batch(3)[:-1]}),
        "not a CIFAR-10 binary batch",
    ),
    "tar.gz without the split": (
        f.cifar_tar_gz({"data_batch_1.bin": f.cifar_batch(2)}),
        "no CIFAR-10 batches",
    ),
    "object dtype .npy": (_object_npy_zip(), "Python objects"),
    "labels mismatching": (_labels_mismatch_zip(), "labels.npy holds 7 labels"),
    "corruption not 5 severities": (_wrong_shape_zip(), "severities 1-5"),
    "zip slip ..": (f.zip_of({"cat/../../etc/x.png": b"x"}), "unsafe member name"),
    "absolute member": (f.zip_of({"/etc/cat/x.png": b"x"}), "unsafe member name"),
    "backslash member": (f.zip_of({"cat\\..\\x.png": b"x"}), "unsafe member name"),
    "NUL in member": (f.zip_with_raw_name(b"cat/a\x00../x.png"), "unsafe member name"),
    "decompression bomb png": (f.zip_of({"cat/bomb.png": f.png_declaring(100_000, 100_000)}), "pixels"),
    "non-image member": (
        f.zip_of({"cat/1.png": f.image_bytes((8, 8), "PNG"), "cat/notes.txt": b"hello"}),
        "not an image",
    ),
    "image not in a class folder": (
        f.zip_of({"a/b/c/1.png": f.image_bytes((8, 8), "PNG")}),
        "<class>/<image>",
    ),
    "deflated zip bomb": (f.zip_of({"cat/1.png": b"\0" * 8 * 1024**2}), "zip bomb"),
    "gzip bomb": (f.cifar_tar_gz({"test_batch.bin": b"\0" * 8 * 1024**2}), "gzip bomb"),
    "labels header declaring 10**12 labels": (
        f.zip_of(
            {"fog.npy": f.npy(f.cifar_c_arrays(("fog",), n=1)["fog"]), "labels.npy": f.huge_npy_header()}
        ),
        "labels.npy holds 1000000000000 labels",
    ),
    ".npz whose x header declares 10**12 values": (
        f.zip_of({"x.npy": f.huge_npy_header(), "y.npy": f.npy(np.zeros(3, np.int64))}),
        "does not match its size",
    ),
    ".npz with an object array": (
        f.zip_of({"x.npy": f.npy(np.array([{}], dtype=object)), "y.npy": f.npy(np.zeros(1, np.int64))}),
        "could not read the .npz file",
    ),
    "junk": (b"junk", "not an .npz"),
    "lone .npy": (f.npy(np.zeros(3)), "lone .npy"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_files_are_refused_with_a_reason(tmp_path, case):
    data, needle = REFUSED[case]
    with pytest.raises(DatasetError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        describe(_write(tmp_path, data))
    assert list(tmp_path.iterdir()) == [tmp_path / "upload"]  # nothing extracted next to it


def test_image_over_the_configured_pixel_cap_is_refused_before_decoding(tmp_path):
    path = _write(tmp_path, f.zip_of({"cat/1.png": f.image_bytes((100, 100), "PNG")}))
    with pytest.raises(DatasetError, match="at most 4096 per image"):
        describe(path, limits=Limits(max_image_pixels=64 * 64))
    with pytest.raises(DatasetError, match="pixels in all"):
        describe(path, limits=Limits(max_total_pixels=5000))


def test_options_that_do_not_apply_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="split does not apply"):
        describe(_write(tmp_path, f.cifar_batch(2)), Options(split="train"))
    with pytest.raises(DatasetError, match="mean needs 1 or 3 values"):
        describe(_write(tmp_path, f.cifar_batch(2)), Options(mean=[0.1, 0.2]))
