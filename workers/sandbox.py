"""Deserialising an untrusted checkpoint in a child process that can do little harm (DESIGN §5).

The child (:mod:`workers.sandbox_child`, run as a script with ``python -I``) gets:

- a clean environment: no ``PRUNESCOPE_*`` settings, no API token, no proxy or cloud credentials;
  only ``PATH``, a locale, ``HOME``/``TMPDIR`` set to its private folder and one-thread BLAS;
- rlimits set before ``exec``: address space (``memory_mb``), CPU seconds, 64 open files, no core
  dumps, and a file-size cap sized to the output it may write;
- its own process group, killed whole on the wall-clock timeout or any error in the parent;
- the input path as an argument and a private ``mkdtemp`` folder for its output, removed afterwards.

It answers with ``tensors.safetensors`` and ``result.json``; the parent checks the safetensors header
with the same validator as uploads before reading it. No pickle crosses the boundary, and a failed
load is never retried with ``weights_only=False``.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workers.intake import CheckpointError, LoadedCheckpoint, check_safetensors

logger = logging.getLogger(__name__)

CHILD = Path(__file__).with_name("sandbox_child.py")
MAX_RESULT_JSON = 1024 * 1024
OUTPUT_SLACK = 16 * 1024 * 1024  # safetensors header and alignment on top of the tensor bytes


@dataclass(frozen=True)
class LoadLimits:
    """Caps on one load. ``memory_mb`` bounds the child's address space, Python and torch included."""

    memory_mb: int = 4096
    cpu_seconds: int = 120
    timeout_seconds: float = 180.0
    max_elements: int = 2_000_000_000
    tmp_dir: Path | None = None  # where the private output folder is made; None: the system's

    @classmethod
    def from_settings(cls, settings, tmp_dir: Path | None = None) -> LoadLimits:
        return cls(
            memory_mb=settings.checkpoint_load_memory_mb,
            cpu_seconds=settings.checkpoint_load_cpu_seconds,
            timeout_seconds=settings.checkpoint_load_timeout_seconds,
            max_elements=settings.max_checkpoint_elements,
            tmp_dir=tmp_dir,
        )


def child_environment(workdir: Path) -> dict[str, str]:
    """Only what Python needs: nothing from the parent's environment except PATH."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }


def _rlimits(limits: LoadLimits, output_bytes: int):
    memory = limits.memory_mb * 1024 * 1024
    cpu = max(1, int(limits.cpu_seconds))

    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails with EFBIG instead

    return apply


def _describe_death(code: int, limits: LoadLimits) -> str:
    if code in (-signal.SIGXCPU, -signal.SIGKILL):
        return (
            f"loading the checkpoint was stopped: it used more than {limits.cpu_seconds} s of CPU or "
            f"more than {limits.memory_mb} MiB"
        )
    if code in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS):
        return f"the checkpoint needs more than {limits.memory_mb} MiB to load, or is damaged (loader crash)"
    return f"the checkpoint loader failed (exit status {code})"


def _read_result(out: Path, limits: LoadLimits) -> dict:
    path = out / "result.json"
    if not path.is_file() or path.stat().st_size > MAX_RESULT_JSON:
        raise CheckpointError("the checkpoint loader gave no answer")
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError("the checkpoint loader gave a malformed answer") from None
    if not isinstance(result, dict):
        raise CheckpointError("the checkpoint loader gave a malformed answer")
    if result.get("ok") is not True:
        error = str(result.get("error", "unknown error"))[:2000]
        if error == "memory":
            error = (
                f"the checkpoint needs more than {limits.memory_mb} MiB to load (the loader's memory limit)"
            )
        elif error == "output":
            error = (
                "the checkpoint's tensors take more space than its file suggests (shared or repeated storage)"
            )
        raise CheckpointError(error)
    return result


def _scalars(meta: object) -> dict:
    if not isinstance(meta, dict):
        return {}
    return {  # PostgreSQL's jsonb has no NUL character
        str(k)[:1000].replace("\x00", ""): v.replace("\x00", "") if isinstance(v, str) else v
        for k, v in meta.items()
        if isinstance(v, (bool, int, float, str))
    }


def load(path: Path, fmt: str, *, expected_bytes: int, limits: LoadLimits) -> LoadedCheckpoint:
    """Load ``path`` (already through :func:`workers.intake.preflight`) in the sandbox."""
    from safetensors.torch import load_file

    # absolute: the child runs with its private folder as the working directory
    out = Path(tempfile.mkdtemp(prefix="sandbox-", dir=limits.tmp_dir)).resolve()
    output_cap = 2 * expected_bytes + OUTPUT_SLACK
    argv = [
        sys.executable,
        "-I",
        str(CHILD),
        fmt,
        str(Path(path).resolve()),
        str(out),
        str(limits.max_elements),
    ]
    try:
        with (out / "stderr.txt").open("wb") as errors:
            proc = _spawn(argv, out, errors, _rlimits(limits, output_cap))
        try:
            proc.wait(timeout=limits.timeout_seconds)
        except subprocess.TimeoutExpired:
            raise CheckpointError(
                f"loading the checkpoint took longer than {limits.timeout_seconds:g} s and was stopped"
            ) from None
        finally:
            _kill_group(proc)
        if proc.returncode != 0:
            tail = (out / "stderr.txt").read_bytes()[-2000:].decode(errors="replace")
            logger.warning("checkpoint loader exited %s: %s", proc.returncode, tail)
            raise CheckpointError(_describe_death(proc.returncode, limits))
        result = _read_result(out, limits)
        tensors_path = out / "tensors.safetensors"
        check_safetensors(tensors_path, max_elements=limits.max_elements)  # the child is not trusted either
        tensors = load_file(str(tensors_path), device="cpu")
        return LoadedCheckpoint(fmt, tensors, _scalars(result.get("meta")))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _spawn(argv: list[str], out: Path, errors, preexec) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        argv,
        env=child_environment(out),
        cwd=out,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=errors,
        preexec_fn=preexec,  # noqa: PLW1509 - only setrlimit and signal, no locks
        start_new_session=True,
        close_fds=True,
    )


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child's whole process group (it may have forked) and reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
