"""Network namespaces, veth pairs and the lab bridge (iproute2)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from halb_lab.infra.topology import (
    BRIDGE,
    BRIDGE_NS,
    CLIENT,
    HOST_ADDRESS,
    HOST_ADDRESS6,
    HOST_LINK,
    HOSTS,
    PREFIX,
    PREFIX6,
    Host,
)

# The load generator's kernel settings (the client namespace's only, never a node's). wrk opens
# thousands of connections a second from one address to one VIP:port, and each closed one keeps
# its 4-tuple in TIME_WAIT for 60 s. With Linux's default 28k ephemeral ports and no reuse,
# back-to-back 5 s runs found ever fewer free ports: a new connection per request through the VIP
# fell from 5549 to 2118, 804 and 791 requests/s over four runs (measured 2026-11-25), so every
# figure after the first measured the client's port search, not haproxy. With reuse after 1 s
# (TCP timestamps make it safe) and the whole port range, four runs gave 7267-7390.
CLIENT_SYSCTLS = {"net.ipv4.tcp_tw_reuse": "1", "net.ipv4.ip_local_port_range": "1024 65535"}


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def create() -> None:
    sh("ip", "netns", "add", BRIDGE_NS)
    sh("ip", "-n", BRIDGE_NS, "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "-n", BRIDGE_NS, "link", "set", BRIDGE, "up")
    for host in HOSTS:
        attach(host)
    for key, value in CLIENT_SYSCTLS.items():
        sh("ip", "netns", "exec", CLIENT.netns, "sh", "-c", f"printf '%s\\n' '{value}' > {_sysctl_path(key)}")
    # The root namespace's leg: lets ssh and the tests reach the lab.
    sh("ip", "link", "add", HOST_LINK, "type", "veth", "peer", "name", "v-host", "netns", BRIDGE_NS)
    sh("ip", "-n", BRIDGE_NS, "link", "set", "v-host", "master", BRIDGE, "up")
    sh("ip", "addr", "add", f"{HOST_ADDRESS}/{PREFIX}", "dev", HOST_LINK)
    sh("ip", "addr", "add", f"{HOST_ADDRESS6}/{PREFIX6}", "dev", HOST_LINK, "nodad")
    sh("ip", "link", "set", HOST_LINK, "up")


def _sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def client_sysctls() -> dict[str, str]:
    """The CLIENT_SYSCTLS keys as the client namespace has them now (whitespace normalised)."""
    return {
        key: " ".join(sh("ip", "netns", "exec", CLIENT.netns, "cat", _sysctl_path(key)).stdout.split())
        for key in CLIENT_SYSCTLS
    }


def veth(name: str, netns: str, peer: str, peer_netns: str) -> None:
    """A veth pair: `name` in `netns`, `peer` in `peer_netns`."""
    sh("ip", "link", "add", name, "netns", netns, "type", "veth", "peer", "name", peer, "netns", peer_netns)


def attach(host: Host) -> None:
    sh("ip", "netns", "add", host.netns)
    sh("ip", "-n", host.netns, "link", "set", "lo", "up")
    veth(host.bridge_port, BRIDGE_NS, "eth0", host.netns)
    sh("ip", "-n", BRIDGE_NS, "link", "set", host.bridge_port, "master", BRIDGE, "up")
    sh("ip", "-n", host.netns, "addr", "add", f"{host.address}/{PREFIX}", "dev", "eth0")
    # No duplicate address detection: the address is usable at once (the lab assigns them uniquely).
    sh("ip", "-n", host.netns, "addr", "add", f"{host.address6}/{PREFIX6}", "dev", "eth0", "nodad")
    sh("ip", "-n", host.netns, "link", "set", "eth0", "up")


def cut(host: Host) -> None:
    """Unplug a host from the switch; its own link stays up, as when a switch port fails."""
    sh("ip", "-n", BRIDGE_NS, "link", "set", host.bridge_port, "nomaster")


def plug(host: Host) -> None:
    sh("ip", "-n", BRIDGE_NS, "link", "set", host.bridge_port, "master", BRIDGE)


def block_vrrp(*hosts: Host) -> None:
    """Drop VRRP (IP protocol 112) arriving at these hosts, as a host firewall without halb's rule would."""
    for h in hosts:
        sh("ip", "netns", "exec", h.netns, "nft", "add table inet halb_lab")
        sh(
            "ip",
            "netns",
            "exec",
            h.netns,
            "nft",
            "add chain inet halb_lab input { type filter hook input priority 0 ; }",
        )
        sh("ip", "netns", "exec", h.netns, "nft", "add rule inet halb_lab input meta l4proto vrrp drop")


def unblock_vrrp(*hosts: Host) -> None:
    for h in hosts:
        sh("ip", "netns", "exec", h.netns, "nft", "delete table inet halb_lab", check=False)


BFD_TABLE = "halb_lab_bfd"


def block_bfd(host: Host) -> None:
    """Drop BFD control packets (UDP 3784) arriving at the host, as a firewall without halb's rule would."""
    ns = ["ip", "netns", "exec", host.netns, "nft"]
    sh(*ns, f"add table inet {BFD_TABLE}")
    sh(*ns, f"add chain inet {BFD_TABLE} input {{ type filter hook input priority 0 ; }}")
    sh(*ns, f"add rule inet {BFD_TABLE} input udp dport 3784 drop")


def unblock_bfd(host: Host) -> None:
    sh("ip", "netns", "exec", host.netns, "nft", f"delete table inet {BFD_TABLE}", check=False)


def block_ssh_from_host(host: Host) -> None:
    """Drop SSH from this machine to the host, as a slow link or a VM still rebooting would."""
    ns = ["ip", "netns", "exec", host.netns, "nft"]
    sh(*ns, "add table inet halb_lab_ssh")
    sh(*ns, "add chain inet halb_lab_ssh input { type filter hook input priority 0 ; }")
    sh(*ns, f"add rule inet halb_lab_ssh input ip saddr {HOST_ADDRESS} tcp dport 22 drop")


def unblock_ssh_from_host(host: Host) -> None:
    sh("ip", "netns", "exec", host.netns, "nft", "delete table inet halb_lab_ssh", check=False)


@contextmanager
def ssh_blocked_for(host: Host, seconds: float) -> Iterator[None]:
    """SSH from this machine to `host` is dropped for the first `seconds` of the block (and never after it)."""
    block_ssh_from_host(host)
    timer = threading.Timer(seconds, unblock_ssh_from_host, args=(host,))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        unblock_ssh_from_host(host)


def destroy() -> None:
    """Remove everything create() made; safe to run on a partial lab."""
    sh("ip", "link", "del", HOST_LINK, check=False)
    for host in HOSTS:
        if netns_exists(host.netns):
            sh("ip", "netns", "del", host.netns, check=False)
    if netns_exists(BRIDGE_NS):
        sh("ip", "netns", "del", BRIDGE_NS, check=False)
