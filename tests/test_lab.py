"""End to end on the local lab: the real Pulumi engine (`pulumi up` through the Automation API,
with the pulumi-command provider) deploys the lab stack onto real systemd nodes; then drills.

Needs root, debootstrap (or the cached image), systemd-nspawn, ssh. With CI=true a missing
prerequisite fails. The module brings the lab up fresh and always takes it down.

The tests are one ordered scenario on one deployed stack, in file order: each starts from what
the one before left (settled on lb1, the stack file's config) and leaves it so. pytest runs them
in file order, and pyproject.toml's `-p no:randomly` keeps a shuffling plugin from reordering them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench import wrk
from conftest import ROOT
from halb.components.node import STEPS
from halb.config.secrets import STATS_PASSWORD
from halb.render import PATHS
from halb_lab.automation.driver import end_session
from halb_lab.automation.stack import (
    ENGINE,
    VAULT,
    DeployFailed,
    Result,
    ciphertexts,
    deploy,
    destroy,
    preview,
    refresh,
)
from halb_lab.infra import net, nodes
from halb_lab.infra.topology import CLIENT, VIP
from halb_lab.scenarios import drills, faults, foreign, watch
from halb_lab.scenarios.drills import quiet
from halb_lab.scenarios.probes import client_get, holders, node, service, transitions, wait_until
from halb_lab.scenarios.watch import Watch

pytestmark = pytest.mark.lab
WORKERS = {"w1", "w2", "w3", "w4"}
HAPROXY_STEPS = [("halb-lb2-haproxy", "update"), ("halb-lb1-haproxy", "update"), ("halb-verify", "update")]


@pytest.fixture(scope="module")
def deployed(lab_up: None) -> Result:
    result = deploy(progress=quiet)
    assert wait_until(lambda: holders() == ["lb1"], 30, 0.2) is not None, f"lb1 never held the VIP alone: {holders()}"
    return result


# --------------------------------------------------------------------------- deployment


def test_every_step_ran_in_order_backup_first(deployed: Result) -> None:
    names = [n for n, op in deployed.ran() if op == "create"]
    assert len(names) == len(deployed.actions), f"a first deploy only creates: {deployed.ran()}"
    for node_name in ("lb1", "lb2"):
        steps = [n for n in names if n.startswith(f"halb-{node_name}-")]
        assert steps == [f"halb-{node_name}-{s}" for s in STEPS], steps
    assert names.index("halb-lb2-services") < names.index("halb-lb1-system"), "BACKUP configured before MASTER"
    assert set(names[:3]) == {"halb-address-vip", "halb-address-lb1", "halb-address-lb2"}, "addresses first"


def test_services_active_on_both_nodes(deployed: Any) -> None:
    for name in ("lb1", "lb2"):
        assert service(name, "haproxy") == "active", f"{name}: haproxy"
        assert service(name, "keepalived") == "active", f"{name}: keepalived"


def test_each_node_runs_its_units_in_cgroups_of_its_own(deployed: Any) -> None:
    """Started from one process, the nodes once shared /payload/system.slice/<unit>: one node's
    systemd saw another's processes, and a cold start left a node booting for minutes."""
    seen: dict[str, str] = {}
    for name in ("lb1", "lb2"):
        pid = nodes.ssh(node(name), "systemctl show -p MainPID --value keepalived", timeout=10).stdout.strip()
        # the host's view of that process: the container's PID 1 is in its own PID namespace
        host_pids = [p for p in nodes.processes(node(name)) if _ns_pid(p) == pid]
        assert host_pids, f"{name}: keepalived's main process {pid} not found among the node's processes"
        groups = Path(f"/proc/{host_pids[0]}/cgroup").read_text().splitlines()
        unit = next(g.split(":", 2)[2] for g in groups if g.startswith("0::"))
        assert unit.startswith(f"/halb-lab-{name}/") and unit.endswith("/keepalived.service"), f"{name}: {unit}"
        seen[name] = unit
    assert seen["lb1"] != seen["lb2"], f"the nodes share a cgroup: {seen}"


def _ns_pid(pid: int) -> str:
    """The pid a host process has inside its own PID namespace (the last NSpid field); "" for
    a process that ended since it was listed (a short-lived helper the node ran meanwhile)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return line.split()[-1]
    return ""


def test_exactly_one_node_holds_the_vip_for_10_seconds(deployed: Any) -> None:
    samples = []
    end = time.monotonic() + 10
    while time.monotonic() < end:
        samples.append(tuple(holders()))
        time.sleep(0.25)
    assert set(samples) == {("lb1",)}, f"VIP holders sampled: {sorted(set(samples))}"


def test_http_through_the_vip_reaches_all_four_workers_in_turn(deployed: Any) -> None:
    bodies = [client_get(f"http://{VIP}/")[1].strip() for _ in range(8)]
    assert set(bodies[:4]) == WORKERS, bodies
    assert bodies[:4] == bodies[4:], f"round robin order: {bodies}"


def test_tls_through_the_vip_completes_a_handshake_with_a_worker(deployed: Any) -> None:
    code, body = client_get(f"https://{VIP}/")
    assert code == 200 and body.strip() in WORKERS, (code, body)


def test_wrk_through_the_vip_runs_back_to_back_without_errors_on_a_tuned_client(deployed: Any) -> None:
    got = net.client_sysctls()
    assert got == net.CLIENT_SYSCTLS, f"client namespace {CLIENT.netns}: {got}, expected {net.CLIENT_SYSCTLS}"
    for run in range(2):  # the second run meets the first one's TIME_WAIT ports
        r = wrk.run(f"http://{VIP}/", 8, 1, close=True)
        assert r.requests > 0 and r.errors == 0, f"wrk run {run + 1}, a new connection per request via the VIP: {r}"


def test_second_deploy_changes_nothing(deployed: Result) -> None:
    again = deploy(progress=quiet)
    assert again.ran() == [], f"an unchanged stack re-ran steps: {again.ran()}"
    assert set(again.changes) == {"same"}, f"the engine's summary: {again.changes}"
    assert ENGINE.history()[-1]["resourceChanges"] == again.changes, "the file backend's history agrees"


def test_deploys_leave_the_repository_untouched(deployed: Result) -> None:
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", "Pulumi.*.yaml"], cwd=ROOT, capture_output=True, text=True
    )
    assert status.stdout == "", f"a deploy changed tracked stack files: {status.stdout}"


def test_state_keeps_no_secret_in_plain_text(deployed: Result) -> None:
    secrets = [deployed.exports["stats_password"], deployed.exports["vrrp_password"]]
    assert all(len(s) >= 8 for s in secrets), "the lab's passwords are set"
    state = ENGINE.backend / ".pulumi" / "stacks" / "halb" / "lab.json"
    for path in (state, ENGINE.config_file, ciphertexts("lab"), VAULT):
        text = path.read_text()
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{path} holds a secret in plain text"
    assert state.read_text().count('"ciphertext"') >= 10, "secret inputs and outputs are kept encrypted in the state"


def test_stats_page_needs_the_password_and_metrics_answer(deployed: Result) -> None:
    password = deployed.exports["stats_password"]
    for url in deployed.exports["stats_urls"].values():
        assert client_get(url)[0] == 401, f"{url} without password"
        assert client_get(url, "admin", "wrong-password")[0] == 401, f"{url} with a wrong password"
        code, body = client_get(url, "admin", password)
        assert code == 200 and "Statistics Report" in body, f"{url} with the password: {code}"
    for url in deployed.exports["metrics_urls"].values():
        code, body = client_get(url)
        assert code == 200 and "haproxy_process_" in body, f"{url}: {code}"


def test_a_set_lasts_one_deploy_and_reruns_only_haproxy_steps(deployed: Result) -> None:
    changed = deploy(sets=["haproxy.maxconn=4000"], progress=quiet)
    assert changed.ran() == HAPROXY_STEPS, changed.ran()
    back = deploy(progress=quiet)
    assert back.ran() == HAPROXY_STEPS, back.ran()


def test_removing_a_backend_server_reruns_only_haproxy_steps_without_vrrp_transition(
    deployed: Result, tmp_path: Path
) -> None:
    before = {n: transitions(n) for n in ("lb1", "lb2")}
    # Evidence that the counter sees transitions at all: each node logged its start-up state.
    assert before["lb1"] >= 1 and before["lb2"] >= 1, f"the notify hook logged no transition: {before}"
    doc = yaml.safe_load((ROOT / "Pulumi.lab.yaml").read_text())
    servers = doc["config"]["halb:haproxy"]["services"][0]["servers"]
    doc["config"]["halb:haproxy"]["services"][0]["servers"] = [s for s in servers if s["name"] != "w4"]
    smaller = tmp_path / "Pulumi.lab.yaml"
    smaller.write_text(yaml.safe_dump(doc))
    second = deploy(stack_file=smaller, progress=quiet)
    try:
        assert second.ran() == HAPROXY_STEPS, second.ran()
        _check_w4_gone_without_transition(before)
    finally:
        deploy(progress=quiet)  # back to the stack file for the drills


def _check_w4_gone_without_transition(before: dict[str, int]) -> None:
    bodies = {client_get(f"http://{VIP}/")[1].strip() for _ in range(9)}
    assert bodies == WORKERS - {"w4"}, f"after removing w4: {bodies}"
    after = {n: transitions(n) for n in ("lb1", "lb2")}
    assert after == before, f"a reload caused a VRRP transition: {before} -> {after}"
    assert holders() == ["lb1"]


# --------------------------------------------------------------------------- the engine's contract
# What a reviewer reads in `pulumi preview --diff`, and what the engine does on re-runs.

MANAGED = "/etc/haproxy/haproxy.cfg /etc/haproxy/halb-secrets.cfg /etc/keepalived/keepalived.conf /etc/keepalived/halb-auth.conf"


def changed_lines(diff: str) -> dict[str, list[str]]:
    """Each resource's changed lines in `pulumi preview --diff` output: the `+` lines under its urn."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in diff.splitlines():
        m = re.search(r"\[urn=urn:pulumi:[^\]]*::([^\]:]+)\]", line)
        if m:
            current = m.group(1)
            out.setdefault(current, [])
        elif current and line.lstrip().startswith("+ "):
            out[current].append(line.strip())
    return out


def node_fingerprint() -> dict[str, str]:
    """The managed files' hashes and the daemons' run ids on both nodes."""
    probe = f"sha256sum {MANAGED}; systemctl show -p InvocationID --value haproxy keepalived"
    return {n: nodes.ssh(node(n), probe, timeout=10).stdout for n in ("lb1", "lb2")}


def test_preview_of_a_drain_updates_the_two_haproxy_steps_with_one_line_each(deployed: Result) -> None:
    p = preview(sets=["haproxy.services[0].servers[1].state=drain"], progress=quiet)
    assert sorted(p.ran()) == sorted(HAPROXY_STEPS), f"a drain: {p.ran()}"
    lines = changed_lines(p.diff)
    for name in ("halb-lb1-haproxy", "halb-lb2-haproxy"):
        assert lines[name] == ["+     server w2 198.18.0.22:80 check weight 0", "+ set server http/w2 weight 0"], (
            f"{name}: the changed line and its runtime command, nothing else: {lines[name]}"
        )
    assert len(lines["halb-verify"]) == 2, f"halb-verify: the two steps it follows: {lines['halb-verify']}"


def test_preview_of_maintenance_updates_lb1_keepalived_the_rollout_and_verify(deployed: Result) -> None:
    p = preview(sets=["nodes[0].maintenance=true"], progress=quiet)
    rollout = [f"halb-vrrp-{n}-{phase}" for phase in ("commit", "rejoin") for n in ("lb1", "lb2")]
    assert sorted(p.ran()) == sorted([(n, "update") for n in ["halb-lb1-keepalived", *rollout, "halb-verify"]]), p.ran()
    lines = changed_lines(p.diff)
    assert lines["halb-lb1-keepalived"] == ["+     priority 1"], lines["halb-lb1-keepalived"]
    assert all(len(lines[n]) == 1 for n in rollout), {n: lines[n] for n in rollout}


def test_preview_of_a_rename_deletes_the_old_nodes_steps_and_creates_the_new_ones(deployed: Result) -> None:
    p = preview(sets=["nodes[1].name=lb3"], progress=quiet)
    ops = p.ops()
    old = {n: op for n, op in ops.items() if n.startswith(("halb-lb2-", "halb-vrrp-lb2-"))}
    new = {n: op for n, op in ops.items() if n.startswith(("halb-lb3-", "halb-vrrp-lb3-"))}
    assert set(old.values()) == {"delete"} and "halb-lb2-teardown" in old, old
    assert set(new.values()) == {"create"} and len(new) == len(old), new
    replaced = sorted(n for n, op in ops.items() if op == "replace")
    assert replaced == ["halb-verify"], f"only verify follows the new host's identity: {replaced}"


def test_preview_of_a_vrrp_password_rotation_shows_secret_and_never_the_value(deployed: Result) -> None:
    value = "Pr3view9"
    p = preview(secret_sets=[f"keepalived.authPassword={value}"], progress=quiet)
    assert value not in p.diff and "[secret]" in p.diff, "the rotated password is masked in the preview"
    assert ("halb-lb1-keepalived", "update") in p.ran() and ("halb-lb2-keepalived", "update") in p.ran(), p.ran()
    assert "replace" not in p.ops().values(), p.ran()


def test_a_preview_changes_nothing_on_the_nodes_and_costs_no_request(deployed: Result) -> None:
    drills.settle()
    before = node_fingerprint()
    with Watch() as w:
        preview(sets=["haproxy.maxconn=4000", "nodes[0].maintenance=true"], progress=quiet)
    assert node_fingerprint() == before, "a preview touched a managed file or restarted a daemon"
    assert w.report is not None and w.report.failed == 0 and w.report.bad_samples == [], w.report
    assert w.report.requests >= 100, f"too little watched: {w.report.summary()}"


def test_refresh_then_up_is_all_same(deployed: Result) -> None:
    refreshed = refresh(progress=quiet)
    assert refreshed.ran() == [] or set(op for _, op in refreshed.ran()) <= {"refresh"}, refreshed.ran()
    again = deploy(progress=quiet)
    assert again.ran() == [] and set(again.changes) == {"same"}, again.changes


def test_an_interrupted_up_is_followed_by_one_that_converges_with_one_holder_throughout(deployed: Result) -> None:
    """SIGINT twice (an impatient operator: the second before the engine's graceful cancel ends)
    while lb2 is provisioned again: the engine stops at once, leaving its lock and maybe pending
    operations; the next deploy repairs the state as Pulumi documents (pulumi cancel for the stale
    lock, refresh clearing pending creates) and converges. lb1 holds the VIP throughout."""
    drills.settle()
    change = "nodes[1].generation=1"
    cmd = [sys.executable, "-m", "halb_lab", "deploy", "--set", change]
    repairs: list[str] = []
    proc = None
    try:
        with Watch() as w:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
            )
            seen = []
            assert proc.stdout is not None
            for line in proc.stdout:
                seen.append(line)
                if "halb-lb2-packages" in line:
                    os.killpg(proc.pid, signal.SIGINT)
                    time.sleep(0.05)
                    os.killpg(proc.pid, signal.SIGINT)
                    break
            proc.communicate(timeout=120)
            end_session(proc.pid)  # the engine's plugins, which it left running
            assert any("halb-lb2-packages" in line for line in seen), "".join(seen)
            interrupted = "halb-lb2-services" not in "".join(seen)
            # What the interrupt left depends on how far the engine got: usually its lock (and
            # pending creates), sometimes nothing when it still finished its own cancellation.
            locks = list((ENGINE.backend / ".pulumi" / "locks").rglob("*.json"))
            left = bool(locks) or bool(ENGINE.pending())
            converged = deploy(sets=[change], progress=repairs.append)
            drills.settle()
        assert interrupted, "the deploy ran to its end: the interrupt came too late"
        said = [line for line in repairs if "pulumi cancel" in line or "refresh --clear-pending-creates" in line]
        assert bool(said) == left, f"left a lock or pending operations: {left}; the next deploy said: {repairs}"
        lb2_done = {("halb-lb2-services", "create"), ("halb-lb2-services", "replace")}
        assert lb2_done & set(converged.ran()), converged.ran()
        assert not any(n.startswith("halb-lb1-") for n, _ in converged.ran()), f"lb1 was touched: {converged.ran()}"
        assert ENGINE.pending() == [], "pending operations left in the state"
        assert deploy(sets=[change], progress=quiet).ran() == [], "converged: a second deploy changes nothing"
        report = w.report
        assert report is not None and report.bad_samples == [] and report.failed == 0, w.report
        assert report.holders_seen == ["lb1"], report.summary()
    finally:
        if proc is not None:
            proc.kill()
            end_session(proc.pid)
        deploy(progress=quiet)  # generation 0 again
        drills.settle()


def test_a_step_that_fails_on_lb2_stops_the_deploy_before_lb1_and_the_fix_converges(deployed: Result) -> None:
    drills.settle()
    lb1_before = node_fingerprint()["lb1"]
    readonly = "mount --bind /etc/haproxy /etc/haproxy && mount -o remount,bind,ro /etc/haproxy"
    assert nodes.ssh(node("lb2"), readonly, timeout=10).returncode == 0, "lb2: /etc/haproxy read-only"
    try:
        with Watch() as w, pytest.raises(DeployFailed, match="halb-lb2-haproxy") as failure:
            deploy(sets=["haproxy.maxconn=4000"], progress=quiet)
        assert "halb-lb1-" not in str(failure.value), failure.value
        assert node_fingerprint()["lb1"] == lb1_before, "lb1 was touched by a deploy that failed on lb2"
        report = w.report
        assert report is not None and report.failed == 0 and report.holders_seen == ["lb1"], report
    finally:
        nodes.ssh(node("lb2"), "umount /etc/haproxy", timeout=10)
    fixed = deploy(sets=["haproxy.maxconn=4000"], progress=quiet)
    assert sorted(fixed.ran()) == sorted(HAPROXY_STEPS), fixed.ran()
    assert deploy(progress=quiet).ran() == HAPROXY_STEPS, "back to the stack file"


# --------------------------------------------------------------------------- fault drills
# Each on the MASTER (lb1) under the drills' client load; outages are client-visible.


def at_most_one_straddling_request(d: drills.Drill) -> None:
    """When the VIP moves (back to lb1, which preempts; or to lb2, while lb1's haproxy still
    answers between crashes), a connection whose handshake straddles the moment clients' ARP
    entries move is reset: at most one such request after the first outage, nothing more (seen
    once in CI for the crash loop: 7 requests failed in 0.071 s, then one alone)."""
    later = d.report.outages[1:]
    assert len(later) <= 1 and sum(later) <= 0.05, f"{d.name}: a second outage: {d.report.summary()}"


def moved_once_and_back(d: drills.Drill, first_outage_limit: float) -> None:
    """The VIP went to lb2 and back to lb1, the first outage within the limit. At the return, the
    preempting node and the one stepping down may both hold the VIP for the milliseconds between
    them: at most one 50 ms sample may see that (seen once in CI; an open finding), never more."""
    assert d.report.moves == ["lb1", "lb2", "lb1"], d.report.summary()
    assert d.report.outages and d.report.outages[0] <= first_outage_limit, d.report.summary()
    at_most_one_straddling_request(d)
    never_two_holders(d)


def never_two_holders(d: drills.Drill) -> None:
    """No two holders, but for the preemption overlap of `moved_once_and_back` (one sample at most)."""
    overlap = [t for t, h in d.report.bad_samples if len(h) > 1]
    assert len(overlap) <= 1, f"{d.name}: two holders in {len(overlap)} samples: {d.report.summary()}"


def keepalived_killed_cost_one_short_move(d: drills.Drill) -> None:
    """keepalived killed on lb1: one outage of at most 0.3 s (the priority-0 advert reached lb2,
    from keepalived's VRRP child or from vrrp-resign), keepalived back within 3 s, and by 5 s the pair
    survives a second fault: haproxy killed on lb2 sends the VIP back to lb1 within 0.3 s."""
    assert d.facts["restarted_after_s"] is not None and d.facts["restarted_after_s"] <= 3.0, d.facts
    assert len(d.report.outages) <= 1, f"{d.name}: {d.report.summary()}"
    assert d.report.outages[:1] == [] or d.report.outages[0] <= 0.3, f"{d.name}: {d.report.summary()}"
    assert d.facts.get("second_fault_vip_on_lb1_s") is not None, f"{d.name}: not redundant at 5 s: {d.facts}"
    assert d.facts["second_fault_longest_outage_s"] <= 0.3, f"{d.name}: {d.facts}"
    assert d.facts["status"] == "OK", d.facts
    never_two_holders(d)


def test_fault_keepalived_crash_costs_one_short_move_and_redundancy_returns(deployed: Result) -> None:
    keepalived_killed_cost_one_short_move(faults.keepalived_crash())


def test_fault_every_keepalived_process_killed_costs_one_short_move(deployed: Result) -> None:
    keepalived_killed_cost_one_short_move(faults.keepalived_group_kill())


def test_fault_haproxy_crash_moves_the_vip_once_and_back_without_a_second_outage(deployed: Result) -> None:
    d = faults.haproxy_crash()
    moved_once_and_back(d, 0.3)
    assert d.facts["haproxy"] == "active", d.facts


def test_fault_haproxy_crash_loop_ends_in_fault_without_flapping(deployed: Result) -> None:
    d = faults.haproxy_crash_loop()
    assert d.report.holders_seen == ["lb1", "lb2"], f"the VIP flapped: {d.report.summary()}"
    assert d.report.outages and d.report.outages[0] <= 0.3, d.report.summary()
    at_most_one_straddling_request(d)
    assert d.facts["lb1_state"] == "FAULT" and d.facts["haproxy"] == "failed", d.facts
    assert d.facts["status"] == "DEGRADED" and "crash loop" in d.facts["why"], d.facts


def test_fault_hung_haproxy_gives_the_vip_away_within_a_second_and_does_not_flap(deployed: Result) -> None:
    d = faults.haproxy_hang()
    moved_once_and_back(d, 1.0)


def cut_off_lets_go(d: drills.Drill, while_cut: int = 0) -> None:
    """lb1's switch port failed: halb-vrrp-guard takes lb1 for cut off (nothing arrives, neither lb2
    nor the gateway answers) and holds it in FAULT, so lb1 comes back as a BACKUP: after the plug
    no two holders but the preemption overlap (one sample at most). While cut, lb1 may still hold
    the VIP for `while_cut` samples after lb2 took it (unreachable: no client sees it)."""
    after = d.facts["two_holder_samples_after_plug"]
    assert after <= 1, f"{d.name}: {d.facts} {d.report.summary()}"
    two = [t for t, h in d.report.bad_samples if len(h) > 1]
    assert len(two) - after <= while_cut, f"{d.name}: two holders in {len(two)} samples: {d.report.summary()}"
    assert d.facts["one_holder_again_s"] is not None, d.facts


def test_fault_link_flap_fails_over_and_returns_without_a_second_outage(deployed: Result) -> None:
    d = faults.link_flap()
    assert d.report.outages and d.report.outages[0] <= 3.7, d.report.summary()
    assert sum(d.report.outages[1:]) <= 0.5, f"failback disrupted clients: {d.report.summary()}"
    cut_off_lets_go(d)


def test_fault_link_flap_with_the_fast_profile_fails_over_within_a_second(deployed: Result) -> None:
    """`keepalived.profile: fast` (VRRPv3, 0.25 s adverts): the master-down interval is 0.77 s."""
    with faults.fast_adverts(faults.FAST_PROFILE):
        d = faults.link_flap()
    assert d.report.outages and d.report.outages[0] <= 1.0, d.report.summary()
    assert sum(d.report.outages[1:]) <= 0.5, f"failback disrupted clients: {d.report.summary()}"
    # lb1 lets go 0.43-0.53 s after the cut (half an advert of silence, then 0.3 s of unanswered
    # ARP); lb2's master-down interval ends 0.52-0.77 s after it: at most 0.01 s of both, so one
    # sample while cut is the margin for a slow tick
    cut_off_lets_go(d, while_cut=1)


def stunned_once(d: drills.Drill, nopreempt: bool) -> None:
    """A stun costs at most one outage and, after the MASTER resumes, at most one sample with two
    holders; with nopreempt the VIP stays where it went (lb2, when it moved), with preempt it is on
    lb1 at the end. With preempt the VIP's return is a second move, which costs nothing: the
    requests in flight on lb2 are passed back to it (keepalived.handoff)."""
    assert not d.report.outages[1:], f"{d.name}: a second outage: {d.report.summary()}"
    assert d.facts["two_holder_samples_after_resume"] <= 1, f"{d.name}: {d.facts} {d.report.summary()}"
    moved = d.facts["vip_on_lb2_s"] is not None
    assert d.facts["holder_at_end"] == (["lb2"] if nopreempt and moved else ["lb1"]), f"{d.name}: {d.facts}"


@pytest.mark.parametrize("seconds", [1.0, 3.0])
def test_fault_stun_of_the_master_costs_one_move_at_most(deployed: Result, seconds: float) -> None:
    """lb1 frozen and cut for 1 s and 3 s (a vMotion or snapshot stun), default profile: 1 s is
    shorter than the master-down interval (nothing moves), 3 s is longer (lb2 takes the VIP)."""
    stunned_once(faults.stun(seconds), nopreempt=False)


def test_fault_stun_with_the_fast_profile_and_nopreempt_never_moves_back(deployed: Result) -> None:
    """The fast profile takes the VIP to lb2 in both stuns; with nopreempt, lb2 outbids the resumed
    lb1 (halb-vrrp-guard's hold file), so the VIP stays on lb2."""
    with faults.fast_adverts([*faults.FAST_PROFILE, "keepalived.nopreempt=true"]):
        for seconds in (1.0, 3.0):
            d = faults.stun(seconds)
            assert d.facts["vip_on_lb2_s"] is not None and d.facts["vip_on_lb2_s"] <= 1.0, f"{d.name}: {d.facts}"
            stunned_once(d, nopreempt=True)


def test_fault_master_power_cycle(deployed: Result) -> None:
    d = faults.power_cycle()
    assert d.report.outages and d.report.outages[0] <= 3.7, d.report.summary()
    assert sum(d.report.outages[1:]) <= 0.5 and d.facts["vip_back_s"] is not None, d.report.summary()
    never_two_holders(d)
    assert service("lb1", "haproxy") == "active" and service("lb1", "keepalived") == "active"


def test_fault_cold_start_of_both_nodes(deployed: Result) -> None:
    d = faults.cold_start()
    assert d.facts["vip_answers_after_boot_s"] is not None and d.facts["vip_answers_after_boot_s"] <= 10, d.facts
    assert d.facts["vip_held_after_boot_s"] is not None and d.facts["vip_held_after_boot_s"] <= 10, d.facts
    never_two_holders(d)
    assert len(d.facts["holders_after"]) == 1, d.facts
    again = deploy(progress=quiet)
    assert again.ran() == [], f"`pulumi up` after both nodes rebooted must be all same: {again.ran()}"


def test_fault_backend_worker_killed_is_routed_around(deployed: Result) -> None:
    d = faults.worker_killed()
    # A refused connection is redispatched to another server; only a request that was inside the
    # worker when it died (TCP mode: nothing to replay) can fail.
    assert d.report.failed <= 1 and d.report.bad_samples == [], d.report.summary()


def test_fault_backend_worker_hung_is_taken_out_by_its_checks(deployed: Result) -> None:
    d = faults.worker_hung()
    # In TCP mode the requests already sent to a hung worker cannot be replayed: they fail until
    # two checks (0.5 s apart, 0.5 s budget) mark it down.
    assert d.facts["last_failure_after_s"] <= 2.0, (d.facts, d.report.summary())
    assert d.report.bad_samples == [], d.report.summary()


def deployed_inputs(name: str) -> dict[str, Any]:
    """A resource's inputs as the engine's state holds them."""
    inputs: dict[str, Any] = next(r["inputs"] for r in ENGINE.resources() if r["urn"].endswith(f"::{name}"))
    return inputs


def _replay_with(name: str, mutate: Any) -> tuple[int, str]:
    """Run a deployed step's script again with its main file changed, as a bad `pulumi up` would."""
    script = deployed_inputs(name)["create"]
    bad = mutate(script)
    assert bad != script, "the mutation changed nothing"
    p = nodes.ssh(node(name.split("-")[1]), bad, timeout=60, stdin="")
    return p.returncode, p.stderr


def test_drill_invalid_config_never_replaces_the_running_one(deployed: Result) -> None:
    drills.settle()
    live = {
        f: nodes.ssh(node("lb1"), f"sha256sum {f}", timeout=10).stdout
        for f in ("/etc/haproxy/haproxy.cfg", "/etc/keepalived/keepalived.conf")
    }
    rc, err = _replay_with(
        "halb-lb1-haproxy", lambda s: s.replace("balance roundrobin", "balance no-such-algorithm", 1)
    )
    assert rc != 0 and "rejected the new haproxy.cfg" in err and "running config is untouched" in err, err
    rc, err = _replay_with(
        "halb-lb1-keepalived", lambda s: re.sub(r"virtual_router_id \d+", "virtual_router_id 999", s)
    )
    assert rc != 0 and "rejected the new keepalived.conf" in err, err
    for f, digest in live.items():
        assert nodes.ssh(node("lb1"), f"sha256sum {f}", timeout=10).stdout == digest, f"{f} was replaced"
    assert {client_get(f"http://{VIP}/")[1].strip() for _ in range(8)} == WORKERS
    assert holders() == ["lb1"]


@pytest.mark.parametrize("direction", list(faults.PARTITIONS))
def test_drill_vrrp_partition_keeps_one_holder_and_is_named(deployed: Result, direction: str) -> None:
    """VRRP dropped between the nodes (both ways, or one way) while both stay on the LAN: before
    halb-vrrp-guard both held the VIP (a split brain, every long-lived connection reset as ARP
    flipped); now lb2 stays in FAULT while lb1 answers for the VIP."""
    d = faults.vrrp_partition(direction)
    two = [t for t, h in d.report.bad_samples if len(h) > 1]
    assert len(two) <= 1 and d.report.failed == 0, f"{d.name}: {d.report.summary()}"
    assert d.report.moves == ["lb1"], f"{d.name}: the VIP moved: {d.report.summary()}"
    if direction == "to-lb1":  # lb2, the BACKUP, sends no adverts: nothing to lose
        assert d.facts["status_during"] == "OK", d.facts
    else:
        assert d.facts["lb2_during"] == "FAULT", d.facts
        assert d.facts["status_during"] == "VRRP PARTITION" and d.facts["exit_during"] == 1, d.facts
        assert d.facts["summary_during"].startswith("VRRP PARTITION: lb2 hears no adverts from lb1; lb1 answers"), (
            d.facts
        )
    assert d.facts["lb2_backup_again_s"] is not None and d.facts["status_after"] == "OK", d.facts


def test_vrid_preflight_refuses_a_vrid_another_router_uses_and_status_names_it(deployed: Result) -> None:
    """A third VRRP router on the LAN (keepalived in the client namespace). On the stack's own VRID:
    `halb check --probe` refuses within 3 s (1 s after it hears the router) naming the VRID and the router, and `halb
    status` reports it, while the pair serves on. On a VRID the next deploy wants: the deploy stops
    at the `vrid` step, before any file changes. Without it, both pass."""
    drills.settle()
    live = node_fingerprint()
    with Watch() as w, foreign.foreign_router(10) as router:
        code, out, seconds = foreign.check_probe()
        assert code == 2 and "VRID 10 (keepalived.vrid, IPv4) is in use" in out and router in out, out
        heard = [float(x) for x in re.findall(r"heard (\d+\.\d) s into listening", out)]
        assert heard and max(heard) <= 3.0, f"the VRID pre-flight heard the collision after {heard} s: {out}"
        assert seconds <= 1.0 + 1.0 + 3.0, f"halb check --probe took {seconds:.1f} s (an advert, 1 s more, ssh)"
        seen = wait_until(lambda: drills.status()["verdict"] == "VRID COLLISION", 5, 0.5)
        assert seen is not None, f"halb status never named the collision: {drills.status()['summary']}"
        assert router in drills.status()["summary"] and drills.status()["exit_code"] == 1
    report = w.report
    assert report is not None and report.failed == 0 and report.holders_seen == ["lb1"], report
    with foreign.foreign_router(77, version=3):
        with pytest.raises(DeployFailed, match="VRID 77") as failure:
            deploy(sets=["keepalived.vrid=77"], progress=quiet)
        assert "halb-lb2-vrid" in str(failure.value), failure.value
    assert node_fingerprint() == live, "a deploy refused by the VRID pre-flight changed a node"
    code, out, _ = foreign.check_probe()
    assert code == 0 and "VRIDs free on the LAN" in out, out
    again = deploy(progress=quiet)  # back to the stack file (the refused deploy left VRID 77 in the config)
    assert all(op == "update" and name.endswith("-vrid") for name, op in again.ran()), again.ran()
    assert wait_until(lambda: drills.status()["verdict"] == "OK", 15, 1) is not None, drills.status()["summary"]


# --------------------------------------------------------------------------- day-two drills
# Each under a new connection + GET to the VIP every 10 ms and the VIP's holders read every 50 ms.


def one_holder(d: drills.Drill) -> None:
    assert d.report.bad_samples == [], f"{d.name}: not exactly one VIP holder at every sample: {d.report.summary()}"
    assert d.report.samples >= 20 and d.report.requests >= 100, f"{d.name}: too little watched: {d.report.summary()}"


def test_drill_switchover_to_lb2_and_back(deployed: Result) -> None:
    """Never a sample without a holder. When lb1 comes back it preempts: it adds the VIP and its
    advert makes lb2 remove it, milliseconds later; the 50 ms sampler, which reads the nodes one
    after the other, caught both holding it once in 20-odd runs (issue 28 f). At most that one.
    With keepalived.handoff no request fails: the new holder passes the packets of connections it
    does not know to the old one, which still serves them. The long-lived connections survive
    too, in 19 of 20 runs of `make bench-holder`; one run lost 5 of its 8 (an open finding).
    Without the handoff every move breaks all 8 (the negative control below)."""
    d = drills.switchover()
    assert d.report.samples >= 20 and d.report.requests >= 100, f"{d.name}: too little watched: {d.report.summary()}"
    gaps = [t for t, h in d.report.bad_samples if not h]
    assert not gaps and len(d.report.bad_samples) <= 1, f"{d.name}: {d.report.summary()}"
    assert d.report.moves == ["lb1", "lb2", "lb1"], d.report.summary()
    assert d.report.failed == 0 and d.report.keepalive_resets < watch.KEEPALIVES, d.report.summary()
    assert d.facts["status_during"] == "MAINTENANCE" and "lb1 is out; lb2 holds the VIP" in d.facts["status_summary"]
    assert d.facts["lb1_haproxy_during"] == "active", "the node in maintenance keeps haproxy running"
    ran = {n for n, _ in d.steps}
    assert "halb-lb1-keepalived" in ran and not any("haproxy" in n or "lb2-keepalived" in n for n in ran), d.steps


def test_drill_switchover_without_handoff_breaks_the_long_lived_connections(deployed: Result) -> None:
    """The negative control of keepalived.handoff: turned off (the services step stops halb-handoff,
    which undoes its routes, rules and arp_ignore), each move breaks every long-lived connection
    the old holder served (VRRP moves no TCP state)."""
    off = ("keepalived.handoff=false",)
    try:
        deploy(sets=list(off), progress=quiet)
        left = nodes.ssh(node("lb1"), f"ls {PATHS['handoff']} 2>&1; nft list tables", timeout=10).stdout
        assert "halb_handoff" not in left and "No such file" in left, f"handoff off, yet on lb1: {left}"
        d = drills.switchover(off)
        assert d.report.keepalive_resets >= watch.KEEPALIVES, d.report.summary()
    finally:
        deploy(progress=quiet)
    drills.settle()


def test_drill_drain_a_server_through_the_runtime_api(deployed: Result) -> None:
    d = drills.drain()
    one_holder(d)
    assert d.report.failed == 0, d.report.summary()
    assert d.facts["served_while_drained"] == ["w2", "w3", "w4"] and d.facts["w1_weight_while_drained"] == "0", d.facts
    assert d.facts["served_after"] == sorted(WORKERS) and not d.facts["reloaded"], d.facts
    assert {n for n, _ in d.steps} == {"halb-lb1-haproxy", "halb-lb2-haproxy", "halb-verify"}, d.steps
    for update in ENGINE.history()[-2:]:  # the drain and the way back, as the file backend recorded them
        changes = update["resourceChanges"]
        assert set(changes) == {"same", "update"} and changes["update"] == 3, f"the engine's history: {changes}"


@pytest.mark.parametrize("what", ["vrrp-password", "stats-password", "vrrp-version"])
def test_drill_rotation_with_the_master_reachable_only_after_6_s(deployed: Result, what: str) -> None:
    d = drills.rotation(what)
    one_holder(d)
    assert d.report.failed == 0 and d.report.holders_seen == ["lb1"], d.report.summary()
    assert d.facts["master_first_step_done_s"].get("rotate", 0) >= 6, f"the MASTER's steps were not delayed: {d.facts}"
    if what != "stats-password":
        assert d.facts["backup_left_vrrp"], "the BACKUP must leave VRRP while the shared settings change"
        assert ("halb-vrrp-lb1-commit", "update") in d.steps and "replace" not in {op for _, op in d.steps}, d.steps


def test_drill_rebuild_lb2_and_bump_its_generation(deployed: Result) -> None:
    d = drills.rebuild("lb2")
    one_holder(d)
    assert d.facts["was_blank"] and d.report.failed == 0, (d.facts, d.report.summary())
    assert d.facts["services"] == ["active", "active"] and d.facts["status"] == "OK", d.facts
    lb2 = [n for n, op in d.steps if n.startswith("halb-lb2-")]
    assert "halb-lb2-teardown" in lb2 and "halb-lb2-packages" in lb2, d.steps
    assert not any(n.startswith("halb-lb1-") for n, _ in d.steps), "lb1 is not touched"
    drills.settle()
    deploy(progress=quiet)  # back to generation 0: lb2 provisioned from scratch once more


def test_drill_rename_a_node_keeps_the_host_provisioned(deployed: Result) -> None:
    d = drills.rename()
    one_holder(d)
    assert d.report.failed == 0, d.report.summary()
    assert d.facts["services_after_rename"] == ["active", "active"], "the old name's teardown left the host alone"
    assert d.facts["owner_after_rename"] == "halb-lb3#0", d.facts
    assert ("halb-lb2-teardown", "delete") in d.steps and ("halb-lb3-teardown", "delete") in d.steps, d.steps


def test_drill_drift_found_and_repaired(deployed: Result) -> None:
    d = drills.drift()
    assert d.facts["verdict"] == "DRIFT" and d.facts["exit_code"] == 5, d.facts
    assert d.facts["drifted"] == {"lb1": ["/etc/haproxy/haproxy.cfg"], "lb2": []}, d.facts
    assert d.facts["verdict_after_repair"] == "OK" and d.report.failed == 0, (d.facts, d.report.summary())
    one_holder(d)


# --------------------------------------------------------------------------- teardown


def test_drill_teardown_leaves_nothing_and_a_new_deploy_succeeds(deployed: Result) -> None:
    d = drills.teardown()
    assert d.facts["holders_after_destroy"] == [] and not d.facts["vip_answers_after_destroy"], d.facts
    assert d.facts["files_left"] == {"lb1": [], "lb2": []}, d.facts
    assert d.facts["units_after_destroy"] == {"lb1": ["inactive", "inactive"], "lb2": ["inactive", "inactive"]}
    assert d.facts["destroy_ops"] == ["delete"], d.facts
    assert {"halb-lb1-teardown", "halb-lb2-teardown"} <= set(d.facts["deleted"]), d.facts
    assert ("halb-address-vip", "create") in d.steps, "the new deploy's pre-flight ran"


def test_destroy_deletes_every_resource_then_a_new_deploy_succeeds(deployed: Result) -> None:
    deployed_names = {a.name for a in deploy(progress=quiet).actions}
    gone = destroy(progress=quiet)
    assert {a.name for a in gone.actions} == deployed_names and all(a.op == "delete" for a in gone.actions), gone.ran()
    assert set(gone.changes) == {"delete"} and ENGINE.history()[-1]["kind"] == "destroy", gone.changes
    assert ENGINE.resources() == [], "destroy left resources in state"
    again = deploy(progress=quiet)
    assert {n for n, op in again.ran() if op == "create"} == deployed_names, again.ran()
    assert set(ENGINE.history()[-1]["resourceChanges"]) == {"create"}, "the redeploy, in the engine's history"
    drills.settle()


# --------------------------------------------------------------------------- config trust

STATS_PW = "Aa0" + STATS_PASSWORD.specials  # every special character the stats password may hold
VRRP_PW = "'`;|<>[]"  # eight of the VRRP password's special characters (PASS takes 8)


def test_drill_special_character_secrets_reach_the_daemons_whole(deployed: Result) -> None:
    """Passwords made of special characters: the stats page takes the full one and refuses its
    prefix; keepalived uses the whole VRRP password (a peer holding a prefix is not accepted).
    The stats port answers only `allowFrom`, and the metrics need the password."""
    drills.settle()
    endpoints = ["haproxy.stats.allowFrom[0]=198.18.0.30/32", "haproxy.metrics.auth=true"]
    lb2 = node("lb2")
    try:
        deploy(
            sets=endpoints,
            secret_sets=[f"haproxy.stats.password={STATS_PW}", f"keepalived.authPassword={VRRP_PW}"],
            progress=quiet,
        )
        drills.settle(timeout=40)
        for name, address in (("lb1", "198.18.0.11"), ("lb2", "198.18.0.12")):
            url = f"http://{address}:8080"
            assert client_get(f"{url}/stats", "admin", STATS_PW)[0] == 200, f"{name}: the full stats password"
            assert client_get(f"{url}/stats", "admin", STATS_PW[:12])[0] == 401, f"{name}: its prefix"
            assert client_get(f"{url}/metrics")[0] == 401, f"{name}: metrics without the password"
            assert client_get(f"{url}/metrics", "admin", STATS_PW)[0] == 200, f"{name}: metrics with it"
            outside = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", f"{url}/healthz"],
                capture_output=True,
                text=True,
            )
            assert outside.stdout in ("000", ""), f"{name}: the stats port answered outside allowFrom"
        auth = "/etc/keepalived/halb-auth.conf"
        live = nodes.ssh(lb2, f"cat {auth}", timeout=10).stdout
        assert f"auth_pass {VRRP_PW}" in live, f"lb2: {auth} does not hold the whole password"
        # lb2 with a prefix of the password: lb1's adverts no longer count, so lb2 takes the VIP too.
        prefix = f"auth_pass {VRRP_PW[:7]}\n"
        nodes.ssh(lb2, f"cat > {auth} && systemctl reload keepalived", timeout=20, stdin=prefix)
        both = wait_until(lambda: holders() == ["lb1", "lb2"], 15, 0.1)
        assert both is not None, f"lb2 accepted adverts with a different password: {holders()}"
    finally:
        deploy(progress=quiet)  # the lab's own passwords and endpoints again
    drills.settle(timeout=40)


def test_steps_refuse_a_node_whose_host_key_is_not_the_pinned_one(deployed: Result) -> None:
    """The lab pins each node's host key; a wrong pin makes lb2's first step fail before it runs
    anything, and lb1 is not touched."""
    wrong = nodes.host_key(node("lb1"))
    assert wrong and wrong != nodes.host_key(node("lb2")), "the lab's nodes have their own host keys"
    with pytest.raises(DeployFailed, match="halb-lb2-") as failure:
        deploy(sets=[f"nodes[1].hostKey={wrong}"], progress=quiet)
    assert "halb-lb1-" not in str(failure.value), failure.value
    again = deploy(progress=quiet)
    assert again.ran() == [], f"the pinned keys deploy again as before: {again.ran()}"
