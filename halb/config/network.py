"""The segment the pair lives on: subnet, gateway, DNS, the interface that carries the VIP."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from pydantic import Field

from halb.config.base import INTERFACE_HINT, INTERFACE_RE, Model, patterned
from halb.config.errors import Problems, show
from halb.config.words import IPv6Addr, IPv6Net, KeepalivedWord

MIN_PREFIX = 16  # the broadest subnet taken for the nodes' LAN (65536 addresses)


class Network(Model):
    """The L2 segment both load balancers and the VIP live on."""

    subnet: IPv4Network = Field(
        description="The segment's CIDR; the VIP, both nodes and the gateway must lie in it.",
        examples=["192.168.4.0/24"],
    )
    gateway: IPv4Address | None = Field(
        None,
        description="Default gateway given to cloned VMs. halb-vrrp-guard also asks it (ARP) whether a node is cut "
        "off from the LAN; without a gateway that check is off.",
        examples=["192.168.4.1"],
    )
    subnet6: IPv6Net | None = Field(
        None,
        description="The segment's IPv6 prefix, when the nodes have IPv6 addresses too (for IPv6 VIPs).",
        examples=["2001:db8:4::/64"],
    )
    gateway6: IPv6Addr | None = Field(
        None,
        description="IPv6 default gateway: in `subnet6`, or the router's link-local address (`fe80::1`).",
        examples=["2001:db8:4::1"],
    )
    dns_servers: list[IPv4Address] = Field(
        default_factory=list,
        max_length=3,
        description="DNS servers given to cloned VMs (at most 3).",
        examples=[["192.168.4.1"]],
    )
    domain: str = patterned(
        r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
        "a DNS domain: dot-separated labels of letters, digits and '-'",
        "lab.example.com",
        default="localdomain",
        description="DNS domain of the VMs.",
    )
    interface: KeepalivedWord = patterned(
        INTERFACE_RE,
        INTERFACE_HINT,
        "ens192",
        default="eth0",
        description="Network interface on the nodes that carries the VIP (override per node).",
    )


def special_purpose(address: IPv4Address | IPv6Address | IPv4Network | IPv6Network) -> str:
    """Why an address (or a network's first address) cannot be on a LAN segment halb builds;
    empty when it can."""
    first = address.network_address if isinstance(address, IPv4Network | IPv6Network) else address
    if isinstance(first, IPv6Address) and first.ipv4_mapped is not None:
        return "an IPv4-mapped IPv6 address"
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved"):
        if getattr(first, f"is_{kind}"):
            return f"{'an' if kind == 'unspecified' else 'a'} {kind.replace('_', '-')} address"
    return ""


def segment_addresses(network: Network) -> dict[str, str]:
    """The segment's addresses that no VIP may take -> what they are (as messages name them)."""
    net = network.subnet
    out = {
        str(net.network_address): "network.subnet's network address",
        str(net.broadcast_address): "network.subnet's broadcast address",
    }
    if network.gateway is not None:
        out[str(network.gateway)] = "network.gateway"
    for i, dns in enumerate(network.dns_servers):
        out.setdefault(str(dns), f"network.dnsServers[{i}]")
    if network.subnet6 is not None:
        out[str(network.subnet6.network_address)] = "network.subnet6's subnet-router anycast address"
    return out


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
    special = special_purpose(net)
    if special:
        out.add("network.subnet", show(str(net)), f"a LAN's subnet, not {special}, e.g. `subnet: 192.168.4.0/24`")
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


# With `mode: bgp` a VIP is routed to the nodes by the site's routers: it lies off their segment.
ROUTED_VIP = (
    "an address outside `network.subnet{six}` {net}: with `mode: bgp` the routers route the VIP to the "
    "nodes, and hosts on the segment would look for it there in vain"
)
