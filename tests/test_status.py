"""The VIP-holder assessment behind `halb.lab status` and the split-brain drill."""

from __future__ import annotations

from halb.status import NodeState, assess, parse_probe


def node(name: str, vip: bool, haproxy: str = "active") -> NodeState:
    return NodeState(name, True, "MASTER" if vip else "BACKUP", vip, haproxy, "active")


def test_one_holder_is_ok() -> None:
    v = assess([node("lb1", True), node("lb2", False)])
    assert v.ok and v.summary == "OK: lb1 holds the VIP"


def test_two_holders_is_split_brain() -> None:
    v = assess([node("lb1", True), node("lb2", True)])
    assert not v.ok and v.summary.startswith("SPLIT BRAIN: lb1 and lb2")


def test_no_holder_is_an_outage() -> None:
    v = assess([node("lb1", False), node("lb2", False)])
    assert not v.ok and v.summary.startswith("OUTAGE")


def test_a_dead_service_is_degraded() -> None:
    v = assess([node("lb1", True), node("lb2", False, haproxy="failed")])
    assert v.ok and v.summary.startswith("DEGRADED") and "lb2" in v.summary


def test_probe_output_is_parsed() -> None:
    s = parse_probe("lb1", "MASTER\nyes\nactive\nactive\n")
    assert (s.vrrp_state, s.holds_vip, s.haproxy, s.keepalived) == ("MASTER", True, "active", "active")
    assert not parse_probe("lb2", None).reachable
