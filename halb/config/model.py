"""The root of the config model, and loading: every problem of a stack reported in one run.

Field errors (pydantic) and cross-field errors come together: each top-level section is also
validated on its own, so a section that is well formed is checked against the others even
when another section is broken.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from halb.config.addresses import AddressError, Addresses, allocate, allocation_problems, with_primary_vip
from halb.config.base import Model, Secret, is_secret, leaves, secret_paths
from halb.config.bgp import Bgp, bgp_problems, mode_problems
from halb.config.errors import PROJECT, ConfigError, Problem, Problems, printable, show
from halb.config.haproxy import Haproxy, haproxy_problems, tls_findings
from halb.config.keepalived import Keepalived, keepalived_problems
from halb.config.monitoring import Monitoring
from halb.config.network import Network, dns_problems, network_problems, segment_addresses
from halb.config.nodes import Node, default_nodes, nodes_problems
from halb.config.paths import parse_path
from halb.config.secrets import SecretPaths, hostile_problems, keys_of, plaintext_problems, secret_value_problems
from halb.config.ssh import Ssh, ssh_problems
from halb.config.stack_file import read_stack_file
from halb.config.vips import (
    MAX_VIPS,
    Vip,
    ipv6_problems,
    owners6,
    resolve_vips,
    sync_group_problems,
    vips_problems,
)
from halb.config.vsphere import VSphere, platform_problems, provider_problems

if TYPE_CHECKING:
    from halb.plan import Plan


class HalbConfig(Model):
    platform: Literal["vsphere", "hosts"] = Field(
        description="`vsphere` clones two VMs; `hosts` uses two existing machines.", examples=["vsphere"]
    )
    mode: Literal["vrrp", "bgp"] = Field(
        "vrrp",
        description="`vrrp`: a pair, one node holds each VIP (keepalived). `bgp`: 2-8 nodes announce every VIP "
        "to the site's routers through FRR, which spread flows over them by ECMP; in development: checked and rendered, not deployed yet (docs/development/bgp-mode.md).",
    )
    network: Network = Field(description="The segment the pair lives on.")
    addresses: Addresses = Field(default_factory=Addresses, description="The VIP and the pool.")
    nodes: list[Node] = Field(default_factory=default_nodes, description="Exactly two nodes, one master, one backup.")
    vsphere: VSphere | None = Field(None, description="VM placement; required when `platform` is vsphere.")
    ssh: Ssh = Field(default_factory=Ssh, description="How halb reaches the nodes.")
    keepalived: Keepalived = Field(default_factory=Keepalived, description="VRRP settings.")
    haproxy: Haproxy = Field(description="Load balancer settings.")
    monitoring: Monitoring = Field(default_factory=Monitoring, description="Prometheus metrics of the pair.")
    bgp: Bgp | None = Field(None, description="BGP and BFD with the site's routers; required with `mode: bgp`.")
    vips: list[Vip] = Field(
        default_factory=list,
        max_length=MAX_VIPS,
        description="Several VIPs, each its own VRRP instance held by its preferred node (active/active); "
        f"when unset, the one `addresses.vip`. At most {MAX_VIPS} (VRRP router ids are 1-255).",
    )
    os_family: Literal["auto", "debian", "rhel"] = Field(
        "auto", description="Package family of the nodes; `auto` detects it on each node."
    )
    preflight: bool = Field(
        False, description="Refuse addresses that already answer on the network before creating anything."
    )
    verify: bool = Field(
        True,
        description="After both nodes, check from where `pulumi up` runs that exactly one node holds the VIP "
        "and every service answers through it; fail the deploy otherwise.",
    )

    @cached_property
    def plan(self) -> Plan:
        """Every fact derived from this config (halb.plan), computed on first read only."""
        from halb.plan import make_plan

        return make_plan(self)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def peer(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name != name)

    def interface(self, node: Node) -> str:
        return node.interface or self.network.interface


# --------------------------------------------------------------------------- field errors


def _camel_path(loc: tuple[int | str, ...]) -> str:
    """An error location as a key path, each name escaped: a key from the file never puts a
    control character (a terminal escape) in a message."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + shown_key(part)
    return out


shown_key = printable  # a key as messages show it


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
        model = next((a for a in leaves(field.annotation) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return field


PHRASES = (
    ("Value error, ", ""),
    ("Input should be ", ""),
    ("Input is not ", ""),
    ("value is not ", ""),
    ("Field required", "a value (this key is required)"),
    ("String should have at least 1 character", "a non-empty string"),
)


def _expected(e: Any, field: Any) -> str:
    extra = (field.json_schema_extra or {}) if field is not None else {}
    if e["type"] == "string_pattern_mismatch" and "hint" in extra:
        msg = str(extra["hint"])
    else:
        msg = e["msg"]
        for prefix, repl in PHRASES:
            if msg.startswith(prefix):
                msg = repl + msg[len(prefix) :]
                break
    if field is not None and field.examples:
        example = field.examples[0]
        msg += f", e.g. `{e['loc'][-1]}: {example if isinstance(example, str) else _json(example)}`"
    return msg


def _json(v: Any) -> str:
    import json

    return json.dumps(v)


def _unknown_key(loc: tuple[int | str, ...]) -> Problem:
    key = _camel_path(loc)
    if len(loc) == 1 and isinstance(loc[0], str) and ("." in loc[0] or "[" in loc[0]):
        return _flat_key(loc[0], key)
    return Problem(key, "a value", "no such key (check the spelling; see docs/reference/config.md)")


def _flat_key(raw: str, key: str) -> Problem:
    """`halb:a.b` set without --path. The fix command is offered only for a key that names a real
    field (so it carries no text from the file but field names and indices), with --secret for a secret."""
    try:
        field = _field_for(tuple(parse_path(raw)))
    except ValueError:
        field = None
    if field is None:
        return Problem(key, "a flat key", "no such key (a nested key is set with `pulumi config set --path`)")
    if is_secret(field.annotation):
        fix = f"pulumi config rm halb:{raw} && pulumi config set --secret --path halb:{raw}` (it prompts for the value)"
    else:
        fix = f"pulumi config rm halb:{raw} && pulumi config set --path halb:{raw} VALUE`"
    return Problem(key, "a flat key", f"a nested key: `halb:{raw}` was set without --path; fix it with `{fix}")


def field_problems(err: ValidationError) -> Problems:
    out = Problems()
    for e in err.errors():
        loc = e["loc"]
        if e["type"] == "extra_forbidden":
            out.append(_unknown_key(loc))
            continue
        field = _field_for(loc)
        secret = field is not None and is_secret(field.annotation)
        value = "nothing" if e["type"] == "missing" else "<secret>" if secret else show(e.get("input"))
        out.add(_camel_path(loc), value, _expected(e, field))
    return out


# --------------------------------------------------------------------------- cross-field errors


@dataclass
class Sections:
    """Each top-level section, validated on its own; None where it is broken or missing."""

    given: set[str]
    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        return self.values.get(name)


def sections(raw: dict[str, Any]) -> Sections:
    values: dict[str, Any] = {}
    for name, field in HalbConfig.model_fields.items():
        key = field.alias or name
        if key not in raw:
            values[name] = None if field.is_required() else field.get_default(call_default_factory=True)
            continue
        try:
            values[name] = TypeAdapter[Any](field.annotation or Any).validate_python(raw[key])
        except ValidationError:
            values[name] = None
    return Sections(set(raw), values)


def cross_field_problems(s: Sections) -> Problems:
    out = Problems()
    if s.nodes is not None:
        out += nodes_problems(s.nodes, s.platform, s.mode) + _mode_problems(s)
    if s.network is not None:
        out += network_problems(s.network)
    if s.platform is not None:
        out += platform_problems(s.platform, s.vsphere, "vsphere" in s.given)
    if s.platform == "vsphere" and s.network is not None and s.network.gateway is None:
        out.add(
            "network.gateway",
            "nothing",
            "a gateway when `platform: vsphere` (the clone waits for a routable guest network), "
            "e.g. `gateway: 192.168.4.1`",
        )
    if s.ssh is not None:
        out += ssh_problems(s.ssh)
    vip, owners = _address_problems(s, out)
    if s.network is not None and s.nodes is not None:
        out += ipv6_problems(s.network, s.nodes, s.vips or [])
    services = {f"haproxy.services[{i}]": svc.vips for i, svc in enumerate(s.haproxy.services)} if s.haproxy else {}
    if s.vips and s.network is not None and s.nodes is not None:
        out += _vips_problems(s, owners, services)
    elif "vips" not in s.given:
        for key, listed in services.items():
            if listed is not None:
                out.add(f"{key}.vips", show(listed), "nothing without `halb:vips` (the service listens on the one VIP)")
    if s.keepalived is not None:
        out += keepalived_problems(s.keepalived, None if s.vips else vip)
        if s.keepalived.sync_groups and s.network is not None and s.nodes is not None and s.vips is not None:
            plans = resolve_vips(s.vips, IPv4Address(0), 0, s.network, s.nodes) if s.vips else []
            out += sync_group_problems(s.keepalived.sync_groups, plans)
    if s.haproxy is not None:
        mine: dict[IPv4Address | IPv6Address, str] = dict(owners.items())
        mine |= _more_owners(s)
        out += haproxy_problems(s.haproxy, mine, _node_ports(s, out))
        out += tls_findings(s.haproxy)[0]
    return out


def _vips_problems(s: Sections, owners: dict[IPv4Address, str], services: dict[str, list[str] | None]) -> Problems:
    """`halb:vips` against the nodes, the network, the backends and the other sections."""
    out = Problems()
    version = 3 if s.mode == "bgp" else s.keepalived.version if s.keepalived is not None else 2  # BGP: no VRRP limit
    taken = {str(a): k for a, k in owners.items() if k != "addresses.vip"} | owners6(s.nodes, s.network)
    taken |= segment_addresses(s.network)
    for i, svc in enumerate(s.haproxy.services if s.haproxy else []):
        for j, srv in enumerate(svc.servers):
            taken.setdefault(str(srv.address), f"haproxy.services[{i}].servers[{j}].address")
    routed = s.mode == "bgp"
    out += vips_problems(s.vips, s.network, s.nodes, version, taken, {k: v for k, v in services.items() if v}, routed)
    if s.addresses is not None and s.addresses.vip is not None:
        out.add("addresses.vip", show(str(s.addresses.vip)), "nothing when `vips` is set (list it there instead)")
    if s.keepalived is not None and s.keepalived.vrid is not None:
        out.add("keepalived.vrid", show(s.keepalived.vrid), "nothing when `vips` is set (give each VIP its `vrid`)")
    return out


def _mode_problems(s: Sections) -> Problems:
    """What the mode needs of the nodes and sections, and the BGP section against the network."""
    out = mode_problems(s.mode, s.given, len(s.nodes), [n.role for n in s.nodes]) if s.mode is not None else Problems()
    if s.bgp is not None and s.network is not None:
        out += bgp_problems(s.bgp, _subnets(s.network), _gateways(s.network), _own_addresses(s))
    return out


def _subnets(network: Network) -> list[IPv4Network | IPv6Network]:
    return [n for n in (network.subnet, network.subnet6) if n is not None]


def _gateways(network: Network) -> list[IPv4Address | IPv6Address]:
    return [g for g in (network.gateway, network.gateway6) if g is not None]


def _own_addresses(s: Sections) -> dict[str, str]:
    """The stack's given addresses (nodes, VIPs) -> their keys."""
    out = {str(n.address): f"nodes[{i}].address" for i, n in enumerate(s.nodes or []) if n.address is not None}
    out |= {str(a): k for a, k in _more_owners(s).items()}
    if s.addresses is not None and s.addresses.vip is not None:
        out.setdefault(str(s.addresses.vip), "addresses.vip")
    return out


def _node_ports(s: Sections, out: Problems) -> dict[int, str]:
    """The nodes' ports that are not haproxy's (SSH, the node exporter) -> their keys; the node
    exporter on the SSH port is a problem of its own."""
    ports: dict[int, str] = {s.ssh.port: "ssh.port"} if s.ssh is not None else {}
    if s.monitoring is not None and s.monitoring.node_exporter:
        port = s.monitoring.node_exporter_port
        if port in ports:
            out.add("monitoring.nodeExporterPort", show(port), f"a port not already used by `{ports[port]}`, e.g. 9100")
        ports.setdefault(port, "monitoring.nodeExporterPort")
    return ports


def _more_owners(s: Sections) -> dict[IPv4Address | IPv6Address, str]:
    """halb's own addresses besides the primary VIP and the nodes' IPv4 ones: every VIP and every
    node's IPv6 address (no backend may be one of them)."""
    out: dict[IPv4Address | IPv6Address, str] = {}
    for i, v in enumerate(s.vips or []):
        out.setdefault(v.address, f"vips[{i}].address")
    for i, n in enumerate(s.nodes or []):
        if n.address6 is not None:
            out.setdefault(n.address6, f"nodes[{i}].address6")
    return out


def _address_problems(s: Sections, out: Problems) -> tuple[IPv4Address | None, dict[IPv4Address, str]]:
    if s.network is None or s.addresses is None or s.nodes is None or ("vips" in s.given and s.vips is None):
        return None, {}  # a broken section has its own errors; the plan would only add noise
    backends = [srv.address for svc in s.haproxy.services for srv in svc.servers] if s.haproxy else []
    try:
        p = allocate(s.network, with_primary_vip(s.addresses, s.vips or []), s.nodes, backends)
    except AddressError as e:
        out += e.problems
        return None, {}
    problems, owners = allocation_problems(s.network, s.nodes, p, routed=s.mode == "bgp")
    out += problems + dns_problems(s.network, owners)
    return p.vip, owners


# --------------------------------------------------------------------------- loading

SECRETS = SecretPaths(secret_paths(HalbConfig))  # every `SecretValue` field of the model


def load_config(
    raw: dict[str, Any],
    refuse_plaintext: bool = False,
    secret_tops: set[str] | None = None,
    extra: Problems | None = None,
) -> HalbConfig:
    """Validate raw `halb:*` config (keys without the `halb:` prefix); raise ConfigError with every problem.

    `refuse_plaintext`: secret keys must be Pulumi secrets: `{secure: ...}` in a stack file
    (`secret_tops` None), or, in the program, under a top-level key Pulumi marks secret.
    `extra`: problems found outside `halb:*` (the provider's keys), reported with the rest."""
    problems = hostile_problems(raw, SECRETS) + (extra or [])
    if refuse_plaintext:
        problems += plaintext_problems(raw, secret_tops, SECRETS)
    problems += secret_value_problems(raw)
    flagged = keys_of(problems)
    cfg: HalbConfig | None = None
    try:
        cfg = HalbConfig.model_validate(raw)
    except ValidationError as e:
        problems += [p for p in field_problems(e) if p.key not in flagged]
    parts = Sections(set(raw), dict(cfg)) if cfg is not None else sections(raw)
    problems += [p for p in cross_field_problems(parts) if p.key not in flagged]
    if problems or cfg is None:
        raise ConfigError(problems)
    return cfg


def strip_prefix(config: dict[str, Any]) -> dict[str, Any]:
    """`{halb:platform: x, vsphere:user: y}` -> `{platform: x}`; other namespaces are not ours."""
    prefix = PROJECT + ":"
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}


def load_stack_file(path: str, provider_keys: bool = False) -> HalbConfig:
    """Read `Pulumi.<stack>.yaml` directly (no Pulumi CLI), as strictly as its values
    (halb.config.stack_file; StackFileError names the file and line): encrypted secrets stay unknown.
    `provider_keys`: also require the vSphere provider's keys (what `pulumi up` will need)."""
    config = read_stack_file(path)
    halb = strip_prefix(config)
    vsphere = {k.removeprefix("vsphere:"): v for k, v in config.items() if k.startswith("vsphere:")}
    extra = (
        provider_problems(halb.get("platform"), vsphere, lambda k: isinstance(vsphere.get(k), dict))
        if provider_keys
        else None
    )
    return load_config(halb, refuse_plaintext=True, extra=extra)


__all__ = ["HalbConfig", "Secret", "load_config", "load_stack_file", "strip_prefix"]
