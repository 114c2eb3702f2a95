"""Asking the nodes over SSH: the probe script each node runs, and `collect`, which turns the
answers into NodeStates and a verdict."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from halb.commands import HELD
from halb.config.tls import read_pem
from halb.render import PATHS, certificate_files
from halb.status.verdict import UNITS, NodeState, Verdict, assess, drift, parse_probe

if TYPE_CHECKING:
    from halb.config import HalbConfig
    from halb.config.nodes import Node
    from halb.render import Secrets


@dataclass(frozen=True)
class SshTarget:
    user: str
    port: int
    key_path: str | None


@dataclass(frozen=True)
class Reach:
    """How to reach one node: the stack's SSH settings, its address, and its host key (`nodes[].hostKey`,
    always checked when set; otherwise `strict_host_keys` says whether known_hosts must know it)."""

    target: SshTarget
    address: str
    host_key: str | None = None
    strict_host_keys: bool = True


@dataclass(frozen=True)
class Questions:
    """What the probe asks a node: who holds the primary VIP and the stack's `others`, the hashes of
    the managed `files`, and each certificate file's expiry and fingerprint (`certs`, never a key)."""

    vip: str
    others: Sequence[str] = ()
    files: Sequence[str] = ()
    certs: Sequence[str] = ()


def ssh_command(
    target: SshTarget, address: str, strict_host_keys: bool = True, known_hosts: str | None = None
) -> list[str]:
    """ssh with the stack's user, port and key; the user goes after -l and the command after --.
    `known_hosts`: a file that pins the node's host key (`nodes[].hostKey`); it wins over the rest."""
    ssh = ["ssh", "-p", str(target.port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
    if target.key_path:
        ssh += ["-i", os.path.expanduser(target.key_path)]
    if known_hosts is not None:
        ssh += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}"]
        ssh += ["-o", "GlobalKnownHostsFile=/dev/null"]
    elif not strict_host_keys:
        ssh += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
    return [*ssh, "-l", target.user, address, "--"]


def known_hosts_line(address: str, port: int, host_key: str) -> str:
    """The known_hosts entry that pins `host_key` (`type base64 [comment]`) for the address."""
    where = address if port == 22 else f"[{address}]:{port}"
    return f"{where} {' '.join(host_key.split()[:2])}\n"


def ssh_run(node: Reach, command: str, stdin: str = "", timeout: float = 20) -> tuple[int | None, str, str]:
    """Run `command` on a node: (exit code, stdout, stderr), exit code None when ssh got no answer
    in `timeout`."""
    with tempfile.TemporaryDirectory(prefix="halb-ssh-") as tmp:
        known_hosts = None
        if node.host_key:
            known_hosts = f"{tmp}/known_hosts"
            Path(known_hosts).write_text(known_hosts_line(node.address, node.target.port, node.host_key))
        cmd = [*ssh_command(node.target, node.address, node.strict_host_keys, known_hosts), command]
        try:
            p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, "", f"ssh: no answer within {timeout:g} s"
    return p.returncode, p.stdout, p.stderr


def probe_script(q: Questions) -> str:
    """Run on a node over SSH; prints `key value` lines that parse_probe reads. A certificate's
    fingerprint is the first certificate's in its file: the server's."""
    vip, files, others, certs = q.vip, q.files, q.others, q.certs
    hashes = " ".join(files)
    x509 = "openssl x509 -noout -enddate -fingerprint -sha256 -in"
    writer = PATHS["metrics_writer"]
    return (
        f'echo "primary {vip}"; '
        # halb-metrics computes what Prometheus reads; run once here (--once: printed, not written),
        # it gives the same facts, computed the same way, at this moment, and the verdict reads the
        # VIPs and VRRP states from them, so `halb status` and the alerts never disagree
        + f"[ -x {writer} ] && {writer} --once 2>/dev/null | grep -v '^#' | sed 's/^/metric /'; "
        + f'echo "state $(cat {PATHS["vrrp_state"]} 2>/dev/null || echo UNKNOWN)"; '
        f"ip -o -4 addr show | grep -qF ' {vip}/' && echo 'vip yes' || echo 'vip no'; "
        + "".join(f"ip -o addr show | grep -qF ' {o}/' && echo 'vip.{o} yes' || echo 'vip.{o} no'; " for o in others)
        + "".join(
            f'echo "active.{u} $(systemctl is-active {u})"; echo "enabled.{u} $(systemctl is-enabled {u} 2>/dev/null)"; '
            for u in UNITS
        )
        + f"[ -e {HELD} ] && echo 'held yes' || echo 'held no'; "
        + f"sed 's/^/partition /' {PATHS['vrrp_partition']} 2>/dev/null; "
        + f"sed 's/^/foreign /' {PATHS['vrrp_foreign']} 2>/dev/null; "
        + f'echo "down $(cat {PATHS["haproxy_down"]} 2>/dev/null)"; echo "health $(cat {PATHS["haproxy_health"]} 2>/dev/null)"; '
        + 'echo "restarts $(systemctl show -p NRestarts --value haproxy)"; '
        + 'echo "result $(systemctl show -p Result --value haproxy)"; '
        + (
            f"{{ sudo -n sha256sum {hashes} 2>/dev/null || sha256sum {hashes} 2>/dev/null; }} | sed 's/^/sha256 /'; "
            if files
            else ""
        )
        + "".join(
            f'echo "cert {c} $({{ sudo -n {x509} {c} 2>/dev/null || {x509} {c} 2>/dev/null; }} | tr "\\n" " ")"; '
            for c in certs
        )
        + "true"
    )


def probe(node: Reach, questions: Questions) -> tuple[str | None, str]:
    """The probe's output, or None and ssh's reason."""
    code, out, err = ssh_run(node, probe_script(questions))
    if code == 0:
        return out, ""
    return None, err if code is None else (err.strip().splitlines() or [f"ssh exited {code}"])[-1]


def expected_hashes(cfg: HalbConfig, node: str, secrets: Secrets | None) -> dict[str, str]:
    """What halb renders for a node, by path; secret files only when the secrets are known
    (certificates are compared by fingerprint instead: `stack_fingerprints`)."""
    from halb.render import node_files, secret_files

    files = node_files(cfg, node) + (secret_files(cfg, node, secrets) if secrets is not None else [])
    return {f.path: f.sha256 for f in files if f.step != "tls"}


HOST_KEY_CHANGED = ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED")


def host_key_changed(cfg: HalbConfig, node: str, configured: bool) -> str:
    """Why a node whose key halb pinned refused the connection, and how to accept a rebuilt node."""
    i = next(i for i, n in enumerate(cfg.nodes) if n.name == node)
    source = f"halb:nodes[{i}].hostKey" if configured else "the key recorded at its first deploy (output host_keys)"
    return (
        f"its SSH host key is not the one pinned ({source}): a rebuilt node, or another machine at its address. "
        f"If {node} was rebuilt on purpose, accept its new key: raise halb:nodes[{i}].generation and pulumi up "
        f"(its steps run again and record the new key), or set halb:nodes[{i}].hostKey to it"
    )


MOVING = ("OUTAGE", "SPLIT BRAIN")  # what a VIP moving between two nodes' answers can look like
SETTLE_S = 1.5  # a move (preemption, switchover) is over in less: then the nodes are asked again


def collect(
    cfg: HalbConfig,
    strict_host_keys: bool = True,
    secrets: Secrets | None = None,
    recorded: Mapping[str, str] | None = None,
) -> tuple[list[NodeState], Verdict]:
    """Each node's state over SSH, all nodes asked at once. A node's host key is checked:
    `nodes[].hostKey`, else the key the deploy `recorded` on first use (the stack output
    host_keys), else known_hosts (or none with `strict_host_keys` off).

    The nodes answer a few hundred milliseconds apart, so a VIP that moves meanwhile (a preferred
    node taking it back) can look like no holder or two. Such a verdict is asked again once,
    SETTLE_S later, and the second answer is the one reported: a real outage or split brain lasts."""
    states = _ask_all(cfg, strict_host_keys, secrets, recorded or {})
    verdict = assess(states)
    if verdict.word in MOVING:
        time.sleep(SETTLE_S)
        states = _ask_all(cfg, strict_host_keys, secrets, recorded or {})
        verdict = assess(states)
    return states, verdict


def _ask_all(
    cfg: HalbConfig, strict_host_keys: bool, secrets: Secrets | None, recorded: Mapping[str, str]
) -> list[NodeState]:
    from dataclasses import replace

    plan = cfg.plan
    target = SshTarget(cfg.ssh.user, cfg.ssh.port, cfg.ssh.private_key_path)
    prints = stack_fingerprints(cfg)
    certs = [path for path, _, _ in certificate_files(cfg)]
    others = [str(v.address) for v in plan.vips if v.address != plan.vip]

    def ask(node: Node) -> NodeState:
        expected = expected_hashes(cfg, node.name, secrets)
        host_key = node.host_key or recorded.get(node.name)
        output, error = probe(
            Reach(target, str(plan.address(node.name)), host_key, strict_host_keys),
            Questions(str(plan.vip), others, sorted(expected), certs),
        )
        if host_key and any(marker in error for marker in HOST_KEY_CHANGED):
            error = host_key_changed(cfg, node.name, configured=node.host_key is not None)
        state = parse_probe(node.name, output, error)
        found = drift(state, expected, prints) if state.reachable else []
        return replace(state, maintenance=node.maintenance, drift=found)

    with ThreadPoolExecutor(max_workers=len(cfg.nodes)) as pool:
        return list(pool.map(ask, cfg.nodes))


def stack_fingerprints(cfg: HalbConfig) -> dict[str, str]:
    """Each certificate file's expected fingerprint, where the stack's certificate can be read here."""
    from halb.config.tls import fingerprint

    out = {}
    for path, _, cert in certificate_files(cfg):
        chain = read_pem(cert).chain
        if chain:
            try:
                out[path] = fingerprint(x509.load_pem_x509_certificates(chain.encode())[0])
            except ValueError:
                continue
    return out
