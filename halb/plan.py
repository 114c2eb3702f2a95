"""The plan: every fact halb derives from a validated config, computed once per config.

    plan = cfg.plan               # the same object on every read: nothing recomputes it
    plan.vip                      # the primary VIP
    plan.address("lb1")           # a node's IPv4 address (given, or taken from `addresses.pool`)
    plan.vips                     # every VIP with its defaults filled in (vrid, preferred node)
    plan.instances["lb1"]         # lb1's VRRP instances: addresses, priority, starting state
    plan.firewall["lb1"]          # what lb1's firewall lets in
    plan.backends_penalty         # how far a node with a service without usable server drops

Where a node's keepalived priority comes from: `priority` below, and nowhere else. render (the
files), commands (the step scripts), the components, status and verify read the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_network
from typing import TYPE_CHECKING

from halb.config.addresses import Allocation, allocate_addresses
from halb.config.haproxy import Service
from halb.config.nodes import Node
from halb.config.vips import ResolvedVip, resolve_vips
from halb.config.words import firewall_address

if TYPE_CHECKING:
    from halb.config.model import HalbConfig

INSTANCE = "halb"  # the VRRP instance's name (a stack without `vips`), and the prefix of each one's with them
MAINTENANCE_PRIORITY = 1  # below any configured priority: the peer preempts at once
# A node with a service that has no usable server drops below its peer: by the gap between the two
# priorities plus one, and a margin, so that it also stays below a peer whose priority the
# nopreempt hold raised at run time (by at most the gap plus one) and above MAINTENANCE_PRIORITY.
BACKENDS_PENALTY_MARGIN = 100
# keepalived.conf directives both nodes must agree on (with the password in halb-auth.conf): a
# change of any of them goes through the commit and rejoin phases (halb.components.rollout).
SHARED_VRRP_DIRECTIVES = ("vrrp_version", "virtual_router_id", "advert_int", "auth_type")


@dataclass(frozen=True)
class Plan:
    addresses: Allocation
    vips: tuple[ResolvedVip, ...]
    instances: Mapping[str, tuple[dict[str, object], ...]]  # node name -> its VRRP instances
    firewall: Mapping[str, tuple[str, ...]]  # node name -> the rules its firewall lets in
    backends_penalty: int

    @property
    def vip(self) -> IPv4Address:
        return self.addresses.vip

    def address(self, node: str) -> IPv4Address:
        return self.addresses.nodes[node]


def make_plan(cfg: HalbConfig) -> Plan:
    """The plan of a validated config (read it as `cfg.plan`, which computes it once)."""
    addresses = allocate_addresses(cfg)
    vrid = cfg.keepalived.vrid if cfg.keepalived.vrid is not None else int(addresses.vip) & 0xFF
    vips = tuple(resolve_vips(cfg.vips, addresses.vip, vrid, cfg.network, cfg.nodes))
    return Plan(
        addresses=addresses,
        vips=vips,
        instances={n.name: tuple(vrrp_instances(cfg, addresses, vips, n.name)) for n in cfg.nodes},
        firewall={n.name: tuple(firewall_rules(cfg, vips, addresses, n.name)) for n in cfg.nodes},
        backends_penalty=backends_penalty(cfg),
    )


def priority(cfg: HalbConfig, node: Node, vip: ResolvedVip) -> tuple[int, int]:
    """(the priority `node` runs `vip`'s instance with, the configured one). The VIP's preferred
    node (`vips[i].preferred`, else the master) has `keepalived.masterPriority`, the other
    `keepalived.backupPriority`; a node in maintenance has MAINTENANCE_PRIORITY in every instance.
    At run time keepalived lowers it by `backends_penalty` while a service has no usable server
    (halb-haproxy-watch), and with nopreempt halb-vrrp-guard raises a node that took a VIP over."""
    k = cfg.keepalived
    configured = k.master_priority if vip.preferred == node.name else k.backup_priority
    return (MAINTENANCE_PRIORITY if node.maintenance else configured), configured


def backends_penalty(cfg: HalbConfig) -> int:
    k = cfg.keepalived
    return k.master_priority - k.backup_priority + 1 + BACKENDS_PENALTY_MARGIN


def vrrp_instances(
    cfg: HalbConfig, addresses: Allocation, vips: tuple[ResolvedVip, ...], node_name: str
) -> list[dict[str, object]]:
    """One VRRP instance per VIP, as `node_name` runs it: the VIP's preferred node starts MASTER
    (BACKUP with nopreempt), the other BACKUP. A stack without `vips` has one, named `halb` and
    numbered `keepalived.vrid` (or the VIP's last octet)."""
    node, peer, k = cfg.node(node_name), cfg.peer(node_name), cfg.keepalived
    out: list[dict[str, object]] = []
    for v in vips:
        running, configured = priority(cfg, node, v)
        six = v.family == 6  # adverts for an IPv6 VIP go over the nodes' IPv6 addresses (VRRPv3)
        out.append(
            {
                "name": INSTANCE if not cfg.vips else f"{INSTANCE}_{v.name}",
                "vrid": v.vrid,
                "vip": v.address,
                "prefixlen": v.prefixlen,
                "src": node.address6 if six else addresses.nodes[node.name],
                "peer": peer.address6 if six else addresses.nodes[peer.name],
                "priority": running,
                "base_priority": configured,  # maintenance aside (halb-vrrp-guard's raise counts from it)
                # halb-vrrp-guard watches the peer's adverts by their source: an IPv6 instance's only
                # with unicast adverts (multicast ones come from a link-local address)
                "guarded": not six or k.unicast,
                "state": "BACKUP" if k.nopreempt or v.preferred != node.name else "MASTER",
            }
        )
    return out


def service_vips(cfg: HalbConfig, service: Service, vips: tuple[ResolvedVip, ...] | None = None) -> list[ResolvedVip]:
    """The VIPs a service is served on: those it lists, else all."""
    every = cfg.plan.vips if vips is None else vips
    return [v for v in every if service.vips is None or v.name in service.vips]


def stats_allow(cfg: HalbConfig) -> list[IPv4Network | IPv6Network]:
    """Who may reach the stats port besides the node itself: `allowFrom`, else the pair's subnets
    (the stats port is bound on IPv6 too when one of them is IPv6)."""
    if cfg.haproxy.stats.allow_from is not None:
        return list(cfg.haproxy.stats.allow_from)
    return [n for n in (cfg.network.subnet, cfg.network.subnet6) if n is not None]


def firewall_rules(cfg: HalbConfig, vips: tuple[ResolvedVip, ...], addresses: Allocation, node_name: str) -> list[str]:
    """Exactly what the node's firewall must let in: VRRP (IP protocol 112) from the peer only,
    the service ports from anywhere, the stats port (and the node exporter's) from
    `haproxy.stats.allowFrom`. With an IPv6 VIP, also VRRP from the peer's IPv6 address and the
    ports of the services bound on IPv6."""
    if cfg.mode == "bgp":
        return bgp_firewall_rules(cfg, vips)
    peer = cfg.peer(node_name)
    rules = [f"vrrp {firewall_address(ip_network(addresses.nodes[peer.name]))}"]
    if peer.address6 is not None and any(v.family == 6 for v in vips):
        rules += [f"vrrp {firewall_address(ip_network(peer.address6))}"]
    rules += [f"tcp {int(s.port)} 0.0.0.0/0" for s in cfg.haproxy.services]
    if peer.address6 is not None:
        six = [s for s in cfg.haproxy.services if 6 in {v.family for v in service_vips(cfg, s, vips)}]
        rules += [f"tcp {int(s.port)} ::/0" for s in six]
    rules += [f"tcp {int(cfg.haproxy.stats.port)} {firewall_address(net)}" for net in stats_allow(cfg)]
    return rules + exporter_rules(cfg)


def exporter_rules(cfg: HalbConfig) -> list[str]:
    """The node exporter's port from `haproxy.stats.allowFrom`, as the stats port (it listens on the
    node's IPv4 address only)."""
    if not cfg.monitoring.node_exporter:
        return []
    exporter = int(cfg.monitoring.node_exporter_port)
    return [f"tcp {exporter} {firewall_address(net)}" for net in stats_allow(cfg) if net.version == 4]


BGP_PORT = 179
BFD_PORTS = (3784, 4784)  # single-hop and multihop BFD control (RFC 5881, RFC 5883)


def bgp_firewall_rules(cfg: HalbConfig, vips: tuple[ResolvedVip, ...]) -> list[str]:
    """BGP mode: BGP and BFD from each peer only, the service ports from anywhere (over IPv6 too
    with an IPv6 VIP), the stats port (and the node exporter's) from `haproxy.stats.allowFrom`."""
    assert cfg.bgp is not None
    rules = []
    for peer in cfg.bgp.peers:
        source = firewall_address(ip_network(peer.address))
        rules += [f"tcp {BGP_PORT} {source}", *(f"udp {port} {source}" for port in BFD_PORTS)]
    rules += [f"tcp {int(s.port)} 0.0.0.0/0" for s in cfg.haproxy.services]
    if any(v.family == 6 for v in vips):
        rules += [f"tcp {int(s.port)} ::/0" for s in cfg.haproxy.services]
    rules += [f"tcp {int(cfg.haproxy.stats.port)} {firewall_address(net)}" for net in stats_allow(cfg)]
    return rules + exporter_rules(cfg)
