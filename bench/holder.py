"""`make bench` key `holder`: one VIP holder under the faults operators meet (issue 28).

    python -m bench.holder [--json holder.json] [--fault-runs 20] [--profiles seed kubeadm halb] [--drills ...]

For each profile, deployed as `make bench` deploys it (the seed's and the kubeadm guide's files
by hand, halb through the engine), each drill FAULT_RUNS times, injected at a random phase of
the advert cycle (halb_lab.scenarios.faults), under the drills' client load plus 8 long-lived
HTTP/1.1 connections:

  keepalived-crash       keepalived's main process SIGKILLed on the MASTER
  keepalived-group-kill  every keepalived process SIGKILLed at once (an OOM kill of the unit)
  vrrp-partition-both    VRRP dropped between the nodes both ways for 8 s, both still on the LAN
  vrrp-partition-to-lb2  only lb1's adverts dropped (lb2 hears nothing)
  vrrp-partition-to-lb1  only lb2's adverts dropped
  stun-1s, stun-3s       the MASTER frozen (cgroup freezer) and its link cut together, then restored
  link-loss              the MASTER's link cut for 6 s
  switchover             (halb) `maintenance` on lb1 and off again through the engine
  *-fast                 (halb) link-loss and the stuns with `keepalived.profile: fast`
(--drills picks some.)

Reported per drill: p50 / p99 of the first outage, outages per run, failed requests, samples with
no holder and with two (and, for the stuns, two-holder samples after the resume), long-lived
connections broken, and for halb how soon keepalived was back and whether the pair survived a
second fault (haproxy killed on the new holder) 5 s after the first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import Knob, percentile, standalone
from bench.pair import fresh, restore
from halb_lab.infra import lab
from halb_lab.scenarios import drills, faults

ROOT = Path(__file__).resolve().parent.parent

FAULT_RUNS = 20  # --fault-runs
PROFILES = ["seed", "kubeadm", "halb"]  # --profiles


def _partition(direction: str, halb: bool) -> drills.Drill:
    return faults.vrrp_partition(direction, halb=halb)


def _stun(seconds: float, halb: bool) -> drills.Drill:
    return faults.stun(seconds, halb=halb)


def _link_loss(halb: bool) -> drills.Drill:
    return faults.link_flap(seconds=6)


def _switchover(halb: bool) -> drills.Drill:
    return drills.switchover()


ALL_DRILLS: dict[str, Callable[[bool], drills.Drill]] = {
    "keepalived-crash": lambda halb: faults.keepalived_crash(halb=halb),
    "keepalived-group-kill": lambda halb: faults.keepalived_group_kill(halb=halb),
    **{f"vrrp-partition-{d}": partial(_partition, d) for d in faults.PARTITIONS},
    "stun-1s": partial(_stun, 1.0),
    "stun-3s": partial(_stun, 3.0),
    "link-loss": _link_loss,
    "switchover": _switchover,
    "link-loss-fast": _link_loss,
    "stun-1s-fast": partial(_stun, 1.0),
    "stun-3s-fast": partial(_stun, 3.0),
}
HALB_ONLY = {
    "switchover",
    "link-loss-fast",
    "stun-1s-fast",
    "stun-3s-fast",
}  # the others have no maintenance or profile
DRILLS = list(ALL_DRILLS)  # --drills: the ones to run


def rows(profile: str) -> dict[str, Any]:
    halb = profile == "halb"
    names = [n for n in DRILLS if halb or n not in HALB_ONLY]
    out: dict[str, Any] = {}

    def run(name: str) -> None:
        runs = []
        for _ in range(FAULT_RUNS):
            restore()
            try:
                runs.append(ALL_DRILLS[name](halb))
            except Exception as e:  # the pair did not heal: counted, not hidden
                print(f"bench: {profile}: {name}: did not heal: {type(e).__name__}: {e}", flush=True)
        out[name] = summary(runs)
        print(f"bench: {profile}: {name} x{FAULT_RUNS}: {out[name]}", flush=True)

    for name in (n for n in names if not n.endswith("-fast")):
        run(name)
    fast = [n for n in names if n.endswith("-fast")]
    if fast:
        with faults.fast_adverts(faults.FAST_PROFILE):
            for name in fast:
                run(name)
    return out


def summary(runs: list[drills.Drill]) -> dict[str, Any]:
    first = [d.report.outages[0] if d.report.outages else 0.0 for d in runs]
    row: dict[str, Any] = {
        "runs": FAULT_RUNS,
        "healed": len(runs),
        "outage_p50_s": round(percentile(first, 50), 3),
        "outage_p99_s": round(percentile(first, 99), 3),
        "outages_above_0_3_s": sum(o > 0.3 for d in runs for o in d.report.outages),
        "failed_requests_p50": percentile([d.report.failed for d in runs], 50),
        "failed_requests_p99": percentile([d.report.failed for d in runs], 99),
        "samples_no_holder": sum(len(h) == 0 for d in runs for _, h in d.report.bad_samples),
        "samples_two_holders": sum(len(h) > 1 for d in runs for _, h in d.report.bad_samples),
        "outages_per_run_max": max((len(d.report.outages) for d in runs), default=0),
        # what a second outage cost, when there was one (with preempt, the VIP's return)
        "later_outage_max_s": round(max((o for d in runs for o in d.report.outages[1:]), default=0.0), 3),
        "keepalive_broken_p50": percentile([d.report.keepalive_resets for d in runs], 50),
        "keepalive_broken_p99": percentile([d.report.keepalive_resets for d in runs], 99),
    }
    after = [d.facts["two_holder_samples_after_resume"] for d in runs if "two_holder_samples_after_resume" in d.facts]
    if after:
        row["two_holders_after_resume_max"] = max(after)
        row["vip_moved"] = f"{sum(d.facts['vip_on_lb2_s'] is not None for d in runs)}/{len(runs)}"
    plugged = [d.facts["two_holder_samples_after_plug"] for d in runs if "two_holder_samples_after_plug" in d.facts]
    if plugged:  # the link back: both hold the VIP until their adverts cross again
        row["two_holders_after_plug_max"] = max(plugged)
        row["runs_with_two_holders_after_plug"] = sum(n > 0 for n in plugged)
    restarted = [d.facts["restarted_after_s"] for d in runs if d.facts.get("restarted_after_s") is not None]
    row["keepalived_back_p99_s"] = round(percentile(restarted, 99), 2) if restarted else None
    second = [d.facts["second_fault_vip_on_lb1_s"] for d in runs if d.facts.get("second_fault_vip_on_lb1_s")]
    if second:
        row["redundant_at_5s"] = f"{len(second)}/{len(runs)}"
        row["second_fault_move_p99_s"] = round(percentile(second, 99), 3)
    return row


def run() -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        for profile in PROFILES:
            fresh(profile)
            out[profile] = rows(profile)
    finally:
        lab.down()
    return out


def table(figures: dict[str, Any]) -> str:
    lines = [
        "| drill | profile | outage p50 / p99 s | outages per run (max) | failed p50 / p99 | no holder / two holders "
        "(after resume) | long-lived broken p50 / p99 | keepalived back p99 s | redundant at 5 s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ALL_DRILLS:
        for profile, drills_ in figures.items():
            r = drills_.get(name)
            if r is None:
                continue
            resume = f" ({r['two_holders_after_resume_max']} max)" if "two_holders_after_resume_max" in r else ""
            if "two_holders_after_plug_max" in r:
                resume = f" ({r['two_holders_after_plug_max']} max after the plug)"
            outages = r.get("outages_per_run_max", "—")
            if r.get("later_outage_max_s"):
                outages = f"{outages} (a later one ≤ {r['later_outage_max_s']} s)"
            lines.append(
                f"| {name} | {profile} | {r['outage_p50_s']} / {r['outage_p99_s']} | {outages} | "
                f"{r['failed_requests_p50']} / {r['failed_requests_p99']} | {r['samples_no_holder']} / "
                f"{r['samples_two_holders']}{resume} | {r.get('keepalive_broken_p50', '—')} / "
                f"{r.get('keepalive_broken_p99', '—')} | {r['keepalived_back_p99_s']} | {r.get('redundant_at_5s', 'no')} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    knobs = {
        "fault-runs": Knob("FAULT_RUNS", "runs of each drill"),
        "profiles": Knob("PROFILES", "the setups to compare", many=True, choices=["seed", "kubeadm", "halb"]),
        "drills": Knob("DRILLS", "the drills to run", many=True, choices=list(ALL_DRILLS)),
    }
    sys.exit(standalone("holder", run, table, knobs))
