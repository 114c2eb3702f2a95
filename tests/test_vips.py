"""halb.config.vips: several VIPs, their defaults and every problem at once (no nodes needed)."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import stack_raw
from halb.config import ConfigError, load_config
from halb.config.paths import delete_in, set_in

LAB = stack_raw("lab")
TWO = [
    {"name": "public", "address": "198.18.0.10"},
    {"name": "internal", "address": "198.18.0.9", "preferred": "lb2"},
]


def lab(**changes: Any) -> dict[str, Any]:
    raw = delete_in(delete_in(LAB, "addresses.vip"), "keepalived.vrid")
    for path, value in changes.items():
        raw = set_in(raw, path, value)
    return raw


def problems(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(raw)
    return str(err.value)


def test_a_stack_without_vips_has_one_from_addresses_vip_preferred_by_the_master() -> None:
    cfg = load_config(LAB)
    [vip] = cfg.plan.vips
    assert (vip.name, str(vip.address), vip.preferred, vip.vrid, vip.prefixlen) == ("vip", "198.18.0.10", "lb1", 10, 24)


def test_two_vips_each_with_its_preferred_node_and_distinct_router_ids() -> None:
    cfg = load_config(lab(vips=TWO))
    plans = {v.name: v for v in cfg.plan.vips}
    assert plans["public"].preferred == "lb1" and plans["internal"].preferred == "lb2", plans
    assert (plans["public"].vrid, plans["internal"].vrid) == (10, 9), plans


def test_derived_router_ids_never_collide() -> None:
    vips = [{"name": "va", "address": "198.18.0.10"}, {"name": "vb", "address": "198.18.0.40", "vrid": 10}]
    plans = {v.name: v.vrid for v in load_config(lab(vips=vips)).plan.vips}
    assert plans["vb"] == 10 and plans["va"] != 10, plans


def test_every_vip_problem_at_once() -> None:
    vips = [
        {"name": "va", "address": "198.18.0.10", "vrid": 7},
        {"name": "va", "address": "198.18.0.10", "vrid": 7, "preferred": "lb9"},
        {"name": "vc", "address": "198.18.1.5"},
        {"name": "vd", "address": "198.18.0.11"},
        {"name": "ve", "address": "2001:2::10"},
    ]
    raw = set_in(lab(vips=vips), "haproxy.services[0].vips", ["nope"])
    text = problems(raw)
    for expected in (
        "halb:vips[1].name: got 'va'; expected a name not already used by `vips[0]`",
        "halb:vips[1].address: got '198.18.0.10'; expected an address not already used by `vips[0]`",
        "halb:vips[1].vrid: got 7; expected a router id not already used by `vips[0]`",
        "halb:vips[1].preferred: got 'lb9'",
        "halb:vips[2].address: got '198.18.1.5'; expected an address inside `network.subnet` 198.18.0.0/24",
        "halb:vips[3].address: got '198.18.0.11'; expected a free address, not `nodes[0].address`",
        "halb:vips[4].address: got '2001:2::10'; expected an IPv4 address, or `network.subnet6` set",
        "halb:vips[4].address: got '2001:2::10'; expected an IPv4 address, or `keepalived.version: 3`",
        "halb:haproxy.services[0].vips[0]: got 'nope'",
    ):
        assert expected in text, f"{expected!r} not in {text}"


V6 = {"name": "public6", "address": "2001:2::10"}


def dual(**changes: Any) -> dict[str, Any]:
    """lab with an IPv4 pair of VIPs and an IPv6 one: subnet6, both nodes' address6, VRRPv3."""
    raw = set_in(lab(vips=[*TWO, V6]), "network.subnet6", "2001:2::/64")
    raw = set_in(set_in(raw, "nodes[0].address6", "2001:2::11"), "nodes[1].address6", "2001:2::12")
    raw = set_in(raw, "keepalived.version", 3)
    for path, value in changes.items():
        raw = set_in(raw, path.replace("__", "."), value)
    return raw


def test_an_ipv6_vip_is_planned_in_subnet6_with_its_own_router_id() -> None:
    plans = {v.name: v for v in load_config(dual()).plan.vips}
    six = plans["public6"]
    assert (six.family, six.prefixlen, six.preferred) == (6, 64, "lb1"), six
    assert len({v.vrid for v in plans.values()}) == 3, plans


def test_every_ipv6_problem_at_once() -> None:
    raw = dual(network__subnet6="2001:2::/32", network__gateway6="2001:3::1")
    raw = set_in(set_in(raw, "nodes[1].address6", "2001:3::12"), "vips[2].address", "2001:2::11")
    raw = set_in(raw, "vips[1].address", raw["haproxy"]["services"][0]["servers"][0]["address"])
    text = problems(raw)
    for expected in (
        "halb:network.subnet6: got '2001:2::/32'; expected an IPv6 prefix from /48 to /126",
        "halb:network.gateway6: got '2001:3::1'; expected a host address inside `network.subnet6`, or the router's link-local address",
        "halb:nodes[1].address6: got '2001:3::12'; expected a host address inside `network.subnet6` 2001:2::/32",
        "halb:vips[2].address: got '2001:2::11'; expected a free address, not `nodes[0].address6`",
        "halb:vips[1].address: got '198.18.0.21'; expected a free address, not `haproxy.services[0].servers[0].address`",
    ):
        assert expected in text, f"{expected!r} not in {text}"


def test_an_ipv6_vip_needs_an_ipv6_address_on_every_node_and_vrrp3() -> None:
    raw = delete_in(delete_in(dual(), "nodes[1].address6"), "keepalived.version")
    text = problems(raw)
    assert "halb:nodes[1].address6: got nothing; expected an IPv6 address in `network.subnet6` on every node" in text
    assert "halb:nodes[0].address6" not in text, text
    assert "halb:vips[2].address: got '2001:2::10'; expected an IPv4 address, or `keepalived.version: 3`" in text


def test_address6_without_subnet6_and_only_ipv6_vips_are_refused() -> None:
    raw = set_in(lab(vips=[V6], **{"keepalived.version": 3}), "nodes[0].address6", "2001:2::11")
    text = problems(raw)
    assert "halb:nodes[0].address6: got '2001:2::11'; expected an IPv6 address only with `network.subnet6` set" in text
    assert "halb:vips: got ['2001:2::10']; expected at least one IPv4 VIP" in text, text


def test_sync_group_problems_at_once() -> None:
    groups = [
        {"name": "web", "vips": ["public", "public6", "nope"]},
        {"name": "web", "vips": ["public", "internal"]},
        {"name": "solo", "vips": ["public6"]},
    ]
    text = problems(dual(keepalived__syncGroups=groups))
    for expected in (
        "halb:keepalived.syncGroups[0].vips[2]: got 'nope'; expected one of the VIPs: public, internal, public6",
        "halb:keepalived.syncGroups[1].name: got 'web'; expected a name not already used",
        "halb:keepalived.syncGroups[1].vips[0]: got 'public'; expected a VIP in one sync group only",
        "halb:keepalived.syncGroups[1].vips: got ['public', 'internal']; expected VIPs with the same `preferred` node",
        "halb:keepalived.syncGroups[2].vips: got ['public6']; expected two or more VIP names",
    ):
        assert expected in text, f"{expected!r} not in {text}"


def test_a_sync_group_of_one_preferred_node_and_a_service_on_named_vips_are_taken() -> None:
    raw = dual(keepalived__syncGroups=[{"name": "web", "vips": ["public", "public6"]}])
    cfg = load_config(set_in(raw, "haproxy.services[0].vips", ["internal", "public6"]))
    assert cfg.haproxy.services[0].vips == ["internal", "public6"]


def test_vips_and_addresses_vip_together_are_refused() -> None:
    text = problems(set_in(LAB, "vips", TWO))
    assert "halb:addresses.vip: got '198.18.0.10'; expected nothing when `vips` is set" in text, text


def test_the_readmes_dual_stack_stack_to_copy_is_valid() -> None:
    import yaml

    from conftest import ROOT
    from halb.config import strip_prefix

    page = (ROOT / "docs/guides/several-vips-and-ipv6.md").read_text()
    block = page[page.index("A dual-stack stack to copy") :].split("```yaml\n", 1)[1].split("```", 1)[0]
    cfg = load_config(strip_prefix(yaml.safe_load(block)["config"]))
    assert {v.name: (v.family, v.preferred) for v in cfg.plan.vips} == {
        "public": (4, "lb1"),
        "public6": (6, "lb1"),
        "internal": (4, "lb2"),
    }, "docs/guides/several-vips-and-ipv6.md: the dual-stack example"
