"""`python -m halb check|render|status --stack NAME`: validate, render and inspect without the Pulumi CLI."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from halb.config import ConfigError, HalbConfig, StackFileError, load_stack_file
from halb.render import Secrets, write_tree


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m halb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check",
        help="validate Pulumi.<stack>.yaml, then run haproxy -c and keepalived -t on what it renders; exit 2 listing every error",
    )
    check.add_argument("--stack", required=True)
    check.add_argument(
        "--probe",
        action="store_true",
        help="also listen on each node (over SSH) for other VRRP routers that use the stack's VRIDs",
    )
    check.add_argument("--no-host-key-check", action="store_true", help="for lab nodes whose host keys change")
    render = sub.add_parser("render", help="write each node's files under OUT/<node>/ (secrets as placeholders)")
    render.add_argument("--stack", required=True)
    render.add_argument("--out", required=True, type=Path)
    status = sub.add_parser(
        "status",
        help="ask both nodes over SSH who holds the VIP; exit 0 OK or maintenance, 1 split brain, outage, "
        "VRRP partition or VRID collision, 3 degraded, 4 unreachable, 5 drift",
    )
    status.add_argument("--stack", required=True)
    status.add_argument("--no-host-key-check", action="store_true", help="for lab nodes whose host keys change")
    status.add_argument("--json", action="store_true", help="print one JSON object (for monitoring)")
    verify = sub.add_parser("verify", help="the deploy's last step: exactly one VIP holder, every service answering")
    verify.add_argument("--spec", required=True, help="JSON from halb.verify.Spec (addresses and ports only)")
    verify.add_argument("--key-stdin", action="store_true", help="read an inline SSH private key from stdin")
    verify.add_argument("--timeout", type=float, default=60)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "verify":
        return verify(args)
    path = Path(f"Pulumi.{args.stack}.yaml")
    if not path.is_file():
        print(f"halb: no stack file {path} (run from the project directory)", file=sys.stderr)
        return 2
    try:
        cfg = load_stack_file(str(path), provider_keys=args.command == "check")
    except StackFileError as e:
        print(f"halb: {e}", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"halb: {path}: {e}", file=sys.stderr)
        return 2
    if args.command == "check":
        return check(args, path, cfg)
    if args.command == "status":
        return status(args, cfg)
    written = write_tree(cfg, args.out)
    print(f"halb: wrote {len(written)} files under {args.out}/")
    return 0


def verify(args: argparse.Namespace) -> int:
    from halb.verify import Spec, run

    try:
        spec = Spec.from_json(args.spec)
    except (ValueError, KeyError, TypeError) as e:
        print(
            f"halb verify: --spec is not a verify spec ({type(e).__name__}: {e}); expected the JSON "
            'halb.verify.Spec writes, e.g. {"vip": "192.168.4.60", "nodes": {...}, "services": [...]}',
            file=sys.stderr,
        )
        return 2
    ok, message = run(spec, sys.stdin.read() if args.key_stdin else "", args.timeout)
    print(f"halb verify: {message}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def check(args: argparse.Namespace, path: Path, cfg: HalbConfig) -> int:
    """The config is valid (load_stack_file said so); now the daemons' checks, warnings, the probe."""
    from halb.stack import certificate_warnings
    from halb.validate import rendered_problems

    refused, skipped = rendered_problems(cfg)
    if refused or (skipped and os.environ.get("CI") == "true"):
        lines = refused or [f"the daemons' checks are required under CI=true, and {skipped}"]
        print(f"halb: {path}: the config is valid, but the files it renders are not:", file=sys.stderr)
        print("\n".join(f"  - {line}" for line in lines), file=sys.stderr)
        return 2
    if skipped:
        print(f"halb: warning: {skipped}", file=sys.stderr)
    for warning in certificate_warnings(cfg):
        print(f"halb: warning: {warning}", file=sys.stderr)
    if args.probe:
        from halb.preflight import vrid_collisions

        collisions = vrid_collisions(cfg, strict_host_keys=not args.no_host_key_check)
        if collisions:
            print(f"halb: {path}: the config is valid, but its VRIDs are not free on the LAN:", file=sys.stderr)
            print("\n".join(f"  - {line}" for line in collisions), file=sys.stderr)
            return 2
    probed = ", VRIDs free on the LAN" if args.probe else ""
    print(f"halb: {path}: ok ({cfg.platform}, {len(cfg.nodes)} nodes, {len(cfg.haproxy.services)} services{probed})")
    return 0


def status(args: argparse.Namespace, cfg: HalbConfig) -> int:
    from halb.status.remote import collect
    from halb.status.report import as_json, report

    outputs = stack_outputs(args.stack)
    if cfg.mode == "bgp":
        return bgp_status(args, cfg, outputs)
    secrets = stack_secrets(outputs)
    states, verdict = collect(
        cfg, strict_host_keys=not args.no_host_key_check, secrets=secrets, recorded=outputs.get("host_keys") or {}
    )
    print(json.dumps(as_json(cfg, states, verdict)) if args.json else report(cfg, states, verdict, secrets is not None))
    return verdict.exit_code


def bgp_status(args: argparse.Namespace, cfg: HalbConfig, outputs: dict[str, Any]) -> int:
    from halb.status import bgp

    nodes = bgp.collect(cfg, strict_host_keys=not args.no_host_key_check, recorded=outputs.get("host_keys") or {})
    verdict = bgp.assess(nodes)
    print(json.dumps(bgp.as_json(nodes, verdict)) if args.json else bgp.report(nodes, verdict))
    return verdict.exit_code


def stack_outputs(stack: str) -> dict[str, Any]:
    """The stack's outputs (`pulumi stack output --show-secrets`), kept in memory only; {} when out
    of reach (no CLI, no such stack, not deployed yet)."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        return {}
    cmd = [pulumi, "stack", "output", "--stack", stack, "--show-secrets", "--json"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        out = json.loads(p.stdout) if p.returncode == 0 else {}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}
    return out if isinstance(out, dict) else {}


def stack_secrets(outputs: dict[str, Any]) -> Secrets | None:
    """The passwords a stack deployed, to compare the secret files too; None when unknown."""
    if "stats_password" not in outputs:
        return None
    return Secrets(vrrp_password=outputs.get("vrrp_password") or "", stats_password=outputs["stats_password"])


if __name__ == "__main__":
    sys.exit(main())
