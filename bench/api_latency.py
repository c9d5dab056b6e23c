"""API list latency under concurrency (DESIGN §8: p95 under 100 ms with 50 concurrent clients).

Usage: python bench/api_latency.py [--clients 50 --requests 2000 --checkpoints 20 --database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench._server import running_server
from tests.conftest import state_dict_bytes


async def hammer(base: str, path: str, clients: int, total: int) -> list[float]:
    latencies: list[float] = []
    remaining = [total]
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one_client():
            while remaining[0] > 0:
                remaining[0] -= 1
                t = time.perf_counter()
                resp = await client.get(path)
                latencies.append(time.perf_counter() - t)
                resp.raise_for_status()

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temp dir")
    args = parser.parse_args()
    env = {"PRUNESCOPE_DATABASE_URL": args.database_url} if args.database_url else {}
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp), env=env) as (base, _proc):
        for i in range(args.checkpoints):
            httpx.post(
                f"{base}/api/checkpoints",
                data={"architecture": "small_cnn", "name": f"c{i}"},
                files={"file": ("w.pt", state_dict_bytes(seed=i))},
                timeout=60,
            ).raise_for_status()
        for path in ("/api/checkpoints", "/api/jobs", "/api/datasets"):
            lat = asyncio.run(hammer(base, path, args.clients, args.requests))
            q = statistics.quantiles(lat, n=100)
            print(
                f"GET {path}: {len(lat)} requests, {args.clients} clients: p50 {q[49] * 1000:.1f} ms, "
                f"p95 {q[94] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms (target p95 < 100 ms)"
            )


if __name__ == "__main__":
    main()
