"""`python -m halb.lab up | down | status`: the local lab (root, Linux)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from halb.lab import lab


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m halb.lab", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("halb.lab: must run as root (network namespaces, mounts, systemd-nspawn)", file=sys.stderr)
        return 2
    missing = [t for t in lab.TOOLS if shutil.which(t) is None]
    if missing and args.command == "up":
        print(f"halb.lab: missing tools: {' '.join(missing)} (run ./scripts/install-deps lab)", file=sys.stderr)
        return 2
    if args.command == "up":
        lab.up(progress=lambda msg: print(f"halb.lab: {msg}", flush=True))
        print(lab.describe())
        return 0
    if args.command == "down":
        lab.down()
        print("halb.lab: down; nothing of the lab is left")
        return 0
    verdict, text = lab.status()
    print(text)
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
