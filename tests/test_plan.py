"""halb.plan: every derived fact computed once from the validated config, and each from one rule."""

from __future__ import annotations

from ipaddress import IPv4Address

from conftest import stack_raw
from halb.config import load_config
from halb.config.paths import delete_in, set_in
from halb.plan import BACKENDS_PENALTY_MARGIN, MAINTENANCE_PRIORITY

DEV = stack_raw("dev")
DEV_VIPS = delete_in(delete_in(DEV, "addresses.vip"), "keepalived.vrid")
TWO = [
    {"name": "public", "address": "192.168.4.60"},
    {"name": "internal", "address": "192.168.4.59", "preferred": "lb2"},
]


def test_the_plan_is_computed_once_per_config() -> None:
    cfg = load_config(DEV)
    assert cfg.plan is cfg.plan, "cfg.plan: one object, read by render, commands, components and status"
    assert cfg.plan.vip == IPv4Address("192.168.4.60") and cfg.plan.address("lb2") == IPv4Address("192.168.4.62")


def test_priority_the_preferred_node_has_the_master_priority_in_each_instance() -> None:
    cfg = load_config(set_in(DEV_VIPS, "vips", TWO))
    k = cfg.keepalived
    got = {n: {i["name"]: (i["priority"], i["state"]) for i in cfg.plan.instances[n]} for n in ("lb1", "lb2")}
    assert got == {
        "lb1": {"halb_public": (k.master_priority, "MASTER"), "halb_internal": (k.backup_priority, "BACKUP")},
        "lb2": {"halb_public": (k.backup_priority, "BACKUP"), "halb_internal": (k.master_priority, "MASTER")},
    }, "each VIP's preferred node (vips[i].preferred, else the master) has masterPriority"


def test_priority_a_node_in_maintenance_runs_every_instance_at_the_maintenance_priority() -> None:
    cfg = load_config(set_in(set_in(DEV_VIPS, "vips", TWO), "nodes[1].maintenance", True))
    lb2 = {i["name"]: (i["priority"], i["base_priority"]) for i in cfg.plan.instances["lb2"]}
    k = cfg.keepalived
    assert lb2 == {
        "halb_public": (MAINTENANCE_PRIORITY, k.backup_priority),
        "halb_internal": (MAINTENANCE_PRIORITY, k.master_priority),
    }, "lb2 in maintenance: priority 1 everywhere, the configured one kept for the guard's raise"
    assert [i["priority"] for i in cfg.plan.instances["lb1"]] == [k.master_priority, k.backup_priority], "lb1"


def test_backends_penalty_drops_a_node_below_its_peer_even_when_the_peer_is_raised() -> None:
    cfg = load_config(DEV)
    k = cfg.keepalived
    gap = k.master_priority - k.backup_priority
    assert cfg.plan.backends_penalty == gap + 1 + BACKENDS_PENALTY_MARGIN
    assert k.master_priority - cfg.plan.backends_penalty < k.backup_priority, "below the peer"


def test_firewall_lets_in_vrrp_from_each_nodes_own_peer() -> None:
    cfg = load_config(DEV)
    assert cfg.plan.firewall["lb1"][0] == "vrrp 192.168.4.62/32" and cfg.plan.firewall["lb2"][0] == (
        "vrrp 192.168.4.61/32"
    ), {n: rules[0] for n, rules in cfg.plan.firewall.items()}
