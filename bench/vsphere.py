"""`make bench` key `vsphere`: the vSphere path through the real engine and the real pulumi-vsphere
provider, against the lab's simulated vCenter (stack lab-vsphere).

    python -m bench.vsphere [--json vsphere.json] [--rounds 3]

  cold_deploy_s   `pulumi up` of an empty lab-vsphere stack: two VMs cloned and customized, the
                  anti-affinity rule, both nodes provisioned (median of ROUNDS, each after a destroy)
  noop_preview_s  `pulumi preview` with nothing changed
  resize_up_s     `pulumi up` of cpus 2 -> 4 and memoryMb 2048 -> 4096 (in place), then back
  destroy_s       `pulumi destroy`
  replacement     the rolling replacement drill under the client load (halb_lab.scenarios.drills
                  .vm_replacement): `--replace` of lb2's VM, then of lb1's after maintenance; each
                  with its outages, failed requests and holder samples.

The seed and the kubeadm guide have no vSphere automation to compare with: their VMs are made by
hand. A simulated vCenter answers at once, so these are the engine's, the provider's and halb's
steps' times, not a real vCenter's clone and boot times.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

from bench.common import Knob, deployed, standalone, timed
from halb_lab.automation.driver import Result
from halb_lab.automation.stack import deploy, destroy, preview
from halb_lab.scenarios import drills
from halb_lab.scenarios.drills import quiet

ROOT = Path(__file__).resolve().parent.parent

ROUNDS = 3  # --rounds
STACK = drills.VSPHERE_STACK
GROW = ["vsphere.cpus=4", "vsphere.memoryMb=4096"]


def one_round() -> dict[str, tuple[float, Result]]:
    out = {"destroy_s": timed(lambda: destroy(progress=quiet, stack=STACK))}
    out["cold_deploy_s"] = timed(lambda: deploy(progress=quiet, stack=STACK))
    drills.settle()
    out["noop_preview_s"] = timed(lambda: preview(progress=quiet, stack=STACK))
    out["resize_up_s"] = timed(lambda: deploy(sets=GROW, progress=quiet, stack=STACK))
    deploy(progress=quiet, stack=STACK)  # back to the stack file's size
    return out


def run() -> dict[str, Any]:
    with deployed(STACK):
        rounds = [one_round() for _ in range(ROUNDS)]
        lb2, lb1 = drills.vm_replacement(STACK)
    figures: dict[str, Any] = {}
    for key in rounds[0]:
        seconds = [r[key][0] for r in rounds]
        figures[key] = {
            "median_s": statistics.median(seconds),
            "runs_s": seconds,
            "engine_changes": rounds[-1][key][1].changes,
        }
    figures["replacement"] = {d.name: {**d.figures(), "steps": len(d.steps)} for d in (lb2, lb1)}
    figures["compared_with"] = "the seed and the kubeadm guide make their VMs by hand: no figure to compare"
    return figures


def table(figures: dict[str, Any]) -> str:
    lines = [f"{'vsphere (median of ' + str(ROUNDS) + ')':<24}{'seconds':>9}  engine's counts"]
    for key, row in figures.items():
        if isinstance(row, dict) and "median_s" in row:
            lines.append(f"{key:<24}{row['median_s']:>9.2f}  {row['engine_changes']}")
    for name, d in figures["replacement"].items():
        lines.append(
            f"{name:<24}{d['deploy_s']:>9.2f}  outages {d['outage_s']}, {d['failed_requests']}/{d['requests']} "
            f"failed, holders {'>'.join(d['holders_seen'])}, samples not one holder {d['samples_not_one_holder']}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(standalone("vsphere", run, table, {"rounds": Knob("ROUNDS", "rounds; each figure is their median")}))
