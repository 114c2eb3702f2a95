"""`make bench` key `watcher`: what halb's health watcher costs the request path, and what it buys.

    python -m bench.watcher [--json watcher.json] [--rounds 5] [--hang-runs 20]   (`make bench-watcher`)

On the lab with halb's stack deployed, ROUNDS rounds. Each round measures both states of
`halb-haproxy-watch` (running on both nodes, or stopped on both), the state that goes first
alternating from round to round (running first in round 1). In each state, in this order:
  one connection   wrk -c1 (keep-alive) for SECONDS through the VIP, then straight to w1: the
                   added p50 and p99 are via - direct
  64 connections   wrk -c64 (keep-alive) for SECONDS through the VIP: requests per second
Each figure is the median over the rounds, with every round's value kept (the spread).
Then the watcher's own CPU on lb1 over 10 s (utime + stime of its process and its children, from
/proc), and the hang drill (haproxy SIGSTOPped on the MASTER, halb_lab.scenarios.faults) HANG_RUNS
times: p50 and p99 of the outage.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from bench import wrk
from bench.common import Knob, on_lab, percentile, running_vs_stopped, standalone, unit_cpu_s
from halb.commands import WATCH
from halb_lab.automation.stack import deploy
from halb_lab.infra import nodes
from halb_lab.infra.topology import NODES, VIP, WORKERS
from halb_lab.scenarios import drills, faults

ROOT = Path(__file__).resolve().parent.parent

ROUNDS = 5  # --rounds
HANG_RUNS = 20  # --hang-runs
SECONDS = 5


def set_watcher(running: bool) -> None:
    for n in NODES:
        nodes.ssh(n, f"systemctl {'start' if running else 'stop'} {WATCH}", timeout=20, check=True)
    time.sleep(1)


def one_state() -> dict[str, float]:
    via = wrk.run(f"http://{VIP}/", 1, SECONDS)
    direct = wrk.run(f"http://{WORKERS[0].address}/", 1, SECONDS)
    many = wrk.run(f"http://{VIP}/", 64, SECONDS)
    return {
        "added_p50_ms": round(via.p50_ms - direct.p50_ms, 3),
        "added_p99_ms": round(via.p99_ms - direct.p99_ms, 3),
        "rps_64": round(many.rps),
    }


def watcher_cpu_s(seconds: float = 10) -> float:
    """CPU seconds the watcher (and anything it starts) used on lb1 over `seconds`."""
    return unit_cpu_s("lb1", WATCH, seconds)


def run() -> dict[str, Any]:
    with on_lab():
        deploy(progress=lambda _: None)
        drills.settle()
        figures = running_vs_stopped("watcher", ROUNDS, set_watcher, one_state)
        cpu = watcher_cpu_s()
        hangs = []
        for i in range(HANG_RUNS):
            d = faults.haproxy_hang()
            hangs.append(d.report.outages[0] if d.report.outages else 0.0)
            print(f"bench: hang {i + 1}/{HANG_RUNS}: {hangs[-1]:.2f} s", flush=True)
    figures["watcher_cpu_s_per_10s"] = cpu
    figures["hang"] = {
        "runs": HANG_RUNS,
        "p50_s": percentile(hangs, 50),
        "p99_s": percentile(hangs, 99),
        "outages_s": [round(h, 2) for h in hangs],
    }
    return figures


def table(f: dict[str, Any]) -> str:
    lines = [
        f"| watcher (median of {f['rounds']} rounds) | added p50 ms | added p99 ms | rps, 64 conn. |",
        "| --- | --- | --- | --- |",
    ]
    for state in ("running", "stopped"):
        s = f[state]
        lines.append(
            f"| {state} | {s['added_p50_ms']['median']} | {s['added_p99_ms']['median']} | {s['rps_64']['median']} |"
        )
    lines.append(
        f"added p50, running - stopped: {f['added_p50_difference_ms']} ms; watcher CPU "
        f"{f['watcher_cpu_s_per_10s']} s per 10 s; hang p50 {f['hang']['p50_s']:.2f} s, "
        f"p99 {f['hang']['p99_s']:.2f} s over {f['hang']['runs']} runs"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    knobs = {
        "rounds": Knob("ROUNDS", "rounds, the watcher running and stopped"),
        "hang-runs": Knob("HANG_RUNS", "runs of the hang drill"),
    }
    sys.exit(standalone("watcher", run, table, knobs))
