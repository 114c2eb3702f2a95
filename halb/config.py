"""The one typed model of every `halb:*` stack config key.

Every default and every validation lives here. `load_config(raw)` returns a
validated `HalbConfig` or raises `ConfigError` carrying *all* problems at once,
each naming the key path, the bad value and what is expected (with an example).

Keys are camelCase in the stack file (`halb:keepalived: {advertInt: 1}`), the
Pulumi convention; Python code uses the snake_case attribute names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)
from pydantic.alias_generators import to_camel

PROJECT = "halb"


# --------------------------------------------------------------------------- secrets


@dataclass(frozen=True)
class Secret:
    """A secret config value. `value` is None when it is still encrypted
    (`{secure: v1:...}` read straight from a stack file by `halb check`)."""

    value: str | None

    def __repr__(self) -> str:
        return "Secret(<set>)" if self.value is not None else "Secret(<encrypted>)"

    __str__ = __repr__


def _to_secret(v: Any) -> Any:
    if isinstance(v, Secret):
        return v
    if isinstance(v, str):
        return Secret(v)
    if isinstance(v, dict) and set(v) == {"secure"} and isinstance(v["secure"], str):
        return Secret(None)
    raise ValueError("expected a string, set with `pulumi config set --secret`")


SecretValue = Annotated[
    Secret,
    BeforeValidator(_to_secret),
    PlainSerializer(lambda s: "<secret>", return_type=str),
]

# --------------------------------------------------------------------------- models


class Model(BaseModel):
    """Base: camelCase keys, unknown keys are errors, values are frozen."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        arbitrary_types_allowed=True,
    )


NAME_RE = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
Port = Annotated[int, Field(ge=1, le=65535)]


class Network(Model):
    """The L2 segment both load balancers and the VIP live on."""

    subnet: IPv4Network = Field(
        description="The segment's CIDR; the VIP, both nodes and the gateway must lie in it.",
        examples=["192.168.4.0/24"],
    )
    gateway: IPv4Address | None = Field(
        None, description="Default gateway given to cloned VMs.", examples=["192.168.4.1"]
    )
    dns_servers: list[IPv4Address] = Field(
        default_factory=list, description="DNS servers given to cloned VMs.", examples=[["192.168.4.1"]]
    )
    domain: str = Field("localdomain", description="DNS domain of the VMs.", examples=["lab.example.com"])
    interface: str = Field(
        "eth0",
        description="Network interface on the nodes that carries the VIP (override per node).",
        examples=["ens192"],
        pattern=r"^[A-Za-z0-9_.:-]{1,15}$",
    )


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


class Node(Model):
    name: str = Field(description="Node (and VM host) name.", examples=["lb1"], pattern=NAME_RE)
    role: Literal["master", "backup"] = Field(description="VRRP role.", examples=["master"])
    address: IPv4Address | None = Field(
        None, description="Static address; allocated from `addresses.pool` when unset.", examples=["192.168.4.61"]
    )
    interface: str | None = Field(
        None,
        description="Overrides `network.interface` on this node.",
        examples=["ens192"],
        pattern=r"^[A-Za-z0-9_.:-]{1,15}$",
    )


def _default_nodes() -> list[Node]:
    return [Node(name="lb1", role="master"), Node(name="lb2", role="backup")]


class AntiAffinity(Model):
    enabled: bool = Field(True, description="Keep the two VMs on different ESXi hosts (DRS rule).")
    mandatory: bool = Field(False, description="Make the rule a hard requirement.")


class VSphere(Model):
    datacenter: str = Field(description="Datacenter name.", examples=["dc1"], min_length=1)
    cluster: str = Field(
        description="Compute cluster name (its resource pool is used).", examples=["cluster1"], min_length=1
    )
    datastore: str = Field(description="Datastore for the VM disks.", examples=["vsanDatastore"], min_length=1)
    network: str = Field(description="Port group the VMs attach to.", examples=["VM Network"], min_length=1)
    template: str = Field(description="VM template to clone.", examples=["debian-12-template"], min_length=1)
    folder: str | None = Field(None, description="VM folder path.", examples=["lb"])
    cpus: int = Field(2, ge=1, le=64, description="vCPUs per VM.")
    memory_mb: int = Field(2048, ge=512, le=262144, description="Memory per VM in MiB.")
    disk_gb: int | None = Field(None, ge=1, description="Disk size in GB; the template's size when unset.")
    tags: list[str] = Field(default_factory=list, description="vSphere tag ids attached to both VMs.")
    anti_affinity: AntiAffinity = Field(default_factory=AntiAffinity, description="DRS anti-affinity rule.")


class Ssh(Model):
    user: str = Field("root", description="SSH user on the nodes (non-root users need passwordless sudo).")
    port: Port = Field(22, description="SSH port on the nodes.")
    private_key: SecretValue | None = Field(
        None,
        description="Private key text (secret: `pulumi config set --secret --path halb:ssh.privateKey < key`).",
    )
    private_key_path: str | None = Field(
        None,
        description="Path of a private key file on the machine running Pulumi (read at deploy time).",
        examples=["~/.ssh/id_ed25519"],
    )
    agent: bool = Field(False, description="Use the running ssh-agent (SSH_AUTH_SOCK) instead of a key.")
    dial_error_limit: int = Field(
        60,
        ge=-1,
        description="SSH connection attempts before a step fails (-1: unlimited); VMs reboot while customized.",
    )


class HealthCheck(Model):
    """The liveness probe keepalived runs against haproxy (besides the instant systemd hook)."""

    interval: int = Field(1, ge=1, le=60, description="Seconds between probes.")
    timeout: int = Field(1, ge=1, le=60, description="Seconds before a probe counts as failed.")
    fall: int = Field(2, ge=1, le=10, description="Failed probes before the node gives up the VIP.")
    rise: int = Field(2, ge=1, le=10, description="Good probes before the node may hold the VIP again.")


class Keepalived(Model):
    vrid: int | None = Field(
        None,
        description="VRRP virtual router id, unique per L2 segment. Defaults to the VIP's last octet.",
        examples=[66],
    )
    version: Literal[2, 3] = Field(
        2, description="VRRP version: 2 (with PASS auth) or 3 (sub-second adverts, no auth)."
    )
    advert_int: float = Field(
        1.0, description="Seconds between adverts; whole seconds with VRRPv2, 0.01 steps with v3.", examples=[1]
    )
    master_priority: int = Field(
        250, description="Priority of the master node (1-254). High priorities shorten the backup's skew time."
    )
    backup_priority: int = Field(240, description="Priority of the backup node (1-254), below the master's.")
    unicast: bool = Field(True, description="Send adverts by unicast to the peer instead of multicast.")
    nopreempt: bool = Field(False, description="Do not take the VIP back when the master recovers (both start BACKUP).")
    auth_password: SecretValue | None = Field(
        None,
        description="VRRPv2 PASS password, 1-8 characters (secret). Generated and kept in state when unset.",
    )
    health_check: HealthCheck = Field(default_factory=HealthCheck, description="haproxy liveness probe tuning.")
    garp_master_refresh: int = Field(
        60, ge=0, description="Seconds between gratuitous ARP refreshes from the master (0: off)."
    )
    startup_delay: int = Field(2, ge=0, le=60, description="Seconds keepalived waits at start before VRRP runs.")


BALANCE = ("roundrobin", "static-rr", "leastconn", "first", "source")


class Server(Model):
    name: str = Field(description="Server name in haproxy.", examples=["worker1"], pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    address: IPv4Address = Field(description="Server address.", examples=["192.168.4.66"])
    port: Port | None = Field(None, description="Server port; the service's port when unset.")


class Service(Model):
    name: str = Field(
        description="Service name (frontend/backend names).", examples=["https"], pattern=r"^[a-z][a-z0-9_-]{0,31}$"
    )
    port: Port = Field(description="Port the service listens on, on every node address and the VIP.", examples=[443])
    mode: Literal["tcp", "http"] = Field("tcp", description="`tcp` pass-through or `http` proxying.")
    balance: str = Field("roundrobin", description=f"Balance algorithm: one of {', '.join(BALANCE)}.")
    check: Literal["tcp", "tls", "http", "none"] = Field(
        "tcp", description="Server health check: TCP connect, TLS handshake, HTTP request, or none."
    )
    check_path: str = Field("/", description="Path for `check: http`.", pattern=r"^/\S*$")
    servers: list[Server] = Field(
        description="Backend servers.", examples=[[{"name": "worker1", "address": "192.168.4.66"}]]
    )


class Stats(Model):
    port: Port = Field(8080, description="Port of the stats page, metrics and /healthz on each node.")
    user: str = Field("admin", description="Stats page user.", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    password: SecretValue | None = Field(
        None, description="Stats page password (secret). Generated and kept in state when unset."
    )
    uri: str = Field("/stats", description="Path of the stats page.", pattern=r"^/\S*$")


class Metrics(Model):
    enabled: bool = Field(True, description="Serve Prometheus metrics on the stats port.")
    path: str = Field("/metrics", description="Path of the Prometheus metrics.", pattern=r"^/\S*$")


class Timeouts(Model):
    connect: str = Field("5s", description="haproxy `timeout connect`.", pattern=r"^\d+(ms|s|m|h)?$")
    client: str = Field("1m", description="haproxy `timeout client`.", pattern=r"^\d+(ms|s|m|h)?$")
    server: str = Field("1m", description="haproxy `timeout server`.", pattern=r"^\d+(ms|s|m|h)?$")
    check: str = Field("2s", description="haproxy `timeout check`.", pattern=r"^\d+(ms|s|m|h)?$")


class Haproxy(Model):
    services: list[Service] = Field(
        description="Frontends and their backends.", examples=[[{"name": "http", "port": 80, "servers": []}]]
    )
    stats: Stats = Field(default_factory=Stats, description="Password-protected stats page.")
    metrics: Metrics = Field(default_factory=Metrics, description="Prometheus exporter.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Proxy timeouts.")
    maxconn: int = Field(20000, ge=1, description="haproxy global `maxconn`.")


class HalbConfig(Model):
    platform: Literal["vsphere", "hosts"] = Field(
        description="`vsphere` clones two VMs; `hosts` uses two existing machines.", examples=["vsphere"]
    )
    network: Network = Field(description="The segment the pair lives on.")
    addresses: Addresses = Field(default_factory=Addresses, description="The VIP and the pool.")
    nodes: list[Node] = Field(default_factory=_default_nodes, description="Exactly two nodes, one master, one backup.")
    vsphere: VSphere | None = Field(None, description="VM placement; required when `platform` is vsphere.")
    ssh: Ssh = Field(default_factory=Ssh, description="How halb reaches the nodes.")
    keepalived: Keepalived = Field(default_factory=Keepalived, description="VRRP settings.")
    haproxy: Haproxy = Field(description="Load balancer settings.")
    os_family: Literal["auto", "debian", "rhel"] = Field(
        "auto", description="Package family of the nodes; `auto` detects it on each node."
    )
    preflight: bool = Field(
        False, description="Refuse addresses that already answer on the network before creating anything."
    )

    # Derived values, computed from validated fields.
    @property
    def vrid(self) -> int:
        if self.keepalived.vrid is not None:
            return self.keepalived.vrid
        from halb.addresses import plan_addresses

        return int(plan_addresses(self).vip) & 0xFF

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def peer(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name != name)

    def interface(self, node: Node) -> str:
        return node.interface or self.network.interface

    def priority(self, node: Node) -> int:
        return self.keepalived.master_priority if node.role == "master" else self.keepalived.backup_priority


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Problem:
    key: str  # dotted key path, e.g. "keepalived.vrid"
    value: str  # the bad value as shown to the user (secrets never shown)
    expected: str  # what is expected, with an example

    def __str__(self) -> str:
        return f"{PROJECT}:{self.key}: got {self.value}; expected {self.expected}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = [f"{len(problems)} config error(s):"] + [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


def _camel_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _field_for(loc: tuple[int | str, ...]) -> Any:
    """The pydantic FieldInfo a (camelCase) error location points at, if any."""
    model: Any = HalbConfig
    field = None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = {f.alias or n: f for n, f in model.model_fields.items()} if model else {}
        field = fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        model = next((a for a in _flatten(ann) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return field


def _flatten(ann: Any) -> Iterator[Any]:
    args = getattr(ann, "__args__", None)
    if args:
        for a in args:
            yield from _flatten(a)
    else:
        yield ann


def _show(value: Any) -> str:
    if isinstance(value, Secret):
        return "<secret>"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict | list):
        text = repr(value)
        return text if len(text) < 80 else text[:77] + "..."
    return repr(value)


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors():
        loc = e["loc"]
        key = _camel_path(loc)
        field = _field_for(loc)
        secret = field is not None and "Secret" in repr(field.annotation)
        if e["type"] == "extra_forbidden":
            problems.append(
                Problem(key, _show(e["input"]), "no such key (check the spelling; see README 'Config reference')")
            )
            continue
        value = "nothing" if e["type"] == "missing" else "<secret>" if secret else _show(e.get("input"))
        expected = _expected(e["msg"])
        if field is not None and field.examples:
            expected += f", e.g. `{loc[-1]}: {_yaml_scalar(field.examples[0])}`"
        problems.append(Problem(key, value, expected))
    return problems


def _expected(msg: str) -> str:
    """Turn pydantic's 'Input should be X' phrasing into the 'expected X' of our messages."""
    for prefix, repl in (
        ("Value error, ", ""),
        ("Input should be ", ""),
        ("Input is not ", ""),
        ("Field required", "a value (this key is required)"),
        ("String should match pattern ", "a string matching "),
        ("String should have at least 1 character", "a non-empty string"),
    ):
        if msg.startswith(prefix):
            msg = repl + msg[len(prefix) :]
            break
    return msg


def _yaml_scalar(v: Any) -> str:
    import json

    return v if isinstance(v, str) else json.dumps(v)


# --------------------------------------------------------------------------- semantic checks


def semantic_problems(cfg: HalbConfig) -> list[Problem]:
    """Checks that span several keys; run once every field is well-formed."""
    from halb.addresses import AddressError, plan_addresses

    out: list[Problem] = []
    add = lambda key, value, expected: out.append(Problem(key, value, expected))  # noqa: E731
    net = cfg.network.subnet

    # Nodes: exactly one master and one backup, unique names.
    roles = sorted(n.role for n in cfg.nodes)
    if roles != ["backup", "master"]:
        add(
            "nodes",
            _show([f"{n.name}:{n.role}" for n in cfg.nodes]),
            "exactly two nodes, one `role: master` and one `role: backup`, e.g. "
            "`[{name: lb1, role: master}, {name: lb2, role: backup}]`",
        )
    names = [n.name for n in cfg.nodes]
    if len(set(names)) != len(names):
        add("nodes", _show(names), "unique node names, e.g. `lb1` and `lb2`")

    # Network.
    if net.prefixlen > 30:
        add(
            "network.subnet",
            _show(str(net)),
            "a subnet with room for a VIP and two nodes (/30 or larger), e.g. `192.168.4.0/24`",
        )
    if cfg.network.gateway is not None and not _is_host(cfg.network.gateway, net):
        add("network.gateway", _show(str(cfg.network.gateway)), f"a host address inside `network.subnet` {net}")

    # Platform.
    if cfg.platform == "vsphere" and cfg.vsphere is None:
        add(
            "vsphere",
            "nothing",
            "VM placement when `platform: vsphere`, e.g. "
            "`{datacenter: dc1, cluster: cluster1, datastore: ds1, network: VM Network, template: debian-12}`",
        )
    if cfg.platform == "hosts" and any(n.address is None for n in cfg.nodes):
        missing = [n.name for n in cfg.nodes if n.address is None]
        add("nodes", _show(missing), "an `address` for every node when `platform: hosts` (existing machines)")

    # SSH.
    if cfg.ssh.private_key is None and cfg.ssh.private_key_path is None and not cfg.ssh.agent:
        add(
            "ssh",
            "no privateKey, no privateKeyPath and agent: false",
            "`privateKey` (secret), `privateKeyPath` or `agent: true`, e.g. "
            "`pulumi config set --secret --path halb:ssh.privateKey < ~/.ssh/id_ed25519`",
        )

    # Keepalived.
    k = cfg.keepalived
    if k.vrid is not None and not 1 <= k.vrid <= 255:
        add("keepalived.vrid", _show(k.vrid), "an integer from 1 to 255, e.g. `vrid: 66`")
    for key, prio in (
        ("keepalived.masterPriority", k.master_priority),
        ("keepalived.backupPriority", k.backup_priority),
    ):
        if not 1 <= prio <= 254:
            add(key, _show(prio), "a priority from 1 to 254 (255 is reserved for the address owner), e.g. `250`")
    if k.master_priority <= k.backup_priority:
        add(
            "keepalived.masterPriority",
            f"{k.master_priority} (backupPriority {k.backup_priority})",
            "a master priority above the backup's, e.g. `masterPriority: 250, backupPriority: 240`",
        )
    if k.advert_int <= 0:
        add("keepalived.advertInt", _show(k.advert_int), "a positive number of seconds, e.g. `advertInt: 1`")
    elif k.version == 2 and k.advert_int != int(k.advert_int):
        add(
            "keepalived.advertInt",
            _show(k.advert_int),
            "whole seconds with VRRPv2 (use `version: 3` for sub-second adverts), e.g. `advertInt: 1`",
        )
    elif k.version == 3 and (round(k.advert_int * 100) != k.advert_int * 100 or k.advert_int > 40.95):
        add(
            "keepalived.advertInt",
            _show(k.advert_int),
            "0.01 to 40.95 s in 0.01 s steps with VRRPv3, e.g. `advertInt: 0.5`",
        )
    if k.auth_password is not None:
        if k.version == 3:
            add(
                "keepalived.authPassword",
                "<secret>",
                "no password with VRRPv3 (it has no authentication); remove it or use `version: 2`",
            )
        elif k.auth_password.value is not None and not 1 <= len(k.auth_password.value) <= 8:
            add(
                "keepalived.authPassword",
                f"<secret of {len(k.auth_password.value)} characters>",
                "1 to 8 characters (VRRPv2 PASS truncates longer ones), or unset to generate one",
            )

    # Addresses.
    try:
        plan = plan_addresses(cfg)
    except AddressError as e:
        out.extend(e.problems)
        plan = None
    if plan is not None:
        special = {net.network_address: "the network address", net.broadcast_address: "the broadcast address"}
        if cfg.network.gateway is not None:
            special[cfg.network.gateway] = "the gateway"
        owners: dict[IPv4Address, str] = {}
        for key, addr in [("addresses.vip", plan.vip)] + [
            (f"nodes[{i}].address", plan.nodes[n.name]) for i, n in enumerate(cfg.nodes)
        ]:
            if addr not in net:
                add(key, _show(str(addr)), f"an address inside `network.subnet` {net}")
            elif addr in special:
                add(key, _show(str(addr)), f"a free host address, not {special[addr]}")
            if addr in owners:
                add(key, _show(str(addr)), f"an address not already used by `{owners[addr]}`")
            owners.setdefault(addr, key)
        if k.vrid is None and not 1 <= int(plan.vip) & 0xFF <= 254:
            add(
                "keepalived.vrid",
                f"nothing (VIP {plan.vip} ends in {int(plan.vip) & 0xFF})",
                "an explicit `vrid` (1-255) because the VIP's last octet cannot be used, e.g. `vrid: 66`",
            )

    # haproxy.
    h = cfg.haproxy
    if not h.services:
        add("haproxy.services", "[]", "at least one service, e.g. `[{name: http, port: 80, servers: [...]}]`")
    ports: dict[int, str] = {h.stats.port: "haproxy.stats.port"}
    names_seen: set[str] = set()
    for i, s in enumerate(h.services):
        if s.port in ports:
            add(f"haproxy.services[{i}].port", _show(s.port), f"a port not already used by `{ports[s.port]}`")
        ports.setdefault(s.port, f"haproxy.services[{i}].port")
        if s.name in names_seen:
            add(f"haproxy.services[{i}].name", _show(s.name), "a unique service name")
        names_seen.add(s.name)
        if s.balance not in BALANCE:
            add(
                f"haproxy.services[{i}].balance",
                _show(s.balance),
                f"one of {', '.join(BALANCE)}, e.g. `balance: roundrobin`",
            )
        if not s.servers:
            add(
                f"haproxy.services[{i}].servers",
                "[]",
                "at least one backend server, e.g. `[{name: worker1, address: 192.168.4.66}]`",
            )
        server_names: set[str] = set()
        for j, srv in enumerate(s.servers):
            if plan is not None and srv.address in owners:
                add(
                    f"haproxy.services[{i}].servers[{j}].address",
                    _show(str(srv.address)),
                    f"a backend address other than `{owners[srv.address]}` (halb's own addresses would loop)",
                )
            if srv.name in server_names:
                add(f"haproxy.services[{i}].servers[{j}].name", _show(srv.name), "a server name unique in its service")
            server_names.add(srv.name)
    if h.metrics.enabled and h.metrics.path in (h.stats.uri, "/healthz"):
        add(
            "haproxy.metrics.path",
            _show(h.metrics.path),
            "a path other than the stats uri and /healthz, e.g. `/metrics`",
        )
    if h.stats.uri == "/healthz":
        add("haproxy.stats.uri", _show(h.stats.uri), "a path other than /healthz, e.g. `/stats`")
    return out


def _is_host(addr: IPv4Address, net: IPv4Network) -> bool:
    return addr in net and addr not in (net.network_address, net.broadcast_address)


# --------------------------------------------------------------------------- loading


def load_config(raw: dict[str, Any]) -> HalbConfig:
    """Validate raw `halb:*` config (keys without the `halb:` prefix)."""
    try:
        cfg = HalbConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_pydantic_problems(e)) from None
    problems = semantic_problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def strip_prefix(config: dict[str, Any]) -> dict[str, Any]:
    """`{halb:platform: x, vsphere:user: y}` -> `{platform: x}`; other namespaces are not ours."""
    prefix = PROJECT + ":"
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}


def load_stack_file(path: str) -> HalbConfig:
    """Read `Pulumi.<stack>.yaml` directly (no Pulumi CLI): encrypted secrets stay unknown."""
    import yaml

    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    return load_config(strip_prefix(doc.get("config") or {}))
