"""Several VIPs (`halb:vips`), each its own VRRP instance with a preferred node (active/active).

A stack without `vips` has exactly one: `addresses.vip` (or the pool's first address), preferred
by the master, with `keepalived.vrid` (or the VIP's last octet), and its one VRRP instance is
named `halb` (the golden files of the stacks without `vips` hold it to that).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from pydantic import Field

from halb.config.base import NAME_HINT, NAME_RE, Model, patterned
from halb.config.errors import Problems, show
from halb.config.keepalived import SyncGroup
from halb.config.network import ROUTED_VIP, Network, special_purpose
from halb.config.nodes import Node
from halb.config.words import AnyAddr, KeepalivedWord

MIN_PREFIX6 = 48  # the broadest IPv6 prefix taken for the nodes' LAN
MAX_VIPS = 255  # VRRP router ids are 1-255, one per VIP on the segment


class Vip(Model):
    name: KeepalivedWord = patterned(NAME_RE, NAME_HINT, "public", description="The VIP's name (its VRRP instance's).")
    address: AnyAddr = Field(
        description="The floating address, IPv4 or IPv6 (IPv6 needs `keepalived.version: 3`).",
        examples=["192.168.4.60"],
    )
    preferred: str | None = Field(
        None, description="The node that holds it when both are well; the master when unset.", examples=["lb2"]
    )
    vrid: int | None = Field(
        None,
        ge=1,
        le=255,
        description="Its VRRP router id (1-255), unique per segment; derived when unset.",
        examples=[61],
    )


@dataclass(frozen=True)
class ResolvedVip:
    """One VIP as the nodes run it."""

    name: str
    address: IPv4Address | IPv6Address
    prefixlen: int
    preferred: str  # node name
    vrid: int

    @property
    def family(self) -> int:
        return self.address.version


def resolve_vips(
    vips: list[Vip], default: IPv4Address, default_vrid: int, network: Network, nodes: list[Node]
) -> list[ResolvedVip]:
    """The VIPs with every default filled in: the one of `addresses.vip` when `vips` is empty;
    otherwise, a VIP's vrid when unset is the first id from its last octet (or byte) upwards that
    no other VIP takes."""
    master = next((n.name for n in nodes if n.role == "master"), nodes[0].name if nodes else "")
    if not vips:
        return [ResolvedVip("vip", default, network.subnet.prefixlen, master, default_vrid)]
    taken = {v.vrid for v in vips if v.vrid is not None}
    out = []
    for v in vips:
        vrid = v.vrid
        if vrid is None:
            vrid = _free_vrid((int(v.address) & 0xFF) or 1, taken)
            taken.add(vrid)
        subnet = network.subnet6 if v.address.version == 6 else network.subnet
        prefixlen = subnet.prefixlen if subnet is not None else v.address.max_prefixlen
        out.append(ResolvedVip(v.name, v.address, prefixlen, v.preferred or master, vrid))
    return out


def _free_vrid(start: int, taken: set[int]) -> int:
    """The first router id from `start` upwards (1-255, wrapping) that is not taken; 0 when all are
    (refused by `vips_problems`: more VIPs than router ids). At most 255 steps."""
    return next((vrid for i in range(255) if (vrid := (start - 1 + i) % 255 + 1) not in taken), 0)


def vips_problems(
    vips: list[Vip],
    network: Network,
    nodes: list[Node],
    version: int,
    owners: dict[str, str],
    service_vips: dict[str, list[str]],
    routed: bool = False,
) -> Problems:
    """Every problem of `halb:vips` at once. `owners`: addresses already taken (nodes, backends) ->
    their key; `service_vips`: each service's key -> the VIP names it lists."""
    out = Problems()
    first: dict[tuple[str, object], int] = {}  # (what, value) -> the first VIP that has it
    node_names = {n.name for n in nodes}
    for i, v in enumerate(vips):
        key = f"vips[{i}]"
        for what, value, expected in (
            ("name", v.name, "a name"),
            ("address", str(v.address), "an address"),
            ("vrid", v.vrid, "a router id"),
        ):
            if value is not None and (what, value) in first:
                out.add(f"{key}.{what}", show(value), f"{expected} not already used by `vips[{first[what, value]}]`")
            if value is not None:
                first.setdefault((what, value), i)
        out += _vip_problems(key, v, network, version, owners, routed)
        if v.preferred is not None and v.preferred not in node_names:
            out.add(f"{key}.preferred", show(v.preferred), f"one of the nodes: {', '.join(sorted(node_names))}")
    names = [v.name for v in vips]
    if vips and not any(v.address.version == 4 for v in vips):
        out.add("vips", show([str(v.address) for v in vips]), "at least one IPv4 VIP (the first is the primary one)")
    for service, listed in service_vips.items():
        for j, name in enumerate(listed):
            if name not in names:
                out.add(f"{service}.vips[{j}]", show(name), f"one of the VIPs: {', '.join(names) or '(none)'}")
    return out


def _vip_problems(key: str, v: Vip, network: Network, version: int, owners: dict[str, str], routed: bool) -> Problems:
    """One VIP's address: free, inside the subnet of its family (outside it when `routed`, in BGP
    mode), and IPv6 only with VRRPv3."""
    out = Problems()
    address = str(v.address)
    special = special_purpose(v.address)
    if special:
        out.add(f"{key}.address", show(address), f"a unicast address for hosts on the LAN, not {special}")
    elif address in owners:
        out.add(f"{key}.address", show(address), f"a free address, not `{owners[address]}`")
    six = v.address.version == 6
    subnet = network.subnet6 if six else network.subnet
    if subnet is None:
        if not routed:
            out.add(
                f"{key}.address",
                show(address),
                "an IPv4 address, or `network.subnet6` set so the nodes have an IPv6 subnet to hold it in",
            )
    elif routed:
        if v.address in subnet:
            out.add(f"{key}.address", show(address), ROUTED_VIP.format(six="6" if six else "", net=subnet))
    elif v.address not in subnet:
        out.add(f"{key}.address", show(address), f"an address inside `network.subnet{'6' if six else ''}` {subnet}")
    if six and version != 3:
        out.add(f"{key}.address", show(address), "an IPv4 address, or `keepalived.version: 3` (IPv6 needs VRRPv3)")
    return out


def ipv6_problems(network: Network, nodes: list[Node], vips: list[Vip]) -> Problems:
    """The IPv6 side of the segment: `subnet6` and `gateway6`, each node's `address6` inside it, and
    an `address6` on every node as soon as one VIP is IPv6 (VRRPv3 adverts go node to node over it)."""
    out = Problems()
    net6 = network.subnet6
    if net6 is not None and not MIN_PREFIX6 <= net6.prefixlen <= 126:
        out.add(
            "network.subnet6", show(str(net6)), f"an IPv6 prefix from /{MIN_PREFIX6} to /126, e.g. `2001:db8:4::/64`"
        )
    if net6 is not None and special_purpose(net6):
        out.add(
            "network.subnet6",
            show(str(net6)),
            f"a LAN's IPv6 prefix, not {special_purpose(net6)}, e.g. `2001:db8:4::/64`",
        )
    gw6 = network.gateway6
    if gw6 is not None and not gw6.is_link_local and (net6 is None or gw6 not in net6 or gw6 == net6.network_address):
        out.add(
            "network.gateway6",
            show(str(gw6)),
            "a host address inside `network.subnet6`, or the router's link-local address, e.g. `gateway6: fe80::1`",
        )
    first: dict[IPv6Address, str] = {}
    for i, n in enumerate(nodes):
        key = f"nodes[{i}].address6"
        if n.address6 is None:
            continue
        if net6 is None:
            out.add(key, show(str(n.address6)), "an IPv6 address only with `network.subnet6` set")
        elif n.address6 not in net6 or n.address6 == net6.network_address:
            out.add(key, show(str(n.address6)), f"a host address inside `network.subnet6` {net6}")
        if n.address6 == network.gateway6:
            out.add(key, show(str(n.address6)), "a free address, not `network.gateway6`")
        if n.address6 in first:
            out.add(key, show(str(n.address6)), f"an address not already used by `{first[n.address6]}`")
        first.setdefault(n.address6, key)
    six = [i for i, v in enumerate(vips) if v.address.version == 6]
    for i, n in enumerate(nodes):
        if six and n.address6 is None:
            out.add(
                f"nodes[{i}].address6",
                "nothing",
                f"an IPv6 address in `network.subnet6` on every node, since `vips[{six[0]}]` is IPv6 "
                "(VRRPv3 adverts for it go node to node over IPv6), e.g. `address6: 2001:db8:4::61`",
            )
    return out


def owners6(nodes: list[Node], network: Network) -> dict[str, str]:
    """The IPv6 addresses halb's nodes and gateway already take -> their key."""
    out = {str(n.address6): f"nodes[{i}].address6" for i, n in enumerate(nodes) if n.address6 is not None}
    if network.gateway6 is not None:
        out.setdefault(str(network.gateway6), "network.gateway6")
    return out


def sync_group_problems(groups: list[SyncGroup], plans: list[ResolvedVip]) -> Problems:
    """Each group names two or more known VIPs, no VIP is in two groups, and a group's VIPs share
    their preferred node (or they would pull the group two ways)."""
    out = Problems()
    by_name = {p.name: p for p in plans}
    seen: dict[str, str] = {}
    names: set[str] = set()
    for i, g in enumerate(groups):
        key = f"keepalived.syncGroups[{i}]"
        if g.name in names:
            out.add(f"{key}.name", show(g.name), "a name not already used by another sync group")
        names.add(g.name)
        if len(set(g.vips)) < 2:
            out.add(f"{key}.vips", show(g.vips), "two or more VIP names, e.g. `[public, public6]`")
        for j, v in enumerate(g.vips):
            if v in g.vips[:j]:
                out.add(f"{key}.vips[{j}]", show(v), "each VIP once in its group")
            elif v not in by_name:
                out.add(f"{key}.vips[{j}]", show(v), f"one of the VIPs: {', '.join(by_name) or '(none: set `vips`)'}")
            elif v in seen and seen[v] != key:
                out.add(f"{key}.vips[{j}]", show(v), f"a VIP in one sync group only (it is in `{seen[v]}`)")
            seen.setdefault(v, key)
        preferred = {by_name[v].preferred for v in g.vips if v in by_name}
        if len(preferred) > 1:
            out.add(
                f"{key}.vips",
                show(g.vips),
                f"VIPs with the same `preferred` node (these prefer {', '.join(sorted(preferred))})",
            )
    return out
