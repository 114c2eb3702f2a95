"""`python -m halb verify`: the deploy's last step, run where `pulumi up` runs.

It passes when exactly one node holds the VIP and every service answers through the VIP, and
retries for a while first (a node that rejoins VRRP waits `startupDelay` before it takes part).
It reads a spec of addresses and ports (nothing secret); an inline SSH key comes on stdin.
"""

from __future__ import annotations

import json
import socket
import ssl
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from halb.status.remote import Questions, Reach, SshTarget, probe, ssh_run
from halb.status.verdict import NodeState, Verdict, assess, parse_probe


@dataclass(frozen=True)
class Spec:
    vip: str
    nodes: dict[str, str]  # name -> address
    services: list[tuple[str, int, str]]  # name, port, mode
    user: str
    port: int
    key_path: str | None
    maintenance: list[str]  # nodes that must not hold the VIP
    host_keys: dict[str, str]  # name -> pinned SSH host key (nodes[].hostKey), where set
    others: list[str] = field(default_factory=list)  # the other VIPs (`halb:vips`): one holder each too
    peers: list[str] = field(default_factory=list)  # BGP mode: the routers every node must have a session with

    def to_json(self) -> str:
        """Without `others` and `peers` when there are none: the verify command of a one-VIP VRRP
        stack carries no key for a feature it does not use (a halb upgrade shows no change in its preview)."""
        d = {k: v for k, v in vars(self).items() if k not in ("others", "peers") or v}
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Spec:
        d = json.loads(text)
        services = [(str(n), int(p), str(m)) for n, p, m in d["services"]]
        return cls(
            d["vip"],
            d["nodes"],
            services,
            d["user"],
            d["port"],
            d["key_path"],
            d.get("maintenance", []),
            d.get("host_keys", {}),
            d.get("others", []),
            d.get("peers", []),
        )


def answers(vip: str, port: int, mode: str, timeout: float = 2.0) -> str:
    """'' when the service answers through the VIP, else why not. `mode` is `tcp` or `http`, with
    `+tls` when the service ends TLS: then a TLS handshake comes first (not verified: the machine
    running Pulumi need not trust the service's CA; the nodes' certificates are checked apart)."""
    kind, _, tls = mode.partition("+")
    try:
        with socket.create_connection((vip, port), timeout=timeout) as raw:
            s = raw
            if tls:
                context = ssl.create_default_context()
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                s = context.wrap_socket(raw)
            if kind == "http":
                s.sendall(f"GET / HTTP/1.0\r\nHost: {vip}\r\n\r\n".encode())
                if not s.recv(16).startswith(b"HTTP/"):
                    return "no HTTP answer"
        return ""
    except OSError as e:
        return e.strerror or str(e)


# BGP mode: on each node, the VIPs on lo and FRR's view of its sessions (one line of JSON).
BGP_PROBE = (
    "ip -o addr show dev lo; sudo=; [ \"$(id -u)\" = 0 ] || sudo='sudo -n'; "
    "$sudo vtysh -c 'show bgp neighbors json' | tr -d '\\n'; echo"
)


def bgp_node(name: str, output: str, spec: Spec) -> str:
    """'' when a node serves as BGP mode wants (every VIP on lo unless in maintenance, every peer's
    session Established), else what is wrong."""
    lines = output.strip().splitlines()
    try:
        neighbors = json.loads(lines[-1]) if lines else {}
    except ValueError:
        return f"{name}: FRR did not answer (`vtysh -c 'show bgp neighbors json'`)"
    down = [p for p in spec.peers if neighbors.get(p, {}).get("bgpState") != "Established"]
    if down:
        return f"{name}: no BGP session with {', '.join(down)}"
    held = {w.split("/")[0] for line in lines[:-1] for w in line.split()[3:4]}
    missing = [v for v in [spec.vip, *spec.others] if v not in held]
    if name not in spec.maintenance and missing:
        return f"{name}: {', '.join(missing)} not on lo (haproxy not answering its watcher?)"
    return ""


def check_bgp(spec: Spec, key_path: str | None) -> tuple[bool, str]:
    """BGP mode: every node serves (VIPs on lo, sessions up) and every service answers through the VIP."""
    target = SshTarget(spec.user, spec.port, key_path)

    def ask(node: tuple[str, str]) -> str:
        name, address = node
        rc, out, err = ssh_run(Reach(target, address, spec.host_keys.get(name), strict_host_keys=False), BGP_PROBE)
        return bgp_node(name, out, spec) if rc == 0 else f"{name}: unreachable over SSH ({err.strip()[-120:]})"

    with ThreadPoolExecutor(max_workers=len(spec.nodes)) as pool:
        wrong = [w for w in pool.map(ask, spec.nodes.items()) if w]
    if wrong:
        return False, "; ".join(wrong)
    failing = [f"{n}:{p} ({why})" for n, p, m in spec.services if (why := answers(spec.vip, p, m))]
    if failing:
        return False, f"every node announces the VIP, but services do not answer through it: {', '.join(failing)}"
    serving = len(spec.nodes) - len(spec.maintenance)
    return (
        True,
        f"{serving} node(s) announce the VIP {spec.vip} to {', '.join(spec.peers)}; {len(spec.services)} service(s) answer through it",
    )


def check(spec: Spec, key_path: str | None) -> tuple[bool, str]:
    if spec.peers:
        return check_bgp(spec, key_path)
    target = SshTarget(spec.user, spec.port, key_path)

    def ask(node: tuple[str, str]) -> NodeState:
        name, address = node
        output, error = probe(
            Reach(target, address, spec.host_keys.get(name), strict_host_keys=False), Questions(spec.vip, spec.others)
        )
        return parse_probe(name, output, error)

    with ThreadPoolExecutor(max_workers=len(spec.nodes)) as pool:  # both nodes at once
        states: list[NodeState] = list(pool.map(ask, spec.nodes.items()))
    verdict: Verdict = assess(states)
    holders = [s.name for s in states if s.holds_vip]
    if len(holders) != 1 or (spec.others and not verdict.ok):
        return False, verdict.summary
    resting = [s.name for s in states if s.name in spec.maintenance and any(s.others.values())]
    if resting:
        return False, f"{resting[0]} is in maintenance but still holds one of {', '.join(spec.others)}"
    if holders[0] in spec.maintenance:
        peers = [n for n in spec.nodes if n != holders[0]]
        return False, f"{holders[0]} is in maintenance but still holds the VIP (is {', '.join(peers)} up and in VRRP?)"
    failing = [f"{n}:{p} ({why})" for n, p, m in spec.services if (why := answers(spec.vip, p, m))]
    if failing:
        return False, f"{holders[0]} holds the VIP but services do not answer through it: {', '.join(failing)}"
    return True, f"{holders[0]} alone holds the VIP {spec.vip}; {len(spec.services)} service(s) answer through it"


def run(spec: Spec, key_text: str, timeout: float) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="halb-verify-") as tmp:
        key_path = spec.key_path
        if key_text.strip():
            key_path = str(Path(tmp) / "key")
            Path(key_path).touch(mode=0o600)
            Path(key_path).write_text(key_text)
        while True:
            ok, message = check(spec, key_path)
            if ok or time.monotonic() > deadline:
                return ok, message
            time.sleep(1)
