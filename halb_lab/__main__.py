"""`python -m halb_lab up | down | status | deploy | preview | refresh | destroy | password`:
the local lab (root, Linux), deployed through the real Pulumi engine.

up      the lab: two systemd nodes, four workers, a client, and a simulated vCenter
deploy [--stack NAME] [--stack-file FILE] [--set PATH=VALUE]... [--set-secret PATH=VALUE]... [--replace NAME]...
        `pulumi up` of a lab stack: `lab` (the default; the pair on the lab's hosts) or
        `lab-vsphere` (the pair as VMs cloned in the simulated vCenter); its file is
        Pulumi.NAME.yaml unless --stack-file says otherwise. PATH as `pulumi config set --path`
        takes it, without `halb:`; --set and --set-secret last for this deploy only
preview `pulumi preview --diff` with the same options: what a deploy would change
refresh `pulumi refresh`: the state read back from the nodes
destroy `pulumi destroy`: every delete the program declares, in reverse dependency order
password prints the lab's stats password (kept encrypted on this machine); --vcenter: the simulated vCenter's
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from halb_lab.infra import lab


def _say(msg: str) -> None:
    print(f"halb_lab: {msg}", flush=True)


def _show_outputs(exports: dict[str, Any]) -> None:
    for key in sorted(exports):
        value = "[secret]" if key.endswith("password") else exports[key]
        print(f"  {key}: {value}")


def _engine(args: argparse.Namespace) -> int:
    from halb_lab.automation import stack as lab_stack
    from halb_lab.automation.driver import EngineFailed, EngineMissing
    from halb_lab.automation.vault import VaultLocked

    try:
        if args.command in ("deploy", "preview"):
            lab.prepare(args.stack)
        if args.command == "deploy":
            result = lab_stack.deploy(
                args.stack_file, args.set, args.set_secret, progress=_say, replace=args.replace, stack=args.stack
            )
        elif args.command == "preview":
            result = lab_stack.preview(
                args.stack_file, args.set, args.set_secret, progress=lambda _: None, stack=args.stack
            )
            print(result.diff)
        elif args.command == "refresh":
            result = lab_stack.refresh(progress=_say, stack=args.stack)
        else:
            result = lab_stack.destroy(progress=_say, stack=args.stack)
    except (EngineFailed, EngineMissing, ValueError, VaultLocked) as e:
        print(f"halb_lab: {args.command} failed: {e}", file=sys.stderr)
        return 1
    changes = ", ".join(f"{n} {op}" for op, n in sorted(result.changes.items())) or "nothing"
    _say(f"{args.command}: {changes} ({result.seconds:.1f} s, the Pulumi engine)")
    if args.command == "deploy":
        _show_outputs(result.exports)
        print(lab.describe(args.stack))
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m halb_lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "command", choices=["up", "down", "status", "deploy", "preview", "refresh", "destroy", "password"]
    )
    parser.add_argument("--stack", default="lab", choices=["lab", "lab-vsphere", "lab-multi", "lab-tls", "lab-bgp"])
    parser.add_argument("--stack-file", type=Path, default=None, help="default: Pulumi.STACK.yaml")
    parser.add_argument("--vcenter", action="store_true", help="password: the simulated vCenter's")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--set-secret", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument(
        "--replace", action="append", default=[], metavar="NAME", help="re-run a step even if unchanged (repairs drift)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if os.geteuid() != 0:
        print("halb_lab: must run as root (network namespaces, mounts, systemd-nspawn)", file=sys.stderr)
        return 2
    missing = [t for t in lab.TOOLS if shutil.which(t) is None]
    if missing and args.command == "up":
        print(f"halb_lab: missing tools: {' '.join(missing)} (run ./scripts/install-deps)", file=sys.stderr)
        return 2
    if args.command in ("deploy", "preview", "refresh", "destroy"):
        return _engine(args)
    if args.command == "password":
        from halb_lab.automation.vault import Vault, VaultLocked
        from halb_lab.infra import vcenter
        from halb_lab.infra.topology import VAULT

        try:
            password = vcenter.password() if args.vcenter else Vault(VAULT).get("haproxy.stats.password")
        except VaultLocked as e:
            print(f"halb_lab: {e}", file=sys.stderr)
            return 2
        print(password or "(not deployed yet)")
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
    sys.exit(main())
