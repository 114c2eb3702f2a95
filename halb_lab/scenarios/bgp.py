"""BGP mode's drills on the lab (stack lab-bgp: lb1-lb3 behind the lab router, the client behind
it): how new connections spread over the nodes, and what a fault on one node costs the clients."""

from __future__ import annotations

import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from halb.commands import ADMIN_SOCKET
from halb_lab.infra import image, net, nodes, router
from halb_lab.infra.topology import NODES, SPARE_NODES, Host
from halb_lab.scenarios.probes import LabError, wait_until
from halb_lab.scenarios.watch import Report, Watch

STACK = "lab-bgp"
VIP, VIP6 = "198.18.1.10", "2001:2:1::10"  # Pulumi.lab-bgp.yaml's
BGP_NODES = [*NODES, SPARE_NODES[0]]  # lb1, lb2, lb3
FRONTEND = "http"
RESTART = "sleep 1.5; systemctl reset-failed haproxy; systemctl is-active --quiet haproxy || systemctl start haproxy"


def frontend_sessions(node: Host) -> int:
    """Connections haproxy's `http` frontend has taken on `node` since it started (`stot`)."""
    out = nodes.ssh(node, f"echo 'show stat' | socat stdio {ADMIN_SOCKET}", timeout=10, check=True).stdout
    header = out.splitlines()[0].lstrip("# ").split(",")
    for line in out.splitlines()[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == FRONTEND and row.get("svname") == "FRONTEND":
            return int(row["stot"])
    raise LabError(f"{node.name}: no `{FRONTEND}` frontend in haproxy's stats")


def hop(node: Host, vip: str) -> str:
    """The router's next hop to `node` for `vip`: its address of the VIP's family."""
    return node.address6 if ":" in vip else node.address


def spread(connections: int, hosts: list[Host] | None = None, vip: str = VIP) -> dict[str, int]:
    """`connections` new connections (one request each) from the client behind the router to
    `vip`: how many each node (of `hosts`, default BGP_NODES) took."""
    hosts = BGP_NODES if hosts is None else hosts
    before = {n.name: frontend_sessions(n) for n in hosts}
    url = f"http://[{vip}]/" if ":" in vip else f"http://{vip}/"
    cmd = ["curl", "-s", "-o", "/dev/null", "-H", "Connection: close", "--max-time", "2", *[url] * connections]
    # (curl's -o names the first URL's output only: the rest goes to stdout, dropped here)
    subprocess.run(
        ["ip", "netns", "exec", router.BGP_CLIENT.netns, *cmd], check=False, timeout=300, stdout=subprocess.DEVNULL
    )
    return {n.name: frontend_sessions(n) - before[n.name] for n in hosts}


def serving(count: int | None = None, timeout: float = 30) -> list[str]:
    """Wait until the router has `count` next hops (default: every node) for each VIP, IPv4 and
    IPv6; the IPv4 VIP's next hops."""
    count = len(BGP_NODES) if count is None else count
    for vip in (VIP, VIP6):
        _await_hops(vip, count, timeout)
    return router.next_hops(VIP)


def _await_hops(vip: str, count: int, timeout: float) -> None:
    if wait_until(lambda: len(router.next_hops(vip)) == count, timeout, 0.1) is None:
        raise LabError(f"the router has next hops {router.next_hops(vip)} for {vip}, not {count}")


@dataclass
class Drill:
    name: str
    node: Host  # the node the drill acts on
    report: Report
    withdrawn_s: float | None  # from the fault to the node's next hop gone from the router
    failing_s: float  # from the first failed request to the last: how long the failed node's flows failed

    @property
    def resets_on_node(self) -> int:
        """Long-lived connections broken that the drilled node served."""
        return self.report.resets_by_node.get(self.node.address, 0)

    @property
    def resets_elsewhere(self) -> int:
        """Long-lived connections broken that another node served: flows the fault should not touch."""
        return self.report.keepalive_resets - self.resets_on_node

    def figures(self) -> dict[str, object]:
        return {
            **self.report.figures(),
            "node": self.node.name,
            "withdrawn_s": self.withdrawn_s,
            "failing_s": self.failing_s,
            "resets_on_node": self.resets_on_node,
            "resets_elsewhere": self.resets_elsewhere,
        }

    def summary(self) -> str:
        return (
            f"{self.name}: withdrawn after {self.withdrawn_s} s; requests failed for {self.failing_s} s "
            f"({self.report.failed}/{self.report.requests}); long-lived connections broken: "
            f"{self.resets_on_node} on {self.node.name}, {self.resets_elsewhere} on the other nodes"
        )


def failing_span(requests: list[tuple[float, bool]]) -> float:
    """With ECMP only the flows hashed to the failed node fail, between good ones: the span from
    the first failed request to the last (0 when none failed)."""
    failed = [t for t, ok in requests if not ok]
    return round(failed[-1] - failed[0], 3) if failed else 0.0


def _watched(name: str, node: Host, fault: str, undo: str, cut: bool = False, vip: str = VIP) -> Drill:
    """The fault on `node` under the client's load to `vip`, until the node's next hop for it
    has left the router; then the undo, until it is back."""
    serving()
    with Watch(vip=vip, client=router.BGP_CLIENT.netns, keepalives=True) as w:
        if cut:
            net.cut(node)
        else:
            nodes.ssh(node, fault, timeout=10)
        withdrawn = wait_until(lambda: hop(node, vip) not in router.next_hops(vip), 10, 0.01)
        time.sleep(0.5)
        if cut:
            net.plug(node)
        elif undo:
            nodes.ssh(node, undo, timeout=10)
        serving(timeout=60)
    return Drill(name, node, w.seen, _rounded(withdrawn), failing_span(_requests(w)))


def haproxy_killed(node: Host = NODES[0]) -> Drill:
    """haproxy SIGKILLed on one node (systemd restarts it after 1 s; the watcher waits its rise time).
    The undo clears systemd's start counter: halb's crash-loop policy would otherwise keep haproxy
    down from the 5th kill in 60 s on, as it should for a real crash loop."""
    return _watched("haproxy-killed", node, "systemctl kill -s KILL haproxy", RESTART)


def haproxy_hung(node: Host = NODES[0]) -> Drill:
    """haproxy frozen (SIGSTOP) on one node: the watcher's probes time out."""
    return _watched("haproxy-hung", node, "systemctl kill -s STOP haproxy", "systemctl kill -s CONT haproxy")


def peer_flap(node: Host = NODES[0]) -> Drill:
    """The router resets its session with one node (`clear bgp`): the node's routes leave and come back."""
    serving()
    with Watch(vip=VIP, client=router.BGP_CLIENT.netns, keepalives=True) as w:
        router.vtysh(f"clear bgp {node.address}")
        withdrawn = wait_until(lambda: node.address not in router.next_hops(VIP), 10, 0.01)
        serving(timeout=60)
    return Drill("peer-flap", node, w.seen, _rounded(withdrawn), failing_span(_requests(w)))


def drain(index: int = 0) -> Drill:
    """`nodes[index].maintenance: true` by `pulumi up` under the load: the node announces
    GRACEFUL_SHUTDOWN, the router prefers the others; then set back."""
    from halb_lab.automation.stack import deploy
    from halb_lab.scenarios.drills import quiet

    node = BGP_NODES[index]
    serving()
    with Watch(vip=VIP, client=router.BGP_CLIENT.netns, keepalives=True) as w:
        start = time.monotonic()
        deploy(stack=STACK, sets=[f"nodes[{index}].maintenance=true"], progress=quiet)
        gone = wait_until(lambda: node.address not in router.next_hops(VIP), 10, 0.01)
        withdrawn = None if gone is None else time.monotonic() - start
        deploy(stack=STACK, progress=quiet)
        serving(timeout=60)
    return Drill("drain", node, w.seen, _rounded(withdrawn), failing_span(_requests(w)))


def with_nodes(hosts: list[Host], tmp: Path) -> Path:
    """lab-bgp's stack file with `hosts` as its nodes, written under `tmp`."""
    from halb_lab.automation.stack import stack_file_of

    doc = yaml.safe_load(stack_file_of(STACK).read_text())
    doc["config"]["halb:nodes"] = [{"name": h.name, "address": h.address, "address6": h.address6} for h in hosts]
    path = tmp / f"Pulumi.{STACK}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


VSPHERE_STACK = "lab-bgp-vsphere"  # lab-bgp's nodes as VMs of the lab's simulated vCenter


def vsphere_stack_file(tmp: Path) -> Path:
    """lab-bgp as three VMs cloned in the lab's simulated vCenter (the vCenter and the VMs as
    lab-vsphere has them; lb1-lb3 stand in for the guests), written under `tmp`."""
    from halb_lab.automation.stack import stack_file_of

    doc = yaml.safe_load(stack_file_of(STACK).read_text())
    vsphere = yaml.safe_load(stack_file_of("lab-vsphere").read_text())["config"]
    config = doc["config"]
    config.update({k: v for k, v in vsphere.items() if k.startswith("vsphere:")})
    config.update({k: vsphere[k] for k in ("halb:platform", "halb:vsphere", "halb:preflight")})
    config["halb:network"] |= {k: vsphere["halb:network"][k] for k in ("dnsServers", "domain")}
    path = tmp / f"Pulumi.{VSPHERE_STACK}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def add_and_remove() -> Drill:
    """lb4 added by `pulumi up` under the load, then removed again: the router gains and loses a
    next hop; `withdrawn_s` is the time from the second `pulumi up` to lb4's next hop gone."""
    from halb_lab.automation.stack import deploy
    from halb_lab.scenarios.drills import quiet

    extra = SPARE_NODES[1]
    serving()
    with (
        tempfile.TemporaryDirectory(prefix="halb-bgp-") as tmp,
        Watch(vip=VIP, client=router.BGP_CLIENT.netns, keepalives=True) as w,
    ):
        deploy(stack_file=with_nodes([*BGP_NODES, extra], Path(tmp)), stack=STACK, progress=quiet)
        serving(count=len(BGP_NODES) + 1, timeout=60)
        start = time.monotonic()
        deploy(stack=STACK, progress=quiet)
        gone = wait_until(lambda: extra.address not in router.next_hops(VIP), 30, 0.01)
        serving()
    withdrawn = None if gone is None else time.monotonic() - start
    return Drill("add-and-remove", extra, w.seen, _rounded(withdrawn), failing_span(_requests(w)))


def power_off(node: Host = NODES[0]) -> Drill:
    """One node powered off (a graceful shutdown: its services stop, FRR closes its sessions), then
    booted again; `withdrawn_s` from the poweroff's start."""
    serving()
    with Watch(vip=VIP, client=router.BGP_CLIENT.netns, keepalives=True) as w:
        # poweroff returns once the node is down: the router is watched from a thread meanwhile
        with ThreadPoolExecutor(max_workers=1) as pool:
            gone = pool.submit(wait_until, lambda: node.address not in router.next_hops(VIP), 30, 0.01)
            nodes.poweroff(node)
            withdrawn = gone.result()
        nodes.boot(node, image.image_dir())
        nodes.wait_ssh(node)
        router.route_clients(node)
        serving(timeout=90)
    return Drill("power-off", node, w.seen, _rounded(withdrawn), failing_span(_requests(w)))


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _requests(w: Watch) -> list[tuple[float, bool]]:
    return [(float(t), bool(ok)) for t, ok in w.data.get("requests", [])]


def link_cut(node: Host = NODES[0], vip: str = VIP) -> Drill:
    """One node unplugged from the switch: BFD takes it out of the router's table (the clients
    of `vip`, over its family's session)."""
    return _watched("link-cut" if vip == VIP else "link-cut-ipv6", node, "", "", cut=True, vip=vip)
