"""What the benchmark's parts share: the lab brought up when needed, a part run on its own, and
the nearest-rank percentile."""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from halb_lab.infra import lab

if TYPE_CHECKING:
    from halb_lab.automation.stack import Result

ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


@contextmanager
def deployed(stack: str) -> Iterator[Result]:
    """On the lab (`on_lab`), `stack` deployed alone on its nodes (the other lab stacks' pairs,
    which stand on the same nodes, destroyed first), and destroyed after, also on a failure.
    The block gets the deploy's result (its outputs: `.exports`)."""
    from halb_lab.automation.stack import deploy, destroy, engine

    with on_lab():
        for other in ("lab", "lab-multi", "lab-tls", "lab-vsphere", "lab-bgp"):
            if other != stack and engine(other).resources():
                destroy(progress=_quiet, stack=other)
        lab.prepare(stack)  # what the stack needs beyond the pair (lab-bgp: the spares, the router)
        result = deploy(progress=_quiet, stack=stack)
        try:
            yield result
        finally:
            destroy(progress=_quiet, stack=stack)


def _quiet(_: str) -> None:
    pass


@contextmanager
def on_lab() -> Iterator[None]:
    """The lab as it is, or brought up for this part and taken down after it."""
    brought_up = not lab.status()[0]
    if brought_up:
        lab.up(progress=lambda _: None)
    try:
        yield
    finally:
        if brought_up:
            lab.down()


@dataclass(frozen=True)
class Knob:
    """One setting of a part, as a command-line option: the module global it sets, and its help.
    Its default is the global's value; `many` takes several words (a list)."""

    name: str
    help: str
    many: bool = False
    choices: Sequence[str] | None = None


def options(
    prog: str, doc: str | None, knobs: dict[str, Knob], argv: Sequence[str] | None = None, module: Any = None
) -> tuple[dict[str, object], Path | None]:
    """Parse a part's options (`--rounds 3`, `--json FILE`), set the module globals they name, and
    return the settings (for the provenance) and the JSON file, if any."""
    module = module if module is not None else sys.modules["__main__"]
    parser = argparse.ArgumentParser(
        prog=prog, description=(doc or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures and their provenance to FILE")
    for flag, knob in knobs.items():
        default = getattr(module, knob.name)
        if isinstance(default, bool):
            parser.add_argument(
                f"--{flag}",
                action=argparse.BooleanOptionalAction,
                default=default,
                help=f"{knob.help} (default: %(default)s)",
            )
        elif knob.many:
            parser.add_argument(
                f"--{flag}",
                nargs="+",
                default=list(default),
                choices=knob.choices,
                help=f"{knob.help} (default: %(default)s)",
            )
        else:
            parser.add_argument(
                f"--{flag}", type=type(default), default=default, help=f"{knob.help} (default: %(default)s)"
            )
    args = parser.parse_args(argv)
    settings: dict[str, object] = {}
    for flag, knob in knobs.items():
        value = getattr(args, flag.replace("-", "_"))
        setattr(module, knob.name, value)
        settings[flag] = " ".join(value) if knob.many else value
    return settings, args.json


def standalone(
    key: str | None,
    run: Callable[[], dict[str, Any]],
    table: Callable[[dict[str, Any]], str],
    knobs: dict[str, Knob] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """A part of the benchmark run on its own (`python -m bench.<part> [options]`): root, the
    figures as a table, and, with --json FILE, the figures under `key` with their provenance
    (bench/merge.py puts them into results.json)."""
    main = sys.modules["__main__"]
    settings, json_file = options(
        f"python -m {main.__spec__.name if main.__spec__ else key}", main.__doc__, knobs or {}, argv
    )
    if os.geteuid() != 0:
        print("bench: must run as root (it drives the local lab)", file=sys.stderr)
        return 2
    started = time.gmtime()
    figures = run()
    print(table(figures))
    if json_file is not None:
        json_file.write_text(json.dumps(with_provenance(key, figures, started, settings), indent=2) + "\n")
    return 0


def with_provenance(
    key: str | None, figures: dict[str, Any], started: time.struct_time, settings: dict[str, object]
) -> dict[str, Any]:
    """A part's figures as results.json holds them, each key with its provenance. `key` None: the
    part (bench.pair) measured several keys, and `figures` maps each to its figures."""
    parts = figures if key is None else {key: figures}
    return {**parts, "provenance": {k: provenance(started, settings, covered(f)) for k, f in parts.items()}}


def covered(figures: dict[str, Any]) -> list[str]:
    """The rows a part's figures hold: `profile/drill` when each value is a table of rows (the
    holder's), else the top-level keys."""
    if figures and all(
        isinstance(v, dict) and v and all(isinstance(r, dict) for r in v.values()) for v in figures.values()
    ):
        return [f"{top}/{row}" for top, rows in figures.items() for row in rows]
    return list(figures)


def provenance(started: time.struct_time, settings: dict[str, object], covers: list[str]) -> dict[str, Any]:
    """Where figures come from: the commit (and whether the product or the bench had uncommitted
    changes), when, on what machine, with which settings, and which of the part's rows."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {
        "commit": git("rev-parse", "--short=7", "HEAD"),
        "uncommitted_changes": bool(
            git("status", "--porcelain", "--", "halb", "templates", "bench", ":!bench/results.json")
        ),
        "utc": f"{time.strftime('%Y-%m-%d %H:%M', started)}-{time.strftime('%H:%M', time.gmtime())}",
        "machine": machine(),
        "settings": settings,
        "covers": covers,
    }


def machine() -> str:
    """The machine, as the figures' provenance names it."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    return f"{os.cpu_count()} cores ({cpu}), Linux {os.uname().release}"


def timed(call: Callable[[], T]) -> tuple[float, T]:
    """(seconds the call took, wall time as a user waits for it, its result)."""
    start = time.monotonic()
    result = call()
    return round(time.monotonic() - start, 2), result


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = math.ceil(len(ordered) * p / 100)
    return float(ordered[max(0, min(len(ordered), rank) - 1)])


def haproxy_cpu_seconds(name: str) -> float:
    """User + system CPU of every haproxy process on a node, from /proc."""
    from halb_lab.infra import nodes
    from halb_lab.scenarios.probes import node

    script = (
        "hz=$(getconf CLK_TCK); t=0; for p in $(pidof haproxy); do "
        't=$((t + $(cut -d")" -f2 /proc/$p/stat | awk \'{print $12 + $13}\'))); done; echo "$t $hz"'
    )
    ticks, hz = nodes.ssh(node(name), script, timeout=20).stdout.split()
    return int(ticks) / int(hz)


CLK_TCK = 100  # /proc/<pid>/stat's CPU times are in these ticks


def unit_cpu_s(name: str, unit: str, seconds: float = 10) -> float:
    """CPU seconds a systemd unit's main process (and the children it waited for) used on node
    `name` over `seconds`: utime + stime + cutime + cstime from /proc, before and after."""
    from halb_lab.infra import nodes
    from halb_lab.scenarios.probes import node

    script = (
        f"pid=$(systemctl show -p MainPID --value {unit}); "
        'read -r -a s < "/proc/$pid/stat"; echo $((s[13] + s[14] + s[15] + s[16]))'
    )
    before = int(nodes.ssh(node(name), script, timeout=10).stdout.strip())
    time.sleep(seconds)
    after = int(nodes.ssh(node(name), script, timeout=10).stdout.strip())
    return round((after - before) / CLK_TCK, 3)


def running_vs_stopped(
    what: str, rounds: int, switch: Callable[[bool], None], measure: Callable[[], dict[str, float]]
) -> dict[str, Any]:
    """An A/B of something on the nodes: `rounds` rounds, each measuring with it running and with
    it stopped (`switch(True/False)`), the state that goes first alternating (running first in
    round 1); each figure's median over the rounds, every round's value kept, and the difference
    of the added p50 (`measure` gives `added_p50_ms`). Left running at the end."""
    seen: dict[str, list[dict[str, float]]] = {"running": [], "stopped": []}
    for r in range(rounds):
        for state in ("running", "stopped") if r % 2 == 0 else ("stopped", "running"):
            switch(state == "running")
            seen[state].append(measure())
            print(f"bench: {what} {state}, round {r + 1}: {seen[state][-1]}", flush=True)
    switch(True)
    figures: dict[str, Any] = {"rounds": rounds, "order": "alternating, running first in round 1"}
    for state, rs in seen.items():
        figures[state] = {k: {"median": statistics.median(r[k] for r in rs), "runs": [r[k] for r in rs]} for k in rs[0]}
    figures["added_p50_difference_ms"] = round(
        figures["running"]["added_p50_ms"]["median"] - figures["stopped"]["added_p50_ms"]["median"], 3
    )
    return figures
