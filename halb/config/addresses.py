"""Address allocation: pure functions from the config's sections to the VIP and node addresses,
and the checks that the allocated addresses fit the subnet.

Given addresses are kept; missing ones are taken in order (VIP first, then the nodes in the
order they are listed) from `addresses.pool`, skipping the network, broadcast and gateway
addresses, DNS servers, backend servers and every address already given. The same config
always yields the same allocation (halb.plan holds it as `plan.addresses`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from itertools import islice
from typing import Protocol

from pydantic import Field

from halb.config.base import Model
from halb.config.errors import Problem, Problems, show
from halb.config.haproxy import Haproxy
from halb.config.network import ROUTED_VIP, Network
from halb.config.nodes import Node


class AddressPool(Model):
    """An inclusive range from which missing addresses are allocated in order."""

    first: IPv4Address = Field(description="First address of the pool.", examples=["192.168.4.60"])
    last: IPv4Address = Field(description="Last address of the pool.", examples=["192.168.4.69"])


class Addresses(Model):
    vip: IPv4Address | None = Field(
        None,
        description="The floating virtual IP clients use. Allocated from `pool` when unset.",
        examples=["192.168.4.60"],
    )
    pool: AddressPool | None = Field(
        None,
        description="Range for addresses not given (VIP first, then nodes in order).",
        examples=[{"first": "192.168.4.60", "last": "192.168.4.69"}],
    )


@dataclass(frozen=True)
class Allocation:
    vip: IPv4Address
    nodes: dict[str, IPv4Address]  # node name -> address
    prefixlen: int


class AddressError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class HasAddress(Protocol):
    @property
    def address(self) -> IPv4Address | IPv6Address: ...


class HasAddresses(Protocol):
    @property
    def network(self) -> Network: ...
    @property
    def addresses(self) -> Addresses: ...
    @property
    def nodes(self) -> list[Node]: ...
    @property
    def haproxy(self) -> Haproxy: ...
    @property
    def vips(self) -> Sequence[HasAddress]: ...


def allocate_addresses(cfg: HasAddresses) -> Allocation:
    backends = [s.address for svc in cfg.haproxy.services for s in svc.servers]
    return allocate(cfg.network, with_primary_vip(cfg.addresses, cfg.vips), cfg.nodes, backends)


def with_primary_vip(addresses: Addresses, vips: Sequence[HasAddress]) -> Addresses:
    """With `vips` and no `addresses.vip`, the first IPv4 VIP is the primary one (the allocation's `vip`)."""
    first_v4 = next((v.address for v in vips if isinstance(v.address, IPv4Address)), None)
    if addresses.vip is None and first_v4 is not None:
        return addresses.model_copy(update={"vip": first_v4})
    return addresses


def allocate(
    network: Network, addresses: Addresses, nodes: list[Node], backends: Iterable[IPv4Address | IPv6Address]
) -> Allocation:
    """The VIP and node addresses; raises AddressError when the pool cannot supply the missing ones."""
    net = network.subnet
    wanted = (["vip"] if addresses.vip is None else []) + [n.name for n in nodes if n.address is None]
    given = {a for a in [addresses.vip, *(n.address for n in nodes)] if a is not None}
    taken = given | {net.network_address, net.broadcast_address} | set(network.dns_servers) | set(backends)
    if network.gateway is not None:
        taken.add(network.gateway)
    allocated = _allocate(network, addresses.pool, wanted, taken) if wanted else {}
    vip = addresses.vip or allocated["vip"]
    return Allocation(vip=vip, nodes={n.name: n.address or allocated[n.name] for n in nodes}, prefixlen=net.prefixlen)


def _allocate(
    network: Network, pool: AddressPool | None, wanted: list[str], taken: set[IPv4Address | IPv6Address]
) -> dict[str, IPv4Address]:
    net = network.subnet
    if pool is None:
        raise AddressError(
            [
                Problem(
                    "addresses.pool",
                    "nothing",
                    f"a pool to allocate {', '.join(wanted)} from, or explicit addresses, "
                    "e.g. `pool: {first: 192.168.4.60, last: 192.168.4.69}`",
                )
            ]
        )
    problems = Problems()
    for key, addr in (("addresses.pool.first", pool.first), ("addresses.pool.last", pool.last)):
        if addr not in net:
            problems.add(key, show(str(addr)), f"an address inside `network.subnet` {net}")
    if pool.first > pool.last:
        problems.add("addresses.pool", f"{pool.first}-{pool.last}", "`first` not after `last`")
    if problems:
        raise AddressError(problems)
    candidates = (IPv4Address(i) for i in range(int(pool.first), int(pool.last) + 1))
    free = list(islice((a for a in candidates if a not in taken), len(wanted)))
    if len(free) < len(wanted):
        raise AddressError(
            [
                Problem(
                    "addresses.pool",
                    f"{pool.first}-{pool.last}",
                    f"enough free addresses for {', '.join(wanted)} ({len(wanted)} needed)",
                )
            ]
        )
    return dict(zip(wanted, free, strict=False))


def allocation_problems(
    network: Network, nodes: list[Node], p: Allocation, routed: bool = False
) -> tuple[Problems, dict[IPv4Address, str]]:
    """Problems of the allocated addresses, and which key owns each of halb's own addresses.
    `routed` (BGP mode): the VIP is routed to the nodes, so it must be off their segment."""
    out = Problems()
    net = network.subnet
    special = {net.network_address: "the network address", net.broadcast_address: "the broadcast address"}
    if network.gateway is not None:
        special[network.gateway] = "the gateway"
    owners: dict[IPv4Address, str] = {}
    keyed = [("addresses.vip", p.vip)] + [(f"nodes[{i}].address", p.nodes[n.name]) for i, n in enumerate(nodes)]
    for key, addr in keyed:
        if routed and key == "addresses.vip":
            if addr in net:
                out.add(key, show(str(addr)), ROUTED_VIP.format(six="", net=net))
        elif addr not in net:
            out.add(key, show(str(addr)), f"an address inside `network.subnet` {net}")
        elif addr in special:
            out.add(key, show(str(addr)), f"a free host address, not {special[addr]}")
        if addr in owners:
            out.add(key, show(str(addr)), f"an address not already used by `{owners[addr]}`")
        owners.setdefault(addr, key)
    return out, owners
