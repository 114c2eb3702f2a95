"""Address plan: given addresses kept, missing ones allocated deterministically from the pool."""

from __future__ import annotations

import os
import subprocess
import sys
from ipaddress import IPv4Address as A

from conftest import ROOT, stack_raw
from halb.config import load_config
from halb.config.addresses import allocate_addresses
from halb.config.paths import set_in

DEV = stack_raw("dev")


def pooled(first: str, last: str, **over: object) -> dict:
    raw = set_in(DEV, "addresses", {"pool": {"first": first, "last": last}})
    raw["nodes"] = [{"name": "lb1", "role": "master"}, {"name": "lb2", "role": "backup"}]
    for key, value in over.items():
        raw = set_in(raw, key, value)
    return raw


def test_given_addresses_are_kept() -> None:
    plan = allocate_addresses(load_config(DEV))
    assert plan.vip == A("192.168.4.60")
    assert plan.nodes == {"lb1": A("192.168.4.61"), "lb2": A("192.168.4.62")}
    assert plan.prefixlen == 24


def test_pool_allocates_vip_then_nodes_in_order() -> None:
    plan = allocate_addresses(load_config(pooled("192.168.4.60", "192.168.4.65")))
    assert (plan.vip, plan.nodes["lb1"], plan.nodes["lb2"]) == (A("192.168.4.60"), A("192.168.4.61"), A("192.168.4.62"))


def test_pool_skips_gateway_dns_backends_and_given_addresses() -> None:
    raw = pooled("192.168.4.1", "192.168.4.80", **{"network.dnsServers": ["192.168.4.2"]})
    raw["nodes"][1]["address"] = "192.168.4.3"
    raw = set_in(raw, "haproxy.services[0].servers[0].address", "192.168.4.4")
    plan = allocate_addresses(load_config(raw))
    # .1 gateway, .2 DNS, .3 given to lb2, .4 a backend server
    assert plan.vip == A("192.168.4.5")
    assert plan.nodes == {"lb1": A("192.168.4.6"), "lb2": A("192.168.4.3")}


def test_given_vip_with_pooled_nodes() -> None:
    raw = pooled("192.168.4.100", "192.168.4.110", **{"addresses.vip": "192.168.4.100"})
    plan = allocate_addresses(load_config(raw))
    assert (plan.vip, plan.nodes["lb1"], plan.nodes["lb2"]) == (
        A("192.168.4.100"),
        A("192.168.4.101"),
        A("192.168.4.102"),
    )


def test_plan_is_the_same_in_every_process() -> None:
    """Two operators' `pulumi preview` must plan the same addresses: no set or hash order leaks in."""
    code = (
        "import json; from conftest import stack_raw; from test_addresses import pooled; "
        "from halb.config.addresses import allocate_addresses; from halb.config import load_config; "
        "p = allocate_addresses(load_config(pooled('192.168.4.200', '192.168.4.254', "
        "**{'network.dnsServers': ['192.168.4.201', '192.168.4.203']}))); "
        "print(json.dumps([str(p.vip), {n: str(a) for n, a in p.nodes.items()}]))"
    )
    plans = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(plans) == 1, f"the plan depends on the hash seed: {plans}"
    assert '"192.168.4.202"' in next(iter(plans)), plans
