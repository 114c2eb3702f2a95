"""Day-two drills on the lab, each watched by a client and an auditor (halb_lab.watch).

Every drill runs through the lab's deployer, as an operator's `pulumi up` would, under a steady
client load, and returns what it saw: the watch's report and the facts the drill checks. The
test suite asserts on them; `make bench` reports them under `lifecycle`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from halb import PROJECT_DIR
from halb.commands import teardown_paths
from halb.render import PATHS
from halb_lab.automation.stack import Result, deploy, destroy, engine
from halb_lab.infra import image, net, nodes
from halb_lab.infra.topology import NODES, VIP
from halb_lab.scenarios.probes import LabError, client_get, holders, node, wait_until
from halb_lab.scenarios.watch import Report, Watch

LEFT_BY_HALB = " ".join(p for group in teardown_paths().values() for p in group)


@dataclass
class Drill:
    name: str
    report: Report
    facts: dict[str, Any] = field(default_factory=dict)
    steps: list[tuple[str, str]] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {**self.report.figures(), **{k: v for k, v in self.facts.items() if _plain(v)}}


def _plain(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool, list))


def quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------- helpers


def status(stack: str = "lab") -> dict[str, Any]:
    """`python -m halb status --stack STACK --json`, as an operator runs it in the lab stack's
    project (its config as last deployed, its outputs through the engine)."""
    p = subprocess.run(
        [sys.executable, "-m", "halb", "status", "--stack", stack, "--json"],
        cwd=engine(stack).home,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **engine(stack).env(), "PYTHONPATH": str(PROJECT_DIR)},
    )
    answer: dict[str, Any] = json.loads(p.stdout)
    return answer


def settle(owner: str = "lb1", timeout: float = 30, url: str = f"http://{VIP}/") -> None:
    """`owner` is the only VIP holder and serves `url` (lab-tls: https, its http redirects), and its
    peer is ready to take over: a drill that starts while the peer is still in FAULT (waiting out
    `healthCheck.rise` after an earlier drill) measures that wait, not the drill (issue 28: a
    switchover once saw a sample with no holder)."""
    if wait_until(lambda: holders() == [owner] and client_get(url, timeout=0.5)[0] == 200, timeout) is None:
        raise LabError(f"{owner} did not settle as the only VIP holder: {holders()}")
    peer = next(n.name for n in NODES if n.name != owner)
    # UNKNOWN: no halb on the node (the benchmark's other profiles), nothing to wait for.
    wait_until(lambda: peer_state(peer) in ("BACKUP", "UNKNOWN"), timeout, 0.2)


def hand_back(owner: str = "lb1") -> None:
    """With nopreempt the VIP stays where a drill left it: restart keepalived on the node that
    holds it (its priority-0 advert hands the VIP over at once), so the next drill starts on `owner`."""
    held = holders()
    if held and held != [owner]:
        nodes.ssh(node(held[0]), "systemctl restart keepalived", timeout=30)
        settle(owner)
        # The restarted node says BACKUP at once but takes part in VRRP only after its
        # `vrrp_startup_delay` (2 s): a drill that starts before measures the delay.
        time.sleep(3)
    settle(owner)


def peer_state(name: str) -> str:
    """A node's VRRP state as halb's notify hook recorded it (UNKNOWN without halb)."""
    return nodes.ssh(node(name), f"cat {PATHS['vrrp_state']} 2>/dev/null || echo UNKNOWN", timeout=10).stdout.strip()


def haproxy_worker(name: str) -> str:
    """The pid of haproxy's worker on a node: it changes with every reload."""
    return nodes.ssh(node(name), 'pgrep -P "$(cat /run/haproxy.pid)" | head -1', timeout=10).stdout.strip()


def invocation(name: str, unit: str) -> str:
    """systemd's id of the unit's current run: it changes when the unit is stopped and started."""
    return nodes.ssh(node(name), f"systemctl show -p InvocationID --value {unit}", timeout=10).stdout.strip()


# --------------------------------------------------------------------------- the drills


def switchover(sets: tuple[str, ...] = ()) -> Drill:
    """lb1 into maintenance (the VIP goes to lb2), then back (lb1 preempts again); `sets`: config
    the stack runs with throughout (as deployed before the drill)."""
    settle()
    with Watch(keepalives=True) as w:
        into = deploy(sets=["nodes[0].maintenance=true", *sets], progress=quiet)
        moved = wait_until(lambda: holders() == ["lb2"], 15, 0.05)
        during = status()
        lb1_haproxy = nodes.ssh(node("lb1"), "systemctl is-active haproxy", timeout=10).stdout.strip()
        back = deploy(sets=list(sets), progress=quiet)
        returned = wait_until(lambda: holders() == ["lb1"], 15, 0.05)
    return Drill(
        "switchover",
        w.seen,
        {
            "vip_on_lb2_after_deploy_s": moved,
            "vip_back_on_lb1_s": returned,
            "status_during": during["verdict"],
            "status_summary": during["summary"],
            "lb1_haproxy_during": lb1_haproxy,
        },
        into.ran() + back.ran(),
    )


def drain() -> Drill:
    """Drain w1 of the http service, then put it back: through the runtime API, no reload."""
    settle()
    worker = haproxy_worker("lb1")
    with Watch() as w:
        drained = deploy(sets=["haproxy.services[0].servers[0].state=drain"], progress=quiet)
        bodies = {client_get(f"http://{VIP}/")[1].strip() for _ in range(12)}
        weight = nodes.ssh(
            node("lb1"),
            "echo 'show servers state http' | socat - UNIX-CONNECT:/run/haproxy/admin.sock | awk '$4==\"w1\"{print $8}'",
            timeout=10,
        ).stdout.strip()
        back = deploy(progress=quiet)
        after: set[str] = set()

        def all_served() -> bool:
            after.add(client_get(f"http://{VIP}/")[1].strip())
            return len(after) >= 4

        w1_back_s = wait_until(all_served, 10, 0.01)
    return Drill(
        "drain",
        w.seen,
        {
            "served_while_drained": sorted(bodies),
            "w1_weight_while_drained": weight,
            "served_after": sorted(after),
            "w1_served_again_after_s": w1_back_s,
            "reloaded": haproxy_worker("lb1") != worker,
        },
        drained.ran() + back.ran(),
    )


def rotation(what: str, ssh_delay: float = 6.0) -> Drill:
    """Rotate a secret or the VRRP version while SSH to the MASTER is dropped for the first
    `ssh_delay` seconds of the deploy, then return to the stack file (the same delay again)."""
    settle()
    change: list[str] = {
        "vrrp-password": ["secret:keepalived.authPassword=Rot4ted1"],
        "stats-password": ["secret:haproxy.stats.password=rotated-stats-password-0001"],
        "vrrp-version": ["keepalived.version=3"],
    }[what]
    sets = [c for c in change if not c.startswith("secret:")]
    secret_sets = [c.removeprefix("secret:") for c in change if c.startswith("secret:")]
    backup_run = invocation("lb2", "keepalived")
    results: list[Result] = []
    started: dict[str, float] = {}
    with Watch() as w:
        for phase, (s, ss) in (("rotate", (sets, secret_sets)), ("back", ([], []))):
            t0 = time.monotonic()

            def note(line: str, t0: float = t0, phase: str = phase) -> None:
                if "halb-lb1-" in line and phase not in started:
                    started[phase] = round(time.monotonic() - t0, 2)  # the MASTER's first step finished

            with net.ssh_blocked_for(node("lb1"), ssh_delay):
                results.append(deploy(sets=s, secret_sets=ss, progress=note))
    return Drill(
        f"rotation-{what}",
        w.seen,
        {
            "master_first_step_done_s": started,
            "backup_left_vrrp": invocation("lb2", "keepalived") != backup_run,
        },
        results[0].ran() + results[1].ran(),
    )


def teardown() -> Drill:
    """`destroy`, then what is left on the nodes, then a deploy again (pre-flight included)."""
    settle()
    with Watch() as w:
        gone = destroy(progress=quiet)
        vip_answers = client_get(f"http://{VIP}/", timeout=1)[0] != 0
        left = {
            n: nodes.ssh(
                node(n), f"ls -d {LEFT_BY_HALB} 2>/dev/null; id keepalived_script 2>/dev/null", timeout=10
            ).stdout.split()
            for n in ("lb1", "lb2")
        }
        units = {
            n: nodes.ssh(node(n), "systemctl is-active haproxy keepalived", timeout=10).stdout.split()
            for n in ("lb1", "lb2")
        }
        after_destroy = holders()
        again = deploy(progress=quiet)
        settle()
    return Drill(
        "teardown",
        w.seen,
        {
            "holders_after_destroy": after_destroy,
            "vip_answers_after_destroy": vip_answers,
            "files_left": left,
            "units_after_destroy": units,
            "deleted": sorted(a.name for a in gone.actions if a.op == "delete"),
            "destroy_ops": sorted({a.op for a in gone.actions}),
        },
        again.ran(),
    )


def rebuild(name: str = "lb2") -> Drill:
    """Wipe `name` and boot it afresh from the lab image, bump its generation, deploy."""
    settle()
    index = 0 if name == "lb1" else 1
    with Watch() as w:
        nodes.rebuild(node(name), image.image_dir())
        blank = nodes.ssh(node(name), f"test -e {PATHS['haproxy_secrets']} && echo yes || echo no", timeout=10)
        result = deploy(sets=[f"nodes[{index}].generation=1"], progress=quiet)
        settle()
    services = nodes.ssh(node(name), "systemctl is-active haproxy keepalived", timeout=10).stdout.split()
    st = status()
    return Drill(
        f"rebuild-{name}",
        w.seen,
        {"was_blank": blank.stdout.strip() == "no", "services": services, "status": st["verdict"]},
        result.ran(),
    )


def rename() -> Drill:
    """Rename lb2 to lb3 in the stack (same host): the new name provisions it, and the old name's
    teardown, which runs at the end of the deploy, leaves the host alone. Then back."""
    settle()
    with Watch() as w:
        there = deploy(sets=["nodes[1].name=lb3"], progress=quiet)
        services = nodes.ssh(node("lb2"), "systemctl is-active haproxy keepalived", timeout=10).stdout.split()
        owner = nodes.ssh(node("lb2"), f"cat {PATHS['owner_dir']}/owner", timeout=10).stdout.strip()
        back = deploy(progress=quiet)
        settle()
    return Drill(
        "rename",
        w.seen,
        {"services_after_rename": services, "owner_after_rename": owner},
        there.ran() + back.ran(),
    )


def drift() -> Drill:
    """A hand edit on lb1, found by `halb status`, repaired by replacing the step that owns the file."""
    settle()
    nodes.ssh(node("lb1"), f"echo '# hand edit' >> {PATHS['haproxy_cfg']}", timeout=10)
    with Watch() as w:
        found = status()
        repaired = deploy(replace=["halb-lb1-haproxy"], progress=quiet)
        clean = status()
    return Drill(
        "drift",
        w.seen,
        {
            "verdict": found["verdict"],
            "exit_code": found["exit_code"],
            "drifted": {n["name"]: n["drift"] for n in found["nodes"]},
            "verdict_after_repair": clean["verdict"],
        },
        repaired.ran(),
    )


LIFECYCLE = (
    "switchover",
    "drain",
    "rotation-vrrp-password",
    "rotation-stats-password",
    "rotation-vrrp-version",
    "rebuild-lb2",
    "rename",
    "drift",
    "teardown",
)


def run(name: str) -> Drill:
    if name.startswith("rotation-"):
        return rotation(name.removeprefix("rotation-"))
    if name.startswith("rebuild-"):
        return rebuild(name.removeprefix("rebuild-"))
    drills = {"switchover": switchover, "drain": drain, "rename": rename, "drift": drift, "teardown": teardown}
    return drills[name]()


# --------------------------------------------------------------------------- vSphere (stack lab-vsphere)

VSPHERE_STACK = "lab-vsphere"


def vm_ids(stack: str = VSPHERE_STACK) -> dict[str, str]:
    """The VMs' ids in the stack's Pulumi state, by resource name (`halb-vm-lb1`)."""
    return {
        r["urn"].rsplit("::", 1)[-1]: r["id"]
        for r in engine(stack).resources()
        if r["type"] == "vsphere:index/virtualMachine:VirtualMachine"
    }


def left_by_halb(name: str) -> list[str]:
    """halb's files and units still on a node (nothing after a teardown)."""
    files = nodes.ssh(node(name), f"ls -d {LEFT_BY_HALB} 2>/dev/null", timeout=10).stdout.split()
    units = nodes.ssh(node(name), "systemctl is-active haproxy keepalived", timeout=10).stdout.split()
    return files + [
        f"{u} {state}" for u, state in zip(("haproxy", "keepalived"), units, strict=False) if state == "active"
    ]


def vm_replacement(stack: str = VSPHERE_STACK) -> tuple[Drill, Drill]:
    """A rolling replacement of the two VMs with `pulumi up --replace`, under the client load.

    lb2 (BACKUP) first: its stand-in node is wiped (the new clone's guest starts blank), then
    `--replace halb-vm-lb2`: lb2's steps and the anti-affinity rule go, the VM is deleted and
    cloned again, and lb2 is provisioned from scratch while lb1 keeps the VIP. Then lb1, after
    `maintenance` moved the VIP to lb2: wiped, replaced in maintenance, then returned to service."""
    settle()
    before = vm_ids(stack)
    with Watch() as w:
        nodes.rebuild(node("lb2"), image.image_dir())
        second = deploy(replace=["halb-vm-lb2"], progress=quiet, stack=stack)
        settle()
    middle = vm_ids(stack)
    lb2 = Drill(
        "vm-replace-lb2",
        w.seen,
        {"vm_id_before": before["halb-vm-lb2"], "vm_id_after": middle["halb-vm-lb2"], "deploy_s": second.seconds},
        second.ran(),
    )
    with Watch() as w:
        into = deploy(sets=["nodes[0].maintenance=true"], progress=quiet, stack=stack)
        moved = wait_until(lambda: holders() == ["lb2"], 15, 0.05)
        nodes.rebuild(node("lb1"), image.image_dir())
        first = deploy(sets=["nodes[0].maintenance=true"], replace=["halb-vm-lb1"], progress=quiet, stack=stack)
        back = deploy(progress=quiet, stack=stack)
        settle()
    lb1 = Drill(
        "vm-replace-lb1",
        w.seen,
        {
            "vm_id_before": middle["halb-vm-lb1"],
            "vm_id_after": vm_ids(stack)["halb-vm-lb1"],
            "vip_on_lb2_after_maintenance_s": moved,
            "deploy_s": round(into.seconds + first.seconds + back.seconds, 2),
        },
        first.ran(),
    )
    return lb2, lb1
