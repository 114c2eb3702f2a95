"""Several VIPs (`halb:vips`), each its own VRRP instance with a preferred node (active/active).

A stack without `vips` has exactly one: `addresses.vip` (or the pool's first address), preferred
by the master, with `keepalived.vrid` (or the VIP's last octet): the files such a stack renders
stay what they were, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from pydantic import Field

from halb.config.base import NAME_HINT, NAME_RE, Model, patterned
from halb.config.errors import Problems, show
from halb.config.network import Network
from halb.config.nodes import Node


class Vip(Model):
    name: str = patterned(NAME_RE, NAME_HINT, "public", description="The VIP's name (its VRRP instance's).")
    address: IPv4Address | IPv6Address = Field(
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
class VipPlan:
    """One VIP as the nodes run it."""

    name: str
    address: IPv4Address | IPv6Address
    prefixlen: int
    preferred: str  # node name
    vrid: int

    @property
    def family(self) -> int:
        return self.address.version


def plan_vips(
    vips: list[Vip], default: IPv4Address, default_vrid: int, network: Network, nodes: list[Node]
) -> list[VipPlan]:
    """The VIPs with every default filled in: the one of `addresses.vip` when `vips` is empty;
    otherwise, a VIP's vrid when unset is the first id from its last octet (or byte) upwards that
    no other VIP takes."""
    master = next((n.name for n in nodes if n.role == "master"), nodes[0].name if nodes else "")
    if not vips:
        return [VipPlan("vip", default, network.subnet.prefixlen, master, default_vrid)]
    taken = {v.vrid for v in vips if v.vrid is not None}
    out = []
    for v in vips:
        vrid = v.vrid
        if vrid is None:
            vrid = (int(v.address) & 0xFF) or 1
            while vrid in taken:
                vrid = vrid % 255 + 1
            taken.add(vrid)
        subnet = network.subnet6 if v.address.version == 6 else network.subnet
        prefixlen = subnet.prefixlen if subnet is not None else v.address.max_prefixlen
        out.append(VipPlan(v.name, v.address, prefixlen, v.preferred or master, vrid))
    return out


def vips_problems(
    vips: list[Vip],
    network: Network,
    nodes: list[Node],
    version: int,
    owners: dict[str, str],
    service_vips: dict[str, list[str]],
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
        out += _vip_problems(key, v, network, version, owners)
        if v.preferred is not None and v.preferred not in node_names:
            out.add(f"{key}.preferred", show(v.preferred), f"one of the nodes: {', '.join(sorted(node_names))}")
    names = [v.name for v in vips]
    for service in service_vips:  # until each frontend binds only its VIPs
        out.add(f"{service}.vips", "a list", "nothing yet: every service listens on every VIP")
    for service, listed in service_vips.items():
        for j, name in enumerate(listed):
            if name not in names:
                out.add(f"{service}.vips[{j}]", show(name), f"one of the VIPs: {', '.join(names) or '(none)'}")
    return out


def _vip_problems(key: str, v: Vip, network: Network, version: int, owners: dict[str, str]) -> Problems:
    """One VIP's address: free, inside the subnet of its family, and IPv6 only with VRRPv3."""
    out = Problems()
    address = str(v.address)
    if address in owners:
        out.add(f"{key}.address", show(address), f"a free address, not `{owners[address]}`")
    six = v.address.version == 6
    subnet = network.subnet6 if six else network.subnet
    if subnet is None:
        out.add(
            f"{key}.address",
            show(address),
            "an IPv4 address, or `network.subnet6` set so the nodes have an IPv6 subnet to hold it in",
        )
    elif v.address not in subnet:
        out.add(f"{key}.address", show(address), f"an address inside `network.subnet{'6' if six else ''}` {subnet}")
    if six and version != 3:
        out.add(f"{key}.address", show(address), "an IPv4 address, or `keepalived.version: 3` (IPv6 needs VRRPv3)")
    if six:  # until the nodes' IPv6 addresses, VRRPv3 over IPv6 and the v6 firewall are rendered
        out.add(f"{key}.address", show(address), "an IPv4 address: halb does not serve IPv6 VIPs yet")
    return out
