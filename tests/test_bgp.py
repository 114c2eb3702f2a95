"""BGP mode's config (halb/config/bgp.py): what each mode needs, the ASNs, peers and communities,
every problem at once with its key; and each node's frr.conf, which FRR's own checker accepts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from conftest import require, stack_raw
from halb.config import ConfigError, HalbConfig, load_config
from halb.config.paths import delete_in, set_in


def bgp_stack(nodes: int = 3) -> dict[str, Any]:
    """The lab stack in BGP mode: `nodes` nodes, no roles, no VRRP settings, one router."""
    raw = copy.deepcopy(stack_raw("lab"))
    raw["mode"] = "bgp"
    raw.pop("keepalived", None)
    raw["nodes"] = [{"name": f"lb{i}", "address": f"198.18.0.{10 + i}"} for i in range(1, nodes + 1)]
    raw["bgp"] = {"asn": 64512, "peers": [{"address": "198.18.0.1", "asn": 64513}]}
    raw["addresses"] = {"vip": "198.18.10.10"}  # routed to the nodes: off their segment
    return raw


def problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        load_config(raw)
    return {p.key: str(p) for p in err.value.problems}


def test_a_bgp_stack_of_three_nodes_loads_with_its_defaults() -> None:
    cfg = load_config(bgp_stack())
    assert cfg.mode == "bgp" and cfg.bgp is not None, cfg
    assert [n.name for n in cfg.nodes] == ["lb1", "lb2", "lb3"], cfg.nodes
    assert cfg.bgp.bfd.detect_ms == 300, "bgp.bfd: the default detect time is 0.3 s"
    assert cfg.bgp.drain_timeout_s == 60 and cfg.bgp.communities == [], cfg.bgp


def test_vrrp_stays_the_default_mode_and_refuses_a_bgp_section() -> None:
    raw = stack_raw("lab")
    assert load_config(raw).mode == "vrrp", "the lab stack"
    found = problems({**raw, "bgp": bgp_stack()["bgp"]})
    assert "nothing unless `mode: bgp`" in found["bgp"], found


def test_what_bgp_mode_refuses_of_the_rest_is_reported_at_once() -> None:
    raw = bgp_stack(nodes=9)
    raw["nodes"][0]["role"] = "master"
    raw["keepalived"] = {"vrid": 10}
    found = problems(raw)
    assert "2-8 nodes" in found["nodes"], found
    assert "no role with `mode: bgp`" in found["nodes[0].role"], found
    assert "nothing with `mode: bgp`" in found["keepalived"], found
    assert "a BGP section" in problems(delete_in(bgp_stack(), "bgp"))["bgp"]


@pytest.mark.parametrize(
    ("path", "value", "key", "expected"),
    [
        ("bgp.asn", 64500, "bgp.asn", "for documentation (RFC 5398)"),
        ("bgp.asn", 23456, "bgp.asn", "AS_TRANS"),
        ("bgp.asn", 0, "bgp.asn", "greater than or equal to 1"),
        ("bgp.peers[0].asn", 65535, "bgp.peers[0].asn", "reserved (RFC 7300)"),
        ("bgp.peers[0].address", "198.18.0.11", "bgp.peers[0].address", "not `nodes[0].address`"),
        ("bgp.peers[0].address", "198.18.10.10", "bgp.peers[0].address", "not `addresses.vip`"),
        ("addresses.vip", "198.18.0.10", "addresses.vip", "an address outside `network.subnet` 198.18.0.0/24"),
        ("bgp.communities", ["64512"], "bgp.communities[0]", "`ASN:VALUE`"),
        ("bgp.communities", ["64512:70000"], "bgp.communities[0]", "each 0-65535"),
        ("bgp.communities", ["65535:0"], "bgp.communities[0]", "halb adds it itself"),
        ("bgp.communities", ["65535:65281"], "bgp.communities[0]", "not a well-known one"),
        ("bgp.bfd.multiplier", 1, "bgp.bfd.multiplier", "greater than or equal to 2"),
        ("bgp.peers", [], "bgp.peers", "at least 1 item"),
    ],
)
def test_a_bad_bgp_value_names_its_key_and_what_is_expected(path: str, value: Any, key: str, expected: str) -> None:
    found = problems(set_in(bgp_stack(), path, value))
    assert key in found and expected in found[key], f"{key}: {found}"


def test_a_peer_off_the_segment_needs_a_gateway_and_is_then_multihop() -> None:
    raw = set_in(bgp_stack(), "bgp.peers[0].address", "198.19.5.1")
    assert load_config(raw).bgp is not None, "reached through network.gateway"
    found = problems(delete_in(raw, "network.gateway"))
    assert "or a gateway" in found["bgp.peers[0].address"], found


def test_every_bgp_problem_comes_in_one_report() -> None:
    raw = bgp_stack()
    raw["bgp"] = {
        "asn": 64496,
        "peers": [{"address": "198.18.0.1", "asn": 23456}, {"address": "198.18.0.1", "asn": 64513}],
        "communities": ["no-export"],
    }
    found = problems(raw)
    assert {"bgp.asn", "bgp.peers[0].asn", "bgp.peers[1].address", "bgp.communities[0]"} <= set(found), found


def test_a_peer_password_is_a_secret_of_one_word() -> None:
    raw = set_in(bgp_stack(), "bgp.peers[0].password", "two words")
    found = problems(raw)
    assert "<secret with a character outside the allowed set>" in found["bgp.peers[0].password"], found
    assert "two words" not in str(found), "the password is never shown"
    cfg: HalbConfig = load_config(set_in(bgp_stack(), "bgp.peers[0].password", "s3cret-md5"))
    assert cfg.bgp is not None and "s3cret" not in repr(cfg.bgp), "the password stays opaque"


# --------------------------------------------------------------------------- frr.conf


def test_each_nodes_frr_conf_announces_every_vip_to_every_peer_with_bfd() -> None:
    from halb.render import frr_conf

    raw = set_in(bgp_stack(), "bgp.peers", [{"address": "198.18.0.1", "asn": 64513, "password": "md5-s3cret"}])
    cfg = load_config(set_in(raw, "bgp.communities", ["64512:100"]))
    conf = frr_conf(cfg, "lb2")
    for line in (
        "router bgp 64512",
        " bgp router-id 198.18.0.12",
        " neighbor 198.18.0.1 remote-as 64513",
        " neighbor 198.18.0.1 bfd profile halb",
        "  network 198.18.10.10/32",
        "  neighbor 198.18.0.1 route-map halb-accept-nothing in",
        " set community 64512:100 additive",
        "  detect-multiplier 3",
        " neighbor 198.18.0.1 password @SECRET:bgp.peers[0].password@",
    ):
        assert f"\n{line}\n" in conf, f"lb2 frr.conf lacks {line!r}:\n{conf}"
    assert "md5-s3cret" not in conf and "graceful-shutdown" not in conf and "multihop" not in conf, conf


def test_a_draining_node_sends_graceful_shutdown_and_a_far_peer_is_multihop() -> None:
    from halb.render import frr_conf

    raw = set_in(bgp_stack(), "nodes[0].maintenance", True)
    cfg = load_config(set_in(raw, "bgp.peers[0].address", "198.19.5.1"))
    assert "\n bgp graceful-shutdown\n" in frr_conf(cfg, "lb1"), "lb1 frr.conf: drains"
    assert "graceful-shutdown" not in frr_conf(cfg, "lb2"), "lb2 frr.conf: serves"
    assert "\n neighbor 198.19.5.1 ebgp-multihop 2\n" in frr_conf(cfg, "lb2"), "lb2 frr.conf: the far peer"


def dual_stack() -> HalbConfig:
    raw = set_in(bgp_stack(), "network.subnet6", "2001:2::/64")
    raw["vips"] = [{"name": "web", "address": "198.18.10.10"}, {"name": "web6", "address": "2001:2:0:10::10"}]
    del raw["addresses"]
    for i, n in enumerate(raw["nodes"]):
        n["address6"] = f"2001:2::{11 + i}"
    raw["bgp"]["peers"].append({"address": "2001:2::1", "asn": 64513})
    return load_config(raw)


def test_ipv6_vips_go_to_ipv6_peers_in_their_own_address_family() -> None:
    from halb.render import frr_conf

    conf = frr_conf(dual_stack(), "lb3")
    v6 = conf[conf.index(" address-family ipv6 unicast") :]
    assert "  network 2001:2:0:10::10/128\n" in v6 and "  neighbor 2001:2::1 activate\n" in v6, f"lb3 frr.conf:\n{conf}"
    assert "198.18.0.1 activate" not in v6 and "2001:2::1 activate" not in conf[: conf.index(v6)], conf


def test_frrs_checker_accepts_every_nodes_frr_conf_and_refuses_a_broken_one() -> None:
    from conftest import require
    from halb.render import frr_conf
    from halb.validate import frr_check, tool

    require(tool("vtysh") is not None, "vtysh (FRR)")
    cfg = dual_stack()
    for node in cfg.nodes:
        result = frr_check(frr_conf(cfg, node.name))
        assert result.rc == 0, f"{node.name} frr.conf: vtysh --dryrun: {result.output}"
    broken = frr_conf(cfg, "lb1").replace(" remote-as ", " remote-ass ", 1)
    assert frr_check(broken).rc != 0, "vtysh --dryrun accepted `remote-ass`"


def test_a_community_that_slipped_past_the_model_stops_the_render() -> None:
    from halb.config.words import UnsafeValue
    from halb.render import frr_conf

    cfg = load_config(bgp_stack())
    assert cfg.bgp is not None
    forged = cfg.model_copy(update={"bgp": cfg.bgp.model_copy(update={"communities": ["1:1\nrouter bgp 1"]})})
    with pytest.raises(UnsafeValue):
        frr_conf(forged, "lb1")


def test_halb_check_runs_frrs_checker_in_bgp_mode(tmp_path: Path) -> None:
    """`halb check` on a BGP stack: haproxy -c and vtysh --dryrun on each node's files."""
    from conftest import require_root_tools
    from halb.validate import rendered_problems, tool

    require_root_tools("haproxy", "unshare")
    require(tool("vtysh") is not None, "vtysh (FRR)")
    refused, skipped = rendered_problems(dual_stack())
    assert (refused, skipped) == ([], None), f"halb check, BGP mode: {refused or skipped}"


def test_the_lab_routers_frr_conf_passes_frrs_checker() -> None:
    from halb.validate import frr_check, tool
    from halb_lab.infra import router

    require(tool("vtysh") is not None, "vtysh (FRR)")
    result = frr_check(router.frr_conf())
    assert result.rc == 0, f"the lab router's frr.conf: {result.output}"


def test_the_failing_span_runs_from_the_first_failed_request_to_the_last() -> None:
    from halb_lab.scenarios.bgp import failing_span

    assert failing_span([(0.0, True), (0.01, False), (0.02, True), (0.05, False), (0.06, True)]) == 0.04
    assert failing_span([(0.0, True), (0.01, True)]) == 0.0, "nothing failed"


def test_verify_in_bgp_mode_wants_every_session_up_and_every_vip_on_lo() -> None:
    from halb.verify import Spec, bgp_node

    spec = Spec("198.18.1.10", {"lb1": "198.18.0.11"}, [], "deploy", 22, None, [], {}, peers=["198.18.0.2"])
    lo = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n1: lo    inet 198.18.1.10/32 scope global lo\n"
    up = '{"198.18.0.2":{"bgpState":"Established"}}'
    assert bgp_node("lb1", lo + up, spec) == "", "lb1: serving"
    down = '{"198.18.0.2":{"bgpState":"Active"}}'
    assert "no BGP session with 198.18.0.2" in bgp_node("lb1", lo + down, spec), "lb1: session down"
    bare = "1: lo    inet 127.0.0.1/8 scope host lo\n"
    assert "198.18.1.10 not on lo" in bgp_node("lb1", bare + up, spec), "lb1: VIP off lo"
    resting = Spec("198.18.1.10", {"lb1": "198.18.0.11"}, [], "deploy", 22, None, ["lb1"], {}, peers=["198.18.0.2"])
    assert bgp_node("lb1", bare + up, resting) == "", "lb1 in maintenance need not hold the VIP"
    assert "FRR did not answer" in bgp_node("lb1", lo + "not json", spec), "lb1: vtysh failed"


@pytest.mark.parametrize("variant", ["plain", "password and drain"])
def test_bgp_modes_step_scripts_pass_shellcheck(variant: str, tmp_path: Path) -> None:
    import subprocess

    from halb import commands
    from halb.render import all_files
    from halb.validate import tool

    require(tool("shellcheck") is not None, "the `shellcheck` binary")
    raw = bgp_stack()
    if variant != "plain":
        raw = set_in(set_in(raw, "bgp.peers[0].password", "md5-s3cret"), "nodes[0].maintenance", True)
    cfg = load_config(raw)
    files = all_files(cfg, "lb1")
    scripts = {
        "packages": commands.packages_script(cfg),
        "system": commands.system_script(cfg, "lb1", files),
        "frr": commands.frr_script(cfg, "lb1", files),
        "services": commands.services_script(cfg),
        "teardown": commands.teardown_script("lb1", "halb-lb1#0", bgp=True),
        "watcher": next(f.content for f in files if f.path.endswith("/haproxy-watch")),
    }
    for name, script in scripts.items():
        path = tmp_path / f"{name}.sh"
        path.write_text(script)
        shell = "--shell=bash" if name == "watcher" else "--shell=sh"
        p = subprocess.run(["shellcheck", shell, "--severity=warning", str(path)], capture_output=True, text=True)
        assert p.returncode == 0, f"lb1 {name} step ({variant}): {p.stdout}"
    frr = scripts["frr"]
    assert ('cat > "$stage/frr.conf"\n' in frr) == (variant != "plain"), (
        f"lb1 frr step ({variant}): frr.conf from stdin"
    )
    assert ("drain timeout (60 s)" in frr) == (variant != "plain"), (
        f"lb1 frr step ({variant}): waits for its connections"
    )
    assert "md5-s3cret" not in frr, "lb1 frr step: the password in the script"
    assert 'ip addr "$verb" 198.18.10.10/32 dev lo label lo:halb' in scripts["watcher"], "lb1 watcher: the VIP on lo"
    assert "ip -4 addr flush dev lo label lo:halb" in scripts["teardown"], "lb1 teardown: the VIPs leave lo"
    assert "frr" not in commands.teardown_script("lb1", "halb-lb1#0"), "a VRRP node's teardown leaves FRR alone"
