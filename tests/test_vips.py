"""halb.config.vips: several VIPs, their defaults and every problem at once (no nodes needed)."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import stack_raw, with_, without
from halb.config import ConfigError, load_config

LAB = stack_raw("lab")
TWO = [
    {"name": "public", "address": "198.18.0.10"},
    {"name": "internal", "address": "198.18.0.9", "preferred": "lb2"},
]


def lab(**changes: Any) -> dict[str, Any]:
    raw = without(without(LAB, "addresses.vip"), "keepalived.vrid")
    for path, value in changes.items():
        raw = with_(raw, path, value)
    return raw


def problems(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(raw)
    return str(err.value)


def test_a_stack_without_vips_has_one_from_addresses_vip_preferred_by_the_master() -> None:
    cfg = load_config(LAB)
    [vip] = cfg.vip_plans
    assert (vip.name, str(vip.address), vip.preferred, vip.vrid, vip.prefixlen) == ("vip", "198.18.0.10", "lb1", 10, 24)


def test_two_vips_each_with_its_preferred_node_and_distinct_router_ids() -> None:
    cfg = load_config(lab(vips=TWO))
    plans = {v.name: v for v in cfg.vip_plans}
    assert plans["public"].preferred == "lb1" and plans["internal"].preferred == "lb2", plans
    assert (plans["public"].vrid, plans["internal"].vrid) == (10, 9), plans


def test_derived_router_ids_never_collide() -> None:
    vips = [{"name": "va", "address": "198.18.0.10"}, {"name": "vb", "address": "198.18.0.40", "vrid": 10}]
    plans = {v.name: v.vrid for v in load_config(lab(vips=vips)).vip_plans}
    assert plans["vb"] == 10 and plans["va"] != 10, plans


def test_every_vip_problem_at_once() -> None:
    vips = [
        {"name": "va", "address": "198.18.0.10", "vrid": 7},
        {"name": "va", "address": "198.18.0.10", "vrid": 7, "preferred": "lb9"},
        {"name": "vc", "address": "198.18.1.5"},
        {"name": "vd", "address": "198.18.0.11"},
        {"name": "ve", "address": "2001:2::10"},
    ]
    raw = with_(lab(vips=vips), "haproxy.services[0].vips", ["nope"])
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


def test_ipv6_vips_and_service_vip_lists_are_refused_until_they_are_served() -> None:
    raw = with_(lab(vips=[*TWO, {"name": "v6", "address": "2001:2::10"}]), "network.subnet6", "2001:2::/64")
    raw = with_(with_(raw, "keepalived.version", 3), "haproxy.services[0].vips", ["public"])
    text = problems(raw)
    assert "halb:vips[2].address: got '2001:2::10'; expected an IPv4 address: halb does not serve IPv6" in text, text
    assert "halb:haproxy.services[0].vips: got a list; expected nothing yet" in text, text


def test_vips_and_addresses_vip_together_are_refused() -> None:
    text = problems(with_(LAB, "vips", TWO))
    assert "halb:addresses.vip: got '198.18.0.10'; expected nothing when `vips` is set" in text, text
