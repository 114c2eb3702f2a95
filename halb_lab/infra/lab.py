"""Bring the lab up and down, and report its state."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from halb.status.remote import Questions, probe_script
from halb.status.verdict import Verdict, assess, parse_probe
from halb_lab.infra import ca, image, net, nodes, router, vcenter, worker
from halb_lab.infra.topology import (
    CLIENT,
    HOST_ADDRESS,
    HOSTS,
    MONITOR,
    NODES,
    SPARE_NODES,
    SSH_KEY,
    STACK_HOME,
    STATE,
    SUBNET,
    VCENTER,
    VCENTER_USER,
    VIP,
    WORKERS,
    Host,
)

TOOLS = [
    "ip",
    "debootstrap",
    "systemd-nspawn",
    "ssh",
    "ssh-keygen",
    "openssl",
    "unshare",
    "curl",
    "nft",
    "nginx",
    "wrk",
]


def worker_pidfile(host: Host) -> Path:
    return STATE / "workers" / f"{host.name}.pid"


def _keys() -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    ca.ensure()  # the lab's CA and the lab-tls stack's certificate
    if not SSH_KEY.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "halb-lab", "-f", str(SSH_KEY)], check=True
        )
    cert, key = STATE / "tls.crt", STATE / "tls.key"
    if not cert.exists():
        worker.self_signed(cert, key, "halb-lab-worker", days=30)


def start_worker(host: Host) -> None:
    worker_pidfile(host).parent.mkdir(parents=True, exist_ok=True)
    log = (STATE / "workers" / f"{host.name}.log").open("ab")
    run = worker.command(host.name, STATE / "workers" / host.name, STATE / "tls.crt", STATE / "tls.key")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", host.netns, *run],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    worker_pidfile(host).write_text(str(proc.pid))


def stop_worker(host: Host) -> None:
    pidfile = worker_pidfile(host)
    try:
        pid = int(pidfile.read_text())
        os.killpg(pid, signal.SIGTERM)  # the worker's own session: only what we started
    except (OSError, ValueError):
        pass
    pidfile.unlink(missing_ok=True)


def is_up() -> bool:
    return (
        all(nodes.pid_of(n) for n in NODES)
        and all(net.netns_exists(h.netns) for h in HOSTS)
        and vcenter.pid() is not None
    )


def up(progress: Callable[[str], None] = lambda _: None) -> None:
    if is_up():
        progress("already up")
        return
    down()  # whatever an earlier crash left behind
    progress("building the base image (cached after the first time)")
    base = image.build(STATE.parent / "halb-lab-image.log")
    _keys()
    progress("creating namespaces and the lab bridge")
    net.create()
    for host in WORKERS:
        start_worker(host)
    progress(f"starting the simulated vCenter at {VCENTER}")
    vcenter.start()
    progress("booting lb1 and lb2")
    for node in NODES:
        nodes.boot(node, base)
    for node in NODES:
        nodes.wait_ssh(node)
    progress("up")


def boot_spares() -> None:
    """The second pair (lb3, lb4), for a second stack beside the first."""
    base = image.build(STATE.parent / "halb-lab-image.log")
    for node in SPARE_NODES:
        if nodes.pid_of(node) is None:
            nodes.boot(node, base)
    for node in SPARE_NODES:
        nodes.wait_ssh(node)


def prepare(stack: str) -> None:
    """What a stack needs of the lab beyond the pair: lab-bgp runs on lb1-lb3 behind the router."""
    if stack == "lab-bgp":
        boot_spares()
        router.up()


def remove_spares() -> None:
    for node in SPARE_NODES:
        nodes.remove(node)


def down() -> None:
    router.down()
    vcenter.stop()
    for host in WORKERS:
        stop_worker(host)
    for node in [*NODES, *SPARE_NODES]:
        nodes.remove(node)
    net.destroy()
    shutil.rmtree(STACK_HOME, ignore_errors=True)  # the stack's state describes nodes that are gone


def probe(node: Host) -> str | None:
    try:
        p = nodes.ssh(node, probe_script(Questions(VIP)), timeout=10)
    except subprocess.TimeoutExpired:
        return None
    return p.stdout if p.returncode == 0 else None


def status() -> tuple[bool, str]:
    lines = [f"lab subnet {SUBNET}, this machine {HOST_ADDRESS}, VIP {VIP}"]
    states = []
    for node in NODES:
        running = nodes.pid_of(node) is not None
        state = parse_probe(node.name, probe(node) if running else None)
        states.append(state)
        lines.append(
            f"  {node.name:<7}{node.address:<14}{'running' if running else 'stopped':<9}VRRP {state.vrrp_state:<8}"
            f"VIP {'yes' if state.holds_vip else 'no ':<4}haproxy {state.haproxy:<9}keepalived {state.keepalived}"
        )
    for host in [*WORKERS, CLIENT, MONITOR]:
        lines.append(f"  {host.name:<7}{host.address:<14}{'present' if net.netns_exists(host.netns) else 'absent'}")
    lines.append(f"  vCenter {VCENTER:<15}{'running' if vcenter.pid() else 'stopped'} (simulated; stack lab-vsphere)")
    verdict: Verdict = assess(states)
    lines.append(verdict.summary)
    return verdict.ok, "\n".join(lines)


def describe(stack: str = "lab") -> str:
    flag = "" if stack == "lab" else f" --stack {stack}"
    return (
        f"halb lab: lb1 {NODES[0].address}, lb2 {NODES[1].address}, VIP {VIP}, "
        f"workers {WORKERS[0].address}-{WORKERS[-1].address.rsplit('.', 1)[1]}, client {CLIENT.address}\n"
        f"  from this machine: curl http://{VIP}/   |   ssh -i {SSH_KEY} root@{NODES[0].address}\n"
        f"  stats: http://{NODES[0].address}:8080/stats, user admin, password: python -m halb_lab password\n"
        f"  simulated vCenter: https://{VCENTER}/sdk, user {VCENTER_USER}, password: python -m halb_lab password --vcenter\n"
        f"  state: python -m halb_lab status   |   undeploy: python -m halb_lab{flag} destroy   |   "
        "remove: python -m halb_lab down"
    )
