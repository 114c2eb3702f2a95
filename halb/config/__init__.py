"""The one typed model of every `halb:*` stack config key, a module per concern.

Each concern (network, addresses, nodes, ssh, keepalived, haproxy, vsphere) owns its fields,
defaults and cross-field checks; `model` puts them together and reports every problem of a
stack in one run, each naming the key path, the bad value and what is expected (with an
example). Keys are camelCase in the stack file (`halb:keepalived: {advertInt: 1}`), the
Pulumi convention; Python code uses the snake_case attribute names.
"""

from halb.config.addresses import AddressError, Addresses, AddressPool, Allocation, allocate_addresses
from halb.config.base import Secret
from halb.config.errors import PROJECT, ConfigError, Problem
from halb.config.haproxy import BALANCE, Haproxy, Metrics, Server, Service, Stats, Timeouts
from halb.config.keepalived import HealthCheck, Keepalived
from halb.config.model import HalbConfig, load_config, load_stack_file, strip_prefix
from halb.config.network import Network
from halb.config.nodes import Node
from halb.config.ssh import Ssh
from halb.config.stack_file import StackFileError
from halb.config.vsphere import AntiAffinity, VSphere

__all__ = [
    "BALANCE",
    "PROJECT",
    "AddressError",
    "AddressPool",
    "Addresses",
    "Allocation",
    "AntiAffinity",
    "ConfigError",
    "HalbConfig",
    "Haproxy",
    "HealthCheck",
    "Keepalived",
    "Metrics",
    "Network",
    "Node",
    "Problem",
    "Secret",
    "Server",
    "Service",
    "Ssh",
    "StackFileError",
    "Stats",
    "Timeouts",
    "VSphere",
    "allocate_addresses",
    "load_config",
    "load_stack_file",
    "strip_prefix",
]
