"""Latency at a fixed, moderate rate: a new connection + GET every 1/rate s (open loop, so a slow
answer does not slow the sender), from the client namespace. Prints p50/p99 in ms as JSON.

    ip netns exec halb-client python -m bench.latency --host 198.18.0.10 --rate 200 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

from halb import PROJECT_DIR
from halb_lab.infra.topology import CLIENT


async def _one(host: str, timings: list[float], failed: list[int]) -> None:
    t0 = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, 80), 2)
        writer.write(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        answer = await asyncio.wait_for(reader.read(), 2)
        writer.close()
        if answer.startswith(b"HTTP/1.1 200") or answer.startswith(b"HTTP/1.0 200"):
            timings.append((time.perf_counter() - t0) * 1000)
            return
    except (OSError, TimeoutError):
        pass
    failed.append(1)


async def _run(host: str, rate: float, seconds: float) -> dict[str, float]:
    timings: list[float] = []
    failed: list[int] = []
    tasks = []
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        tasks.append(asyncio.create_task(_one(host, timings, failed)))
        n += 1
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    ordered = sorted(timings)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 3) if ordered else 0.0

    return {"rate": rate, "requests": n, "failed": len(failed), "p50_ms": pct(50), "p99_ms": pct(99)}


def measure(host: str, rate: float = 200, seconds: float = 5) -> dict[str, float]:
    """Run from the client namespace; the figures as a dict."""
    cmd = ["ip", "netns", "exec", CLIENT.netns, sys.executable, "-m", "bench.latency"]
    p = subprocess.run(
        [*cmd, "--host", host, "--rate", str(rate), "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
    )
    if p.returncode != 0:
        raise RuntimeError(f"latency {host}: {p.stderr.strip()}")
    figures: dict[str, float] = json.loads(p.stdout)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args.host, args.rate, args.seconds))))


if __name__ == "__main__":
    main()
