"""BGP mode (`mode: bgp`): every node announces the VIPs to the site's routers through FRR, and the
routers spread flows over the nodes by ECMP; BFD takes a dead node out within its detect time."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Literal

from pydantic import Field

from halb.config.base import Model, SecretValue
from halb.config.errors import Problems, show
from halb.config.words import AnyAddr

MAX_NODES = 8  # FRR's and most routers' default ECMP width, and what the lab can boot
PRIVATE_ASNS = "64512-65534 or 4200000000-4294967294 (private, RFC 6996)"
# Ranges no BGP speaker may use: reserved (RFC 7607, RFC 7300), AS_TRANS (RFC 6793), and those kept
# for documentation (RFC 5398) and by IANA.
RESERVED_ASNS = (
    (0, 0, "reserved (RFC 7607)"),
    (23456, 23456, "AS_TRANS (RFC 6793)"),
    (64496, 64511, "for documentation (RFC 5398)"),
    (65535, 65535, "reserved (RFC 7300)"),
    (65536, 65551, "for documentation (RFC 5398)"),
    (65552, 131071, "reserved by IANA"),
    (4294967295, 4294967295, "reserved (RFC 7300)"),
)
GRACEFUL_SHUTDOWN = "65535:0"  # RFC 8326: halb adds it while a node drains
ASN_EXAMPLE = "asn: 64512"


class BgpPeer(Model):
    address: AnyAddr = Field(
        description="A router the nodes peer with: on the segment, or reached through `network.gateway` "
        "(then the session is eBGP multihop).",
        examples=["192.168.4.1"],
    )
    asn: int = Field(ge=1, le=4294967294, description="The router's AS number.", examples=[64513])
    password: SecretValue | None = Field(
        None,
        description="TCP MD5 password of the session (secret; RFC 2385): 1-80 characters, one word.",
    )


class Bfd(Model):
    receive_ms: int = Field(
        100, ge=10, le=60000, description="Minimum interval between BFD packets this node accepts, in ms."
    )
    transmit_ms: int = Field(100, ge=10, le=60000, description="Interval between BFD packets this node sends, in ms.")
    multiplier: int = Field(
        3, ge=2, le=255, description="Packets missed before the peer is declared down (detect time = this × interval)."
    )

    @property
    def detect_ms(self) -> int:
        """Time to declare a silent peer down, as each side sees it with these settings on both."""
        return self.multiplier * max(self.receive_ms, self.transmit_ms)


class Bgp(Model):
    asn: int = Field(
        ge=1,
        le=4294967294,
        description=f"The AS number every node announces from; a private one, {PRIVATE_ASNS}, unless the site owns one.",
        examples=[64512],
    )
    peers: list[BgpPeer] = Field(min_length=1, max_length=8, description="The routers each node peers with.")
    bfd: Bfd = Field(default_factory=Bfd, description="BFD with every peer; the default detects a dead link in 0.3 s.")
    communities: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Standard communities (`ASN:VALUE`) added to every announced VIP.",
        examples=[["64512:100"]],
    )
    drain_timeout_s: int = Field(
        60,
        ge=1,
        le=3600,
        description="With `nodes[i].maintenance`, how long the node waits for its connections to end after "
        "it announces GRACEFUL_SHUTDOWN (RFC 8326) before it withdraws the VIPs.",
    )


def asn_problem(asn: int) -> str | None:
    """Why a speaker may not use `asn`, or None."""
    return next((why for low, high, why in RESERVED_ASNS if low <= asn <= high), None)


def bgp_problems(
    bgp: Bgp,
    subnets: list[IPv4Network | IPv6Network],
    gateways: list[IPv4Address | IPv6Address],
    taken: dict[str, str],
) -> Problems:
    """The BGP section against the network: ASNs a speaker may use, peers each node can reach,
    communities halb can add. `taken`: the stack's own addresses (nodes, VIPs) -> their keys."""
    out = Problems()
    why = asn_problem(bgp.asn)
    if why:
        out.add("bgp.asn", show(bgp.asn), f"an AS number that is not {why}: {PRIVATE_ASNS}, e.g. `{ASN_EXAMPLE}`")
    seen: set[str] = set()
    for i, peer in enumerate(bgp.peers):
        out += peer_problems(f"bgp.peers[{i}]", peer, subnets, gateways, taken)
        if str(peer.address) in seen:
            out.add(f"bgp.peers[{i}].address", show(str(peer.address)), "each peer once")
        seen.add(str(peer.address))
    for i, c in enumerate(bgp.communities):
        out += community_problems(f"bgp.communities[{i}]", c)
    return out


def peer_problems(
    key: str,
    peer: BgpPeer,
    subnets: list[IPv4Network | IPv6Network],
    gateways: list[IPv4Address | IPv6Address],
    taken: dict[str, str],
) -> Problems:
    out = Problems()
    why = asn_problem(peer.asn)
    if why:
        out.add(f"{key}.asn", show(peer.asn), f"the router's AS number, which cannot be {why}, e.g. `asn: 64513`")
    address = peer.address
    if str(address) in taken:
        out.add(f"{key}.address", show(str(address)), f"a router's address, not `{taken[str(address)]}`")
    elif multihop(address, subnets) and not any(g.version == address.version for g in gateways):
        out.add(
            f"{key}.address",
            show(str(address)),
            "a router on the nodes' segment, or a gateway (`network.gateway`/`gateway6`) to reach it through",
        )
    return out


def multihop(address: IPv4Address | IPv6Address, subnets: list[IPv4Network | IPv6Network]) -> bool:
    """Whether a peer is off the nodes' segment (reached through the gateway): False when it is on it."""
    return not any(address.version == s.version and address in s for s in subnets)


def community_problems(key: str, community: str) -> Problems:
    out = Problems()
    parts = community.split(":")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and int(p) <= 65535 for p in parts):
        out.add(key, show(community), "a standard community `ASN:VALUE`, each 0-65535, e.g. `64512:100`")
    elif community == GRACEFUL_SHUTDOWN:
        out.add(key, show(community), "not GRACEFUL_SHUTDOWN: halb adds it itself while a node is in maintenance")
    elif parts[0] in ("0", "65535"):
        out.add(key, show(community), "a community of your AS, not a well-known one (0:x, 65535:x), e.g. `64512:100`")
    return out


def mode_problems(mode: Literal["vrrp", "bgp"], given: set[str], node_count: int, roles: list[str | None]) -> Problems:
    """What each mode needs of the rest of the stack."""
    out = Problems()
    if mode == "vrrp":
        if "bgp" in given:
            out.add("bgp", "a BGP section", "nothing unless `mode: bgp` (the pair uses VRRP)")
        return out
    if "bgp" not in given:
        out.add("bgp", "nothing", f"a BGP section with `mode: bgp`, e.g. `bgp: {{{ASN_EXAMPLE}, peers: [...]}}`")
    if not 2 <= node_count <= MAX_NODES:
        out.add("nodes", f"{node_count} nodes", f"2-{MAX_NODES} nodes with `mode: bgp`")
    for i, role in enumerate(roles):
        if role is not None:
            out.add(f"nodes[{i}].role", show(role), "no role with `mode: bgp`: every node serves the VIPs")
    for key in ("keepalived",):
        if key in given:
            out.add(key, "VRRP settings", "nothing with `mode: bgp` (no VRRP runs)")
    return out
