"""The loading sandbox: clean environment, rlimits, memory cap, timeout, output cap, nothing left over."""

from __future__ import annotations

import json
import resource
import time

import pytest
import torch

from tests.security.conftest import child_pids, small_state_dict, torch_bytes
from workers import sandbox
from workers.checkpoints import instantiate, load_checkpoint
from workers.intake import CheckpointError, preflight
from workers.sandbox import LoadLimits

SPY = """
import json, os, resource, sys
limits = {name: resource.getrlimit(getattr(resource, name))[0]
          for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_CORE")}
report = {"env": dict(os.environ), "limits": limits, "argv": sys.argv[1:], "sid": os.getsid(0) == os.getpid()}
with open(os.path.join(sys.argv[3], "result.json"), "w") as f:
    json.dump({"ok": False, "error": json.dumps(report)}, f)
"""


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(torch_bytes(small_state_dict()))
    return path


def test_child_gets_no_secrets_its_limits_and_its_own_session(checkpoint, tmp_path, monkeypatch):
    # Given a server process holding secrets, and a spy in place of the loader
    monkeypatch.setenv("PRUNESCOPE_API_TOKEN", "s3cret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    spy = tmp_path / "spy.py"
    spy.write_text(SPY)
    monkeypatch.setattr(sandbox, "CHILD", spy)
    limits = LoadLimits(memory_mb=1500, cpu_seconds=7, tmp_dir=tmp_path)
    # When a checkpoint is loaded
    with pytest.raises(CheckpointError) as info:
        sandbox.load(checkpoint, "torch_zip", expected_bytes=1000, limits=limits)
    report = json.loads(str(info.value))
    # Then the child saw no secret, ran under the limits, in its own session, with the path as argument
    assert "s3cret" not in json.dumps(report["env"])
    assert not any(k.startswith(("PRUNESCOPE", "AWS")) for k in report["env"])
    assert report["limits"]["RLIMIT_AS"] == 1500 * 2**20
    assert report["limits"]["RLIMIT_CPU"] == 7
    assert report["limits"]["RLIMIT_NOFILE"] == 64
    assert report["limits"]["RLIMIT_CORE"] == 0
    assert report["limits"]["RLIMIT_FSIZE"] == 2000 + sandbox.OUTPUT_SLACK
    assert report["sid"] and report["argv"][1] == str(checkpoint)
    assert list(tmp_path.glob("sandbox-*")) == []
    assert resource.getrlimit(resource.RLIMIT_AS)[0] != 1500 * 2**20  # the parent is untouched


def test_checkpoint_too_large_for_the_memory_cap_is_refused_before_a_child_starts(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(torch_bytes({"w": torch.zeros(16 * 2**20)}))  # 64 MiB of tensors
    with pytest.raises(CheckpointError, match="needs more than 800 MiB"):
        load_checkpoint(path, LoadLimits(memory_mb=800))


def test_child_out_of_memory_becomes_a_clear_error(checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="needs more than 300 MiB"):
        sandbox.load(checkpoint, "torch_zip", expected_bytes=10_000, limits=LoadLimits(memory_mb=300))
    assert child_pids() == []


def test_wall_clock_timeout_kills_the_child(checkpoint, tmp_path):
    started = time.monotonic()
    with pytest.raises(CheckpointError, match="longer than 0.3 s"):
        sandbox.load(
            checkpoint,
            "torch_zip",
            expected_bytes=10_000,
            limits=LoadLimits(timeout_seconds=0.3, tmp_dir=tmp_path),
        )
    assert time.monotonic() - started < 5
    assert child_pids() == [] and list(tmp_path.glob("sandbox-*")) == []


def test_output_larger_than_the_file_suggests_is_cut_off(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(torch_bytes({"w": torch.ones(6 * 2**20)}))  # 24 MiB, more than the 16 MiB slack
    with pytest.raises(CheckpointError, match="more space than its file suggests"):
        sandbox.load(path, "torch_zip", expected_bytes=0, limits=LoadLimits(tmp_dir=tmp_path))
    assert list(tmp_path.glob("sandbox-*")) == []


def test_workers_load_through_the_same_sandbox(checkpoint):
    model, info = instantiate(checkpoint, architecture="small_cnn", num_classes=10, input_shape=[1, 8, 8])
    assert info.format == "torch_zip" and not model.training
    expected = small_state_dict()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())


def test_preflight_reports_the_bytes_the_tensors_take(checkpoint):
    assert preflight(checkpoint, max_elements=10**9).tensor_bytes == sum(
        v.numel() * v.element_size() for v in small_state_dict().values()
    )


@pytest.mark.parametrize("fmt", ["torch_zip", "torch_legacy"])
def test_payload_that_got_past_the_prescan_still_cannot_run_in_the_child(fmt, tmp_path, marker):
    # Given a payload handed straight to the child, as if the parent-side checks had missed it
    from tests.security.conftest import legacy_with_pickle, payload_pickle, torch_zip_with_pickle

    pkl = payload_pickle(marker)
    path = tmp_path / "evil"
    path.write_bytes(torch_zip_with_pickle(pkl) if fmt == "torch_zip" else legacy_with_pickle(pkl))
    # When the child loads it, Then weights_only refuses it and nothing ran
    with pytest.raises(CheckpointError, match="weights only|weights_only"):
        sandbox.load(path, fmt, expected_bytes=100, limits=LoadLimits(tmp_dir=tmp_path))
    assert not marker.exists() and child_pids() == []
