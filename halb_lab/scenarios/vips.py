"""Drills on the lab-multi stack (several VIPs, active/active, dual stack): each VIP watched
under its own client load at once, for the lab tests and `make bench` key `vips`.

lab-multi: 198.18.0.10 (`public`) and 2001:2::10 (`public6`) preferred by lb1, in one sync
group; 198.18.0.9 (`internal`) preferred by lb2.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass

from halb_lab.infra import net, nodes
from halb_lab.scenarios.probes import LabError, holders, node, wait_until
from halb_lab.scenarios.watch import Report, Watch

STACK = "lab-multi"
PUBLIC, INTERNAL, PUBLIC6 = "198.18.0.10", "198.18.0.9", "2001:2::10"
PREFERRED = {PUBLIC: "lb1", PUBLIC6: "lb1", INTERNAL: "lb2"}
SYNC_GROUP = (PUBLIC, PUBLIC6)


def where() -> dict[str, list[str]]:
    return {vip: holders(vip) for vip in PREFERRED}


def settled() -> bool:
    """Every VIP on its preferred node alone."""
    return all(holders(vip) == [owner] for vip, owner in PREFERRED.items())


def url(vip: str, port: int = 80) -> str:
    return f"http://[{vip}]:{port}/" if ":" in vip else f"http://{vip}:{port}/"


@dataclass
class VipDrill:
    """What one drill saw: each VIP's report, the samples where the sync group's two VIPs were on
    different single nodes, and how long until the fault's node's VIPs had all reached its peer."""

    name: str
    node: str  # the node the fault hit
    reports: dict[str, Report]
    apart: list[tuple[float, list[str], list[str]]]
    moved_s: float | None  # until every VIP of `node` was on its peer (None: never)
    kept: dict[str, bool]  # peer's own VIPs -> its holder was in every sample

    def moved(self) -> list[str]:
        return [vip for vip, owner in PREFERRED.items() if owner == self.node]

    def figures(self) -> dict[str, object]:
        return {
            "node": self.node,
            "all_moved_s": None if self.moved_s is None else round(self.moved_s, 2),
            "sync_group_samples_apart": len(self.apart),
            "vips": {
                vip: {**r.figures(), "moved": vip in self.moved(), "peer_kept_it": self.kept.get(vip)}
                for vip, r in self.reports.items()
            },
        }


def _watches(stack: ExitStack) -> dict[str, Watch]:
    """A watcher per VIP; the sync group's IPv4 one also samples its IPv6 VIP in the same dumps."""
    return {vip: stack.enter_context(Watch(vip=vip, also=(PUBLIC6,) if vip == PUBLIC else ())) for vip in PREFERRED}


def _apart(w: Watch) -> list[tuple[float, list[str], list[str]]]:
    """Samples where the sync group's VIPs were each on exactly one node, but not the same one."""
    out = []
    for (t, v4), (_, also) in zip(w.data["samples"], w.data["also"], strict=True):
        v6 = also[PUBLIC6]
        if len(v4) == 1 and len(v6) == 1 and v4 != v6:
            out.append((t, v4, v6))
    return out


def _drill(name: str, at: str, fault: object, undo: object, failback_s: float = 30) -> VipDrill:
    """Inject `fault` (a callable) on node `at` under the load, wait for its VIPs to reach the peer,
    `undo` it, and wait for every VIP to be back on its preferred node."""
    assert callable(fault) and callable(undo)
    if wait_until(settled, 30, 0.1) is None:
        raise LabError(f"lab-multi did not settle before {name}: {where()}")
    peer = "lb2" if at == "lb1" else "lb1"
    ours = [vip for vip, owner in PREFERRED.items() if owner == at]
    with ExitStack() as stack:
        watches = _watches(stack)
        start = time.monotonic()
        fault()
        waiting = time.monotonic()
        try:
            moved = wait_until(lambda: all(peer in holders(v) for v in ours), 10, 0.01)
        finally:
            undo()
        moved_s = None if moved is None else waiting - start + moved
        if wait_until(settled, failback_s, 0.1) is None:
            raise LabError(f"{name}: no failback by preference: {where()}")
    reports = {vip: w.seen for vip, w in watches.items()}
    if any(r is None for r in reports.values()):
        raise RuntimeError(f"{name}: a watcher left no report")
    kept = {
        vip: all(peer in h for _, h in watches[vip].data["samples"])
        for vip, owner in PREFERRED.items()
        if owner == peer
    }
    return VipDrill(
        name, at, {v: r for v, r in reports.items() if r is not None}, _apart(watches[PUBLIC]), moved_s, kept
    )


def haproxy_killed(at: str) -> VipDrill:
    """haproxy SIGKILLed on `at` (systemd restarts it): its VIPs go to the peer, then come back."""
    return _drill(
        f"haproxy-killed-{at}",
        at,
        lambda: nodes.ssh(node(at), "systemctl kill --signal=SIGKILL haproxy", timeout=10),
        lambda: None,
    )


def link_cut(at: str, seconds: float = 6) -> VipDrill:
    """`at` unplugged from the switch: the peer hears no advert for the master-down interval and
    takes `at`'s VIPs (which `at`, held in FAULT as cut off by halb-vrrp-guard, has let go by then);
    `seconds` after that, `at` is plugged back and they return by preference."""

    def cut() -> None:
        net.cut(node(at))

    def plug() -> None:
        time.sleep(seconds)
        net.plug(node(at))

    return _drill(f"link-cut-{at}", at, cut, plug)


def vrrp_partition(seconds: float = 8) -> dict[str, Report]:
    """VRRP (IPv4 and IPv6) dropped between the nodes both ways while both stay on the LAN: each
    node's halb-vrrp-guard asks the LAN (ARP, and NDP for 2001:2::10) who has the peer's VIPs and
    stays in FAULT for them, so every VIP stays on its own node alone. Each VIP's report."""
    if wait_until(settled, 30, 0.1) is None:
        raise LabError(f"lab-multi did not settle before the partition: {where()}")
    time.sleep(3)  # the node that is not preferred is BACKUP (past its startup delay), not INIT
    with ExitStack() as stack:
        watches = {vip: stack.enter_context(Watch(vip=vip, keepalives=True)) for vip in PREFERRED}
        net.block_vrrp(*(node(n) for n in ("lb1", "lb2")))
        try:
            time.sleep(seconds)
        finally:
            net.unblock_vrrp(*(node(n) for n in ("lb1", "lb2")))
        time.sleep(2)
    if wait_until(settled, 15, 0.1) is None:
        raise LabError(f"lab-multi did not settle after the partition: {where()}")
    reports = {vip: w.seen for vip, w in watches.items()}
    return {v: r for v, r in reports.items() if r is not None}
