"""Throughput and latency with wrk (Debian's) from the lab's client namespace.

`run` drives one wrk; `parallel` drives one per target at once (direct to the four workers, the
physical limit of the machine), summing their requests. A new connection per request is wrk
with `Connection: close`, so each request pays its own TCP handshake through the VIP.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from halb_lab.scenarios.probes import in_client

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # connect, read, write, timeout errors and non-2xx/3xx answers


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if m is None:
        raise ValueError(f"not a wrk latency: {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse(output: str) -> WrkResult:
    """wrk's --latency report."""
    requests = re.search(r"^\s*(\d+) requests in", output, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if not (requests and rps and p50 and p99):
        raise ValueError(f"not a wrk --latency report: {output[-400:]!r}")
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = sum(int(g) for g in socket_errors.groups()) if socket_errors else 0
    errors += int(non2xx.group(1)) if non2xx else 0
    return WrkResult(int(requests.group(1)), float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), errors)


def command(url: str, connections: int, seconds: float, close: bool = False) -> list[str]:
    threads = max(1, min(2, connections))
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "2s"]
    if close:
        cmd += ["-H", "Connection: close"]
    return in_client(*cmd, url)


def run(url: str, connections: int, seconds: float = 5, close: bool = False) -> WrkResult:
    p = subprocess.run(command(url, connections, seconds, close), capture_output=True, text=True, timeout=seconds + 30)
    if p.returncode != 0:
        raise RuntimeError(f"wrk {url}: exit {p.returncode}: {(p.stderr or p.stdout).strip()[-300:]}")
    return parse(p.stdout)


def parallel(urls: list[str], connections: int, seconds: float = 5, close: bool = False) -> WrkResult:
    """One wrk per URL at once, `connections` shared among them; latencies are the worst of them."""
    each = max(1, connections // len(urls))
    procs = [
        subprocess.Popen(command(u, each, seconds, close), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for u in urls
    ]
    results = []
    for u, proc in zip(urls, procs, strict=True):
        out, err = proc.communicate(timeout=seconds + 30)
        if proc.returncode != 0:
            raise RuntimeError(f"wrk {u}: exit {proc.returncode}: {(err or out).strip()[-300:]}")
        results.append(parse(out))
    return WrkResult(
        sum(r.requests for r in results),
        sum(r.rps for r in results),
        max(r.p50_ms for r in results),
        max(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )
