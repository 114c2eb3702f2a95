"""The lab's fixed addresses and names (pure data). Everything lives in 198.18.0.0/24 and, for
IPv6, in 2001:2::/64 (from 2001:2::/48, RFC 5180's benchmarking range): a host's IPv6 address
ends in the digits of its IPv4 address's last octet (198.18.0.11 -> 2001:2::11)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SUBNET = "198.18.0.0/24"
PREFIX = 24
HOST_ADDRESS = "198.18.0.1"  # the root namespace's leg on the lab bridge
VIP = "198.18.0.10"
SUBNET6 = "2001:2::/64"
PREFIX6 = 64
HOST_ADDRESS6 = "2001:2::1"
VCENTER = f"{HOST_ADDRESS}:443"  # the lab's simulated vCenter (halb_lab.infra.vcenter)
VCENTER_USER = "administrator@vsphere.local"
BRIDGE_NS = "halb-br"
BRIDGE = "br0"
HOST_LINK = "halb0"

STATE = Path("/var/lib/halb-lab")  # node overlays, pids, the lab's SSH key
CACHE = Path("/var/cache/halb-lab")  # the base image, built once
SSH_KEY = STATE / "id_ed25519"
VAULT = STATE / "lab-secrets.json"  # the lab's generated passwords, encrypted (halb_lab.automation.vault)
STACK_HOME = STATE / "engine"  # the lab stack's project, config file and file backend (halb_lab.automation)


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    kind: str  # "node" (systemd machine), "worker", "client" or "monitor" (plain namespaces)

    @property
    def address6(self) -> str:
        return f"2001:2::{self.address.rsplit('.', 1)[1]}"

    @property
    def netns(self) -> str:
        return f"halb-{self.name}"

    @property
    def bridge_port(self) -> str:
        return f"v-{self.name}"


NODES = [Host("lb1", "198.18.0.11", "node"), Host("lb2", "198.18.0.12", "node")]
# A second pair, booted on demand: two stacks' pairs side by side (e.g. two vSphere stacks in one vCenter).
SPARE_NODES = [Host("lb3", "198.18.0.13", "node"), Host("lb4", "198.18.0.14", "node")]
WORKERS = [Host(f"w{i}", f"198.18.0.{20 + i}", "worker") for i in range(1, 5)]
CLIENT = Host("client", "198.18.0.30", "client")
MONITOR = Host("monitor", "198.18.0.50", "monitor")  # Prometheus and Alertmanager (halb_lab.scenarios.monitor)
HOSTS = [*NODES, *SPARE_NODES, *WORKERS, CLIENT, MONITOR]
