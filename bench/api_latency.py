"""API list latency under concurrency (DESIGN §8: p95 under 100 ms with 50 concurrent clients).

Usage: python -m bench.api_latency [--clients 50 --seconds 10 --checkpoints 20 --http-workers 1 2
                                    --postgres postgresql://postgres@127.0.0.1:5432/test]
Load comes from `wrk` (Debian package) when installed, else from an asyncio httpx client, which
itself takes much of a 2-core machine's CPU. Run with nothing else busy.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from bench._server import running_server
from tests.conftest import state_dict_bytes

PATHS = ("/api/checkpoints", "/api/jobs", "/api/datasets")


def with_wrk(url: str, clients: int, seconds: int) -> str:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pct = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)$", out, re.M))
    rps = re.search(r"Requests/sec:\s+(\S+)", out).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return (
        f"{rps} req/s, p50 {pct['50']}, p90 {pct['90']}, p99 {pct['99']}, "
        f"non-2xx {errors.group(1) if errors else 0}"
    )


def with_httpx(url: str, clients: int, seconds: int) -> str:
    latencies: list[float] = []

    async def run():
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients), timeout=30) as client:

            async def one():
                while time.monotonic() < deadline:
                    t = time.perf_counter()
                    (await client.get(url)).raise_for_status()
                    latencies.append(time.perf_counter() - t)

            await asyncio.gather(*(one() for _ in range(clients)))

    asyncio.run(run())
    q = statistics.quantiles(latencies, n=100)
    return (
        f"{len(latencies) / seconds:.0f} req/s, p50 {q[49] * 1000:.1f} ms, p95 {q[94] * 1000:.1f} ms, "
        f"p99 {q[98] * 1000:.1f} ms (httpx client)"
    )


def measure(args, database_url: str | None, http_workers: int) -> None:
    env = {"PRUNESCOPE_DATABASE_URL": database_url} if database_url else {}
    load = with_wrk if shutil.which("wrk") else with_httpx
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server(Path(tmp), env=env, http_workers=http_workers) as (base, _proc),
    ):
        for i in range(args.checkpoints):
            httpx.post(
                f"{base}/api/checkpoints",
                data={"architecture": "small_cnn", "name": f"c{i}"},
                files={"file": ("w.pt", state_dict_bytes(seed=i))},
                timeout=60,
            ).raise_for_status()
        where = "PostgreSQL" if database_url else "SQLite"
        for path in PATHS:
            result = load(base + path, args.clients, args.seconds)
            print(f"{where}, {http_workers} HTTP process(es), GET {path}, {args.clients} clients: {result}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--http-workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--postgres", default=None, help="also measure on this PostgreSQL (own schema)")
    args = parser.parse_args()
    for n in args.http_workers:
        measure(args, None, n)
    if args.postgres:
        schema = "bench_" + secrets.token_hex(4)
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
            try:
                for n in args.http_workers:
                    measure(args, f"{args.postgres}?options=-csearch_path%3D{schema}", n)
            finally:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
