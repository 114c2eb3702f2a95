"""`make bench` key `bgp`: BGP mode on the lab-bgp stack (three nodes behind the lab's FRR router).

    python -m bench.bgp [--json bgp.json] [--runs 20] [--connections 3000]

  drills   haproxy killed, hung, a link cut, a peer flap, a power-off, a drain by `pulumi up`
           (on lb1), and lb4 added then removed by `pulumi up`, RUNS times each, under the client
           load from behind the router (a new connection and GET every 10 ms, 8 long-lived
           connections): the seconds from the fault to the node's next hop gone from the router,
           and how long requests failed (the failed node's flows; ECMP interleaves them with good
           ones), p50 and p99; the failed requests per run; the broken long-lived connections per
           run, those the drilled node served and those the other nodes served (each connection
           asks the workers' /whoami, which names the node it came through).
  spread   for 2, 3 and 4 nodes (each a `pulumi up`), CONNECTIONS new connections from the client:
           each node's share, and its haproxy's CPU per request.

The seed and the kubeadm guide are one keepalived pair: they have no BGP mode. The table says so.
This machine's 2 cores run every node, the router and the client: more nodes cannot show more
throughput here, so the figures are the spread and the failover times, not a scaling curve.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Knob, deployed, haproxy_cpu_seconds, percentile, standalone
from halb_lab.infra.topology import NODES, SPARE_NODES
from halb_lab.scenarios import bgp

RUNS = 20  # --runs
CONNECTIONS = 3000  # --connections
SIZES = (2, 3, 4)  # the node counts whose spread is measured
ALL_NODES = [*NODES, *SPARE_NODES]  # lb1-lb4

UNABLE = "one keepalived pair: no BGP mode"
DRILLS: dict[str, Callable[[], bgp.Drill]] = {
    "haproxy-killed": bgp.haproxy_killed,
    "haproxy-hung": bgp.haproxy_hung,
    "link-cut": bgp.link_cut,
    "peer-flap": bgp.peer_flap,
    "power-off": bgp.power_off,
    "drain": bgp.drain,  # two `pulumi up`s each
    "add-and-remove": bgp.add_and_remove,  # two `pulumi up`s each
}


def drill_figures(name: str, run: Callable[[], bgp.Drill], runs: int) -> dict[str, Any]:
    done = []
    for i in range(runs):
        d = run()
        print(f"bench: bgp {d.summary()} ({i + 1}/{runs})", flush=True)
        done.append(d)
    withdrawn = [d.withdrawn_s for d in done if d.withdrawn_s is not None]
    failing = [d.failing_s for d in done]
    return {
        "runs": runs,
        "withdrawn": len(withdrawn),
        "withdrawn_p50_s": percentile(withdrawn, 50),
        "withdrawn_p99_s": percentile(withdrawn, 99),
        "failing_p50_s": percentile(failing, 50),
        "failing_p99_s": percentile(failing, 99),
        "failed_requests_max": max(d.report.failed for d in done),
        "keepalive_resets_p50": percentile([d.report.keepalive_resets for d in done], 50),
        "keepalive_resets_max": max(d.report.keepalive_resets for d in done),
        "resets_on_node_p50": percentile([d.resets_on_node for d in done], 50),
        "resets_on_node_max": max(d.resets_on_node for d in done),
        "resets_elsewhere_p50": percentile([d.resets_elsewhere for d in done], 50),
        "resets_elsewhere_max": max(d.resets_elsewhere for d in done),
        "every_run": [d.figures() for d in done],
    }


def spread_by_size() -> dict[str, Any]:
    """For N = 2, 3, 4 nodes (each a `pulumi up` of lab-bgp with that many), CONNECTIONS new
    connections: each node's share, and its haproxy's CPU per request."""
    from halb_lab.automation.stack import deploy
    from halb_lab.scenarios.drills import quiet

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="halb-bench-bgp-") as tmp:
        for n in SIZES:
            hosts = ALL_NODES[:n]
            deploy(stack_file=bgp.with_nodes(hosts, Path(tmp)), stack=bgp.STACK, progress=quiet)
            bgp.serving(count=n, timeout=60)
            cpu = {h.name: haproxy_cpu_seconds(h.name) for h in hosts}
            taken = bgp.spread(CONNECTIONS, hosts)
            used = {h.name: haproxy_cpu_seconds(h.name) - cpu[h.name] for h in hosts}
            out[str(n)] = {
                name: {"connections": c, "cpu_us_per_request": round(used[name] * 1e6 / c) if c else None}
                for name, c in taken.items()
            }
            print(f"bench: bgp spread over {n} nodes: {out[str(n)]}", flush=True)
    deploy(stack=bgp.STACK, progress=quiet)  # back to the stack file's nodes
    return out


def run() -> dict[str, Any]:
    with deployed(bgp.STACK):
        figures: dict[str, Any] = {"drills": {name: drill_figures(name, r, RUNS) for name, r in DRILLS.items()}}
        figures["spread"] = spread_by_size()
    figures["seed"] = figures["kubeadm"] = UNABLE
    return figures


def table(figures: dict[str, Any]) -> str:
    lines = [
        "| drill | withdrawn p50 / p99 s | requests failing p50 / p99 s | failed requests max "
        "| long-lived broken p50 / max: the drilled node's | the other nodes' |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, f in figures["drills"].items():
        lines.append(
            f"| {name} (x{f['runs']}) | {f['withdrawn_p50_s']} / {f['withdrawn_p99_s']} | "
            f"{f['failing_p50_s']} / {f['failing_p99_s']} | {f['failed_requests_max']} | "
            f"{f['resets_on_node_p50']} / {f['resets_on_node_max']} | "
            f"{f['resets_elsewhere_p50']} / {f['resets_elsewhere_max']} |"
        )
    lines += ["", "| nodes | each node's share of new connections (haproxy CPU µs per request) |", "| --- | --- |"]
    for n, taken in figures["spread"].items():
        total = sum(t["connections"] for t in taken.values())
        shares = ", ".join(
            f"{name} {t['connections'] / total:.1%} ({t['cpu_us_per_request']})" for name, t in taken.items()
        )
        lines.append(f"| {n} | {shares} |")
    lines.append(f"\nseed, kubeadm: {figures['seed']}.")
    return "\n".join(lines)


if __name__ == "__main__":
    knobs = {
        "runs": Knob("RUNS", "runs of each drill"),
        "connections": Knob("CONNECTIONS", "new connections whose spread is counted"),
    }
    sys.exit(standalone("bgp", run, table, knobs))
