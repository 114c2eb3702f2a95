"""Address planning: pure functions from config to the three addresses.

Given addresses are kept; missing ones are taken in order (VIP first, then the
nodes in the order they are listed) from `addresses.pool`, skipping the
network, broadcast and gateway addresses, DNS servers, backend servers and every
address already given. The same config always yields the same plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from halb.config import HalbConfig, Problem


@dataclass(frozen=True)
class AddressPlan:
    vip: IPv4Address
    nodes: dict[str, IPv4Address]  # node name -> address
    prefixlen: int

    def address(self, node: str) -> IPv4Address:
        return self.nodes[node]


class AddressError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def _pool(first: IPv4Address, last: IPv4Address) -> Iterator[IPv4Address]:
    for i in range(int(first), int(last) + 1):
        yield IPv4Address(i)


def plan_addresses(cfg: HalbConfig) -> AddressPlan:
    from halb.config import Problem

    net = cfg.network.subnet
    wanted: list[str] = []  # "vip" or node names that need an address
    if cfg.addresses.vip is None:
        wanted.append("vip")
    wanted += [n.name for n in cfg.nodes if n.address is None]

    given = {a for a in [cfg.addresses.vip, *(n.address for n in cfg.nodes)] if a is not None}
    taken = given | {net.network_address, net.broadcast_address} | set(cfg.network.dns_servers)
    if cfg.network.gateway is not None:
        taken.add(cfg.network.gateway)
    taken |= {s.address for svc in cfg.haproxy.services for s in svc.servers}

    allocated: dict[str, IPv4Address] = {}
    if wanted:
        pool = cfg.addresses.pool
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
        problems = []
        for key, addr in (("addresses.pool.first", pool.first), ("addresses.pool.last", pool.last)):
            if addr not in net:
                problems.append(Problem(key, repr(str(addr)), f"an address inside `network.subnet` {net}"))
        if pool.first > pool.last:
            problems.append(Problem("addresses.pool", f"{pool.first}-{pool.last}", "`first` not after `last`"))
        if problems:
            raise AddressError(problems)
        free = (a for a in _pool(pool.first, pool.last) if a not in taken)
        for name in wanted:
            found = next(free, None)
            if found is None:
                raise AddressError(
                    [
                        Problem(
                            "addresses.pool",
                            f"{pool.first}-{pool.last}",
                            f"enough free addresses for {', '.join(wanted)} ({len(wanted)} needed)",
                        )
                    ]
                )
            allocated[name] = found

    vip = cfg.addresses.vip or allocated["vip"]
    nodes = {n.name: n.address or allocated[n.name] for n in cfg.nodes}
    return AddressPlan(vip=vip, nodes=nodes, prefixlen=net.prefixlen)
