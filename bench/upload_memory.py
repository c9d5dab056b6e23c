"""Server memory while a large upload streams in (DESIGN §8: 1 GiB upload, growth under 100 MiB).

Usage: python bench/upload_memory.py [--gib 1.0] [--chunk-mib 8] [--paths tus,multipart]

Two paths, each against a fresh ``prunescope serve`` over loopback:
- ``tus``: the resumable protocol the dashboard uses (POST /api/uploads, then one PATCH per chunk),
  then registration (POST /api/checkpoints with ``upload_id``: the server moves the file into
  staging, hashes it and runs the format check);
- ``multipart``: one POST /api/checkpoints with the file in a multipart body.
The body is junk, so the server streams and stores it, then refuses it (422) when the format check
runs: this measures the streaming path, not checkpoint loading (which runs in a sandboxed child).
Growth is the server's peak RSS (``VmHWM``, and a 50 ms sampler) minus its RSS before the upload.
"""

from __future__ import annotations

import argparse
import base64
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from bench._server import rss_mib, running_server

MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


class PeakRss:
    """Samples a process's RSS every 50 ms while the block runs; ``growth`` is peak minus start."""

    def __init__(self, pid: int):
        self.pid = pid
        self.before = rss_mib(pid)
        self.peak = self.before
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib(self.pid, "VmHWM"))

    @property
    def growth(self) -> float:
        return self.peak - self.before


def junk(total: int, chunk: int) -> Iterator[bytes]:
    block = b"\x07" * chunk
    for _ in range(total // chunk):
        yield block
    if total % chunk:
        yield block[: total % chunk]


def via_tus(base: str, total: int, chunk: int) -> dict:
    name = base64.b64encode(b"big.pt").decode()
    with httpx.Client(base_url=base, timeout=None) as client:
        started = time.perf_counter()
        created = client.post(
            "/api/uploads",
            headers={**TUS, "Upload-Length": str(total), "Upload-Metadata": f"filename {name}"},
        )
        created.raise_for_status()
        url = created.headers["location"]
        offset = 0
        for block in junk(total, chunk):
            resp = client.patch(
                url,
                content=block,
                headers={
                    **TUS,
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": str(offset),
                },
            )
            if resp.status_code != 204:
                raise RuntimeError(f"PATCH at {offset}: HTTP {resp.status_code} {resp.text[:200]}")
            offset = int(resp.headers["upload-offset"])
        uploaded = time.perf_counter()
        registered = client.post(
            "/api/checkpoints", data={"architecture": "small_cnn", "upload_id": url.rsplit("/", 1)[1]}
        )
        done = time.perf_counter()
    return {
        "status": registered.status_code,
        "upload_s": uploaded - started,
        "register_s": done - uploaded,
        "detail": registered.json().get("detail", "")[:100],
    }


def via_multipart(base: str, total: int, chunk: int) -> dict:
    boundary = "benchboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="architecture"\r\n\r\nsmall_cnn\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pt"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body():
        yield head
        yield from junk(total, chunk)
        yield tail

    started = time.perf_counter()
    resp = httpx.post(
        f"{base}/api/checkpoints",
        content=body(),
        timeout=None,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    return {
        "status": resp.status_code,
        "upload_s": time.perf_counter() - started,
        "register_s": 0.0,
        "detail": resp.json().get("detail", "")[:100],
    }


def measure(label: str, send: Callable[[str, int, int], dict], total: int, chunk: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"PRUNESCOPE_MAX_UPLOAD_BYTES": str(total + MIB)}
        with running_server(Path(tmp), env=env) as (base, proc):
            with PeakRss(proc.pid) as rss:
                result = send(base, total, chunk)
        leftovers = [f for f in Path(tmp).rglob("*") if f.is_file() and f.parent.name in ("tmp", "uploads")]
        left = sum(f.stat().st_size for f in leftovers)
    mib = total / MIB
    total_s = result["upload_s"] + result["register_s"]
    print(
        f"{label:9s} {mib / 1024:.2f} GiB: HTTP {result['status']} "
        f"upload {result['upload_s']:.1f} s ({mib / result['upload_s']:.0f} MiB/s), "
        f"registration {result['register_s']:.1f} s, overall {mib / total_s:.0f} MiB/s | "
        f"server RSS before {rss.before:.0f} MiB, peak {rss.peak:.0f} MiB, growth {rss.growth:.0f} MiB "
        f"(target < 100) | bytes left behind: {left}"
    )
    print(f"          server said: {result['detail']!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--chunk-mib", type=float, default=8.0, help="bytes per PATCH (tus)")
    parser.add_argument("--paths", default="tus,multipart", help="comma-separated: tus, multipart")
    args = parser.parse_args()
    total = int(args.gib * 1024**3)
    chunk = int(args.chunk_mib * MIB)
    paths = {"tus": via_tus, "multipart": via_multipart}
    for label in args.paths.split(","):
        measure(label, paths[label.strip()], total, chunk if label == "tus" else MIB)


if __name__ == "__main__":
    main()
