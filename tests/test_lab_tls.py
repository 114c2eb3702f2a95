"""Stack lab-tls through the real engine: haproxy ends TLS for the lab's names with a certificate
from the lab's own CA, redirects plain HTTP, routes by host and path, and passes the client's
address on (PROXY v2, X-Forwarded-For); the certificate is rotated under load, watched by the
lab's Prometheus: a rotation fires nothing, a certificate near its end fires both certificate
alerts and its renewal resolves them. Root only."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import stack_deployed
from halb_lab.automation.stack import Result, deploy, engine, preview, stack_file_of
from halb_lab.infra import ca
from halb_lab.infra.topology import CLIENT, NODES, VIP
from halb_lab.scenarios import alerting
from halb_lab.scenarios.drills import quiet, status
from halb_lab.scenarios.monitor import Monitor, monitoring
from halb_lab.scenarios.probes import holders, wait_until
from halb_lab.scenarios.tls import STACK, curl, failover_keeps_the_certificate, rotate, served
from halb_lab.scenarios.watch import Watch

pytestmark = pytest.mark.lab


deployed = stack_deployed(STACK)


@pytest.fixture(scope="module")
def monitor(deployed: Result) -> Iterator[Monitor]:
    with monitoring(deployed.exports["prometheus_targets"]) as m:
        yield m


def test_a_handshake_through_the_vip_verifies_against_the_lab_ca_and_alpn_picks_h2(deployed: Result) -> None:
    assert wait_until(lambda: holders() == ["lb1"], 30, 0.1) is not None, holders()
    code, body, version = curl("/", "www.lab.internal", "https", "-D", "-")
    assert code == 200 and version == "2", f"https://www.lab.internal/ via {VIP}: {code} HTTP/{version} {body}"
    assert "strict-transport-security: max-age=31536000" in body.lower(), f"no HSTS header: {body}"
    assert body.rstrip().splitlines()[-1] in {"w1", "w2"}, f"not the default group: {body}"
    assert served(VIP)[1] == "h2", "ALPN did not pick h2"


def test_plain_http_is_redirected_to_https(deployed: Result) -> None:
    code, body, _ = curl("/some/path?q=1", "lab.internal", "http", "-D", "-")
    assert code == 301 and "location: https://lab.internal/some/path?q=1" in body.lower(), f"{code}: {body}"


def test_routes_reach_their_group_and_the_workers_see_the_clients_address(deployed: Result) -> None:
    by_host = {curl("/", "api.lab.internal")[1].strip() for _ in range(6)}
    assert by_host == {f"w3 {CLIENT.address}", f"w4 {CLIENT.address}"}, f"api.lab.internal (PROXY v2): {by_host}"
    by_path = {curl("/api/x")[1].strip() for _ in range(6)}
    assert by_path == by_host, f"/api/ (PROXY v2): {by_path}"
    whoami = curl("/whoami", "www.lab.internal")[1].split()
    assert whoami[0] in {"w1", "w2"} and whoami[-1] == CLIENT.address, f"X-Forwarded-For: {whoami}"


def test_rotating_the_certificate_under_load_fails_no_request_reloads_nothing_and_fires_nothing(
    monitor: Monitor,
) -> None:
    since = time.time()
    r = rotate()
    assert r.report.failed == 0 and not r.report.outages, f"rotation: {r.report.summary()}"
    assert r.new != r.old and r.served == {"lb1": r.new, "lb2": r.new}, f"served after rotation: {r.served}"
    assert r.workers_before == r.workers_after, f"haproxy reloaded: {r.workers_before} -> {r.workers_after}"
    assert {s for s in r.ran if not s.endswith("-tls")} <= {"halb-verify"}, f"the rotation ran {r.ran}"
    answer = status(STACK)  # `halb status --json`: each node's certificate, by fingerprint
    prints = {n["name"]: [fp for _, fp in n["certificates"].values()] for n in answer["nodes"]}
    assert prints == {"lb1": [r.new], "lb2": [r.new]} and answer["verdict"] == "OK", answer
    time.sleep(20)  # past the shortest `for:` (15 s)
    fired = sorted({a["labels"]["alertname"] for a in monitor.alerts() if a["received"] >= since})
    assert fired == [], f"a certificate rotation fired {fired}"


def test_a_certificate_near_its_end_fires_both_alerts_and_its_renewal_resolves_them(monitor: Monitor) -> None:
    seen = alerting.run(monitor, alerting.DRILLS["certificate"])
    assert seen.missing() == [], (
        f"a {alerting.SHORT}-day certificate: {seen.missing()} not delivered in time (fired {seen.fired_s}, "
        f"resolved {seen.resolved_s}); delivered: {monitor.alerts()[-6:]}"
    )


def test_a_failover_keeps_serving_the_same_certificate(deployed: Result) -> None:
    report, before, after = failover_keeps_the_certificate()
    assert before == after, "lb2 serves another certificate than lb1"
    assert report.longest_outage <= 0.3, report.summary()


def test_a_second_up_changes_nothing(deployed: Result) -> None:
    assert deploy(stack=STACK, progress=quiet).ran() == []


def test_the_certificate_as_pulumi_secrets_is_served_and_its_key_is_nowhere_in_plain_text(
    deployed: Result, tmp_path: Path
) -> None:
    """As an operator sets them: `pulumi config set --secret --path ... < file` (the lab's engine
    does exactly that, the value on stdin), instead of the stack's certificate files."""
    issued = ca.ensure().issue()
    doc = yaml.safe_load(stack_file_of(STACK).read_text())
    tls = doc["config"]["halb:haproxy"]["services"][1]["tls"]
    del tls["certificateFile"], tls["keyFile"]
    stack_file = tmp_path / f"Pulumi.{STACK}.yaml"
    stack_file.write_text(yaml.safe_dump(doc))
    secrets = [f"haproxy.services[1].tls.certificate={issued.chain}", f"haproxy.services[1].tls.key={issued.key}"]
    with Watch(port=443, tls=True) as w:
        result = deploy(stack_file=stack_file, secret_sets=secrets, stack=STACK, progress=quiet)
    assert w.report is not None and w.report.failed == 0, w.report
    assert {served(n.address)[0] for n in NODES} == {issued.fingerprint}, "the secret certificate is not served"
    assert [n for n, _ in result.ran() if n.endswith("-haproxy")] == [], "haproxy reloaded for a new certificate"
    body = [line for line in issued.key.splitlines() if not line.startswith("-----")]
    for where, text in (
        ("the state", json.dumps(engine(STACK).deployment())),
        ("the stack's config file", engine(STACK).config_file.read_text()),
        ("a preview --diff", preview(stack_file=stack_file, secret_sets=secrets, stack=STACK, progress=quiet).diff),
    ):
        assert not any(line in text for line in body), f"the private key is in plain text in {where}"
