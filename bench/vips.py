"""`make bench` key `vips`: several VIPs, active/active and dual stack on the lab-multi stack.

    python -m bench.vips [--json vips.json] [--rounds 5] [--throughput-rounds 3]

  failover    each drill ROUNDS times, every VIP watched under its own client load at once
              (halb_lab.scenarios.vips): haproxy killed on lb1 and on lb2, each node's link cut.
              Per VIP: the outage p50 / p99 of the VIPs that moved, the failed requests of the
              ones that stayed, samples where the sync group's v4 and v6 VIPs were apart.
  throughput  wrk keep-alive (64 connections) and a new connection per request (32) through one
              IPv4 VIP, the IPv6 VIP, both IPv4 VIPs at once (active/active: each node serves
              one) and straight to the four workers (the machine's limit), median of
              THROUGHPUT_ROUNDS rounds of 5 s. The lab's nodes, workers and client share the
              machine's cores: active/active cannot add capacity here that the cores lack.

The seed and the kubeadm guide have one VIP and one VRRP instance: no second VIP, no
active/active, no IPv6. The table says so rather than leaving them out.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

from bench import wrk
from bench.common import Knob, deployed, percentile, standalone
from halb_lab.infra.topology import WORKERS
from halb_lab.scenarios.vips import INTERNAL, PREFERRED, PUBLIC, PUBLIC6, STACK, haproxy_killed, link_cut, url

ROOT = Path(__file__).resolve().parent.parent

ROUNDS = 5  # --rounds
THROUGHPUT_ROUNDS = 3  # --throughput-rounds
SECONDS = 5
UNABLE = "one VIP and one VRRP instance: no second VIP, no active/active, no IPv6"
DRILLS = {
    "haproxy-killed-lb1": lambda: haproxy_killed("lb1"),
    "haproxy-killed-lb2": lambda: haproxy_killed("lb2"),
    "link-cut-lb1": lambda: link_cut("lb1"),
    "link-cut-lb2": lambda: link_cut("lb2"),
}


def failover() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, drill in DRILLS.items():
        runs = [drill() for _ in range(ROUNDS)]
        row: dict[str, Any] = {"node": runs[0].node, "runs": ROUNDS, "sync_group_samples_apart": 0, "vips": {}}
        row["sync_group_samples_apart"] = sum(len(d.apart) for d in runs)
        for vip in PREFERRED:
            reports = [d.reports[vip] for d in runs]
            moved = vip in runs[0].moved()
            first = [r.outages[0] if r.outages else 0.0 for r in reports]
            later = [o for r in reports for o in r.outages[1:]]
            row["vips"][vip] = {
                "moved": moved,
                "outage_p50_s": round(percentile(first, 50), 3),
                "outage_p99_s": round(percentile(first, 99), 3),
                "failback_outage_max_s": round(max(later, default=0.0), 3),
                "failed_requests": sum(r.failed for r in reports),
                "requests": sum(r.requests for r in reports),
                "outages": sum(len(r.outages) for r in reports),
            }
        out[name] = row
    return out


def throughput() -> dict[str, Any]:
    loads = {"keepalive_64": (64, False), "new_connection_32": (32, True)}
    targets = {
        "one_vip_ipv4": [url(PUBLIC)],
        "one_vip_ipv6": [url(PUBLIC6)],
        "two_vips_active_active": [url(PUBLIC), url(INTERNAL)],
        # The machine's limit: the same load straight to the four workers (no haproxy, no VIP).
        "direct_to_workers": [f"http://{w.address}/" for w in WORKERS],
    }
    rounds: dict[str, dict[str, list[wrk.WrkResult]]] = {t: {load: [] for load in loads} for t in targets}
    for _ in range(THROUGHPUT_ROUNDS):
        for target, urls in targets.items():
            for load, (conns, close) in loads.items():
                result = (
                    wrk.parallel(urls, conns, SECONDS, close)
                    if len(urls) > 1
                    else wrk.run(urls[0], conns, SECONDS, close)
                )
                rounds[target][load].append(result)
    out: dict[str, Any] = {}
    for target, by_load in rounds.items():
        out[target] = {
            load: {
                "rps": round(statistics.median(r.rps for r in rs)),
                "rps_runs": [round(r.rps) for r in rs],
                "p99_ms": round(statistics.median(r.p99_ms for r in rs), 2),
                "errors": sum(r.errors for r in rs),
            }
            for load, rs in by_load.items()
        }
    return out


def run() -> dict[str, Any]:
    with deployed(STACK):
        figures: dict[str, Any] = {"failover": failover(), "throughput": throughput()}
    figures["seed"] = figures["kubeadm"] = UNABLE
    return figures


def table(figures: dict[str, Any]) -> str:
    lines = ["| drill | VIP | moved | outage p50 / p99 s | failback max s | failed requests | sync group apart |"]
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for name, row in figures["failover"].items():
        for vip, f in row["vips"].items():
            lines.append(
                f"| {name} | {vip} | {'yes' if f['moved'] else 'no'} | {f['outage_p50_s']} / {f['outage_p99_s']} | "
                f"{f['failback_outage_max_s']} | {f['failed_requests']}/{f['requests']} | "
                f"{row['sync_group_samples_apart']} samples |"
            )
    lines += ["", "| through | load | rps | p99 ms | errors |", "| --- | --- | --- | --- | --- |"]
    for target, by_load in figures["throughput"].items():
        for load, f in by_load.items():
            lines.append(f"| {target} | {load} | {f['rps']} | {f['p99_ms']} | {f['errors']} |")
    lines += ["", f"seed, kubeadm guide: {UNABLE}"]
    return "\n".join(lines)


if __name__ == "__main__":
    knobs = {
        "rounds": Knob("ROUNDS", "runs of each drill"),
        "throughput-rounds": Knob("THROUGHPUT_ROUNDS", "rounds of 5 s of wrk"),
    }
    sys.exit(standalone("vips", run, table, knobs))
