"""The lab stack watched by the real thing: Debian's Prometheus and Alertmanager in the lab's
monitor namespace scrape both nodes' node exporters (halb's metrics among the node's own), load
monitoring/halb.rules.yml and deliver to a webhook receiver. Each alert here is caused by a drill
and must arrive within its `for:` + 30 s, and resolve after recovery; a planned switchover
fires nothing. Root only; one ordered scenario on one deployed stack."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial

import pytest

from conftest import stack_deployed
from halb.metrics import dashboard_queries
from halb_lab.automation.stack import Result
from halb_lab.infra import net, nodes
from halb_lab.scenarios import drills
from halb_lab.scenarios.monitor import Monitor, monitoring
from halb_lab.scenarios.probes import holders, node, wait_until

pytestmark = pytest.mark.lab

deployed = stack_deployed("lab")
WITHIN = 30  # seconds past an alert's `for:` by which it must be delivered


@pytest.fixture(scope="module")
def monitor(deployed: Result) -> Iterator[Monitor]:
    with monitoring(deployed.exports["prometheus_targets"]) as m:
        yield m


def values(m: Monitor, expr: str) -> dict[str, float]:
    """An instant query's samples, by their `instance` (or the whole label set when it has none)."""
    return {str(r["metric"].get("instance", r["metric"])): float(r["value"][1]) for r in m.query(expr)}


def has_data(m: Monitor, expr: str) -> bool:
    return bool(m.query(expr))


def test_prometheus_reads_halbs_metrics_from_both_nodes(monitor: Monitor) -> None:
    assert wait_until(lambda: holders() == ["lb1"], 30, 0.2) is not None, holders()
    held = values(monitor, 'halb_vip_held{vip="198.18.0.10"}')
    assert held == {"198.18.0.11:9100": 1, "198.18.0.12:9100": 0}, f"halb_vip_held: {held}"
    master = values(monitor, 'halb_vrrp_state{state="master"}')
    assert master == {"198.18.0.11:9100": 1, "198.18.0.12:9100": 0}, f"halb_vrrp_state: {master}"
    assert set(values(monitor, "halb_keepalived_up").values()) == {1}, "halb_keepalived_up"
    assert set(values(monitor, "halb_haproxy_healthy").values()) == {1}, "halb_haproxy_healthy"
    usable = values(monitor, 'halb_backends_usable{backend="http"}')
    assert set(usable.values()) == {4}, f"halb_backends_usable: {usable}"
    digests = monitor.query("count by (digest) (halb_config_info)")
    assert len(digests) == 1 and digests[0]["value"][1] == "2", f"halb_config_info: both nodes in step: {digests}"
    assert values(monitor, 'node_textfile_scrape_error{job="halb-node"}') == {
        "198.18.0.11:9100": 0,
        "198.18.0.12:9100": 0,
    }, "the node exporter reads halb.prom"
    assert values(monitor, 'up{job="halb-haproxy"}') == {"198.18.0.11:8080": 1, "198.18.0.12:8080": 1}, (
        "haproxy's exporter"
    )


def test_every_dashboard_query_returns_data(monitor: Monitor) -> None:
    """Each panel of monitoring/halb.dashboard.json, as Grafana would ask it. The lab stack ends no
    TLS, so the certificate panel has nothing to show here (its series are proven by tests/test_metrics.py)."""
    for title, expr in dashboard_queries().items():
        if "halb_certificate_not_after_seconds" in expr:
            continue
        answered = wait_until(partial(has_data, monitor, expr), 30, 1)
        assert answered is not None, f"dashboard panel {title!r}: no data"


def test_a_planned_switchover_fires_nothing(monitor: Monitor) -> None:
    since = time.time()
    d = drills.switchover()
    assert d.report.failed <= 1, d.report.summary()
    time.sleep(20)  # longer than the shortest `for:` (15 s) after the move back
    fired = [a["labels"]["alertname"] for a in monitor.alerts() if a["received"] >= since]
    assert fired == [], f"a planned switchover fired {fired}"


def test_both_haproxys_stopped_fire_no_holder_and_it_resolves(monitor: Monitor) -> None:
    since = time.time()
    try:
        for n in ("lb1", "lb2"):
            nodes.ssh(node(n), "systemctl stop haproxy", timeout=20)
        took = monitor.wait_for("HalbVipNoHolder", since=since, timeout=15 + WITHIN)
        assert took is not None, f"HalbVipNoHolder not delivered within 15 s + {WITHIN} s: {monitor.alerts()}"
    finally:
        for n in ("lb1", "lb2"):
            nodes.ssh(node(n), "systemctl start haproxy", timeout=20)
    back = time.time()
    assert wait_until(lambda: len(holders()) == 1, 30, 0.2) is not None, holders()
    assert monitor.wait_for("HalbVipNoHolder", "resolved", since=back, timeout=WITHIN) is not None, (
        f"HalbVipNoHolder did not resolve: {monitor.alerts()}"
    )


def test_vrrp_blocked_between_the_nodes_fires_the_partition_alert(monitor: Monitor) -> None:
    lb1, lb2 = node("lb1"), node("lb2")
    drills.settle()
    since = time.time()
    net.block_vrrp(lb1, lb2)
    try:
        took = monitor.wait_for("HalbVrrpPartition", since=since, timeout=15 + WITHIN)
        assert took is not None, f"HalbVrrpPartition not delivered within 15 s + {WITHIN} s: {monitor.alerts()}"
        assert not monitor.delivered("HalbVipSplitBrain", since=since), "halb keeps one holder: no split brain"
    finally:
        net.unblock_vrrp(lb1, lb2)
    back = time.time()
    assert monitor.wait_for("HalbVrrpPartition", "resolved", since=back, timeout=WITHIN) is not None, monitor.alerts()


def fault_fires(
    monitor: Monitor, alert: str, within: float, fault: Callable[[], object], undo: Callable[[], object]
) -> None:
    """`fault`, then `alert` delivered within `within` s (its `for:` + WITHIN); `undo`, then it resolves."""
    since = time.time()
    try:
        fault()
        took = monitor.wait_for(alert, since=since, timeout=within)
        assert took is not None, f"{alert} not delivered within {within} s: {monitor.alerts()[-5:]}"
    finally:
        undo()
    back = time.time()
    resolved = monitor.wait_for(alert, "resolved", since=back, timeout=WITHIN + 15)
    assert resolved is not None, f"{alert} did not resolve after the fault ended: {monitor.alerts()[-5:]}"


@pytest.mark.parametrize(
    ("alert", "for_s", "unit"),
    [
        ("HalbKeepalivedDown", 30, "keepalived"),
        ("HalbRedundancyLost", 30, "haproxy"),  # lb2 holds no VIP: the pair cannot fail over
        ("HalbNodeExporterDown", 60, "halb-node-exporter"),
    ],
)
def test_a_unit_stopped_on_the_backup_fires_its_alert(monitor: Monitor, alert: str, for_s: int, unit: str) -> None:
    lb2 = node("lb2")
    stop = partial(nodes.ssh, lb2, f"systemctl stop {unit}", timeout=20)
    start = partial(nodes.ssh, lb2, f"systemctl start {unit}", timeout=20)
    fault_fires(monitor, alert, for_s + WITHIN, stop, start)


def test_every_backend_server_down_fires_holder_without_backend(monitor: Monitor) -> None:
    from halb_lab.infra import lab
    from halb_lab.infra.topology import WORKERS

    def stop() -> None:
        for w in WORKERS:
            lab.stop_worker(w)

    def start() -> None:
        for w in WORKERS:
            lab.start_worker(w)

    fault_fires(monitor, "HalbHolderWithoutBackend", 15 + WITHIN, stop, start)
