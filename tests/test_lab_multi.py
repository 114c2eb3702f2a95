"""Stack lab-multi through the real engine: several VIPs, active/active and dual stack
(198.18.0.10 and 2001:2::10 preferred by lb1 in one sync group, 198.18.0.9 by lb2), each VIP
watched under the client load. Root only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from halb.lab.engine.stack import Result, deploy, destroy, stack_file_of
from halb.lab.infra import net, nodes
from halb.lab.scenarios.drills import quiet
from halb.lab.scenarios.probes import client_get, holders, node, wait_until
from halb.lab.scenarios.watch import Report, Watch

pytestmark = pytest.mark.lab
STACK = "lab-multi"
PUBLIC, INTERNAL, PUBLIC6 = "198.18.0.10", "198.18.0.9", "2001:2::10"  # lb1's (a sync group), lb2's
PREFERRED = {PUBLIC: "lb1", PUBLIC6: "lb1", INTERNAL: "lb2"}


@pytest.fixture(scope="module")
def deployed(lab_up: None) -> Iterator[Result]:
    result = deploy(stack=STACK, progress=quiet)
    yield result
    destroy(stack=STACK, progress=quiet)


def settled() -> bool:
    return all(holders(vip) == [owner] for vip, owner in PREFERRED.items())


def where() -> dict[str, list[str]]:
    return {vip: holders(vip) for vip in PREFERRED}


def url(vip: str) -> str:
    return f"http://[{vip}]/" if ":" in vip else f"http://{vip}/"


def watch_all(stack: ExitStack) -> dict[str, Watch]:
    """A watcher per VIP; lb1's IPv4 one also samples the IPv6 VIP of its sync group."""
    return {vip: stack.enter_context(Watch(vip=vip, also=(PUBLIC6,) if vip == PUBLIC else ())) for vip in PREFERRED}


def reports(watches: dict[str, Watch]) -> dict[str, Report]:
    out = {vip: w.report for vip, w in watches.items()}
    assert all(r is not None for r in out.values()), f"a watcher left no report: {out}"
    return {vip: r for vip, r in out.items() if r is not None}


def never_blinked(vip: str, r: Report, holder: str) -> None:
    assert r.failed == 0 and r.holders_seen == [holder] and not r.bad_samples, f"{vip}: {r.summary()}"


def moved_and_back(vip: str, r: Report, path: list[str], longest: float) -> None:
    """The VIP went along `path` of single holders, each outage under `longest`, and was never on
    both nodes for more than one sample (the hand-over)."""
    seen = [h for i, h in enumerate(r.holders_seen) if "+" not in h and (i == 0 or r.holders_seen[i - 1] != h)]
    assert seen == path, f"{vip}: holders {r.holders_seen}, expected {path}: {r.summary()}"
    assert r.outages and r.longest_outage <= longest, f"{vip}: {r.summary()}"
    assert len([h for _, h in r.bad_samples if len(h) > 1]) <= 1, f"{vip}: {r.summary()}"


def together(w: Watch) -> list[tuple[float, list[str], list[str]]]:
    """Samples where the sync group's two VIPs were on different nodes (each on exactly one)."""
    apart = []
    for (t, v4), (_, also) in zip(w.data["samples"], w.data["also"], strict=True):
        v6 = also[PUBLIC6]
        if len(v4) == 1 and len(v6) == 1 and v4 != v6:
            apart.append((t, v4, v6))
    return apart


def test_each_vip_is_held_by_its_preferred_node_and_serves_ipv4_and_ipv6(deployed: Result) -> None:
    assert wait_until(settled, 30, 0.1) is not None, where()
    for vip in PREFERRED:
        code, body = client_get(url(vip))
        assert code == 200 and body.strip().startswith("w"), (vip, code, body)


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
    assert wait_until(settled, 30, 0.1) is not None, where()
    with ExitStack() as stack:
        watches = watch_all(stack)
        nodes.ssh(node("lb1"), "systemctl kill --signal=SIGKILL haproxy", timeout=10)
        took = wait_until(lambda: holders(PUBLIC) == holders(PUBLIC6) == ["lb2"], 5, 0.01)
        assert took is not None, f"lb1's VIPs never all reached lb2: {where()}"
        back = wait_until(settled, 30, 0.1)  # haproxy restarts (Restart=always): failback by preference
    assert back is not None, where()
    r = reports(watches)
    never_blinked(INTERNAL, r[INTERNAL], "lb2")
    for vip in (PUBLIC, PUBLIC6):  # IPv6 as fast as IPv4: the client's neighbour cache follows the NAs
        moved_and_back(vip, r[vip], ["lb1", "lb2", "lb1"], 0.3)
    assert not together(watches[PUBLIC]), f"the sync group's VIPs on different nodes: {together(watches[PUBLIC])}"


@pytest.mark.parametrize("cut", ["lb1", "lb2"])
def test_a_cut_link_moves_that_nodes_vips_to_its_peer_and_the_peers_own_never_blink(deployed: Result, cut: str) -> None:
    """A node unplugged from the switch: its peer hears no advert for the master-down interval
    (3 x 1 s + skew) and takes its VIPs; plugged back, they return by preference."""
    assert wait_until(settled, 30, 0.1) is not None, where()
    peer = "lb2" if cut == "lb1" else "lb1"
    with ExitStack() as stack:
        watches = watch_all(stack)
        net.cut(node(cut))
        try:
            took = wait_until(lambda: all(peer in holders(v) for v in PREFERRED), 10, 0.05)
        finally:
            net.plug(node(cut))
        assert took is not None, f"{cut}'s VIPs never reached {peer}: {where()}"
        back = wait_until(settled, 30, 0.1)
    assert back is not None, where()
    r = reports(watches)
    for vip, owner in PREFERRED.items():
        if owner == peer:  # (the cut node, hearing no one, takes them too, where no client reaches it)
            kept = all(peer in h for _, h in watches[vip].data["samples"])
            assert r[vip].failed == 0 and kept, f"{vip} left {peer}: {r[vip].summary()}"
            continue
        # While cut, the node keeps its VIPs on a link nobody reaches (both hold them): the client
        # sees one outage until the peer takes over, and none at the failback.
        x = r[vip]
        assert f"{cut}+{peer}" in x.holders_seen or f"{peer}+{cut}" in x.holders_seen, f"{vip}: {x.summary()}"
        assert x.outages and x.outages[0] <= 4.0 and all(o <= 0.3 for o in x.outages[1:]), f"{vip}: {x.summary()}"
        assert x.holders_seen[-1] == cut, f"{vip}: not back on {cut}: {x.summary()}"
    assert not together(watches[PUBLIC]), f"the sync group's VIPs on different nodes: {together(watches[PUBLIC])}"


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
    for vip, r in reports(watches).items():
        never_blinked(vip, r, "lb1")
    assert client_get(url(INTERNAL))[0] == 200


def test_a_second_up_changes_nothing(deployed: Result) -> None:
    assert deploy(stack=STACK, progress=quiet).ran() == []
