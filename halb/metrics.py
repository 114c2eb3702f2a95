"""halb's metrics on each node: what `halb-metrics` writes to the node exporter's textfile collector
(`halb.prom`), declared once. The writer (templates/halb-metrics.j2), the alert rules
(monitoring/halb.rules.yml) and the reference page (docs/reference/metrics.md) take their names,
types and labels from here.

Prometheus's conventions: base units (seconds, Unix time), `_total` for counters, `_info` for a
constant 1 whose labels carry the value, and labels of low cardinality (a VRRP instance, a VIP, a
backend, a certificate). `vrrp_instance`, not `instance`: Prometheus gives every scraped series an
`instance` label of its own (the target).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import yaml

from halb import PROJECT_DIR

if TYPE_CHECKING:
    from halb.config import HalbConfig


Mode = Literal["vrrp", "bgp"]
BOTH: tuple[Mode, ...] = ("vrrp", "bgp")


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Literal["gauge", "counter"]
    help: str
    labels: tuple[str, ...] = ()
    modes: tuple[Mode, ...] = ("vrrp",)  # the modes (`halb:mode`) whose nodes write it


VRRP_STATES = ("master", "backup", "fault")

METRICS = (
    Metric(
        "halb_vrrp_state",
        "gauge",
        "1 for the VRRP instance's state on this node (master, backup or fault), 0 for the other two.",
        ("vrrp_instance", "vip", "state"),
    ),
    Metric("halb_vip_held", "gauge", "1 while the VIP is on this node's interface.", ("vip",)),
    Metric(
        "halb_vrrp_transitions_total",
        "counter",
        "VRRP state changes of the instance on this node since it booted (keepalived's notify hook).",
        ("vrrp_instance",),
    ),
    Metric(
        "halb_vrrp_partition",
        "gauge",
        "1 while halb-vrrp-guard holds the instance in FAULT: the peer's adverts are lost while another "
        "machine answers for the VIP, or this node is cut off from the LAN.",
        ("vrrp_instance",),
    ),
    Metric("halb_keepalived_up", "gauge", "1 while a keepalived process runs on this node."),
    Metric(
        "halb_haproxy_healthy",
        "gauge",
        "1 while halb-haproxy-watch finds haproxy healthy (it answers /healthz), as keepalived sees it.",
        modes=BOTH,
    ),
    Metric(
        "halb_backends_usable",
        "gauge",
        "Servers haproxy can send the backend's requests to now (UP: active ones, else backup ones).",
        ("backend",),
        BOTH,
    ),
    Metric(
        "halb_certificate_not_after_seconds",
        "gauge",
        "When the certificate the service serves expires, as Unix time.",
        ("service", "fingerprint"),
        BOTH,
    ),
    Metric(
        "halb_config_info",
        "gauge",
        "Always 1. `digest` identifies what both nodes must share (haproxy.cfg and keepalived's shared VRRP "
        "settings) as it is on this node now: two nodes with different digests run different configs.",
        ("digest",),
        BOTH,
    ),
    Metric("halb_maintenance", "gauge", "1 while the node is in maintenance (`nodes[i].maintenance`).", (), BOTH),
    Metric(
        "halb_vip_announced",
        "gauge",
        "1 while this node announces the VIP over BGP: the VIP is on its loopback (halb-haproxy-watch puts it "
        "there while haproxy answers) and a BGP session of the VIP's address family is Established.",
        ("vip",),
        ("bgp",),
    ),
    Metric(
        "halb_bgp_session_up",
        "gauge",
        "1 while the BGP session with the peer (`bgp.peers`) is Established; 0 otherwise, and while FRR does "
        "not answer.",
        ("peer",),
        ("bgp",),
    ),
    Metric(
        "halb_bfd_peer_up",
        "gauge",
        "1 while the BFD session with the peer is up; 0 otherwise (down, or none), and while FRR does not answer.",
        ("peer",),
        ("bgp",),
    ),
)
NAMES = {m.name: m for m in METRICS}


def of_mode(mode: Mode) -> tuple[Metric, ...]:
    """The metrics a node of this mode writes."""
    return tuple(m for m in METRICS if mode in m.modes)


def scrape_targets(cfg: HalbConfig) -> list[dict[str, object]]:
    """The stack output `prometheus_targets`: Prometheus `file_sd_configs` groups for every node's
    node exporter (halb's metrics with the node's own) and haproxy's exporter on the stats port
    (when it needs no password: file_sd cannot carry one)."""
    plan, h, m = cfg.plan, cfg.haproxy, cfg.monitoring
    nodes = [str(plan.address(n.name)) for n in cfg.nodes]
    groups: list[dict[str, object]] = []
    if m.node_exporter:
        groups.append({"targets": [f"{a}:{m.node_exporter_port}" for a in nodes], "labels": {"job": "halb-node"}})
    if h.metrics.enabled and not h.metrics.auth:
        groups.append(
            {
                "targets": [f"{a}:{h.stats.port}" for a in nodes],
                "labels": {"job": "halb-haproxy", "__metrics_path__": h.metrics.path},
            }
        )
    return groups


DASHBOARD = PROJECT_DIR / "monitoring" / "halb.dashboard.json"


def dashboard_queries() -> dict[str, str]:
    """Each panel's title -> its PromQL, from the Grafana dashboard halb ships."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {p["title"]: t["expr"] for p in panels for t in p["targets"]}


RULES = PROJECT_DIR / "monitoring" / "halb.rules.yml"
_UNITS = {"s": 1, "m": 60, "h": 3600}


def alert_for_seconds() -> dict[str, int]:
    """Each alert rule's name -> its `for:` in seconds, from the rules file halb ships."""
    out = {}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            wait = str(rule.get("for", "0s"))
            out[str(rule["alert"])] = int(wait[:-1]) * _UNITS[wait[-1]]
    return out
