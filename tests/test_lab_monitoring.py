"""The lab stack watched by the real thing: Debian's Prometheus and Alertmanager in the lab's
monitor namespace scrape both nodes' node exporters (halb's metrics among the node's own), load
monitoring/halb.rules.yml and deliver to a webhook receiver. Each alert here is caused by a drill
and must arrive within its `for:` + 30 s, and resolve after recovery; a planned switchover
fires nothing. Root only; one ordered scenario on one deployed stack."""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial

import pytest

from conftest import stack_deployed
from halb.metrics import dashboard_queries
from halb_lab.automation.stack import Result
from halb_lab.scenarios import alerting, drills
from halb_lab.scenarios.monitor import Monitor, monitoring
from halb_lab.scenarios.probes import holders, wait_until

pytestmark = pytest.mark.lab

deployed = stack_deployed("lab")


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


def test_planned_operations_fire_nothing(monitor: Monitor) -> None:
    """A switchover and back, a drain and back, a VRRP password rotation (the shared-settings
    rollout, SSH to the MASTER dropped for its first seconds) and back: then longer than the
    shortest `for:`."""
    since = time.time()
    switched = drills.switchover()
    assert switched.report.failed <= 1, switched.report.summary()
    drills.drain()
    drills.rotation("vrrp-password")
    time.sleep(20)  # the shortest `for:` is 15 s
    fired = sorted({a["labels"]["alertname"] for a in monitor.alerts() if a["received"] >= since})
    assert fired == [], f"planned operations fired {fired}"


LAB_DRILLS = [d for d in alerting.DRILLS.values() if d.stack == "lab"]


@pytest.mark.parametrize("drill", LAB_DRILLS, ids=[d.name for d in LAB_DRILLS])
def test_each_fault_fires_its_alerts_and_they_resolve(monitor: Monitor, drill: alerting.AlertDrill) -> None:
    drills.settle()
    seen = alerting.run(monitor, drill)
    assert seen.missing() == [], (
        f"drill {drill.name}: {seen.missing()} not delivered in time (fired {seen.fired_s}, "
        f"resolved {seen.resolved_s}); delivered: {monitor.alerts()[-6:]}"
    )
    if drill.name != "split-brain":
        assert "HalbVipSplitBrain" not in seen.others, f"drill {drill.name}: two holders reported: {seen.others}"
    assert wait_until(lambda: holders() == ["lb1"], 30, 0.2) is not None, f"after {drill.name}: {holders()}"
