"""`make bench` key `engine`: what the IaC loop costs on the lab, through the real Pulumi engine.

    python -m bench.iac [--json engine.json] [--rounds 5]

Each figure is the median of ROUNDS rounds (wall time of the whole call, as a user waits for it),
with the engine's own resource counts:
  cold_deploy_s        `pulumi up` of an empty stack (every resource created) on nodes that have the packages
  noop_preview_s       `pulumi preview` with nothing changed
  noop_up_s            `pulumi up` with nothing changed
  change_preview_s     `pulumi preview --diff` of one server drained
  change_up_s          `pulumi up` of the same change
  reprovision_s        `pulumi up` with lb2's `generation` bumped: lb2 torn down and provisioned again
  destroy_s            `pulumi destroy`
Then where the time goes, measured apart: the CLI's start (`pulumi version`), the program's imports
(a fresh interpreter importing `__main__.py`'s modules), and, from the engine's events, the time
until the first resource is registered and the time the steps themselves take.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import Knob, on_lab, standalone, timed
from halb_lab.automation.driver import Result, cli
from halb_lab.automation.stack import deploy, destroy, preview
from halb_lab.scenarios.drills import quiet

ROOT = Path(__file__).resolve().parent.parent

ROUNDS = 5  # --rounds
TARGETS = {"noop_preview_s": 2.5, "change_up_s": 4.0, "cold_deploy_s": 10.0}
DRAIN = ["haproxy.services[0].servers[1].state=drain"]


def one_round() -> dict[str, tuple[float, Result]]:
    destroyed = timed(lambda: destroy(progress=quiet))
    out = {"cold_deploy_s": timed(lambda: deploy(progress=quiet))}
    out["noop_preview_s"] = timed(lambda: preview(progress=quiet))
    out["noop_up_s"] = timed(lambda: deploy(progress=quiet))
    out["change_preview_s"] = timed(lambda: preview(sets=DRAIN, progress=quiet))
    out["change_up_s"] = timed(lambda: deploy(sets=DRAIN, progress=quiet))
    deploy(progress=quiet)
    out["reprovision_s"] = timed(lambda: deploy(sets=["nodes[1].generation=1"], progress=quiet))
    deploy(progress=quiet)  # generation 0 again: lb2 provisioned once more
    out["destroy_s"] = destroyed
    return out


def cli_start_s() -> float:
    start = time.monotonic()
    subprocess.run([cli().command, "version"], capture_output=True, check=True)
    return round(time.monotonic() - start, 3)


def import_s() -> float:
    """A fresh interpreter importing what `__main__.py` imports, as the language host runs it."""
    code = "import pulumi, halb.components, halb.stack"
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return round(time.monotonic() - start, 3)


def run() -> dict[str, Any]:
    with on_lab():
        deploy(progress=quiet)
        rounds = [one_round() for _ in range(ROUNDS)]
    figures: dict[str, Any] = {}
    for key in rounds[0]:
        seconds = [r[key][0] for r in rounds]
        last = rounds[-1][key][1]
        figures[key] = {
            "median_s": statistics.median(seconds),
            "runs_s": seconds,
            "engine_changes": last.changes,
            "first_resource_s": last.first_event_s,
            "steps_s": round(sum(a.seconds for a in last.actions if a.op != "same"), 2),
        }
        if key in TARGETS:
            figures[key]["target_s"] = TARGETS[key]
            figures[key]["met"] = figures[key]["median_s"] <= TARGETS[key]
    figures["where_the_time_goes"] = {"cli_start_s": cli_start_s(), "program_imports_s": import_s()}
    return figures


OPERATIONS = {  # results.json key -> the words of docs/benchmarks/engine.md
    "cold_deploy_s": "cold deploy (an empty stack, nodes that have the packages)",
    "noop_preview_s": "no-op preview",
    "noop_up_s": "no-op up",
    "change_preview_s": "one server drained: preview",
    "change_up_s": "one server drained: up",
    "reprovision_s": "lb2 re-provisioned (`generation` bumped)",
    "destroy_s": "destroy",
}


def table(figures: dict[str, Any]) -> str:
    """The table of docs/benchmarks/engine.md: each operation's median, its target and the engine's own counts."""
    lines = ["| operation | median | target | the engine's counts |", "| --- | --- | --- | --- |"]
    for key, words in OPERATIONS.items():
        row = figures[key]
        target = f"≤ {row['target_s']:g} s" if "target_s" in row else ""
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(row["engine_changes"].items()))
        lines.append(f"| {words} | {row['median_s']:.2f} s | {target} | {counts} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(standalone("engine", run, table, {"rounds": Knob("ROUNDS", "rounds; each figure is their median")}))
