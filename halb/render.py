"""Rendering: pure functions from a validated config to the files on each node.

Main files never contain a secret; the VRRP and stats passwords go into two
small files of their own (`secret=True`) that the main files include, so a
preview shows line-level changes of the main files while secrets stay secret.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from pathlib import Path
from pprint import pformat
from typing import Literal, cast

import jinja2

from halb import PROJECT_DIR
from halb.config import HalbConfig, Secret
from halb.config.bgp import community_problems, multihop
from halb.config.haproxy import Server, Service, backend_names, certificate_names
from halb.config.tls import Certificate, key_block, read_pem
from halb.config.words import Directive, UnsafeValue, address, finalizer, haproxy_word, keepalived_word, shell_word
from halb.metrics import VRRP_STATES, of_mode
from halb.plan import INSTANCE, MAINTENANCE_PRIORITY, SHARED_VRRP_DIRECTIVES, service_vips, stats_allow

TEMPLATES = PROJECT_DIR / "templates"

LO_LABEL = "lo:halb"  # BGP mode: the label of the IPv4 VIPs the watcher puts on lo, which the teardown flushes

# Where things live on a node.
PATHS = {
    "keepalived_conf": "/etc/keepalived/keepalived.conf",
    "keepalived_auth": "/etc/keepalived/halb-auth.conf",
    "haproxy_cfg": "/etc/haproxy/haproxy.cfg",
    "haproxy_secrets": "/etc/haproxy/halb-secrets.cfg",
    "frr_conf": "/etc/frr/frr.conf",  # mode: bgp
    "frr_daemons": "/etc/frr/daemons",  # mode: bgp: which FRR daemons run
    "haproxy_dropin": "/etc/systemd/system/haproxy.service.d/halb.conf",
    "tmpfiles": "/etc/tmpfiles.d/halb.conf",
    "haproxy_watch": "/usr/local/libexec/halb/haproxy-watch",
    "haproxy_watch_unit": "/etc/systemd/system/halb-haproxy-watch.service",
    "keepalived_dropin": "/etc/systemd/system/keepalived.service.d/halb.conf",
    "haproxy_state": "/usr/local/libexec/halb/haproxy-state",
    "vrrp_notify": "/usr/local/libexec/halb/vrrp-notify",
    "vrrp_resign": "/usr/local/libexec/halb/vrrp-resign",  # keepalived's ExecStopPost: hands over VIPs it left
    "vrrp_guard": "/usr/local/libexec/halb/vrrp-guard",  # holds this node in FAULT while the peer still serves
    "vrrp_guard_unit": "/etc/systemd/system/halb-vrrp-guard.service",
    "handoff": "/usr/local/libexec/halb/handoff",  # passes connections it does not know to the peer (keepalived.handoff)
    "handoff_unit": "/etc/systemd/system/halb-handoff.service",
    "vrrp_adverts": "/usr/local/libexec/halb/vrrp_adverts.py",  # other routers using the stack's VRIDs (the guard imports it)
    "vrrp_partition": "/run/halb/vrrp-partition",  # the guard's findings, one line per VIP held back
    "vrrp_foreign": "/run/halb/vrrp-foreign",  # the guard's findings: other routers that use this stack's VRIDs
    "state_dir": "/run/halb",
    "haproxy_down": "/run/halb/haproxy-down",
    "haproxy_health": "/run/halb/haproxy-health",
    "backends_down": "/run/halb/backends-down",
    "vrrp_state": "/run/halb/vrrp-state",
    "vrrp_held": "/run/halb/vrrp-held",  # this node left VRRP for a change of the shared settings
    "vrrp_pending": "/run/halb/vrrp-pending",  # this node holds the VIP and waits to take new shared settings
    "structure": "/etc/haproxy/halb-structure",  # hash of haproxy.cfg without server weights and states
    "owner_dir": "/var/lib/halb",  # `owner`: which teardown resource provisioned this host; the firewall record
    "certs_dir": "/etc/haproxy/halb-certs",  # each TLS service's certificates with their keys (0600)
    "admin_socket": "/run/haproxy/admin.sock",  # haproxy's runtime API (level admin)
    "metrics_writer": "/usr/local/libexec/halb/metrics",  # keeps `metrics` current (halb/metrics.py)
    "metrics_unit": "/etc/systemd/system/halb-metrics.service",
    "node_exporter_unit": "/etc/systemd/system/halb-node-exporter.service",
    "metrics_dir": "/var/lib/halb/metrics",  # the node exporter's textfile directory
    "metrics": "/var/lib/halb/metrics/halb.prom",  # halb's metrics (`halb status` runs the writer --once)
}
SCRIPT_USER = "keepalived_script"
HANDOFF_ROUTE_PROTOCOL = 186  # the routing protocol number that marks halb-handoff's routes on lo
METRICS_EVERY = 1  # seconds between two samples of halb-metrics
FRR_EVERY = 5  # BGP mode: seconds between two reads of FRR's state by halb-metrics (one vtysh: ~25 ms of CPU)
HAPROXY_BIN = "/usr/sbin/haproxy"

# Which provisioning step installs a file; each step has its validator and reload.
Step = Literal["system", "tls", "haproxy", "keepalived", "frr"]


@dataclass(frozen=True)
class NodeFile:
    path: str  # absolute path on the node
    content: str
    mode: str  # octal, as chmod takes it
    step: Step
    secret: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()


@dataclass(frozen=True)
class Secrets:
    """Secret values to render. `halb render` passes marked placeholders."""

    vrrp_password: str
    stats_password: str
    certificates: Mapping[str, str] = field(default_factory=dict)  # file on the node -> chain and key (PEM)
    reveal_bgp: bool = False  # BGP mode: write the peers' passwords from the config into frr.conf


PLACEHOLDERS = Secrets(vrrp_password="@SECRET@", stats_password="@SECRET:haproxy.stats.password@")


def certificate_paths(service: Service) -> list[str]:
    """A TLS service's certificate files on the node: its own first (haproxy's default for the
    bind), then one per `sni` entry (`halb.config.haproxy.certificate_names`)."""
    return [f"{PATHS['certs_dir']}/{name}" for name in certificate_names(service)]


def certificate_files(cfg: HalbConfig) -> list[tuple[str, str, Certificate]]:
    """Every TLS service's certificates: (file on the node, its config key, the certificate)."""
    out: list[tuple[str, str, Certificate]] = []
    for i, s in enumerate(cfg.haproxy.services):
        if s.tls is None:
            continue
        key = f"haproxy.services[{i}].tls"
        certs = [(key, s.tls)] + [(f"{key}.sni[{j}]", c) for j, c in enumerate(s.tls.sni)]
        out += [(path, k, c) for path, (k, c) in zip(certificate_paths(s), certs, strict=True)]
    return out


def certificate_texts(cfg: HalbConfig) -> dict[str, str]:
    """Each certificate file's content: the chain, then the key's block, as haproxy loads them from one
    file (read from the config's secrets or the files it names; empty while still encrypted)."""
    out = {}
    for path, _, cert in certificate_files(cfg):
        pem = read_pem(cert)
        out[path] = pem.chain.strip() + "\n" + key_block(pem.key).strip() + "\n" if pem.chain and pem.key else ""
    return out


# Each template's target language: every `{{ ... }}` in it must be a word of that language, a
# number, an address or a Directive (halb.config.words), or rendering stops.
TARGETS = {
    "haproxy.cfg.j2": haproxy_word,
    "halb-secrets.cfg.j2": haproxy_word,
    "keepalived.conf.j2": keepalived_word,
    "halb-auth.conf.j2": keepalived_word,
    "haproxy-state.j2": shell_word,
    "haproxy-watch.j2": shell_word,
    "vrrp-notify.j2": shell_word,
    # python: numbers, addresses and the interface inside a triple-quoted string (no quote, no backslash)
    "vrrp-resign.j2": keepalived_word,
    "vrrp-guard.j2": keepalived_word,
    "vrrp-adverts.j2": keepalived_word,
    "halb-vrrp-guard.service.j2": haproxy_word,
    "handoff.j2": shell_word,
    "frr.conf.j2": keepalived_word,
    "frr-daemons.j2": keepalived_word,  # FRR's words: no space, and no `!` or `#` (comments)
    "halb-handoff.service.j2": haproxy_word,
    "halb-metrics.j2": keepalived_word,
    "halb-metrics.service.j2": haproxy_word,
    "halb-node-exporter.service.j2": haproxy_word,
    # systemd units and tmpfiles.d: halb's own paths and names only, held to haproxy's rules
    "halb-haproxy-watch.service.j2": haproxy_word,
    "haproxy.service.d/halb.conf.j2": haproxy_word,
    "keepalived.service.d/halb.conf.j2": haproxy_word,
    "tmpfiles.d/halb.conf.j2": haproxy_word,
    # step scripts: shell words; what halb composes (a rule list) goes in as a Directive
    "steps/firewall.sh.j2": shell_word,
    "steps/frr.sh.j2": shell_word,
    "steps/packages.sh.j2": shell_word,
    "steps/wait.sh.j2": shell_word,
    "steps/services.sh.j2": shell_word,
    "steps/commit.sh.j2": shell_word,
    "steps/rejoin.sh.j2": shell_word,
    "steps/owner.sh.j2": shell_word,
    "steps/teardown.sh.j2": shell_word,
    "steps/system.sh.j2": shell_word,
    "steps/staged.sh.j2": shell_word,
    "steps/haproxy-prepare.sh.j2": shell_word,
    "steps/haproxy-apply.sh.j2": shell_word,
    "steps/keepalived-prepare.sh.j2": shell_word,
    "steps/keepalived-apply.sh.j2": shell_word,
    "steps/tls.sh.j2": shell_word,
}


def single_quoted(value: str) -> Directive:
    """A value inside haproxy's single quotes, where every character but the quote is literal."""
    if "'" in value or not value.isprintable() or not value.isascii():
        raise UnsafeValue("haproxy quoted", "<secret>", "printable ASCII without a single quote")
    return Directive(value)


def shell_words(items: list[object]) -> Directive:
    """Several shell words, each quoted as needed, separated by spaces (`for p in {{ packages|shell_words }}`)."""
    return Directive(" ".join(shell_word(i) for i in items))


def _environment(word: object) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=finalizer(word),
    )
    env.filters["single_quoted"] = single_quoted
    env.filters["shell_words"] = shell_words
    return env


_ENVS = {word: _environment(word) for word in set(TARGETS.values())}


def _render(template: str, **ctx: object) -> str:
    return _ENVS[TARGETS[template]].get_template(template).render(paths=PATHS, **ctx)


def step_script(template: str, **ctx: object) -> str:
    """A step's script (or a part of one) from templates/steps/, rendered as the node files are."""
    return _render(template, **ctx)


def _advert(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def server_state(srv: Server) -> Directive:
    """The runtime-changeable part of a `server` line: weight, and `disabled`."""
    weight = srv.live_weight
    return Directive((f" weight {weight}" if weight != 1 else "") + (" disabled" if srv.state == "disabled" else ""))


ACL_CHUNK = 40  # networks per `acl` line: haproxy reads at most 64 words a line


def stats_acl_lines(cfg: HalbConfig) -> list[list[IPv4Network | IPv6Network]]:
    """`stats_allow` split over several `acl halb_allowed src` lines (haproxy ORs them)."""
    nets = stats_allow(cfg)
    return [nets[i : i + ACL_CHUNK] for i in range(0, len(nets), ACL_CHUNK)] or [[]]


def hostport(where: IPv4Address | IPv6Address, port: int) -> Directive:
    """`address:port` as haproxy reads it, IPv6 in brackets."""
    text = address(where)
    return Directive(f"[{text}]:{int(port)}" if ":" in text else f"{text}:{int(port)}")


def binds(cfg: HalbConfig, service: Service) -> list[str]:
    """Where a service's frontend listens. All VIPs (`vips` unset): the wildcard, and the IPv6
    wildcard too when a VIP is IPv6; else each listed VIP, bound before it arrives on this node
    (`transparent`: IP_FREEBIND, so no sysctl and no restart when the VIP moves)."""
    port = int(service.port)
    if service.vips is None:
        six = 6 in {v.family for v in service_vips(cfg, service)}
        where = [f"*:{port}"] + ([f":::{port} v6only"] if six else [])
    else:
        where = [f"{hostport(v.address, port)} transparent" for v in service_vips(cfg, service)]
    return [Directive(w + tls_options(cfg, service)) for w in where]


def tls_options(cfg: HalbConfig, service: Service) -> str:
    """A TLS service's bind options: its certificates (the first is the default, the others by
    SNI) and, in `mode: http`, ALPN offering HTTP/2 first."""
    if service.tls is None:
        return ""
    crts = "".join(f" crt {haproxy_word(path)}" for path in certificate_paths(service))
    return f" ssl{crts}" + (" alpn h2,http/1.1" if service.mode == "http" else "")


def backends(service: Service) -> list[tuple[str, list[Server], str | None]]:
    """A service's haproxy backends (`halb.config.haproxy.backend_names`) with their servers and
    PROXY protocol version: its own, then one per server group."""
    groups = [(service.servers, service.send_proxy)] + [(g.servers, g.send_proxy) for g in service.groups]
    if service.redirect_http:
        groups = groups[1:]
    return [(name, *group) for name, group in zip(backend_names(service), groups, strict=True)]


def sync_groups(cfg: HalbConfig) -> list[dict[str, object]]:
    """keepalived's `vrrp_sync_group`s: each group's instances by name."""
    return [
        {"name": f"{INSTANCE}_{g.name}", "instances": [f"{INSTANCE}_{v}" for v in g.vips]}
        for g in cfg.keepalived.sync_groups
    ]


def context(cfg: HalbConfig, node_name: str) -> dict[str, object]:
    node, peer, plan = cfg.node(node_name), cfg.peer(node_name), cfg.plan
    k = cfg.keepalived
    return {
        "node": {"name": node.name, "role": node.role, "interface": cfg.interface(node)},
        "nopreempt": k.nopreempt and not peer.maintenance,
        "server_state": server_state,
        "peer": {"name": peer.name},
        "vip": plan.vip,
        "advert_int": _advert(k.advert_int),
        "advert_cs": round(k.advert_int * 100),
        "instance": INSTANCE,
        "instances": plan.instances[node_name],
        # the guard's witnesses that this node is cut off from the LAN: none without a gateway
        "isolation": (
            {"source": plan.address(node.name), "gateway": cfg.network.gateway} if cfg.network.gateway else None
        ),
        "vips": bool(cfg.vips),  # instance i's VRID is the config key vips[i].vrid, else keepalived.vrid
        "stack_addresses": [a for n in cfg.nodes for a in (plan.address(n.name), n.address6) if a is not None],
        "sync_groups": sync_groups(cfg),
        "binds": lambda service: binds(cfg, service),
        "backends": backends,
        "tls_policy": any(s.tls is not None for s in cfg.haproxy.services),
        "hostport": hostport,
        "script_user": SCRIPT_USER,
        "track_file_name": "halb_haproxy_down",
        "health_file_name": "halb_haproxy_health",
        "backends_file_name": "halb_backends_down",
        "partition_file_name": "halb_partition",
        "hold_file_name": "halb_hold",
        "backends_penalty": plan.backends_penalty,
        "backends_every": 5,
        "rise_probes": math.ceil(k.health_check.rise / k.health_check.interval),
        "stats_userlist": "halb_stats",
        "haproxy_bin": HAPROXY_BIN,
        # The PROXY header goes on health checks too: a server that expects it refuses a check without it.
        "proxy_args": {
            "v1": Directive(" send-proxy check-send-proxy"),
            "v2": Directive(" send-proxy-v2 check-send-proxy"),
        },
        "check_args": {
            "tcp": Directive(" check"),
            "tls": Directive(" check check-ssl verify none"),
            "http": Directive(" check"),
            "none": "",
        },
        "keepalived": k,
        "haproxy": cfg.haproxy,
        # BGP mode: the VIPs the watcher puts on lo (host routes), which FRR announces
        "announced": [ip_network(v.address) for v in plan.vips] if cfg.mode == "bgp" else [],
        "lo_label": LO_LABEL,
        "stats_acl_lines": stats_acl_lines(cfg),
        "stats_six": any(n.version == 6 for n in stats_allow(cfg)),
    }


def haproxy_structure(cfg: HalbConfig, node_name: str) -> str:
    """`node_name`'s haproxy.cfg with every server at its default weight and enabled: what the
    runtime API cannot change. Two configs with the same structure differ only in server weights
    and states, which haproxy's step applies through the runtime API instead of a reload."""
    return _render("haproxy.cfg.j2", **{**context(cfg, node_name), "server_state": lambda _: Directive("")})


def node_files(cfg: HalbConfig, node_name: str) -> list[NodeFile]:
    """Every non-secret file halb installs on `node_name`, in install order."""
    ctx = context(cfg, node_name)
    if cfg.mode == "bgp":
        return bgp_node_files(cfg, node_name, ctx)
    return [
        NodeFile(PATHS["tmpfiles"], _render("tmpfiles.d/halb.conf.j2", **ctx), "0644", "system"),
        NodeFile(PATHS["haproxy_state"], _render("haproxy-state.j2", **ctx), "0755", "system"),
        NodeFile(PATHS["haproxy_watch"], _render("haproxy-watch.j2", **ctx), "0755", "system"),
        NodeFile(PATHS["haproxy_watch_unit"], _render("halb-haproxy-watch.service.j2", **ctx), "0644", "system"),
        NodeFile(PATHS["keepalived_dropin"], _render("keepalived.service.d/halb.conf.j2", **ctx), "0644", "system"),
        NodeFile(PATHS["vrrp_notify"], _render("vrrp-notify.j2", **ctx), "0755", "system"),
        NodeFile(PATHS["vrrp_resign"], _render("vrrp-resign.j2", **ctx), "0755", "system"),
        NodeFile(PATHS["vrrp_adverts"], _render("vrrp-adverts.j2", **ctx), "0644", "system"),
        NodeFile(PATHS["vrrp_guard"], _render("vrrp-guard.j2", **ctx), "0755", "system"),
        NodeFile(PATHS["vrrp_guard_unit"], _render("halb-vrrp-guard.service.j2", **ctx), "0644", "system"),
        NodeFile(PATHS["haproxy_dropin"], _render("haproxy.service.d/halb.conf.j2", **ctx), "0644", "system"),
        *(handoff_files(cfg, node_name, ctx) if cfg.keepalived.handoff else []),
        *(metrics_files(cfg, ctx) if cfg.monitoring.node_exporter else []),
        NodeFile(PATHS["haproxy_cfg"], _render("haproxy.cfg.j2", **ctx), "0644", "haproxy"),
        NodeFile(PATHS["keepalived_conf"], _render("keepalived.conf.j2", **ctx), "0644", "keepalived"),
    ]


def bgp_node_files(cfg: HalbConfig, node_name: str, ctx: dict[str, object]) -> list[NodeFile]:
    """BGP mode: haproxy, its watcher (which puts the VIPs on lo while haproxy answers) and FRR;
    no VRRP. frr.conf is a secret file when a peer has a password."""
    return [
        NodeFile(PATHS["tmpfiles"], _render("tmpfiles.d/halb.conf.j2", **ctx), "0644", "system"),
        NodeFile(PATHS["haproxy_state"], _render("haproxy-state.j2", **ctx), "0755", "system"),
        NodeFile(PATHS["haproxy_watch"], _render("haproxy-watch.j2", **ctx), "0755", "system"),
        NodeFile(PATHS["haproxy_watch_unit"], _render("halb-haproxy-watch.service.j2", **ctx), "0644", "system"),
        NodeFile(PATHS["haproxy_dropin"], _render("haproxy.service.d/halb.conf.j2", **ctx), "0644", "system"),
        NodeFile(PATHS["haproxy_cfg"], _render("haproxy.cfg.j2", **ctx), "0644", "haproxy"),
        *(metrics_files(cfg, ctx) if cfg.monitoring.node_exporter else []),
        NodeFile(PATHS["frr_daemons"], _render("frr-daemons.j2"), "0640", "frr"),
        *([] if frr_secret(cfg) else [NodeFile(PATHS["frr_conf"], frr_conf(cfg, node_name), "0640", "frr")]),
    ]


def frr_secret(cfg: HalbConfig) -> bool:
    """Whether frr.conf holds a secret (a peer's password): then it travels as the frr step's stdin."""
    return cfg.bgp is not None and any(p.password is not None for p in cfg.bgp.peers)


def handoff_files(cfg: HalbConfig, node_name: str, ctx: dict[str, object]) -> list[NodeFile]:
    """halb-handoff (the script and its unit): each VIP this node runs, and the peer its unknown
    connections go to (in the VIP's family)."""
    handoff = [
        {"vip": i["vip"], "peer": i["peer"], "six": ":" in str(i["vip"])}
        for i in cfg.plan.instances[node_name]
        if i["peer"] is not None
    ]
    script = _render("handoff.j2", handoff=handoff, route_protocol=HANDOFF_ROUTE_PROTOCOL, **ctx)
    return [
        NodeFile(PATHS["handoff"], script, "0755", "system"),
        NodeFile(PATHS["handoff_unit"], _render("halb-handoff.service.j2", **ctx), "0644", "system"),
    ]


def metrics_files(cfg: HalbConfig, ctx: dict[str, object]) -> list[NodeFile]:
    """halb-metrics (the writer and its unit) and the node exporter's unit. In BGP mode the writer
    reads FRR (the sessions with `bgp.peers`, their BFD state) and the VIPs on lo instead of VRRP."""
    node = cast("dict[str, str]", ctx["node"])["name"]
    listen = hostport(cfg.plan.address(node), cfg.monitoring.node_exporter_port)
    bgp = cfg.mode == "bgp" and cfg.bgp is not None
    writer = {
        "metrics_every": METRICS_EVERY,
        "frr_every": FRR_EVERY,
        "maintenance_priority": MAINTENANCE_PRIORITY,
        "shared_directives": Directive(repr(SHARED_VRRP_DIRECTIVES)),
        "vrrp_states": Directive(repr(VRRP_STATES)),
        "metric_help": Directive(pformat({m.name: (m.kind, m.help) for m in of_mode(cfg.mode)}, width=110)),
        "admin_socket": PATHS["admin_socket"],
        "bgp": bgp,
        "bgp_peers": [p.address for p in cfg.bgp.peers] if cfg.bgp is not None else [],
        "bgp_vips": [v.address for v in cfg.plan.vips],
    }
    return [
        NodeFile(PATHS["metrics_writer"], _render("halb-metrics.j2", **ctx, **writer), "0755", "system"),
        NodeFile(PATHS["metrics_unit"], _render("halb-metrics.service.j2", **ctx), "0644", "system"),
        NodeFile(
            PATHS["node_exporter_unit"],
            _render("halb-node-exporter.service.j2", node_exporter_listen=listen, **ctx),
            "0644",
            "system",
        ),
    ]


def secret_files(cfg: HalbConfig, node_name: str, secrets: Secrets) -> list[NodeFile]:
    """The files that hold secrets (mode 0600), rendered from the given values."""
    ctx = context(cfg, node_name)
    files = [
        NodeFile(
            PATHS["haproxy_secrets"],
            _render("halb-secrets.cfg.j2", stats_password=secrets.stats_password, **ctx),
            "0600",
            "haproxy",
            secret=True,
        )
    ]
    for path, key, _ in certificate_files(cfg):
        content = secrets.certificates.get(path) or f"@SECRET:{key}@\n"
        files.append(NodeFile(path, content, "0600", "tls", secret=True))
    if frr_secret(cfg):
        files.append(
            NodeFile(PATHS["frr_conf"], frr_conf(cfg, node_name, secrets.reveal_bgp), "0640", "frr", secret=True)
        )
    if cfg.keepalived.version == 2 and cfg.mode == "vrrp":
        files.append(
            NodeFile(
                PATHS["keepalived_auth"],
                _render("halb-auth.conf.j2", auth_password=secrets.vrrp_password, **ctx),
                "0600",
                "keepalived",
                secret=True,
            )
        )
    return files


def frr_conf(cfg: HalbConfig, node_name: str, reveal: bool = False) -> str:
    """The node's frr.conf in BGP mode: BFD, a session per peer, each VIP announced (as a host
    route) while it is on the node, nothing accepted; GRACEFUL_SHUTDOWN while the node drains.
    A peer's password is a marked placeholder unless `reveal` (the frr step's secret stdin)."""
    bgp = cfg.bgp
    if bgp is None:
        raise ValueError("frr.conf: only with `mode: bgp`")
    node, plan = cfg.node(node_name), cfg.plan
    subnets = [n for n in (cfg.network.subnet, cfg.network.subnet6) if n is not None]
    peers = [
        {
            "address": p.address,
            "asn": p.asn,
            "version": p.address.version,
            "multihop": multihop(p.address, subnets),
            "password": _bgp_password(i, p.password, reveal) if p.password is not None else None,
        }
        for i, p in enumerate(bgp.peers)
    ]
    vips = [v.address for v in plan.vips]
    families = [
        {
            "version": 4,
            "name": "ipv4",
            "ip": Directive("ip"),
            "suffix": "",
            "vips": [ip_network(v) for v in vips if v.version == 4],
        },
        {
            "version": 6,
            "name": "ipv6",
            "ip": Directive("ipv6"),
            "suffix": "6",
            "vips": [ip_network(v) for v in vips if v.version == 6],
        },
    ]
    return _render(
        "frr.conf.j2",
        node=node.name,
        asn=bgp.asn,
        router_id=plan.address(node_name),
        bfd=bgp.bfd,
        peers=peers,
        families=[f for f in families if f["vips"]],
        communities=Directive(" ".join(community_words(bgp.communities))),
        drain=node.maintenance,
    )


def _bgp_password(i: int, password: Secret, reveal: bool) -> str | Directive:
    """A peer's password as frr.conf takes it: the value (checked as one word at render time, like
    any config value), or a marked placeholder."""
    if reveal and password.value is not None:
        return password.value
    return Directive(f"@SECRET:bgp.peers[{i}].password@")


def community_words(communities: list[str]) -> list[str]:
    """The communities as FRR takes them, checked again here (a model built in code skips the config's check)."""
    for c in communities:
        if community_problems("community", c):
            raise UnsafeValue("FRR community", c, "`ASN:VALUE`, each 0-65535, not a well-known one")
    return communities


def all_files(cfg: HalbConfig, node_name: str, secrets: Secrets = PLACEHOLDERS) -> list[NodeFile]:
    return node_files(cfg, node_name) + secret_files(cfg, node_name, secrets)


def write_tree(cfg: HalbConfig, out: Path, secrets: Secrets = PLACEHOLDERS) -> list[Path]:
    """Write every node's files under out/<node>/<absolute path>; returns the paths written."""
    written = []
    for node in cfg.nodes:
        files = [(f.path, f.content, f.mode) for f in all_files(cfg, node.name, secrets)]
        for path, content, mode in files:
            dest = out / node.name / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(content, encoding="utf-8")
            dest.chmod(int(mode, 8))
            written.append(dest)
    return written
