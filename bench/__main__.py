"""`python -m bench`: the benchmark's parts, chosen by name, with their provenance.

    python -m bench --list
    python -m bench --only engine --write     # run one part, merge it into results.json, regenerate the docs' tables
    python -m bench --skip fuzz vsphere       # every registered part but these

Each part is a module of this package with `run()` and `table(figures)`; `--write` merges its
figures and provenance into bench/results.json (bench.merge) and rewrites the docs' generated
tables (bench.report). The part `pair`, the seed/kubeadm/halb comparison, writes several keys; alone
(`python -m bench.pair`) it takes options (`--help`), here it runs with its defaults.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from typing import Any

from bench.common import with_provenance
from bench.merge import RESULTS, merge
from bench.report import write_all

PARTS: dict[str, tuple[str, str | None]] = {  # the name on the command line -> (module, key in results.json)
    "pair": ("pair", None),  # seed vs kubeadm vs halb: several keys (bench/pair.py)
    "engine": ("iac", "engine"),
    "watcher": ("watcher", "watcher"),
    "vsphere": ("vsphere", "vsphere"),
    "fuzz": ("fuzz", "fuzz"),
    "vips": ("vips", "vips"),
    "tls": ("tls", "tls"),
    "holder": ("holder", "holder"),
    "alerts": ("alerts", "alerts"),
    "bgp": ("bgp", "bgp"),
}


PAIR_KEYS = ["seed", "kubeadm", "halb", "throughput", "faults", "lifecycle", "scale", "timelines"]


def selected(only: list[str], skip: list[str]) -> list[str]:
    """The parts to run, in registry order; an unknown name is an error naming the known ones."""
    unknown = sorted(set(only + skip) - set(PARTS))
    if unknown:
        raise SystemExit(f"bench: no part named {', '.join(unknown)}; the parts: {', '.join(PARTS)}")
    return [p for p in PARTS if (not only or p in only) and p not in skip]


def run_part(name: str) -> dict[str, Any]:
    """One part's figures and provenance, as `python -m bench.<module> --json FILE` writes them."""
    module_name, key = PARTS[name]
    module = importlib.import_module(f"bench.{module_name}")
    started = time.gmtime()
    figures = module.run()
    print(module.table(figures), flush=True)
    return with_provenance(key, figures, started, {"part": name})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=[], metavar="PART", help="run only these parts")
    parser.add_argument("--skip", nargs="+", default=[], metavar="PART", help="run every part but these")
    parser.add_argument("--list", action="store_true", help="list the parts and exit")
    parser.add_argument(
        "--write",
        action="store_true",
        help="merge into bench/results.json and rewrite the generated tables (docs/benchmarks/, the README's figures)",
    )
    args = parser.parse_args(argv)
    if args.list:
        for name, (module, key) in PARTS.items():
            keys = f"key `{key}`" if key else "keys " + ", ".join(f"`{k}`" for k in PAIR_KEYS)
            print(f"{name:8} bench/{module}.py, {keys}")
        return 0
    names = selected(args.only, args.skip)
    if os.geteuid() != 0:
        print("bench: must run as root (it drives the local lab)", file=sys.stderr)
        return 2
    results = json.loads(RESULTS.read_text())
    for name in names:
        results = merge(results, run_part(name))
        if args.write:
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")
            write_all(results)
            print(f"bench: {name} written to {RESULTS.name} and the docs' tables", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
