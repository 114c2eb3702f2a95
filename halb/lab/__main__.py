"""`python -m halb.lab up | down | status | deploy | destroy`: the local lab (root, Linux).

deploy [--stack-file FILE] [--set PATH=VALUE]... [--set-secret PATH=VALUE]... [--replace NAME]...
       deploys the lab stack (PATH as `pulumi config set --path` takes it, without `halb:`);
       --set and --set-secret last for this deploy only
destroy runs every delete the program declares, in reverse dependency order
password prints the lab's stats password (kept encrypted on this machine)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from halb.lab import lab


def _say(msg: str) -> None:
    print(f"halb.lab: {msg}", flush=True)


def _show_outputs(exports: dict[str, Any]) -> None:
    for key in sorted(exports):
        value = "[secret]" if key.endswith("password") else exports[key]
        print(f"  {key}: {value}")


def _deploy(args: argparse.Namespace) -> int:
    from halb.lab.deploy import DeployFailed, deploy, destroy

    try:
        if args.command == "destroy":
            result = destroy(progress=_say)
            _say(f"destroyed ({len(result.actions)} resources deleted, engine: {result.engine})")
            return 0
        result = deploy(args.stack_file, args.set, args.set_secret, progress=_say, replace=args.replace)
    except (DeployFailed, ValueError) as e:
        print(f"halb.lab: {args.command} failed: {e}", file=sys.stderr)
        return 1
    _say(f"deployed ({len(result.actions)} steps ran, engine: {result.engine})")
    _show_outputs(result.exports)
    print(lab.describe())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m halb.lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status", "deploy", "destroy", "password"])
    parser.add_argument("--stack-file", type=Path, default=Path("Pulumi.lab.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--set-secret", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument(
        "--replace", action="append", default=[], metavar="NAME", help="re-run a step even if unchanged (repairs drift)"
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("halb.lab: must run as root (network namespaces, mounts, systemd-nspawn)", file=sys.stderr)
        return 2
    missing = [t for t in lab.TOOLS if shutil.which(t) is None]
    if missing and args.command == "up":
        print(f"halb.lab: missing tools: {' '.join(missing)} (run ./scripts/install-deps)", file=sys.stderr)
        return 2
    if args.command in ("deploy", "destroy"):
        return _deploy(args)
    if args.command == "password":
        from halb.lab.deploy import VAULT
        from halb.lab.vault import Vault

        print(Vault(VAULT).get("haproxy.stats.password") or "(not deployed yet)")
        return 0
    if args.command == "up":
        lab.up(progress=_say)
        print(lab.describe())
        return 0
    if args.command == "down":
        lab.down()
        _say("down; nothing of the lab is left")
        return 0
    verdict, text = lab.status()
    print(text)
    return 0 if verdict else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip the mocks' event loop teardown, which only prints noise at exit
