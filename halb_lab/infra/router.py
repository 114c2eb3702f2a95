"""The lab's upstream router for BGP mode (stack lab-bgp): FRR in a namespace of its own on the lab
bridge, peering with every node (a dynamic neighbor range, BFD), spreading flows to the VIP over
them by ECMP with the L4 hash; and a client behind it on its own subnet. Dual stack: IPv4 and IPv6
sessions with every node, each carrying its own family's VIPs.

    bridge 198.18.0.0/24 --- router 198.18.0.2 (AS 64513) --- 198.18.2.1 | client 198.18.2.30
           2001:2::/64              2001:2::2                 2001:2:2::1 | client 2001:2:2::30

The nodes learn the client's subnet as the site's network would give it to them: a static route
via the router (halb does not route). The lab machine reaches the VIPs through the router too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from halb_lab.infra import net
from halb_lab.infra.topology import HOST_LINK, NODES, SPARE_NODES, Host

ROUTER = Host("router", "198.18.0.2", "router")
ASN = 64513  # the router's; the nodes' is the stack's `bgp.asn`
NODES_ASN = 64512
CLIENT_SUBNET, CLIENT_SUBNET6 = "198.18.2.0/24", "2001:2:2::/64"
CLIENT_GATEWAY, CLIENT_GATEWAY6 = "198.18.2.1", "2001:2:2::1"
BGP_CLIENT = Host("bclient", "198.18.2.30", "client")
BGP_CLIENT6 = "2001:2:2::30"  # not Host.address6: that would be the bridge client's 2001:2::30
VIP_RANGE, VIP_RANGE6 = "198.18.1.0/24", "2001:2:1::/64"  # where lab-bgp's VIPs live: routed, off the nodes' segment
DAEMONS = ("zebra", "bfdd", "bgpd")
RUN = Path("/run/frr") / ROUTER.netns  # FRR's pathspace for the router (-N): its sockets, pids, config
SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.fib_multipath_hash_policy": "1",  # L4: a flow's 5-tuple picks its next hop
    "net.ipv6.conf.all.forwarding": "1",
    "net.ipv6.fib_multipath_hash_policy": "1",
}


def frr_conf() -> str:
    """The router: a neighbor for each lab node (lb1-lb4), each with BFD; up to 8 next hops per
    prefix; a route with GRACEFUL_SHUTDOWN (RFC 8326: a draining node) is least preferred,
    so it leaves the multipath set; it announces nothing to the nodes. IPv6 routes go to the
    nodes' global addresses (not the link-local next hop BGP also sends), which the drills read."""
    # One neighbor per node, not a listen range: FRR 8.4 deletes a dynamic neighbor when its session
    # drops and makes a new BFD session for it when it returns, while the node's bfdd keeps the old
    # one's discriminator and stays in Init (seen in the lab: after one cut link, BFD never came up
    # again and the next cut took the 9 s hold time).
    nodes = [*NODES, *SPARE_NODES]
    neighbors = "".join(f" neighbor {n.address} peer-group halb\n" for n in nodes)
    neighbors += "".join(f" neighbor {n.address6} peer-group halb6\n" for n in nodes)
    return f"""frr defaults datacenter
hostname router
!
bfd
 profile lab
  detect-multiplier 3
  receive-interval 100
  transmit-interval 100
 exit
exit
!
bgp community-list standard gshut seq 5 permit graceful-shutdown
!
route-map from-halb permit 10
 match community gshut
 set local-preference 0
exit
route-map from-halb permit 20
exit
!
route-map from-halb6 permit 10
 match community gshut
 set local-preference 0
 set ipv6 next-hop prefer-global
exit
route-map from-halb6 permit 20
 set ipv6 next-hop prefer-global
exit
!
router bgp {ASN}
 bgp router-id {ROUTER.address}
 no bgp default ipv4-unicast
 neighbor halb peer-group
 neighbor halb remote-as {NODES_ASN}
 neighbor halb bfd profile lab
 neighbor halb6 peer-group
 neighbor halb6 remote-as {NODES_ASN}
 neighbor halb6 bfd profile lab
{neighbors} !
 address-family ipv4 unicast
  neighbor halb activate
  neighbor halb route-map from-halb in
  maximum-paths 8
 exit-address-family
 !
 address-family ipv6 unicast
  neighbor halb6 activate
  neighbor halb6 route-map from-halb6 in
  maximum-paths 8
 exit-address-family
exit
!
"""


def _in_router(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return net.sh("ip", "netns", "exec", ROUTER.netns, *args, check=check)


def vtysh(command: str) -> str:
    return net.sh("vtysh", "-N", ROUTER.netns, "-c", command).stdout


def configure(*lines: str) -> str:
    """Change the router's running BGP config, as its operator would: `lines` under `router bgp`."""
    commands = ["configure terminal", f"router bgp {ASN}", *lines]
    return net.sh("vtysh", "-N", ROUTER.netns, *(w for c in commands for w in ("-c", c))).stdout


def is_up() -> bool:
    return net.netns_exists(ROUTER.netns) and all(_pid(d) is not None for d in DAEMONS)


def up() -> None:
    """The router, its client, FRR, and the routes to and from the client's subnet and the VIPs."""
    if is_up():
        return
    down()
    net.attach(ROUTER)
    _client_leg()
    for key, value in SYSCTLS.items():
        _in_router("sh", "-c", f"echo {value} > /proc/sys/{key.replace('.', '/')}")
    _start_frr()
    for node in [*NODES, *SPARE_NODES]:
        route_clients(node)
    net.sh("ip", "route", "replace", VIP_RANGE, "via", ROUTER.address, "dev", HOST_LINK)
    net.sh("ip", "-6", "route", "replace", VIP_RANGE6, "via", ROUTER.address6, "dev", HOST_LINK)


def route_clients(node: Host) -> None:
    """The route to the client's subnets the site's network gives a node (halb does not route);
    again after the node boots."""
    net.sh("ip", "-n", node.netns, "route", "replace", CLIENT_SUBNET, "via", ROUTER.address, check=False)
    net.sh("ip", "-n", node.netns, "-6", "route", "replace", CLIENT_SUBNET6, "via", ROUTER.address6, check=False)


def _client_leg() -> None:
    net.sh("ip", "netns", "add", BGP_CLIENT.netns)
    net.sh("ip", "-n", BGP_CLIENT.netns, "link", "set", "lo", "up")
    net.veth("eth1", ROUTER.netns, "eth0", BGP_CLIENT.netns)
    net.sh("ip", "-n", ROUTER.netns, "addr", "add", f"{CLIENT_GATEWAY}/24", "dev", "eth1")
    net.sh("ip", "-n", ROUTER.netns, "addr", "add", f"{CLIENT_GATEWAY6}/64", "dev", "eth1", "nodad")
    net.sh("ip", "-n", ROUTER.netns, "link", "set", "eth1", "up")
    net.sh("ip", "-n", BGP_CLIENT.netns, "addr", "add", f"{BGP_CLIENT.address}/24", "dev", "eth0")
    net.sh("ip", "-n", BGP_CLIENT.netns, "addr", "add", f"{BGP_CLIENT6}/64", "dev", "eth0", "nodad")
    net.sh("ip", "-n", BGP_CLIENT.netns, "link", "set", "eth0", "up")
    net.sh("ip", "-n", BGP_CLIENT.netns, "route", "add", "default", "via", CLIENT_GATEWAY)
    net.sh("ip", "-n", BGP_CLIENT.netns, "-6", "route", "add", "default", "via", CLIENT_GATEWAY6)
    for key, value in net.CLIENT_SYSCTLS.items():
        net.sh(
            "ip",
            "netns",
            "exec",
            BGP_CLIENT.netns,
            "sh",
            "-c",
            f"printf '%s\\n' '{value}' > /proc/sys/{key.replace('.', '/')}",
        )


def _start_frr() -> None:
    RUN.mkdir(parents=True, exist_ok=True)
    shutil.chown(RUN, "frr", "frr")
    conf = RUN / "frr.conf"
    conf.write_text(frr_conf())
    shutil.chown(conf, "frr", "frr")
    for daemon in DAEMONS:
        _in_router(
            f"/usr/lib/frr/{daemon}",
            "-d",
            "-N",
            ROUTER.netns,
            "-f",
            "/dev/null",
            "-i",
            str(RUN / f"{daemon}.pid"),
            "--vty_socket",
            str(RUN),
        )
    deadline = time.monotonic() + 10
    while not all(Path(RUN / f"{d}.vty").exists() for d in DAEMONS):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the lab router's FRR did not start: {sorted(p.name for p in RUN.iterdir())}")
        time.sleep(0.1)
    net.sh("vtysh", "-N", ROUTER.netns, "--config_dir", "/run/frr", "-b")


def _pid(daemon: str) -> int | None:
    try:
        pid = int((RUN / f"{daemon}.pid").read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def down() -> None:
    for daemon in reversed(DAEMONS):
        pid = _pid(daemon)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
    shutil.rmtree(RUN, ignore_errors=True)
    net.sh("ip", "route", "del", VIP_RANGE, check=False)
    net.sh("ip", "-6", "route", "del", VIP_RANGE6, check=False)
    for host in (BGP_CLIENT, ROUTER):
        if net.netns_exists(host.netns):
            net.sh("ip", "netns", "del", host.netns)
    net.sh("ip", "-n", net.BRIDGE_NS, "link", "del", ROUTER.bridge_port, check=False)


def next_hops(prefix: str) -> list[str]:
    """The router's next hops for `prefix` (a VIP's /32 or /128), from its kernel table."""
    family = "-6" if ":" in prefix else "-4"
    out = _in_router("ip", family, "-j", "route", "show", prefix, check=False).stdout
    routes = json.loads(out) if out.strip() else []
    hops = []
    for r in routes:
        if "nexthops" in r:
            hops += [h["gateway"] for h in r["nexthops"]]
        elif "gateway" in r:
            hops.append(r["gateway"])
    return sorted(hops)


def sessions() -> dict[str, str]:
    """Each BGP neighbor's state, as the router sees it."""
    data = json.loads(vtysh("show bgp neighbors json") or "{}")
    return {peer: info.get("bgpState", "") for peer, info in data.items()}
