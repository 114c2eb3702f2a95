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
    error: str = ""  # why the node could not be asked (ssh's own words)


# Exit codes of `halb status`, one per verdict.
EXIT = {"OK": 0, "SPLIT BRAIN": 1, "OUTAGE": 1, "DEGRADED": 3, "UNREACHABLE": 4}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    summary: str

    @property
    def word(self) -> str:
        return next(w for w in EXIT if self.summary.startswith(w))

    @property
    def exit_code(self) -> int:
        return EXIT[self.word]


def assess(nodes: list[NodeState]) -> Verdict:
    holders = [n.name for n in nodes if n.holds_vip]
    if len(holders) > 1:
        return Verdict(
            False, f"SPLIT BRAIN: {' and '.join(holders)} all hold the VIP (is VRRP, IP protocol 112, blocked?)"
        )
    lost = [n for n in nodes if not n.reachable]
    if lost:
        reasons = "; ".join(f"{n.name}: {n.error or 'no answer'}" for n in lost)
        return Verdict(False, f"UNREACHABLE: cannot reach a node, so the VIP's holders are unknown ({reasons})")
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


def parse_probe(name: str, output: str | None, error: str = "") -> NodeState:
    if output is None:
        return NodeState(name, False, "UNKNOWN", False, "unknown", "unknown", error)
    lines = [*output.split("\n"), "", "", "", ""][:4]
    return NodeState(
        name, True, lines[0].strip() or "UNKNOWN", lines[1].strip() == "yes", lines[2].strip(), lines[3].strip()
    )


def ssh_command(cfg: HalbConfig, address: str, strict_host_keys: bool = True) -> list[str]:
    """ssh with the stack's user, port and key; the user goes after -l and the command after --."""
    ssh = ["ssh", "-p", str(cfg.ssh.port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
    if cfg.ssh.private_key_path:
        ssh += ["-i", os.path.expanduser(cfg.ssh.private_key_path)]
    if not strict_host_keys:
        ssh += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
    return [*ssh, "-l", cfg.ssh.user, address, "--"]


def probe_node(cfg: HalbConfig, address: str, vip: str, strict_host_keys: bool) -> tuple[str | None, str]:
    """The probe's output, or None and ssh's reason."""
    try:
        p = subprocess.run(
            [*ssh_command(cfg, address, strict_host_keys), PROBE.format(vip=vip)], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return None, "ssh: no answer within 20 s"
    if p.returncode == 0:
        return p.stdout, ""
    return None, (p.stderr.strip().splitlines() or [f"ssh exited {p.returncode}"])[-1]


def collect(cfg: HalbConfig, strict_host_keys: bool = True) -> tuple[list[NodeState], Verdict]:
    from halb.addresses import plan_addresses

    plan = plan_addresses(cfg)
    states = []
    for node in cfg.nodes:
        output, error = probe_node(cfg, str(plan.nodes[node.name]), str(plan.vip), strict_host_keys)
        states.append(parse_probe(node.name, output, error))
    return states, assess(states)


def report(cfg: HalbConfig, states: list[NodeState], verdict: Verdict) -> str:
    from halb.addresses import plan_addresses

    plan = plan_addresses(cfg)
    lines = []
    for node, state in zip(cfg.nodes, states, strict=True):
        detail = (
            f"VRRP {state.vrrp_state}, VIP {'held' if state.holds_vip else 'not held'}, "
            f"haproxy {state.haproxy}, keepalived {state.keepalived}"
            if state.reachable
            else f"cannot reach it ({state.error})"
        )
        lines.append(f"{node.name} {plan.nodes[node.name]} ({node.role}): {detail}")
    return "\n".join([*lines, verdict.summary])


def as_json(cfg: HalbConfig, states: list[NodeState], verdict: Verdict) -> dict[str, object]:
    from halb.addresses import plan_addresses

    plan = plan_addresses(cfg)
    return {
        "verdict": verdict.word,
        "exit_code": verdict.exit_code,
        "summary": verdict.summary,
        "vip": str(plan.vip),
        "nodes": [
            {"name": n.name, "address": str(plan.nodes[n.name]), "role": n.role, **vars(s)}
            for n, s in zip(cfg.nodes, states, strict=True)
        ],
    }
