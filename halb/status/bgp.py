"""`halb status` in BGP mode: each node's haproxy and FRR, the VIPs on its loopback (what it
announces), its BGP sessions and their BFD state, read over SSH from `vtysh ... json`; and the
verdict: OK while every node serves, DEGRADED while some do, OUTAGE when none does."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from halb.config import HalbConfig
from halb.status.remote import Reach, SshTarget, ssh_run
from halb.status.verdict import Verdict

MARK = "@@halb@@"  # between the probe's parts
PROBE = "; ".join(
    [
        "sudo=; [ \"$(id -u)\" = 0 ] || sudo='sudo -n'",
        "systemctl is-active haproxy frr halb-haproxy-watch | tr '\\n' ' '; echo",
        f"echo {MARK}; ip -o addr show dev lo",
        f"echo {MARK}; $sudo vtysh -c 'show bgp neighbors json'",
        f"echo {MARK}; $sudo vtysh -c 'show bfd peers json'",
    ]
)


@dataclass(frozen=True)
class BgpNode:
    name: str
    reachable: bool
    error: str = ""
    services: dict[str, str] = field(default_factory=dict)  # unit -> active, inactive, failed...
    announced: list[str] = field(default_factory=list)  # the stack's VIPs on lo, which FRR announces
    sessions: dict[str, str] = field(default_factory=dict)  # peer -> BGP state
    bfd: dict[str, str] = field(default_factory=dict)  # peer -> BFD status
    maintenance: bool = False

    @property
    def serving(self) -> bool:
        return (
            self.reachable
            and bool(self.announced)
            and bool(self.sessions)
            and all(s == "Established" for s in self.sessions.values())
        )


def parse(name: str, output: str, vips: list[str], error: str = "") -> BgpNode:
    """A node's state from the probe's output (pure)."""
    if error or MARK not in output:
        return BgpNode(name, False, error or "no answer")
    head, lo, neighbors, bfd = [*output.split(MARK), "", "", ""][:4]
    units = ("haproxy", "frr", "halb-haproxy-watch")
    services = dict(zip(units, head.split(), strict=False))
    on_lo = {w.split("/")[0] for line in lo.splitlines() for w in line.split()[3:4]}
    return BgpNode(
        name,
        True,
        services=services,
        announced=[v for v in vips if v in on_lo],
        sessions=_sessions(_json(neighbors)),
        bfd=_bfd(_json(bfd)),
    )


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _sessions(data: object) -> dict[str, str]:
    """`show bgp neighbors json`: peer -> its BGP state."""
    if not isinstance(data, dict):
        return {}
    return {str(p): str(i.get("bgpState", "")) for p, i in data.items() if isinstance(i, dict)}


def _bfd(data: object) -> dict[str, str]:
    """`show bfd peers json`: peer -> its BFD status."""
    if not isinstance(data, list):
        return {}
    return {str(p.get("peer")): str(p.get("status")) for p in data if isinstance(p, dict)}


def assess(nodes: list[BgpNode]) -> Verdict:
    """OK while every node in service serves; DEGRADED while some do; OUTAGE when none does."""
    unreachable = [n.name for n in nodes if not n.reachable]
    serving = [n.name for n in nodes if n.serving]
    expected = [n.name for n in nodes if not n.maintenance]
    if not serving:
        return Verdict(False, "OUTAGE: no node announces the VIPs with its BGP sessions up")
    if unreachable:
        return Verdict(False, f"UNREACHABLE: {', '.join(unreachable)} did not answer over SSH")
    missing = [n for n in expected if n not in serving]
    if missing:
        return Verdict(False, f"DEGRADED: {', '.join(missing)} not serving; {', '.join(serving)} serve")
    resting = [n.name for n in nodes if n.maintenance]
    if resting:
        return Verdict(True, f"MAINTENANCE: {', '.join(resting)} in maintenance; {', '.join(serving)} serve")
    return Verdict(True, f"OK: {len(serving)} nodes announce the VIPs, every BGP session up")


def collect(cfg: HalbConfig, strict_host_keys: bool = True, recorded: Mapping[str, str] | None = None) -> list[BgpNode]:
    plan = cfg.plan
    target = SshTarget(cfg.ssh.user, cfg.ssh.port, cfg.ssh.private_key_path)
    vips = [str(v.address) for v in plan.vips]
    out = []
    for node in cfg.nodes:
        host_key = node.host_key or (recorded or {}).get(node.name)
        rc, stdout, stderr = ssh_run(Reach(target, str(plan.address(node.name)), host_key, strict_host_keys), PROBE)
        state = parse(node.name, stdout, vips, "" if rc == 0 else stderr.strip()[-200:] or "no answer")
        out.append(BgpNode(**{**vars(state), "maintenance": node.maintenance}))
    return out


def report(nodes: list[BgpNode], verdict: Verdict) -> str:
    lines = []
    for n in nodes:
        if not n.reachable:
            lines.append(f"{n.name}: unreachable ({n.error})")
            continue
        sessions = ", ".join(f"{p} {s} (BFD {n.bfd.get(p, 'none')})" for p, s in n.sessions.items()) or "none"
        units = ", ".join(f"{u} {s}" for u, s in n.services.items())
        rest = " (maintenance: GRACEFUL_SHUTDOWN)" if n.maintenance else ""
        lines.append(f"{n.name}{rest}: {units}; announces {', '.join(n.announced) or 'nothing'}; BGP {sessions}")
    return "\n".join([*lines, verdict.summary])


def as_json(nodes: list[BgpNode], verdict: Verdict) -> dict[str, object]:
    return {"verdict": verdict.word, "summary": verdict.summary, "nodes": [vars(n) for n in nodes]}
