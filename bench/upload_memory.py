"""Server memory while a large upload streams in (DESIGN §8: 1 GiB upload, growth under 100 MiB).

Usage: python bench/upload_memory.py [--gib 1.0]
The body is junk, so the server streams and stores it, then refuses it (422) when the format check
runs: this measures the streaming path, not checkpoint loading (which moves to a sandboxed child).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench._server import rss_mib, running_server

CHUNK = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    args = parser.parse_args()
    total = int(args.gib * 1024**3)
    with tempfile.TemporaryDirectory() as tmp:
        env = {"PRUNESCOPE_MAX_UPLOAD_BYTES": str(total + CHUNK)}
        with running_server(Path(tmp), env=env) as (base, proc):
            before = rss_mib(proc.pid)
            peak = [before]
            done = threading.Event()

            def sample():
                while not done.is_set():
                    peak[0] = max(peak[0], rss_mib(proc.pid))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample)
            sampler.start()

            def body():
                chunk = b"\x07" * CHUNK
                for _ in range(total // CHUNK):
                    yield chunk

            boundary = "benchboundary"
            disposition = "Content-Disposition: form-data; name="
            head = (
                f'--{boundary}\r\n{disposition}"architecture"\r\n\r\nsmall_cnn\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pt"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            tail = f"\r\n--{boundary}--\r\n".encode()

            def multipart():
                yield head
                yield from body()
                yield tail

            started = time.time()
            resp = httpx.post(
                f"{base}/api/checkpoints",
                content=multipart(),
                timeout=None,
                headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            )
            seconds = time.time() - started
            done.set()
            sampler.join()
            staged = [f for f in Path(tmp).rglob("upload-*") if f.is_file()]
            leftover = sum(f.stat().st_size for f in staged)
    print(
        f"upload of {args.gib:.2f} GiB: HTTP {resp.status_code} in {seconds:.1f} s "
        f"({args.gib * 1024 / seconds:.0f} MiB/s)"
    )
    print(
        f"server RSS before {before:.0f} MiB, peak {peak[0]:.0f} MiB, growth {peak[0] - before:.0f} MiB "
        f"(target < 100 MiB); temporary bytes left behind: {leftover}"
    )


if __name__ == "__main__":
    main()
