"""The CLI against a real server: db upgrade, upload with a progress bar, analyse following jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import state_dict_bytes

pytestmark = pytest.mark.slow


def _cli(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PRUNESCOPE_")}
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "prunescope", *args],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_upload_and_analyse_through_the_cli(stack, procs, tmp_path):
    # Given a running server with a worker
    assert _cli(["db", "upgrade"], stack.env).returncode == 0
    server = procs.start_server(stack, workers=1).wait_ready()
    weights = tmp_path / "weights.pt"
    weights.write_bytes(state_dict_bytes(seed=5))
    env = {**stack.env, "PRUNESCOPE_SERVER": server.url}

    # When a checkpoint is uploaded and evaluate runs on it from the command line
    up = _cli(["upload", str(weights), "--architecture", "small_cnn", "--name", "cli", "--family", "f"], env)
    assert up.returncode == 0, up.stderr
    ckpt = json.loads(up.stdout[up.stdout.index("{") :])
    assert ckpt["name"] == "cli" and ckpt["family"] == "f"
    ds = httpx.post(f"{server.url}/api/datasets", json={"builtin": "digits"}).json()
    run = _cli(
        ["analyse", "evaluate", "-c", str(ckpt["id"]), "--dataset", str(ds["id"]), "-p", "max_samples=200"],
        env,
    )

    # Then the job is followed to success and the CLI says so
    assert run.returncode == 0, run.stdout + run.stderr
    assert "succeeded" in run.stdout
    jobs = httpx.get(f"{server.url}/api/jobs").json()
    assert [(j["status"], j["params"]["max_samples"]) for j in jobs] == [("succeeded", 200)]


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_cli_errors_are_messages_not_tracebacks(stack, procs, tmp_path):
    server = procs.start_server(stack, workers=0, no_worker=True).wait_ready()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    env = {**stack.env, "PRUNESCOPE_SERVER": server.url}
    up = _cli(["upload", str(junk), "--architecture", "small_cnn"], env)
    assert up.returncode == 1
    assert "error 422" in up.stderr and "Traceback" not in up.stderr
    run = _cli(["analyse", "nope", "-c", "1"], env)
    assert run.returncode == 1 and "unknown analysis" in run.stderr


def test_serve_refuses_a_public_address_without_an_api_token(tmp_path):
    res = _cli(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)], {}, timeout=60)
    assert res.returncode == 2
    assert "PRUNESCOPE_API_TOKEN" in res.stderr
