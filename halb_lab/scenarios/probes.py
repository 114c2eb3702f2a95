"""Looking at and poking the running lab, for the tests and the benchmark."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from halb_lab.infra import nodes
from halb_lab.infra.topology import CLIENT, NODES, SPARE_NODES, VIP, Host


class LabError(Exception):
    """The lab did not reach the state a drill needs (a pair that did not settle, a node that did not
    come back): the drill cannot run, which is not the same as a drill's finding."""


def node(name: str) -> Host:
    return next(n for n in [*NODES, *SPARE_NODES] if n.name == name)


def holders(vip: str = VIP) -> list[str]:
    """The nodes whose interface carries `vip` (IPv4, or IPv6 as `ip` prints it) right now."""
    out = []
    for n in NODES:
        p = subprocess.run(["ip", "-n", n.netns, "-o", "addr", "show"], capture_output=True, text=True)
        if f" {vip}/" in p.stdout:
            out.append(n.name)
    return out


def in_netns(host: Host, *argv: str) -> list[str]:
    """`argv` run in a lab host's network namespace (a worker's or the client's: they run the
    machine's own programs; the nodes are containers, reached over SSH)."""
    return ["ip", "netns", "exec", host.netns, *argv]


def in_client(*argv: str) -> list[str]:
    """`argv` run in the client's namespace."""
    return in_netns(CLIENT, *argv)


def client_get(url: str, user: str | None = None, password: str | None = None, timeout: float = 2) -> tuple[int, str]:
    """(HTTP status or 0 on failure, body) of a request made from the client's namespace."""
    cmd = in_client("curl", "-sk", "-o", "-", "-w", "\n%{http_code}", "--max-time", str(timeout))
    if user is not None:
        cmd += ["-u", f"{user}:{password}"]
    p = subprocess.run([*cmd, url], capture_output=True, text=True)
    body, _, code = p.stdout.rpartition("\n")
    return (int(code) if code.isdigit() else 0), body


def service(name: str, unit: str) -> str:
    return nodes.ssh(node(name), f"systemctl is-active {unit}", timeout=10).stdout.strip()


def transitions(name: str) -> int:
    """How many VRRP state changes the node's notify hook has logged since boot."""
    p = nodes.ssh(node(name), "journalctl -b -t halb --no-pager -q | grep -c 'is now' || true", timeout=10)
    return int(p.stdout.strip() or 0)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> float | None:
    """Seconds until predicate() was true, or None after timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    return None


def vip_served_by(name: str) -> bool:
    return holders() == [name] and client_get(f"http://{VIP}/", timeout=0.5)[0] == 200
