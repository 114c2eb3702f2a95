"""Unplanned faults on the lab, each watched by a client and an auditor (halb_lab.watch).

Every drill injects one fault on the MASTER (lb1) of a settled pair, under the same client load
as the day-two drills, waits until the pair has healed, and returns what it saw. The test suite
asserts on the outcome; `make bench` reports the same drills for every profile.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from halb_lab.automation.stack import deploy
from halb_lab.infra import image, net, nodes
from halb_lab.infra.topology import NODES, VIP, WORKERS
from halb_lab.scenarios.drills import Drill, hand_back, peer_state, quiet, settle, status
from halb_lab.scenarios.probes import LabError, client_get, holders, node, service, wait_until
from halb_lab.scenarios.watch import Watch


def _drill(name: str, w: Watch, **facts: Any) -> Drill:
    return Drill(name, w.seen, facts)


REDUNDANT_WITHIN_S = 5.0  # after keepalived died on the MASTER, the pair must survive a second fault by then


def keepalived_crash(halb: bool = True) -> Drill:
    """keepalived's main process SIGKILLed on the MASTER (a crash of the daemon): its VRRP child
    leaves gracefully, or dies with it; either way the peer takes over (vrrp-resign, the unit's
    ExecStopPost, sends the priority-0 advert the child may not have), systemd brings keepalived
    back, and the pair survives a second fault REDUNDANT_WITHIN_S after the first.

    Not `systemctl kill`: in the lab's containers systemd cannot kill a unit's cgroup at once
    ("Failed to kill control group: Input/output error") and signals its processes one by one."""
    return _keepalived_killed("keepalived-crash", 'kill -KILL "$(systemctl show -p MainPID --value keepalived)"', halb)


def keepalived_group_kill(halb: bool = True) -> Drill:
    """Every keepalived process on the MASTER SIGKILLed at once (an OOM kill of the unit,
    `systemctl kill --signal=SIGKILL` on a VM): nothing inside keepalived hands the VIP over.
    vrrp-resign (the unit's ExecStopPost) removes the VIP and sends the peer the priority-0
    advert, so the peer takes over after its skew time."""
    return _keepalived_killed("keepalived-group-kill", "pkill -KILL -x keepalived", halb)


def _keepalived_killed(name: str, kill: str, halb: bool) -> Drill:
    """keepalived killed on lb1 by `kill`; redundancy is proven, not inferred: REDUNDANT_WITHIN_S
    after the kill, haproxy is killed on the new holder (lb2), and the VIP must come back to lb1
    (`second_fault_*`). `halb=False` for the benchmark's other profiles (no halb status)."""
    settle()
    with Watch(keepalives=True) as w:
        time.sleep(random.uniform(0, 1))  # a random phase of the advert cycle
        t0 = time.monotonic()
        nodes.ssh(node("lb1"), kill, timeout=10)
        moved = wait_until(lambda: holders() == ["lb2"], 5, 0.02)
        back = wait_until(lambda: service("lb1", "keepalived") == "active", 10, 0.1)
        restarted = None if back is None else round(time.monotonic() - t0, 2)
        time.sleep(max(0.0, t0 + REDUNDANT_WITHIN_S - time.monotonic()))
    facts: dict[str, Any] = {"vip_on_lb2_s": moved, "restarted_after_s": restarted}
    if not halb:  # the seed's keepalived stays dead: the bench's restore() brings it back
        return _drill(name, w, **facts)
    second = _second_fault_on_lb2() if holders() == ["lb2"] else None
    settle(timeout=40)
    # lb2 holds the VIP again only after `healthCheck.rise` of good probes: the next fault must not
    # find it in FAULT.
    wait_until(lambda: peer_state("lb2") == "BACKUP", 30, 0.2)
    facts["status"] = status()["verdict"]
    if second is not None:
        facts |= {"second_fault_vip_on_lb1_s": second[0], "second_fault_longest_outage_s": second[1]}
    return _drill(name, w, **facts)


def _second_fault_on_lb2() -> tuple[float | None, float]:
    """haproxy killed on lb2 while it holds the VIP: (seconds until lb1 holds it, the longest
    outage clients saw)."""
    with Watch() as w:
        nodes.ssh(node("lb2"), "systemctl kill --signal=SIGKILL haproxy", timeout=10)
        moved = wait_until(lambda: holders() == ["lb1"], 5, 0.02)
        time.sleep(0.5)
    return moved, round(w.seen.longest_outage, 3)


PARTITIONS = {"both": ("lb1", "lb2"), "to-lb2": ("lb2",), "to-lb1": ("lb1",)}  # who drops arriving VRRP


def vrrp_partition(direction: str = "both", seconds: float = 8, halb: bool = True) -> Drill:
    """VRRP (IP protocol 112) dropped between the nodes while both stay on the LAN, as a host
    firewall change or a switch ACL would: `both` ways, or one way (`to-lb2`: lb1's adverts never
    reach lb2; `to-lb1`: lb2's never reach lb1). halb-vrrp-guard keeps lb2 in FAULT while lb1 still
    answers for the VIP, so there is one holder throughout; `halb status` names the partition while
    it lasts, and the pair is OK once it heals. `halb=False` for the benchmark's other profiles
    (no halb status, no state file: the split brain is what they show)."""
    settle()
    if halb:
        wait_until(lambda: peer_state("lb2") == "BACKUP", 30, 0.2)
    blocked = [node(n) for n in PARTITIONS[direction]]
    facts: dict[str, Any] = {}
    with Watch(keepalives=True) as w:
        time.sleep(random.uniform(0, 1))  # a random phase of the advert cycle
        net.block_vrrp(*blocked)
        try:
            time.sleep(seconds)
            if halb:
                during = status()
                facts |= {
                    "status_during": during["verdict"],
                    "summary_during": during["summary"],
                    "exit_during": during["exit_code"],
                    "lb2_during": peer_state("lb2"),
                }
        finally:
            net.unblock_vrrp(*blocked)
        if halb:
            facts["lb2_backup_again_s"] = wait_until(lambda: peer_state("lb2") == "BACKUP", 15, 0.1)
        else:
            facts["one_holder_again_s"] = wait_until(lambda: holders() == ["lb1"], 15, 0.1)
        time.sleep(1)
    if halb:
        facts["status_after"] = status()["verdict"]
    return _drill(f"vrrp-partition-{direction}", w, **facts)


def stun(seconds: float = 1.0, halb: bool = True) -> Drill:
    """The MASTER stunned, as a vSphere snapshot or vMotion stuns a VM: every process of lb1 frozen
    (the cgroup freezer) and its link dropped at the same moment, for `seconds`, then both restored.
    lb2 takes the VIP once lb1's adverts have been missing for its master-down interval; lb1 resumes
    believing it is still MASTER. Clients may see one move; after the resume there may be at most
    one sample with two holders and no second outage (a client left on the MAC of a node that no
    longer holds the VIP is keepalived issue 166). `resumed_s`: when, from the watch's start."""
    settle()
    if halb:
        wait_until(lambda: peer_state("lb2") == "BACKUP", 30, 0.2)
    lb1 = node("lb1")
    with nodes.freezer(lb1) as freeze, Watch(keepalives=True) as w:
        time.sleep(random.uniform(0, 1))  # a random phase of the advert cycle
        freeze(True)
        net.cut(lb1)
        try:
            moved = wait_until(lambda: "lb2" in holders(), seconds, 0.02)
            time.sleep(max(0.0, seconds - (moved or seconds)))
        finally:
            net.plug(lb1)
            freeze(False)
        resumed = time.monotonic()
        one = wait_until(lambda: len(holders()) == 1, 10, 0.02)
        time.sleep(4)  # long enough to see a second outage (a stale ARP entry) or a late move
    after = [(t, hs) for t, hs in w.data.get("samples", []) if t >= resumed]
    two = sum(1 for _, hs in after if len(hs) > 1)
    final = after[-1][1] if after else []
    hand_back()  # with nopreempt the VIP stays on lb2
    return _drill(
        f"stun-{seconds:g}s",
        w,
        vip_on_lb2_s=moved,
        one_holder_after_resume_s=one,
        two_holder_samples_after_resume=two,
        holder_at_end=list(final),
    )


def haproxy_crash() -> Drill:
    """haproxy SIGKILLed on the MASTER and restarted by systemd, as packaged."""
    settle()
    with Watch() as w:
        nodes.ssh(node("lb1"), "systemctl kill --signal=SIGKILL haproxy", timeout=10)
        moved = wait_until(lambda: holders() == ["lb2"], 5, 0.02)
        returned = wait_until(lambda: holders() == ["lb1"], 30, 0.1)
    return _drill("haproxy-crash", w, vip_on_lb2_s=moved, vip_back_s=returned, haproxy=service("lb1", "haproxy"))


def haproxy_crash_loop(seconds: float = 15) -> Drill:
    """haproxy killed on the MASTER every time it starts, for a while: the node must end in FAULT
    and stay there (no flapping); `halb status` says why. Then an operator repairs it."""
    settle()
    killer = (
        f"end=$(($(date +%s) + {int(seconds)})); "
        'while [ "$(date +%s)" -lt "$end" ]; do pkill -KILL -x haproxy; sleep 0.2; done'
    )
    with Watch() as w:
        nodes.ssh(node("lb1"), killer, timeout=seconds + 20)
        time.sleep(3)
        state = peer_state("lb1")
        st = status()
    why = next((n["why"] for n in st["nodes"] if n["name"] == "lb1"), "")
    unit = service("lb1", "haproxy")
    nodes.ssh(node("lb1"), "systemctl reset-failed haproxy; systemctl start haproxy", timeout=20)
    settle(timeout=40)
    return _drill("haproxy-crash-loop", w, lb1_state=state, haproxy=unit, status=st["verdict"], why=why)


def haproxy_hang(seconds: float = 12) -> Drill:
    """Every haproxy process on the MASTER SIGSTOPped (the kernel still accepts connections, nothing
    answers), then resumed. Injected at a random phase of the advert cycle."""
    settle()
    with Watch() as w:
        time.sleep(random.uniform(0, 1))
        nodes.ssh(node("lb1"), "kill -STOP $(pidof haproxy)", timeout=10)
        moved = wait_until(lambda: holders() == ["lb2"], 5, 0.02)
        time.sleep(max(0.0, seconds - (moved or 0)))
        nodes.ssh(node("lb1"), "kill -CONT $(pidof haproxy)", timeout=10)
        returned = wait_until(lambda: holders() == ["lb1"], 30, 0.1)
    return _drill("haproxy-hang", w, vip_on_lb2_s=moved, vip_back_s=returned)


def link_flap(seconds: float = 12) -> Drill:
    """The MASTER's switch port cut for a while, then plugged back. While cut, lb1 hears nothing: left
    alone it keeps the VIP on an interface nobody reaches (both hold it; only lb2 is reachable), and
    at the plug both hold it until an advert crosses. halb-vrrp-guard lets it go instead."""
    settle()
    lb1 = node("lb1")
    with Watch(keepalives=True) as w:
        time.sleep(random.uniform(0, 1))  # a random phase of the advert cycle
        net.cut(lb1)
        try:
            moved = wait_until(lambda: client_get(f"http://{VIP}/", timeout=0.25)[0] == 200, 10, 0.02)
            time.sleep(max(0.0, seconds - (moved or 0)))
        finally:
            net.plug(lb1)
        plugged = time.monotonic()
        returned = wait_until(lambda: holders() == ["lb1"], 15, 0.05)
        time.sleep(1)
    # At the failback, apart from the moment both are MASTER (milliseconds), one holder.
    two = sum(1 for t, hs in w.data.get("samples", []) if t >= plugged and len(hs) > 1)
    return _drill("link-flap", w, answers_again_s=moved, one_holder_again_s=returned, two_holder_samples_after_plug=two)


FAST_ADVERTS = ["keepalived.version=3", "keepalived.advertInt=0.5"]
FAST_PROFILE = ["keepalived.profile=fast"]  # VRRPv3, 0.25 s adverts


@contextmanager
def fast_adverts(sets: list[str] = FAST_ADVERTS) -> Iterator[None]:
    """halb's pair on faster adverts for a while (VRRPv3 with 0.5 s adverts, or `sets`, e.g.
    FAST_PROFILE), deployed and undone as an operator would (`pulumi up` with the change, then
    without it)."""
    try:
        deploy(sets=sets, progress=quiet)
        settle(timeout=40)
        # lb2 rejoined VRRP and waits `startupDelay` before it takes part: a fault injected before
        # it is BACKUP would measure the delay, not the failover (seen once: 2.34 s).
        if wait_until(lambda: peer_state("lb2") == "BACKUP", 20, 0.2) is None:
            raise LabError(f"lb2 is not BACKUP after the VRRPv3 deploy: {peer_state('lb2')}")
        time.sleep(3)  # keepalived may say BACKUP (init) before its 2 s startup delay ends
        yield
    finally:
        deploy(progress=quiet)
        settle(timeout=40)


def power_cycle() -> Drill:
    """The MASTER powered off, then booted again."""
    settle()
    lb1 = node("lb1")
    with Watch() as w:
        nodes.poweroff(lb1)
        moved = wait_until(lambda: holders() == ["lb2"], 10, 0.05)
        nodes.boot(lb1, image.image_dir())
        nodes.wait_ssh(lb1)
        returned = wait_until(lambda: holders() == ["lb1"], 60, 0.1)
    return _drill("power-cycle", w, vip_on_lb2_s=moved, vip_back_s=returned)


def cold_start() -> Drill:
    """Both nodes powered off, then started together: the VIP answers within seconds of boot."""
    settle()
    for n in NODES:
        nodes.poweroff(n)
    with Watch(settle=0.1) as w:
        t0 = time.monotonic()
        for n in NODES:
            nodes.boot(n, image.image_dir())
        answered = wait_until(lambda: client_get(f"http://{VIP}/", timeout=0.25)[0] == 200, 60, 0.05)
        # With keepalived.handoff a booted node serves the VIP before keepalived has elected a
        # holder (clients' ARP entries still name a node, and every node takes the VIP's packets):
        # the holder comes later, after keepalived's startup delay.
        held = wait_until(lambda: len(holders()) == 1, 60, 0.05)
        time.sleep(3)
        after = holders()
    for n in NODES:
        nodes.wait_ssh(n)
    settle(timeout=60)
    return _drill(
        "cold-start",
        w,
        vip_answers_after_boot_s=answered,
        vip_held_after_boot_s=None if held is None or answered is None else round(answered + held, 3),
        holders_after=after,
        booted_at=round(t0, 3),
    )


def _worker_pid(name: str) -> int:
    from halb_lab.infra.lab import worker_pidfile

    return int(worker_pidfile(next(w for w in WORKERS if w.name == name)).read_text())


def worker_killed(name: str = "w1", seconds: float = 4) -> Drill:
    """A backend worker SIGKILLed under load (connections refused): haproxy retries the refused
    connection on another server (redispatch) and marks the server down at once (observe layer4)."""
    from halb_lab.infra import lab

    settle()
    with Watch() as w:
        os.kill(_worker_pid(name), signal.SIGKILL)  # the lab's own worker, by its id
        time.sleep(seconds)
    lab.start_worker(next(h for h in WORKERS if h.name == name))
    wait_until(lambda: name in {client_get(f"http://{VIP}/")[1].strip() for _ in range(8)}, 20, 0.2)
    return _drill("worker-killed", w)


def worker_hung(name: str = "w1", seconds: float = 6) -> Drill:
    """A backend worker SIGSTOPped under load: the kernel still accepts connections and nothing
    answers, so in TCP mode the requests already sent to it fail until its checks fail."""
    settle()
    pid = _worker_pid(name)
    with Watch() as w:
        t0 = time.monotonic()
        os.kill(pid, signal.SIGSTOP)  # the lab's own worker, by its id
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_until(lambda: name in {client_get(f"http://{VIP}/")[1].strip() for _ in range(8)}, 20, 0.2)
    failed = [t for t, ok in w.data.get("requests", []) if not ok and t >= t0]
    return _drill("worker-hung", w, last_failure_after_s=round(max(failed) - t0, 2) if failed else 0.0)


FAULTS = {
    "keepalived-crash": keepalived_crash,
    "keepalived-group-kill": keepalived_group_kill,
    "vrrp-partition": vrrp_partition,
    "stun": stun,
    "haproxy-crash": haproxy_crash,
    "haproxy-crash-loop": haproxy_crash_loop,
    "haproxy-hang": haproxy_hang,
    "link-flap": link_flap,
    "power-cycle": power_cycle,
    "cold-start": cold_start,
    "worker-killed": worker_killed,
    "worker-hung": worker_hung,
}
