"""Stack lab-bgp through the real engine: three nodes announce the VIPs (IPv4 and IPv6) to the
lab's FRR router, which spreads new connections over them by ECMP; a fault on one node takes it out
of the router's table. Each drill runs under the client load from behind the router. Root only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import stack_deployed
from halb_lab.automation.stack import Result
from halb_lab.infra import router
from halb_lab.scenarios import alerting, bgp
from halb_lab.scenarios.drills import status
from halb_lab.scenarios.monitor import Monitor, monitoring
from halb_lab.scenarios.probes import wait_until

pytestmark = pytest.mark.lab

deployed = stack_deployed("lab-bgp")
CONNECTIONS = 3000
CONNECTIONS6 = 600
SHARE_TOLERANCE = 0.15  # each node within ±15 % of 1/N


def test_every_node_peers_with_the_router_and_announces_the_vips(deployed: Result) -> None:
    hops = bgp.serving(timeout=60)
    assert hops == sorted(n.address for n in bgp.BGP_NODES), f"router: next hops for {bgp.VIP}: {hops}"
    hops6 = router.next_hops(bgp.VIP6)
    assert hops6 == sorted(n.address6 for n in bgp.BGP_NODES), f"router: next hops for {bgp.VIP6}: {hops6}"
    sessions = router.sessions()
    for n in bgp.BGP_NODES:
        for peer in (n.address, n.address6):
            assert sessions.get(peer) == "Established", f"router: session with {n.name} ({peer}): {sessions}"
    assert deployed.exports["vips"] == {"public": bgp.VIP, "public6": bgp.VIP6}, deployed.exports


def test_halb_status_shows_each_nodes_sessions_bfd_and_announced_vips(deployed: Result) -> None:
    bgp.serving()
    answer = status(bgp.STACK)
    assert answer["verdict"] == "OK", answer
    peers = (router.ROUTER.address, router.ROUTER.address6)
    for node in answer["nodes"]:
        assert sorted(node["announced"]) == sorted([bgp.VIP, bgp.VIP6]), f"{node['name']}: {node}"
        assert node["sessions"] == dict.fromkeys(peers, "Established"), f"{node['name']}: {node}"
        assert node["bfd"] == dict.fromkeys(peers, "up"), f"{node['name']}: {node}"


def test_new_connections_spread_evenly_over_the_nodes(deployed: Result) -> None:
    bgp.serving()
    taken = bgp.spread(CONNECTIONS)
    total = sum(taken.values())
    assert total >= CONNECTIONS * 0.99, f"{total} of {CONNECTIONS} connections reached a node: {taken}"
    share = 1 / len(bgp.BGP_NODES)
    for name, count in taken.items():
        assert abs(count / total - share) <= share * SHARE_TOLERANCE, f"{name} took {count} of {total}: {taken}"


def test_new_ipv6_connections_reach_every_node(deployed: Result) -> None:
    """The IPv6 VIP over the IPv6 sessions: each node takes new connections (at least half its share)."""
    bgp.serving()
    taken = bgp.spread(CONNECTIONS6, vip=bgp.VIP6)
    total = sum(taken.values())
    assert total >= CONNECTIONS6 * 0.99, f"{total} of {CONNECTIONS6} IPv6 connections reached a node: {taken}"
    for name, count in taken.items():
        assert count >= total / len(bgp.BGP_NODES) / 2, f"{name} took {count} of {total} over IPv6: {taken}"


def test_a_killed_haproxy_leaves_the_router_and_comes_back(deployed: Result) -> None:
    drill = bgp.haproxy_killed()
    print(f"bgp {drill.summary()}")
    assert drill.withdrawn_s is not None and drill.withdrawn_s < 1.0, f"{drill.name}: {drill.figures()}"
    assert drill.failing_s < 1.0, f"{drill.summary()}"


def test_a_hung_haproxy_leaves_the_router_within_the_watchers_budget(deployed: Result) -> None:
    drill = bgp.haproxy_hung()
    print(f"bgp {drill.summary()}")
    assert drill.withdrawn_s is not None and drill.withdrawn_s < 1.0, f"{drill.name}: {drill.figures()}"


def test_a_cut_link_leaves_the_router_within_bfds_detect_time_every_time(deployed: Result) -> None:
    """Twice: BFD must come back up after the plug (with a dynamic neighbor on the router it stayed
    down, and the second cut took the 9 s hold time)."""
    for _ in range(2):
        drill = bgp.link_cut()
        print(f"bgp {drill.summary()}")
        assert drill.withdrawn_s is not None and drill.withdrawn_s < 1.0, f"{drill.name}: {drill.figures()}"


def test_a_cut_link_leaves_the_ipv6_table_within_bfds_detect_time(deployed: Result) -> None:
    """The IPv6 session has its own BFD session: the IPv6 VIP's clients see the same fast failover."""
    drill = bgp.link_cut(vip=bgp.VIP6)
    print(f"bgp {drill.summary()}")
    assert drill.withdrawn_s is not None and drill.withdrawn_s < 1.0, f"{drill.name}: {drill.figures()}"
    assert drill.failing_s < 1.0, f"{drill.summary()}"


def test_a_peer_flap_on_the_router_takes_the_node_out_and_back(deployed: Result) -> None:
    drill = bgp.peer_flap()
    print(f"bgp {drill.summary()}")
    assert drill.withdrawn_s is not None, f"{drill.summary()}: the router never dropped lb1's route"


IN_FLIGHT = 2  # requests a change of the router's next hops may catch mid-connection (see below)


def test_a_drained_node_leaves_the_multipath_set_without_an_outage(deployed: Result) -> None:
    """`maintenance: true` by `pulumi up` under the load: GRACEFUL_SHUTDOWN makes the router
    prefer the other nodes, and lb1 comes back after. No request fails for want of a node; but a
    router without resilient hashing moves the flows in flight when its next hops change (lb1
    leaving, then returning), so a request caught mid-connection can be reset: 0 in the bench's
    drains, 1 run in CI saw some. A drain that did not work would fail a third of the requests."""
    drill = bgp.drain()
    print(f"bgp {drill.summary()}")
    assert drill.withdrawn_s is not None, f"{drill.summary()}: lb1 stayed in the router's next hops"
    assert drill.report.failed <= IN_FLIGHT and drill.report.longest_outage < 0.1, f"{drill.summary()}"


def test_a_powered_off_node_leaves_within_bfds_detect_time_and_rejoins_after_boot(deployed: Result) -> None:
    drill = bgp.power_off()
    print(f"bgp {drill.summary()}")
    assert drill.withdrawn_s is not None and drill.withdrawn_s < 1.0, f"{drill.summary()}"


def test_a_node_added_and_removed_by_pulumi_up_under_load(deployed: Result) -> None:
    drill = bgp.add_and_remove()
    print(f"bgp {drill.summary()}")
    assert drill.withdrawn_s is not None, f"{drill.summary()}: lb4 stayed in the router's next hops"


# --------------------------------------------------------------------------- metrics and alerts


@pytest.fixture(scope="module")
def monitor(deployed: Result) -> Iterator[Monitor]:
    """Debian's Prometheus and Alertmanager in the lab's monitor namespace, scraping the stack's
    `prometheus_targets` with monitoring/halb.rules.yml (as tests/test_lab_monitoring.py)."""
    with monitoring(deployed.exports["prometheus_targets"]) as m:
        yield m


def by_node(m: Monitor, expr: str) -> dict[tuple[str, str], float]:
    """(instance, the series' own label: peer or vip) -> value."""
    out = {}
    for r in m.query(expr):
        labels = r["metric"]
        out[(labels["instance"], labels.get("peer") or labels.get("vip") or "")] = float(r["value"][1])
    return out


def test_prometheus_reads_every_nodes_sessions_bfd_and_announced_vips(monitor: Monitor) -> None:
    bgp.serving()
    nodes = [f"{n.address}:9100" for n in bgp.BGP_NODES]
    peers = (router.ROUTER.address, router.ROUTER.address6)
    every = {(i, p): 1.0 for i in nodes for p in peers}
    assert wait_until(lambda: by_node(monitor, "halb_bgp_session_up") == every, 30, 1) is not None, (
        f"halb_bgp_session_up: {by_node(monitor, 'halb_bgp_session_up')}"
    )
    assert by_node(monitor, "halb_bfd_peer_up") == every, f"halb_bfd_peer_up: {by_node(monitor, 'halb_bfd_peer_up')}"
    announced = by_node(monitor, "halb_vip_announced")
    assert announced == {(i, v): 1.0 for i in nodes for v in (bgp.VIP, bgp.VIP6)}, f"halb_vip_announced: {announced}"
    assert set(by_node(monitor, "halb_maintenance").values()) == {0.0}, "halb_maintenance"
    assert set(by_node(monitor, 'node_textfile_scrape_error{job="halb-node"}').values()) == {0.0}, "halb.prom read"
    assert monitor.query("halb_vip_held") == [], "a VRRP metric in BGP mode would fire the pair's alerts"


BGP_DRILLS = [d for d in alerting.DRILLS.values() if d.stack == bgp.STACK]


@pytest.mark.parametrize("drill", BGP_DRILLS, ids=[d.name for d in BGP_DRILLS])
def test_each_bgp_fault_fires_its_alert_and_it_resolves(monitor: Monitor, drill: alerting.AlertDrill) -> None:
    bgp.serving()
    seen = alerting.run(monitor, drill)
    assert seen.missing() == [], (
        f"drill {drill.name}: {seen.missing()} not delivered in time (fired {seen.fired_s}, "
        f"resolved {seen.resolved_s}); delivered: {monitor.alerts()[-6:]}"
    )
    assert "HalbBgpVipNotAnnounced" not in seen.others, f"drill {drill.name}: the others kept the VIPs: {seen.others}"
    assert bgp.serving(timeout=60), f"after {drill.name}: not every node back in the router's table"
