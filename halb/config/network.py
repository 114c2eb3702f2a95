"""The segment the pair lives on: subnet, gateway, DNS, the interface that carries the VIP."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from pydantic import Field

from halb.config.base import INTERFACE_HINT, INTERFACE_RE, Model, patterned
from halb.config.errors import Problems, show

MIN_PREFIX = 16  # the broadest subnet taken for the nodes' LAN (65536 addresses)


class Network(Model):
    """The L2 segment both load balancers and the VIP live on."""

    subnet: IPv4Network = Field(
        description="The segment's CIDR; the VIP, both nodes and the gateway must lie in it.",
        examples=["192.168.4.0/24"],
    )
    gateway: IPv4Address | None = Field(
        None, description="Default gateway given to cloned VMs.", examples=["192.168.4.1"]
    )
    subnet6: IPv6Network | None = Field(
        None,
        description="The segment's IPv6 prefix, when the nodes have IPv6 addresses too (for IPv6 VIPs).",
        examples=["2001:db8:4::/64"],
    )
    gateway6: IPv6Address | None = Field(None, description="IPv6 default gateway.", examples=["2001:db8:4::1"])
    dns_servers: list[IPv4Address] = Field(
        default_factory=list, description="DNS servers given to cloned VMs.", examples=[["192.168.4.1"]]
    )
    domain: str = patterned(
        r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
        "a DNS domain: dot-separated labels of letters, digits and '-'",
        "lab.example.com",
        default="localdomain",
        description="DNS domain of the VMs.",
    )
    interface: str = patterned(
        INTERFACE_RE,
        INTERFACE_HINT,
        "ens192",
        default="eth0",
        description="Network interface on the nodes that carries the VIP (override per node).",
    )


def is_host(addr: IPv4Address, net: IPv4Network) -> bool:
    return addr in net and addr not in (net.network_address, net.broadcast_address)


def network_problems(network: Network) -> Problems:
    out = Problems()
    net = network.subnet
    if net.prefixlen > 30:
        out.add(
            "network.subnet",
            show(str(net)),
            "a subnet with room for a VIP and two nodes (/30 or larger), e.g. `subnet: 192.168.4.0/24`",
        )
    if net.prefixlen < MIN_PREFIX:
        out.add(
            "network.subnet",
            show(str(net)),
            f"the nodes' LAN, /{MIN_PREFIX} or narrower (the stats, metrics and /healthz ports are open to "
            "`network.subnet` unless `haproxy.stats.allowFrom` says otherwise), e.g. `subnet: 192.168.4.0/24`",
        )
    if network.gateway is not None and not is_host(network.gateway, net):
        out.add(
            "network.gateway",
            show(str(network.gateway)),
            f"a host address inside `network.subnet` {net}, e.g. `gateway: {next(iter(net.hosts()), net.network_address)}`",
        )
    return out


def dns_problems(network: Network, owners: dict[IPv4Address, str]) -> Problems:
    """A DNS server is another machine than the VIP and the nodes (`owners`: address -> its key)."""
    out = Problems()
    for i, dns in enumerate(network.dns_servers):
        if dns in owners:
            out.add(f"network.dnsServers[{i}]", show(str(dns)), f"a DNS server's address, not `{owners[dns]}`")
    return out
