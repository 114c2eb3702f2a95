"""Stack lab-multi through the real engine: several VIPs, active/active and dual stack
(198.18.0.10 and 2001:2::10 preferred by lb1 in one sync group, 198.18.0.9 by lb2), each VIP
watched under the client load. Root only."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from conftest import stack_deployed
from halb_lab.automation.stack import Result, deploy, stack_file_of
from halb_lab.infra import nodes
from halb_lab.infra.topology import NODES
from halb_lab.scenarios.drills import quiet, status
from halb_lab.scenarios.probes import client_get, holders, node, wait_until
from halb_lab.scenarios.vips import (
    INTERNAL,
    PREFERRED,
    PUBLIC,
    PUBLIC6,
    STACK,
    haproxy_killed,
    link_cut,
    settled,
    url,
    vrrp_partition,
    where,
)
from halb_lab.scenarios.watch import Report, Watch

pytestmark = pytest.mark.lab


deployed = stack_deployed(STACK)


def never_blinked(vip: str, r: Report, holder: str) -> None:
    assert r.failed == 0 and r.holders_seen == [holder] and not r.bad_samples, f"{vip}: {r.summary()}"


def test_each_vip_is_held_by_its_preferred_node_and_serves_ipv4_and_ipv6(deployed: Result) -> None:
    assert wait_until(settled, 30, 0.1) is not None, where()
    for vip in PREFERRED:
        code, body = client_get(url(vip))
        assert code == 200 and body.strip().startswith("w"), (vip, code, body)
    for n in NODES:  # the stats port over IPv6 too, open to network.subnet6
        assert client_get(f"http://[{n.address6}]:8080/healthz")[0] == 200, f"{n.name}: /healthz over IPv6"


def test_a_service_on_one_vip_answers_there_only_and_follows_it(deployed: Result) -> None:
    """`api` lists the internal VIP only: bound on both nodes before the VIP arrives (`transparent`),
    it answers on 198.18.0.9:8443 from either node, never on 198.18.0.10:8443; its second server
    is reached over IPv6."""
    assert wait_until(settled, 30, 0.1) is not None, where()
    bodies = {client_get(f"http://{INTERNAL}:8443/")[1].strip() for _ in range(6)}
    assert bodies == {"w1", "w2"}, f"api through {INTERNAL}: {bodies}"
    assert client_get(f"http://{PUBLIC}:8443/", timeout=1)[0] == 0, f"api answered on {PUBLIC}"
    nodes.ssh(node("lb2"), "systemctl kill --signal=SIGKILL haproxy", timeout=10)
    assert wait_until(lambda: holders(INTERNAL) == ["lb1"], 5, 0.01) is not None, where()
    code, body = client_get(f"http://{INTERNAL}:8443/")
    assert code == 200, f"api on lb1 after {INTERNAL} moved there: {code} {body}"
    assert wait_until(settled, 30, 0.1) is not None, where()


def test_haproxy_killed_on_lb1_moves_every_vip_to_lb2_and_lb2s_own_never_blinks(deployed: Result) -> None:
    d = haproxy_killed("lb1")
    never_blinked(INTERNAL, d.reports[INTERNAL], "lb2")
    for vip in (PUBLIC, PUBLIC6):  # IPv6 as fast as IPv4: the client's neighbour cache follows the NAs
        r = d.reports[vip]
        assert r.moves == ["lb1", "lb2", "lb1"], f"{vip}: failback by preference: {r.summary()}"
        assert r.outages and r.longest_outage <= 0.3, f"{vip}: {r.summary()}"
        assert len([h for _, h in r.bad_samples if len(h) > 1]) <= 1, f"{vip}: {r.summary()}"
    assert not d.apart, f"the sync group's VIPs on different nodes: {d.apart}"


@pytest.mark.parametrize("cut", ["lb1", "lb2"])
def test_a_cut_link_moves_that_nodes_vips_to_its_peer_and_the_peers_own_never_blink(deployed: Result, cut: str) -> None:
    d = link_cut(cut)
    peer = "lb2" if cut == "lb1" else "lb1"
    assert d.moved_s is not None and d.moved_s <= 4.0, f"{cut}'s VIPs reached {peer} after {d.moved_s} s"
    for vip, owner in PREFERRED.items():
        r = d.reports[vip]
        if owner == peer:  # the cut node, held in FAULT as cut off, takes none of them
            assert r.failed == 0 and d.kept[vip], f"{vip} left {peer}: {r.summary()}"
            continue
        # While cut, halb-vrrp-guard holds the node in FAULT (nothing arrives, neither the peer nor
        # the gateway answers), so it lets its VIPs go before the peer takes them: one outage
        # until the peer takes over, none at the failback, two holders in one sample at most (the
        # preemption overlap at the return).
        two = [t for t, h in r.bad_samples if len(h) > 1]
        assert peer in r.holders_seen and len(two) <= 1, f"{vip}: {r.summary()}"
        assert r.outages and r.outages[0] <= 4.0 and all(o <= 0.3 for o in r.outages[1:]), f"{vip}: {r.summary()}"
        assert r.holders_seen[-1] == cut, f"{vip}: not back on {cut}: {r.summary()}"
    assert not d.apart, f"the sync group's VIPs on different nodes: {d.apart}"


def test_a_vrrp_partition_keeps_every_vip_ipv4_and_ipv6_on_its_own_node(deployed: Result) -> None:
    """VRRP dropped both ways for 8 s: halb-vrrp-guard holds each node in FAULT for its peer's VIPs
    (ARP for the IPv4 ones, NDP for 2001:2::10), so no VIP gets a second holder."""
    reports = vrrp_partition()
    for vip, owner in PREFERRED.items():
        r = reports[vip]
        two = [t for t, h in r.bad_samples if len(h) > 1]
        assert r.failed == 0 and r.moves == [owner] and len(two) <= 1, f"{vip}: {r.summary()}"
        assert r.keepalive_resets == 0, f"{vip}: long-lived connections broken: {r.summary()}"


def test_a_vip_removed_and_added_back_by_pulumi_up_while_the_others_serve(deployed: Result, tmp_path: Path) -> None:
    assert wait_until(settled, 30, 0.1) is not None, where()
    doc = yaml.safe_load(stack_file_of(STACK).read_text())
    doc["config"]["halb:vips"] = [v for v in doc["config"]["halb:vips"] if v["name"] != "internal"]
    services = doc["config"]["halb:haproxy"]["services"]  # and the service that only it carries
    doc["config"]["halb:haproxy"]["services"] = [s for s in services if s.get("vips") != ["internal"]]
    without_internal = tmp_path / f"Pulumi.{STACK}.yaml"
    without_internal.write_text(yaml.safe_dump(doc))
    with ExitStack() as stack:
        watches = {vip: stack.enter_context(Watch(vip=vip)) for vip in (PUBLIC, PUBLIC6)}
        deploy(stack_file=without_internal, stack=STACK, progress=quiet)
        gone = holders(INTERNAL)
        started = time.monotonic()
        deploy(stack=STACK, progress=quiet)
        came_back = wait_until(lambda: holders(INTERNAL) == ["lb2"], 30, 0.1)
        back_in = time.monotonic() - started
    assert gone == [], f"{INTERNAL} still held after its removal: {gone}"
    assert came_back is not None, f"{INTERNAL} not back on lb2 {back_in:.1f} s after the up that adds it"
    for vip, w in watches.items():
        assert w.report is not None, f"{vip}: the watcher left no report"
        never_blinked(vip, w.report, "lb1")
    assert client_get(url(INTERNAL))[0] == 200


def test_status_json_gives_each_vips_holder(deployed: Result) -> None:
    assert wait_until(settled, 30, 0.1) is not None, where()
    answer = status(STACK)
    holders_by_vip = {v["address"]: v["holders"] for v in answer["vips"]}
    assert answer["verdict"] == "OK", answer["summary"]
    assert holders_by_vip == {vip: [owner] for vip, owner in PREFERRED.items()}, answer["vips"]


def test_maintenance_moves_every_vip_off_the_node_and_the_others_never_blink(deployed: Result) -> None:
    assert wait_until(settled, 30, 0.1) is not None, where()
    with ExitStack() as stack:
        watches = {vip: stack.enter_context(Watch(vip=vip)) for vip in (PUBLIC, PUBLIC6)}
        deploy(stack=STACK, sets=["nodes[1].maintenance=true"], progress=quiet)
        resting = where()
        deploy(stack=STACK, progress=quiet)
        back = wait_until(settled, 30, 0.1)
    assert resting == {vip: ["lb1"] for vip in PREFERRED}, f"lb2 in maintenance still holds a VIP: {resting}"
    assert back is not None, where()
    for vip, w in watches.items():
        assert w.report is not None, f"{vip}: the watcher left no report"
        never_blinked(vip, w.report, "lb1")


def test_a_second_up_changes_nothing(deployed: Result) -> None:
    assert deploy(stack=STACK, progress=quiet).ran() == []
