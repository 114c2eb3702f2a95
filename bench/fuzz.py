"""`make bench` key `fuzz`: the config fuzzer (halb_lab.fuzz) for longer than CI runs it, with
random seeds: how many stack files it tried, how many `halb check` accepted (each rendered and put
through `haproxy -c -dW` and `keepalived -t`), the slowest check, every problem found, and how many
files exercised each of the review's classes of hostile input (halb_lab.fuzz.CLASSES).

    python -m bench.fuzz [--json fuzz.json] [--examples 3000]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

from bench.common import Knob, standalone
from halb_lab.fuzz import BUDGET_S, CLASSES, judge, stack_files

ROOT = Path(__file__).resolve().parent.parent

EXAMPLES = 3000  # --examples


def run() -> dict[str, Any]:
    counts = {"tried": 0, "accepted": 0, "refused": 0}
    classes: dict[str, dict[str, int]] = {c: {"tried": 0, "accepted": 0} for c in CLASSES}
    slowest = 0.0
    problems: list[dict[str, Any]] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(drawn=stack_files())
    def one(drawn: tuple[str, tuple[str, ...]]) -> None:
        nonlocal slowest
        text, drawn_classes = drawn
        with tempfile.TemporaryDirectory() as d:
            verdict = judge(text, Path(d))
        counts["tried"] += 1
        counts["accepted" if verdict.accepted else "refused"] += 1
        slowest = max(slowest, verdict.seconds)
        for c in drawn_classes:
            classes[c]["tried"] += 1
            classes[c]["accepted"] += verdict.accepted
        if verdict.problems:
            problems.append({"problems": verdict.problems, "stack_file": text})

    start = time.monotonic()
    one()
    return {
        **counts,
        "seconds": round(time.monotonic() - start, 1),
        "slowest_check_s": round(slowest, 3),
        "budget_s": BUDGET_S,
        "classes": classes,
        "problems": problems,
    }


def table(figures: dict[str, Any]) -> str:
    return (
        f"fuzz: {figures['tried']} stack files in {figures['seconds']} s: {figures['accepted']} accepted "
        f"(rendered, both validators), {figures['refused']} refused; slowest check "
        f"{figures['slowest_check_s']} s (budget {figures['budget_s']} s); problems: {len(figures['problems'])}\n"
        + "classes: "
        + ", ".join(f"{c} {v['tried']} ({v['accepted']} accepted)" for c, v in figures["classes"].items())
    )


if __name__ == "__main__":
    sys.exit(standalone("fuzz", run, table, {"examples": Knob("EXAMPLES", "stack files to generate")}))
