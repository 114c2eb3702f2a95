"""`make bench` key `alerts`: how long each of halb's alerts takes from fault to delivery, and what
the node exporter costs the node.

    python -m bench.alerts [--json alerts.json] [--runs 5] [--rounds 5]   (`make bench-alerts`)

On the lab, with Debian's Prometheus and Alertmanager scraping the nodes every second and
delivering to a webhook receiver (halb_lab.scenarios.monitor):
  alerts    each drill of halb_lab.scenarios.alerting, RUNS times: the seconds from the fault in
            place to its alerts delivered, and from the undo to their resolution delivered (p50,
            p99, every run kept), next to the rule's `for:`. The lab stack's drills first, then
            the certificate drill on lab-tls, then BGP mode's drills on lab-bgp.
  exporter  ROUNDS rounds, each measuring both states of halb's monitoring on both nodes (the node
            exporter and halb-metrics running and scraped every second, or both stopped), the
            state that goes first alternating: wrk -c1 (keep-alive) through the VIP and straight
            to w1 for SECONDS each, the added p50 and p99 (via - direct), as bench.watcher does.
            Then each unit's CPU on lb1 over 10 s, and per scrape.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from bench import wrk
from bench.common import Knob, deployed, percentile, running_vs_stopped, standalone, unit_cpu_s
from halb.metrics import alert_for_seconds
from halb_lab.infra import nodes
from halb_lab.infra.topology import NODES, VIP, WORKERS
from halb_lab.scenarios import alerting, bgp, drills
from halb_lab.scenarios.monitor import EVERY, Monitor, monitoring
from halb_lab.scenarios.probes import LabError

RUNS = 5  # --runs
STACKS = ["lab", "lab-tls", "lab-bgp"]  # --stacks: the lab stacks whose drills run (lab-tls: the certificate's)
ROUNDS = 5  # --rounds
SECONDS = 5
EXPORTER, WRITER = "halb-node-exporter", "halb-metrics"
SERVED = {"lab": f"http://{VIP}/", "lab-tls": f"https://{VIP}/"}  # what a settled pair serves (lab-tls redirects http)
# Each stack's rows: the pair's, and BGP mode's apart (a run of one keeps the other's provenance)
ROWS = {"lab": "alerts", "lab-tls": "alerts", "lab-bgp": "bgp_alerts"}


def settle(stack: str) -> None:
    """The stack back in its steady state: the pair's VIP on lb1, or every BGP node announcing."""
    if stack == bgp.STACK:
        bgp.serving(timeout=60)
    else:
        drills.settle(url=SERVED[stack])


def drill_runs(m: Monitor, drill: alerting.AlertDrill) -> list[alerting.Seen]:
    seen = []
    for i in range(RUNS):
        settle(drill.stack)
        seen.append(alerting.run(m, drill))
        print(f"bench: alerts {drill.name} {i + 1}/{RUNS}: fired {seen[-1].fired_s}, resolved {seen[-1].resolved_s}")
        if seen[-1].missing():
            print(f"bench: alerts {drill.name}: {seen[-1].missing()} not delivered in time", flush=True)
    return seen


def summary(drill: alerting.AlertDrill, seen: list[alerting.Seen]) -> dict[str, Any]:
    """Per alert: its `for:`, and p50/p99 of fired and resolved over the runs that delivered them."""
    waits = alert_for_seconds()
    out: dict[str, Any] = {}
    for a in drill.alerts:
        fired = [t for s in seen if (t := s.fired_s[a]) is not None]
        resolved = [t for s in seen if (t := s.resolved_s[a]) is not None]
        out[a] = {
            "drill": drill.name,
            "for_s": waits[a],
            "runs": len(seen),
            "delivered": len(fired),
            "fired_p50_s": percentile(fired, 50) if fired else None,
            "fired_p99_s": percentile(fired, 99) if fired else None,
            "resolved_p50_s": percentile(resolved, 50) if resolved else None,
            "resolved_p99_s": percentile(resolved, 99) if resolved else None,
            "fired_s": [s.fired_s[a] for s in seen],
            "others": sorted({o for s in seen for o in s.others}),
        }
    return out


def set_monitoring(running: bool) -> None:
    for n in NODES:
        nodes.ssh(n, f"systemctl {'start' if running else 'stop'} {EXPORTER} {WRITER}", timeout=20, check=True)
    time.sleep(2)


def one_state() -> dict[str, float]:
    via = wrk.run(f"http://{VIP}/", 1, SECONDS)
    direct = wrk.run(f"http://{WORKERS[0].address}/", 1, SECONDS)
    return {"added_p50_ms": round(via.p50_ms - direct.p50_ms, 3), "added_p99_ms": round(via.p99_ms - direct.p99_ms, 3)}


def exporter_cost() -> dict[str, Any]:
    figures = running_vs_stopped("halb's monitoring", ROUNDS, set_monitoring, one_state)
    scrape_every_s = float(EVERY.removesuffix("s"))
    cpu = {unit: unit_cpu_s("lb1", unit, 10) for unit in (EXPORTER, WRITER)}
    figures["scrape_every_s"] = scrape_every_s
    figures["cpu_s_per_10s"] = cpu
    figures["exporter_cpu_ms_per_scrape"] = round(cpu[EXPORTER] * 1000 / (10 / scrape_every_s), 2)
    return figures


def run() -> dict[str, Any]:
    figures: dict[str, Any] = {"runs": RUNS, "within_s": alerting.WITHIN}
    for stack in STACKS:
        chosen = [d for d in alerting.DRILLS.values() if d.stack == stack]
        rows = figures.setdefault(ROWS[stack], {})
        with deployed(stack) as result, monitoring(result.exports["prometheus_targets"]) as m:
            for d in chosen:
                try:
                    rows.update(summary(d, drill_runs(m, d)))
                except LabError as e:  # the lab could not reach the drill's start: said, and the rest still run
                    print(f"bench: alerts {d.name}: {e}", flush=True)
                    rows.update({a: {"drill": d.name, "error": str(e)} for a in d.alerts})
            if stack == "lab":
                figures["exporter"] = exporter_cost()
            if stack == bgp.STACK:  # halb-metrics reads FRR there (one vtysh every FRR_EVERY s)
                figures["exporter_bgp"] = {
                    "cpu_s_per_10s": {unit: unit_cpu_s(bgp.BGP_NODES[0].name, unit, 10) for unit in (EXPORTER, WRITER)}
                }
    return figures


def table(f: dict[str, Any]) -> str:
    lines = [
        "| alert (drill) | `for:` s | delivered | fired p50 / p99 s | resolved p50 / p99 s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, a in {**f.get("alerts", {}), **f.get("bgp_alerts", {})}.items():
        if "error" in a:
            lines.append(f"| {name} ({a['drill']}) | | not measured: {a['error']} | | |")
            continue
        lines.append(
            f"| {name} ({a['drill']}) | {a['for_s']} | {a['delivered']}/{a['runs']} | "
            f"{a['fired_p50_s']} / {a['fired_p99_s']} | {a['resolved_p50_s']} / {a['resolved_p99_s']} |"
        )
    if "exporter_bgp" in f:
        lines.append(f"BGP mode (lab-bgp, lb1): CPU per 10 s {f['exporter_bgp']['cpu_s_per_10s']}")
    if "exporter" not in f:
        return "\n".join(lines)
    e = f["exporter"]
    lines.append(
        f"monitoring running vs stopped (median of {e['rounds']} rounds): added p50 "
        f"{e['running']['added_p50_ms']['median']} vs {e['stopped']['added_p50_ms']['median']} ms "
        f"(difference {e['added_p50_difference_ms']} ms); node exporter {e['exporter_cpu_ms_per_scrape']} ms CPU "
        f"per scrape; CPU per 10 s {e['cpu_s_per_10s']}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    knobs = {
        "runs": Knob("RUNS", "runs of each alert drill"),
        "rounds": Knob("ROUNDS", "rounds, halb's monitoring running and stopped"),
        "stacks": Knob("STACKS", "the lab stacks whose drills run", many=True, choices=["lab", "lab-tls", "lab-bgp"]),
    }
    sys.exit(standalone("alerts", run, table, knobs))
