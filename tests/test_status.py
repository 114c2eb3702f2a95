"""The VIP-holder assessment behind `halb_lab status` and the split-brain drill."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from halb.status.verdict import NodeState, assess, parse_probe


def node(name: str, vip: bool, haproxy: str = "active") -> NodeState:
    return NodeState(name, True, "MASTER" if vip else "BACKUP", vip, haproxy, "active")


def test_one_holder_is_ok() -> None:
    v = assess([node("lb1", True), node("lb2", False)])
    assert v.ok and v.summary == "OK: lb1 holds the VIP"


def test_two_holders_is_split_brain() -> None:
    v = assess([node("lb1", True), node("lb2", True)])
    assert not v.ok and v.summary.startswith("SPLIT BRAIN: lb1 and lb2")


def test_no_holder_is_an_outage() -> None:
    v = assess([node("lb1", False), node("lb2", False)])
    assert not v.ok and v.summary.startswith("OUTAGE")


def test_a_dead_service_is_degraded() -> None:
    v = assess([node("lb1", True), node("lb2", False, haproxy="failed")])
    assert v.ok and v.summary.startswith("DEGRADED") and "lb2" in v.summary


def test_probe_output_is_parsed() -> None:
    s = parse_probe("lb1", "state MASTER\nvip yes\nactive.haproxy active\nactive.keepalived active\n")
    assert (s.vrrp_state, s.holds_vip, s.haproxy, s.keepalived) == ("MASTER", True, "active", "active")
    assert not parse_probe("lb2", None).reachable


def test_status_reads_the_vips_and_state_from_halb_metrics_as_prometheus_does() -> None:
    """The probe's direct answers say lb1 is BACKUP without the VIP; halb-metrics --once says MASTER
    with it. With the writer's samples, those win (the CLI and the alerts never disagree); without
    them (monitoring.nodeExporter off), the direct answers."""
    direct = "primary 198.18.0.10\nstate BACKUP\nvip no\nvip.198.18.0.20 no\nactive.haproxy active\n"
    metrics = (
        'metric halb_vrrp_state{vrrp_instance="halb",vip="198.18.0.10",state="master"} 1\n'
        'metric halb_vrrp_state{vrrp_instance="halb",vip="198.18.0.10",state="backup"} 0\n'
        'metric halb_vip_held{vip="198.18.0.10"} 1\n'
        'metric halb_vip_held{vip="198.18.0.20"} 1\n'
    )
    measured = parse_probe("lb1", direct + metrics)
    assert (measured.vrrp_state, measured.holds_vip, measured.others, measured.from_metrics) == (
        "MASTER",
        True,
        {"198.18.0.20": True},
        True,
    ), f"halb status with halb-metrics: {measured}"
    s = parse_probe("lb1", direct)
    assert (s.vrrp_state, s.holds_vip, s.from_metrics) == ("BACKUP", False, False), f"halb status without it: {s}"


def test_an_unreachable_node_is_its_own_verdict_with_sshs_reason() -> None:
    lost = parse_probe("lb2", None, "ssh: connect to host 192.0.2.2 port 22: Connection refused")
    v = assess([node("lb1", True), lost])
    assert v.word == "UNREACHABLE" and v.exit_code == 4 and "Connection refused" in v.summary, v.summary
    both = assess([parse_probe("lb1", None, "x"), parse_probe("lb2", None, "y")])
    assert both.word == "UNREACHABLE", "two unreachable nodes are not an outage"


VERDICT_EXAMPLES = {
    "OK": [node("lb1", True), node("lb2", False)],
    "SPLIT BRAIN": [node("lb1", True), node("lb2", True)],
    "OUTAGE": [node("lb1", False), node("lb2", False)],
    "DEGRADED": [node("lb1", True), node("lb2", False, haproxy="failed")],
    "UNREACHABLE": [node("lb1", True), parse_probe("lb2", None, "e")],
    "VRRP PARTITION": [
        node("lb1", True),
        parse_probe("lb2", "state FAULT\nvip no\npartition vrid 10: held in FAULT\n"),
    ],
    "VRID COLLISION": [node("lb1", True), parse_probe("lb2", "state BACKUP\nvip no\nforeign VRID 10 in use\n")],
    "DRIFT": [node("lb1", True), NodeState("lb2", True, "BACKUP", False, "active", "active", drift=["/etc/x"])],
    "MAINTENANCE": [node("lb1", True), NodeState("lb2", True, "BACKUP", False, "active", "active", maintenance=True)],
}


def documented_exit_codes() -> dict[str, int]:
    """docs/reference/cli.md's list of `halb status` exit codes, each verdict with its code."""
    page = " ".join((ROOT / "docs/reference/cli.md").read_text().split())
    text = page.split("Exit codes: ", 1)[1].split(" It also shows", 1)[0]
    out: dict[str, int] = {}
    for code, first, second in re.findall(r"(\d) `([A-Z ]+)`(?: \([^)]*\))?(?: or `([A-Z ]+)`)?", text):
        out.update({word: int(code) for word in (first, second) if word})
    return out


DOCUMENTED_EXIT = documented_exit_codes()


@pytest.mark.parametrize("word", list(DOCUMENTED_EXIT))
def test_each_verdict_exits_with_its_documented_code(word: str) -> None:
    v = assess(VERDICT_EXAMPLES[word])
    assert v.word == word and v.exit_code == DOCUMENTED_EXIT[word], f"{word}: {v.summary} exits {v.exit_code}"


def test_every_verdict_is_documented() -> None:
    from halb.status.verdict import EXIT

    assert EXIT == DOCUMENTED_EXIT, "a verdict was added or changed: document its exit code"


def test_status_json_is_one_object_and_unreachable_exits_4(tmp_path: Path) -> None:
    stack = yaml.safe_load((ROOT / "Pulumi.lab.yaml").read_text())
    stack["config"]["halb:ssh"] = {"user": "deploy", "port": 1, "privateKeyPath": str(tmp_path / "none")}
    (tmp_path / "Pulumi.t.yaml").write_text(yaml.safe_dump(stack))
    p = subprocess.run(
        [sys.executable, "-m", "halb", "status", "--stack", "t", "--json", "--no-host-key-check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    doc = json.loads(p.stdout)
    assert all("hashes" not in n for n in doc["nodes"]), "file hashes (secret files too) stay out of the JSON"
    assert p.returncode == 4 and doc["verdict"] == "UNREACHABLE", (p.returncode, p.stdout, p.stderr)
    assert all(not n["reachable"] and n["error"] for n in doc["nodes"]), doc


def test_maintenance_and_drift_and_held_nodes_have_their_verdicts() -> None:
    from dataclasses import replace

    lb1, lb2 = node("lb1", False), node("lb2", True)
    v = assess([replace(lb1, maintenance=True), lb2])
    assert v.word == "MAINTENANCE" and v.exit_code == 0 and v.summary == "MAINTENANCE: lb1 is out; lb2 holds the VIP"
    v = assess([replace(lb1, drift=["/etc/haproxy/haproxy.cfg"]), lb2])
    assert v.word == "DRIFT" and v.exit_code == 5 and "lb1: /etc/haproxy/haproxy.cfg" in v.summary, v.summary
    v = assess([replace(lb1, held=True), lb2])
    assert v.word == "DEGRADED" and "lb1 left VRRP for a rollout that did not finish" in v.summary, v.summary


def test_drift_compares_every_rendered_file_and_counts_missing_ones() -> None:
    from halb.status.verdict import drift

    probe = "state BACKUP\nvip no\nsha256 aaa  /etc/a\nsha256 bbb  /etc/b\n"
    s = parse_probe("lb1", probe)
    assert s.hashes == {"/etc/a": "aaa", "/etc/b": "bbb"}
    assert drift(s, {"/etc/a": "aaa", "/etc/b": "bbb"}) == []
    assert drift(s, {"/etc/a": "aaa", "/etc/b": "ccc", "/etc/c": "ddd"}) == ["/etc/b", "/etc/c"]


def test_verify_fails_with_the_reason_when_no_node_answers() -> None:
    from halb.verify import Spec, run

    spec = Spec(
        "198.18.255.10", {"lb1": "127.0.0.1", "lb2": "127.0.0.1"}, [("http", 80, "http")], "nobody", 1, None, [], {}
    )
    ok, message = run(spec, "", timeout=0)
    assert not ok and message.startswith("UNREACHABLE"), message
    assert Spec.from_json(spec.to_json()) == spec


def test_status_json_lists_every_vip_with_its_holders() -> None:
    from dataclasses import replace

    from conftest import variants
    from halb.config import load_config
    from halb.status.report import as_json

    cfg = load_config(variants()["dualstack"])
    lb1 = replace(node("lb1", True), others={"192.168.4.59": False, "2001:db8:4::60": True})
    lb2 = replace(node("lb2", False), others={"192.168.4.59": True, "2001:db8:4::60": False})
    vips = as_json(cfg, [lb1, lb2], assess([lb1, lb2]))["vips"]
    assert vips == [
        {"name": "public", "address": "192.168.4.60", "preferred": "lb1", "holders": ["lb1"]},
        {"name": "internal", "address": "192.168.4.59", "preferred": "lb2", "holders": ["lb2"]},
        {"name": "public6", "address": "2001:db8:4::60", "preferred": "lb1", "holders": ["lb1"]},
    ], vips


def test_status_reads_each_certificates_expiry_and_fingerprint_and_flags_another_one() -> None:
    from halb.status.remote import Questions, probe_script
    from halb.status.verdict import certificate_notes, drift

    path = "/etc/haproxy/halb-certs/https.pem"
    assert f"openssl x509 -noout -enddate -fingerprint -sha256 -in {path}" in probe_script(Questions("v", certs=[path]))
    output = f"state MASTER\nvip yes\ncert {path} notAfter=Feb  6 10:03:00 2027 GMT sha256 Fingerprint=AB:CD:EF \n"
    state = parse_probe("lb1", output)
    assert state.certificates == {path: ("2027-02-06", "abcdef")}, state.certificates
    assert drift(state, {}, {path: "abcdef"}) == [] and drift(state, {}, {path: "012345"}) == [path]
    assert certificate_notes(state, {path: "abcdef"}, "2027-01-20", "2027-02-10") == [
        "https.pem until 2027-02-06 (renew it: under 21 days left), the stack's"
    ]
    assert certificate_notes(state, {path: "0123"}, "2027-02-07", "2027-03-01") == [
        "https.pem until 2027-02-06 (EXPIRED), NOT the stack's certificate"
    ]


def test_a_node_held_back_by_the_vrrp_guard_is_a_partition_not_ok() -> None:
    found = "vrid 10: no adverts from 198.18.0.11 for 2.1 s; 02:aa:bb:cc:dd:01 answers for 198.18.0.10: held in FAULT"
    probe = f"state FAULT\nvip no\nactive.haproxy active\nactive.keepalived active\npartition {found}\n"
    lb2 = parse_probe("lb2", probe)
    assert lb2.partition == [found], lb2
    v = assess([node("lb1", True), lb2])
    assert not v.ok and v.exit_code == 1, v
    assert v.summary.startswith("VRRP PARTITION: lb2 hears no adverts from lb1; lb1 answers for the VIP"), v.summary
    healed = parse_probe("lb2", probe.replace("held in FAULT", "ok").replace("state FAULT", "state BACKUP"))
    assert healed.partition == [] and assess([node("lb1", True), healed]).ok, "only a node held in FAULT counts"


def test_a_foreign_router_on_the_stacks_vrid_is_a_collision_not_ok() -> None:
    found = "VRID 10 (keepalived.vrid, IPv4) is in use: 198.18.0.30 sends VRRPv2 adverts for it (priority 100, for 198.18.0.99)"
    probe = f"state BACKUP\nvip no\nactive.haproxy active\nactive.keepalived active\nforeign {found}\n"
    lb2 = parse_probe("lb2", probe)
    assert lb2.collisions == [found], lb2
    v = assess([node("lb1", True), lb2])
    assert not v.ok and v.exit_code == 1 and v.word == "VRID COLLISION", v
    assert "198.18.0.30" in v.summary and "VRID 10" in v.summary, v.summary
    assert assess([node("lb1", True), parse_probe("lb2", probe.replace(f"foreign {found}\n", ""))]).ok, "none heard: ok"


# --------------------------------------------------------------------------- a VIP on the move


def _answering(monkeypatch: pytest.MonkeyPatch, rounds: list[dict[str, bool]]) -> list[str]:
    """Replace the SSH probe: in round k each node answers that it holds the VIP or not, as
    rounds[k] says (by address); the addresses asked, in order."""
    from halb.status import remote

    monkeypatch.setattr(remote, "SETTLE_S", 0)
    asked: list[str] = []

    def probe(reach: remote.Reach, questions: remote.Questions) -> tuple[str | None, str]:
        held = rounds[min(len(asked) // 2, len(rounds) - 1)][reach.address]
        asked.append(reach.address)
        state = "MASTER" if held else "BACKUP"
        vip = "yes" if held else "no"
        return f"state {state}\nvip {vip}\nactive.haproxy active\nactive.keepalived active\n", ""

    monkeypatch.setattr(remote, "probe", probe)
    return asked


LB1, LB2 = "192.168.4.61", "192.168.4.62"  # the dev stack's nodes (never contacted: the probe is replaced)


def test_a_vip_moving_between_the_answers_is_asked_again_and_not_called_an_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """lb1 answered before it took the VIP back, lb2 after it gave it up: no holder in that
    snapshot. The second look, after the move, is what status reports."""
    from conftest import stack_raw
    from halb.config import load_config
    from halb.status.remote import collect

    asked = _answering(monkeypatch, [{LB1: False, LB2: False}, {LB1: True, LB2: False}])
    _, verdict = collect(load_config(stack_raw("dev")))
    assert len(asked) == 4, f"halb status: asked {asked}, expected each node twice"
    assert verdict.ok and "lb1 holds the VIP" in verdict.summary, verdict.summary  # (files: DRIFT, no hashes faked)


def test_an_outage_that_lasts_is_reported_after_the_second_look(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import stack_raw
    from halb.config import load_config
    from halb.status.remote import collect

    asked = _answering(monkeypatch, [{LB1: False, LB2: False}])
    _, verdict = collect(load_config(stack_raw("dev")))
    assert len(asked) == 4 and verdict.word == "OUTAGE", (asked, verdict)
    asked = _answering(monkeypatch, [{LB1: True, LB2: True}])
    _, verdict = collect(load_config(stack_raw("dev")))
    assert len(asked) == 4 and verdict.word == "SPLIT BRAIN", (asked, verdict)


def test_a_pair_at_rest_is_asked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import stack_raw
    from halb.config import load_config
    from halb.status.remote import collect

    asked = _answering(monkeypatch, [{LB1: True, LB2: False}])
    _, verdict = collect(load_config(stack_raw("dev")))
    assert sorted(asked) == [LB1, LB2] and verdict.ok, (asked, verdict)


# --------------------------------------------------------------------------- host keys


def _probing(monkeypatch: pytest.MonkeyPatch, error: str = "") -> list[object]:
    """Replace the SSH probe: record each node's Reach, answer with `error` (ssh's last line)."""
    from halb.status import remote

    seen: list[object] = []

    def probe(reach: remote.Reach, questions: remote.Questions) -> tuple[str | None, str]:
        seen.append(reach)
        return None, error

    monkeypatch.setattr(remote, "probe", probe)
    return seen


def test_status_checks_the_key_recorded_on_first_use_and_a_configured_one_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import stack_raw
    from halb.config import load_config
    from halb.config.paths import set_in
    from halb.status.remote import collect

    configured = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtmD9ymXsQk9c1bJ8kYyFq7Zx3Fw0s5S0a1b2c3d4e5"
    cfg = load_config(set_in(stack_raw("dev"), "nodes[1].hostKey", configured))
    seen = _probing(monkeypatch)
    collect(cfg, recorded={"lb1": "ssh-ed25519 AAAArecorded1", "lb2": "ssh-ed25519 AAAArecorded2"})
    keys = {r.address: r.host_key for r in seen}  # type: ignore[attr-defined]
    assert keys == {"192.168.4.61": "ssh-ed25519 AAAArecorded1", "192.168.4.62": configured}, keys


def test_a_changed_host_key_says_how_to_accept_a_rebuilt_node(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import stack_raw
    from halb.config import load_config
    from halb.status.remote import collect

    _probing(monkeypatch, error="Host key verification failed.")
    states, verdict = collect(
        load_config(stack_raw("dev")), recorded={"lb1": "ssh-ed25519 AAAA1", "lb2": "ssh-ed25519 AAAA2"}
    )
    lb2 = next(s for s in states if s.name == "lb2")
    assert "halb:nodes[1].generation" in lb2.error and "halb:nodes[1].hostKey" in lb2.error, lb2.error
    assert "recorded at its first deploy" in lb2.error, lb2.error
    assert verdict.summary.startswith("UNREACHABLE") and "rebuilt" in verdict.summary, verdict.summary


def test_without_a_pinned_key_an_ssh_failure_keeps_ssh_words(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import stack_raw
    from halb.config import load_config
    from halb.status.remote import collect

    _probing(monkeypatch, error="Host key verification failed.")
    states, _ = collect(load_config(stack_raw("dev")))  # known_hosts decides: no key of halb's to blame
    assert all(s.error == "Host key verification failed." for s in states), [s.error for s in states]


# --------------------------------------------------------------------------- BGP mode


def bgp_probe_output(vip_on_lo: bool, state: str = "Established", bfd: str = "up") -> str:
    from halb.status.bgp import MARK

    lo = "1: lo    inet 127.0.0.1/8 scope host lo\n" + (
        "1: lo    inet 198.18.1.10/32 scope global lo\n" if vip_on_lo else ""
    )
    neighbors = json.dumps({"198.18.0.2": {"bgpState": state}})
    peers = json.dumps([{"peer": "198.18.0.2", "status": bfd}])
    return f"active active active\n{MARK}\n{lo}{MARK}\n{neighbors}\n{MARK}\n{peers}\n"


def test_bgp_status_reads_sessions_bfd_and_announced_vips() -> None:
    from halb.status.bgp import parse

    node = parse("lb1", bgp_probe_output(True), ["198.18.1.10"])
    assert node.serving and node.announced == ["198.18.1.10"], node
    assert node.sessions == {"198.18.0.2": "Established"} and node.bfd == {"198.18.0.2": "up"}, node
    assert node.services == {"haproxy": "active", "frr": "active", "halb-haproxy-watch": "active"}, node
    assert not parse("lb1", bgp_probe_output(False), ["198.18.1.10"]).serving, "lb1: no VIP on lo"
    assert not parse("lb1", bgp_probe_output(True, "Active"), ["198.18.1.10"]).serving, "lb1: session down"
    assert not parse("lb1", "", ["198.18.1.10"], "ssh: no answer").reachable, "lb1: unreachable"


def test_bgp_verdicts_and_their_exit_codes() -> None:
    from dataclasses import replace

    from halb.status.bgp import assess, parse

    up = parse("lb1", bgp_probe_output(True), ["198.18.1.10"])
    down = parse("lb2", bgp_probe_output(False), ["198.18.1.10"])
    gone = parse("lb3", "", ["198.18.1.10"], "no answer")
    assert assess([up, replace(up, name="lb2")]).word == "OK"
    assert assess([up, down]).word == "DEGRADED" and assess([up, down]).exit_code == 3
    assert assess([down, replace(down, name="lb1")]).word == "OUTAGE"
    assert assess([up, gone]).word == "UNREACHABLE"
    assert assess([up, replace(down, maintenance=True)]).word == "MAINTENANCE"
