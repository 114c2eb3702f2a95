"""`make bench` key `tls`: TLS ended by haproxy on the lab-tls stack, against nginx ending TLS
itself on a worker.

    python -m bench.tls [--json tls.json] [--rounds 3] [--rotations 3]

  handshakes   wrk with a new connection (so a full TLS handshake) per request, 32 connections:
               https through the VIP (haproxy ends TLS, then plain HTTP to w1/w2) against https
               straight to one worker's nginx (which ends TLS itself); haproxy's CPU per
               handshake on the holder, from /proc
  keepalive    wrk keep-alive over TLS, 64 connections, the same two ways
  rotation     the certificate rotated ROTATIONS times under a load of new TLS sessions (one every
               10 ms, each verified against the lab's CA): failed requests, reloads, deploy time

Median of ROUNDS rounds of 5 s. TLS 1.3 with ECDSA P-256 certificates on both sides; wrk does
not resume sessions, so every new connection is a full handshake. The seed and the kubeadm
guide pass TCP through and end no TLS: the table says so.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

from bench import wrk
from bench.common import Knob, deployed, haproxy_cpu_seconds, standalone
from halb_lab.infra.topology import VIP, WORKERS
from halb_lab.scenarios.tls import STACK, rotate

ROOT = Path(__file__).resolve().parent.parent

ROUNDS = 3  # --rounds
ROTATIONS = 3  # --rotations
SECONDS = 5
UNABLE = "TCP pass-through only: no TLS termination, no routing, no PROXY protocol"


def load() -> dict[str, Any]:
    loads = {"handshakes_32": (32, True), "keepalive_64": (64, False)}
    targets = {"via_vip_haproxy": f"https://{VIP}/", "direct_nginx_one_worker": f"https://{WORKERS[0].address}/"}
    runs: dict[str, dict[str, list[dict[str, float]]]] = {t: {k: [] for k in loads} for t in targets}
    for _ in range(ROUNDS):
        for target, url in targets.items():
            for label, (conns, close) in loads.items():
                cpu0 = haproxy_cpu_seconds("lb1") if target.startswith("via") else 0.0
                r = wrk.run(url, conns, SECONDS, close)
                cpu = haproxy_cpu_seconds("lb1") - cpu0 if target.startswith("via") else 0.0
                runs[target][label].append(
                    {
                        "rps": r.rps,
                        "p99_ms": r.p99_ms,
                        "errors": r.errors,
                        "cpu_us": cpu / r.requests * 1e6 if cpu else 0,
                    }
                )
    out: dict[str, Any] = {}
    for target, by_load in runs.items():
        out[target] = {}
        for label, rs in by_load.items():
            row: dict[str, Any] = {
                "rps": round(statistics.median(r["rps"] for r in rs)),
                "rps_runs": [round(r["rps"]) for r in rs],
                "p99_ms": round(statistics.median(r["p99_ms"] for r in rs), 2),
                "errors": sum(int(r["errors"]) for r in rs),
            }
            if target.startswith("via"):
                row["haproxy_cpu_us_per_request"] = round(statistics.median(r["cpu_us"] for r in rs), 1)
            out[target][label] = row
    return out


def run() -> dict[str, Any]:
    with deployed(STACK):
        figures: dict[str, Any] = {"load": load()}
        rotations = [rotate() for _ in range(ROTATIONS)]
        figures["rotation"] = {
            "runs": [r.figures() for r in rotations],
            "failed_requests": sum(r.report.failed for r in rotations),
            "requests": sum(r.report.requests for r in rotations),
            "reloads": sum(r.workers_before != r.workers_after for r in rotations),
            "deploy_s_median": round(statistics.median(r.seconds for r in rotations), 2),
        }
    figures["seed"] = figures["kubeadm"] = UNABLE
    return figures


def table(figures: dict[str, Any]) -> str:
    lines = ["| TLS | load | rps | p99 ms | haproxy CPU µs/req | errors |", "| --- | --- | --- | --- | --- | --- |"]
    for target, by_load in figures["load"].items():
        for label, f in by_load.items():
            cpu = f.get("haproxy_cpu_us_per_request", "")
            lines.append(f"| {target} | {label} | {f['rps']} | {f['p99_ms']} | {cpu} | {f['errors']} |")
    r = figures["rotation"]
    lines += [
        "",
        f"rotation x{len(r['runs'])}: {r['failed_requests']}/{r['requests']} requests failed, {r['reloads']} reloads, "
        f"deploy {r['deploy_s_median']} s (median)",
        f"seed, kubeadm guide: {UNABLE}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    knobs = {
        "rounds": Knob("ROUNDS", "rounds of 5 s; each figure is their median"),
        "rotations": Knob("ROTATIONS", "certificate rotations under load"),
    }
    sys.exit(standalone("tls", run, table, knobs))
