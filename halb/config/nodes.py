"""The two load balancer nodes: names, roles, addresses."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Annotated, Literal

from pydantic import Field

from halb.config.base import INTERFACE_HINT, INTERFACE_RE, NAME_HINT, NAME_RE, Model, patterned
from halb.config.errors import Problems, show
from halb.config.words import HaproxyWord, IPv6Addr, KeepalivedWord

# A line of /etc/ssh/ssh_host_*_key.pub: type, base64, optional comment.
HOST_KEY_RE = r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]{40,}={0,3}( [!-~]{1,64})?$"


class Node(Model):
    name: Annotated[KeepalivedWord, HaproxyWord] = patterned(
        NAME_RE, NAME_HINT, "lb1", description="Node (and VM host) name."
    )
    role: Literal["master", "backup"] | None = Field(
        None, description="VRRP role (`mode: vrrp`, where it is required); none with `mode: bgp`.", examples=["master"]
    )
    address: IPv4Address | None = Field(
        None, description="Static address; allocated from `addresses.pool` when unset.", examples=["192.168.4.61"]
    )
    address6: IPv6Addr | None = Field(
        None,
        description="Static IPv6 address in `network.subnet6`; required on both nodes when a VIP is IPv6.",
        examples=["2001:db8:4::61"],
    )
    interface: KeepalivedWord | None = patterned(
        INTERFACE_RE, INTERFACE_HINT, "ens192", default=None, description="Overrides `network.interface` on this node."
    )
    maintenance: bool = Field(
        False,
        description="Hand the VIP to the peer and stay out of the way (a last-resort backup) until set back.",
    )
    host_key: str | None = patterned(
        HOST_KEY_RE,
        "the node's SSH host public key: a line of /etc/ssh/ssh_host_*_key.pub (type, base64, optional comment)",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtmD9ymXsQk9c1bJ8kYyFq7Zx3Fw0s5S0a1b2c3d4e5",
        default=None,
        description="Pin the node's SSH host key ahead of time: every step and `halb status` refuse any "
        "other key. Unset, the first deploy records the key the node offers (trust on first use, the "
        "stack output `host_keys`), and every later step and `halb status` refuse any other.",
    )
    generation: int = Field(
        0,
        ge=0,
        description="Bump to tear the node down and provision it from scratch on the next `pulumi up`.",
    )


def default_nodes() -> list[Node]:
    return [Node(name="lb1", role="master"), Node(name="lb2", role="backup")]


def nodes_problems(nodes: list[Node], platform: str | None, mode: str | None = "vrrp") -> Problems:
    out = Problems()
    if mode == "vrrp" and sorted(str(n.role) for n in nodes) != ["backup", "master"]:
        out.add(
            "nodes",
            show([f"{n.name}:{n.role}" for n in nodes]),
            "exactly two nodes, one `role: master` and one `role: backup`, e.g. "
            "`[{name: lb1, role: master}, {name: lb2, role: backup}]`",
        )
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        out.add("nodes", show(names), "unique node names, e.g. `lb1` and `lb2`")
    if len(nodes) > 1 and all(n.maintenance for n in nodes):
        out.add(
            "nodes[*].maintenance",
            "true on every node",
            "at most one node in maintenance, so that one can hold the VIP; set it back on one, "
            "e.g. `pulumi config set --path 'halb:nodes[1].maintenance' false`",
        )
    missing = [n.name for n in nodes if n.address is None]
    if platform == "hosts" and missing:
        out.add(
            "nodes",
            show(missing),
            "an `address` for every node when `platform: hosts` (existing machines), e.g. `address: 192.168.4.61`",
        )
    return out
