"""Alert drills: for each of halb's alert rules (monitoring/halb.rules.yml), a fault on the lab
that causes it and the undo that ends it. The lab tests (tests/test_lab_monitoring.py,
tests/test_lab_tls.py) run each once; `bench.alerts` runs each several times for the time from
fault to delivery.

    with monitoring(deployed.exports["prometheus_targets"]) as m:
        seen = run(m, DRILLS["no-holder"])     # seen.fired_s["HalbVipNoHolder"]: seconds, or None

A fault is applied on lb2, the BACKUP, wherever one node is enough: the VIP stays where it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from halb.metrics import alert_for_seconds
from halb.render import PATHS
from halb_lab.infra import lab, net, nodes, router
from halb_lab.infra.topology import VIP, WORKERS
from halb_lab.scenarios.monitor import Monitor
from halb_lab.scenarios.probes import node

WITHIN = 30  # seconds past an alert's `for:` by which it must be delivered
RESOLVE_WITHIN = 45  # seconds after the undo by which its resolution must be delivered
SAVED_CFG = "/run/halb-drill-haproxy.cfg"  # lb2's haproxy.cfg while the drift drill edits it
LONG, SHORT = 90, 5  # days a certificate is valid: a renewed one, and one about to expire


@dataclass(frozen=True)
class AlertDrill:
    name: str
    alerts: tuple[str, ...]  # each must be delivered, then resolved
    fault: Callable[[], object]
    undo: Callable[[], object]
    stack: str = "lab"  # the lab stack the drill needs deployed


@dataclass
class Seen:
    drill: str
    fired_s: dict[str, float | None]  # alert -> seconds from the fault until it was delivered, or None
    resolved_s: dict[str, float | None]  # alert -> seconds from the undo until its resolution was delivered
    others: list[str] = field(default_factory=list)  # other alerts delivered meanwhile

    def missing(self) -> list[str]:
        """What did not arrive in time: "<alert> fired" or "<alert> resolved"."""
        return [f"{a} fired" for a, s in self.fired_s.items() if s is None] + [
            f"{a} resolved" for a, s in self.resolved_s.items() if s is None
        ]


def ssh(name: str, script: str) -> Callable[[], object]:
    return lambda: nodes.ssh(node(name), script, timeout=20, check=True)


def both(script: str) -> Callable[[], object]:
    return lambda: [nodes.ssh(node(n), script, timeout=20, check=True) for n in ("lb1", "lb2")]


def _workers(up: bool) -> None:
    for w in WORKERS:
        (lab.start_worker if up else lab.stop_worker)(w)


def _certificate(days: float) -> Callable[[], object]:
    def install() -> object:
        from halb_lab.scenarios.tls import install_certificate  # lab-tls's drills

        return install_certificate(days)

    return install


def stopped_on_backup(name: str, unit: str, alerts: tuple[str, ...]) -> AlertDrill:
    """`unit` stopped on lb2 (the BACKUP), then started again."""
    return AlertDrill(name, alerts, ssh("lb2", f"systemctl stop {unit}"), ssh("lb2", f"systemctl start {unit}"))


_cfg = PATHS["haproxy_cfg"]
DRILLS = {
    d.name: d
    for d in (
        AlertDrill("no-holder", ("HalbVipNoHolder",), both("systemctl stop haproxy"), both("systemctl start haproxy")),
        # a VIP added by hand on the BACKUP, as another tool or an operator might
        AlertDrill(
            "split-brain",
            ("HalbVipSplitBrain",),
            ssh("lb2", f"ip addr add {VIP}/32 dev eth0"),
            ssh("lb2", f"ip addr del {VIP}/32 dev eth0"),
        ),
        AlertDrill(
            "partition",
            ("HalbVrrpPartition",),
            lambda: net.block_vrrp(node("lb1"), node("lb2")),
            lambda: net.unblock_vrrp(node("lb1"), node("lb2")),
        ),
        # haproxy down on the BACKUP: keepalived holds it in FAULT, and the pair cannot fail over
        stopped_on_backup("haproxy-down-on-backup", "haproxy", ("HalbRedundancyLost", "HalbVrrpFault")),
        stopped_on_backup("keepalived-down", "keepalived", ("HalbKeepalivedDown",)),
        AlertDrill("no-backend", ("HalbHolderWithoutBackend",), lambda: _workers(False), lambda: _workers(True)),
        stopped_on_backup("node-exporter-down", "halb-node-exporter", ("HalbNodeExporterDown",)),
        # a hand edit of lb2's haproxy.cfg (not loaded): the nodes' config digests differ
        AlertDrill(
            "drift",
            ("HalbConfigDiffers",),
            ssh("lb2", f"cp -p {_cfg} {SAVED_CFG} && echo '# hand edit' >> {_cfg}"),
            ssh("lb2", f"mv -f {SAVED_CFG} {_cfg}"),
        ),
        # BGP mode (lab-bgp, lb1-lb3 peering with the lab's router), each fault on lb3
        AlertDrill(
            "bgp-node-withdrawn",
            ("HalbBgpNodeWithdrawn",),
            ssh("lb3", "systemctl stop haproxy"),
            ssh("lb3", "systemctl start haproxy"),
            stack="lab-bgp",
        ),
        AlertDrill(
            "bgp-session-down",
            ("HalbBgpSessionDown",),
            lambda: router.configure(f"neighbor {node('lb3').address} shutdown"),
            lambda: router.configure(f"no neighbor {node('lb3').address} shutdown"),
            stack="lab-bgp",
        ),
        # BFD dropped on its way to lb3 (a firewall without halb's rule): its sessions come back
        # without BFD, and a failure of lb3 would take BGP's hold time to notice
        AlertDrill(
            "bgp-bfd-down",
            ("HalbBfdDown",),
            lambda: net.block_bfd(node("lb3")),
            lambda: net.unblock_bfd(node("lb3")),
            stack="lab-bgp",
        ),
        # a certificate valid for 5 days deployed, then a renewed one
        AlertDrill(
            "certificate",
            ("HalbCertificateExpiresSoon", "HalbCertificateExpiresVerySoon"),
            _certificate(SHORT),
            _certificate(LONG),
            stack="lab-tls",
        ),
    )
}


def run(m: Monitor, drill: AlertDrill) -> Seen:
    """The drill's fault, its alerts awaited (each its `for:` + WITHIN from when the fault is in
    place), the undo (also when the wait fails), then their resolutions awaited."""
    waits = alert_for_seconds()
    try:
        drill.fault()
        since = time.time()  # the fault is in place (for the certificate: the deploy has ended)
        fired = {
            a: m.wait_for(a, since=since, timeout=max(1.0, waits[a] + WITHIN - (time.time() - since)))
            for a in drill.alerts
        }
    finally:
        drill.undo()
    back = time.time()
    resolved = {a: m.wait_for(a, "resolved", since=back, timeout=RESOLVE_WITHIN) for a in drill.alerts}
    others = {a["labels"]["alertname"] for a in m.alerts() if a["received"] >= since}
    return Seen(drill.name, fired, resolved, sorted(others - set(drill.alerts)))
