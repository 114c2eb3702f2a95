"""Who holds the VIP? Pure assessment of the nodes' reported state, shared by the lab and users.

Split brain is more than one node holding the VIP (typically VRRP blocked between them);
no node holding it is an outage.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from halb.config import HalbConfig


@dataclass(frozen=True)
class NodeState:
    name: str
    reachable: bool
    vrrp_state: str  # MASTER, BACKUP, FAULT, STOP or UNKNOWN (from /run/halb/vrrp-state)
    holds_vip: bool
    haproxy: str  # systemd's word: active, inactive, failed...
    keepalived: str


@dataclass(frozen=True)
class Verdict:
    ok: bool
    summary: str


def assess(nodes: list[NodeState]) -> Verdict:
    holders = [n.name for n in nodes if n.holds_vip]
    if len(holders) > 1:
        return Verdict(
            False, f"SPLIT BRAIN: {' and '.join(holders)} all hold the VIP (is VRRP, IP protocol 112, blocked?)"
        )
    if not holders:
        return Verdict(False, "OUTAGE: no node holds the VIP")
    down = [n.name for n in nodes if n.haproxy != "active" or n.keepalived != "active"]
    if down:
        return Verdict(True, f"DEGRADED: {holders[0]} holds the VIP; services down on {', '.join(down)}")
    return Verdict(True, f"OK: {holders[0]} holds the VIP")


# Run on a node over SSH: prints four lines (state, VIP held, haproxy, keepalived).
PROBE = (
    "cat /run/halb/vrrp-state 2>/dev/null || echo UNKNOWN; "
    "ip -o -4 addr show | grep -qw '{vip}' && echo yes || echo no; "
    "systemctl is-active haproxy || true; systemctl is-active keepalived || true"
)


def parse_probe(name: str, output: str | None) -> NodeState:
    if output is None:
        return NodeState(name, False, "UNKNOWN", False, "unknown", "unknown")
    lines = [*output.split("\n"), "", "", "", ""][:4]
    return NodeState(
        name, True, lines[0].strip() or "UNKNOWN", lines[1].strip() == "yes", lines[2].strip(), lines[3].strip()
    )


def node_status(cfg: HalbConfig, strict_host_keys: bool = True) -> tuple[bool, str]:
    """Probe both nodes over SSH with the stack's SSH settings (key file or agent)."""
    from halb.addresses import plan_addresses

    plan = plan_addresses(cfg)
    ssh = ["ssh", "-p", str(cfg.ssh.port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
    if cfg.ssh.private_key_path:
        ssh += ["-i", os.path.expanduser(cfg.ssh.private_key_path)]
    if not strict_host_keys:
        ssh += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
    states, lines = [], []
    for node in cfg.nodes:
        address = plan.nodes[node.name]
        try:
            p = subprocess.run(
                [*ssh, f"{cfg.ssh.user}@{address}", PROBE.format(vip=plan.vip)],
                capture_output=True,
                text=True,
                timeout=20,
            )
            output = p.stdout if p.returncode == 0 else None
        except subprocess.TimeoutExpired:
            output = None
        state = parse_probe(node.name, output)
        states.append(state)
        lines.append(
            f"{node.name} {address} ({node.role}): "
            + (
                f"VRRP {state.vrrp_state}, VIP {'held' if state.holds_vip else 'not held'}, "
                f"haproxy {state.haproxy}, keepalived {state.keepalived}"
                if state.reachable
                else "unreachable"
            )
        )
    verdict = assess(states)
    return verdict.ok, "\n".join([*lines, verdict.summary])
