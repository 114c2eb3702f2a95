"""Who holds the VIP, is anything held back, and do the nodes run what halb rendered?

Pure assessment of the nodes' reported state, shared by `halb status`, the lab and the deploy's
verify step. Split brain is more than one node holding the VIP (typically VRRP blocked between
them); no node holding it is an outage. Drift is a managed file whose content is not what halb
renders from the stack's config (a hand edit, a node rebuilt at the same address).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from halb.commands import HELD
from halb.config.tls import read_pem
from halb.render import PATHS, certificate_files

if TYPE_CHECKING:
    from halb.config import HalbConfig
    from halb.render import Secrets


@dataclass(frozen=True)
class NodeState:
    name: str
    reachable: bool
    vrrp_state: str  # MASTER, BACKUP, FAULT, STOP or UNKNOWN (from /run/halb/vrrp-state)
    holds_vip: bool
    haproxy: str  # systemd's word: active, inactive, failed...
    keepalived: str
    error: str = ""  # why the node could not be asked (ssh's own words)
    enabled: dict[str, str] = field(default_factory=dict)  # unit -> enabled, disabled...
    held: bool = False  # out of VRRP for a rollout that did not finish
    hashes: dict[str, str] = field(default_factory=dict)  # managed file -> sha256 (missing files absent)
    maintenance: bool = False  # from the stack's config
    drift: list[str] = field(default_factory=list)  # managed files that differ from the render
    why: str = ""  # why haproxy does not count as healthy here (what keeps a node in FAULT)
    others: dict[str, bool] = field(default_factory=dict)  # the other VIPs (`halb:vips`) -> held here
    certificates: dict[str, tuple[str, str]] = field(default_factory=dict)  # file -> (expiry day, sha256)
    partition: list[str] = field(default_factory=list)  # halb-vrrp-guard's findings (held in FAULT, why)
    collisions: list[str] = field(default_factory=list)  # other routers that send adverts for the stack's VRIDs


# Exit codes of `halb status`, one per verdict.
EXIT = {
    "OK": 0, "MAINTENANCE": 0, "SPLIT BRAIN": 1, "OUTAGE": 1, "VRRP PARTITION": 1, "VRID COLLISION": 1, "DEGRADED": 3, "UNREACHABLE": 4,
    "DRIFT": 5,
}  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    ok: bool
    summary: str

    @property
    def word(self) -> str:
        return next(w for w in EXIT if self.summary.startswith(w))

    @property
    def exit_code(self) -> int:
        return EXIT[self.word]


def assess(nodes: list[NodeState]) -> Verdict:
    """The pair's verdict from the primary VIP's holders, then each other VIP's (`halb:vips`)."""
    verdict = _assess_primary(nodes)
    others = sorted({v for n in nodes for v in n.others})
    if not others or not verdict.ok or any(not n.reachable for n in nodes):
        return verdict
    holds = {v: [n.name for n in nodes if n.others.get(v)] for v in others}
    split = [f"{v} ({' and '.join(h)})" for v, h in holds.items() if len(h) > 1]
    if split:
        return Verdict(False, f"SPLIT BRAIN: both nodes hold {', '.join(split)} (is VRRP, IP protocol 112, blocked?)")
    lost = [v for v, h in holds.items() if not h]
    if lost:
        return Verdict(False, f"OUTAGE: no node holds {', '.join(lost)}")
    return Verdict(True, verdict.summary + "; " + ", ".join(f"{h[0]} holds {v}" for v, h in holds.items()))


def _assess_primary(nodes: list[NodeState]) -> Verdict:
    holders = [n.name for n in nodes if n.holds_vip]
    if len(holders) > 1:
        return Verdict(
            False, f"SPLIT BRAIN: {' and '.join(holders)} all hold the VIP (is VRRP, IP protocol 112, blocked?)"
        )
    lost = [n for n in nodes if not n.reachable]
    if lost:
        reasons = "; ".join(f"{n.name}: {n.error or 'no answer'}" for n in lost)
        return Verdict(False, f"UNREACHABLE: cannot reach a node, so the VIP's holders are unknown ({reasons})")
    if not holders:
        return Verdict(False, "OUTAGE: no node holds the VIP")
    cut_off = [n for n in nodes if n.partition]
    if cut_off:
        n = cut_off[0]
        peer = next((m.name for m in nodes if m.name != n.name), "its peer")
        return Verdict(
            False,
            f"VRRP PARTITION: {n.name} hears no adverts from {peer}; {holders[0]} answers for the VIP, and "
            f"{n.name} is held in FAULT (no split brain). Is VRRP, IP protocol 112, blocked between them? "
            f"({'; '.join(n.partition)})",
        )
    heard = sorted({c for n in nodes for c in n.collisions})
    if heard:
        return Verdict(
            False,
            f"VRID COLLISION: {holders[0]} holds the VIP, but a router that is not a node of this stack uses "
            f"its VRID on the LAN, and the two break each other's failover: {'; '.join(heard)}. Give one of "
            "them another VRID (`halb check --probe` suggests one it heard no advert for)",
        )
    held = [n.name for n in nodes if n.held]
    if held:
        return Verdict(
            True,
            f"DEGRADED: {holders[0]} holds the VIP; {', '.join(held)} left VRRP for a rollout that did not "
            "finish (run `pulumi up` again)",
        )
    down = [n for n in nodes if n.haproxy != "active" or n.keepalived != "active" or n.why]
    if down:
        what = "; ".join(f"{n.name}: {n.why or 'services down'}" for n in down)
        return Verdict(True, f"DEGRADED: {holders[0]} holds the VIP; {what}")
    drifted = [f"{n.name}: {', '.join(n.drift)}" for n in nodes if n.drift]
    if drifted:
        return Verdict(
            True, f"DRIFT: {holders[0]} holds the VIP; files differ from halb's render ({'; '.join(drifted)})"
        )
    resting = [n.name for n in nodes if n.maintenance]
    if resting:
        where = "still holds the VIP" if resting[0] == holders[0] else f"is out; {holders[0]} holds the VIP"
        return Verdict(True, f"MAINTENANCE: {resting[0]} {where}")
    return Verdict(True, f"OK: {holders[0]} holds the VIP")


UNITS = ("haproxy", "keepalived")


def probe_script(vip: str, files: list[str], others: Sequence[str] = (), certs: Sequence[str] = ()) -> str:
    """Run on a node over SSH; prints `key value` lines that parse_probe reads. `others`: the
    stack's other VIPs (IPv4 or IPv6); `certs`: certificate files, whose expiry and fingerprint
    (of the first certificate: the server's) are read, never the key."""
    hashes = " ".join(files)
    x509 = "openssl x509 -noout -enddate -fingerprint -sha256 -in"
    return (
        f'echo "state $(cat {PATHS["vrrp_state"]} 2>/dev/null || echo UNKNOWN)"; '
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


def _certificate(text: str) -> tuple[str, str]:
    """(expiry as YYYY-MM-DD, sha256 fingerprint in lowercase hex) from openssl's one line."""
    from datetime import datetime

    after = re.search(r"notAfter=(\w{3} +\d+ [\d:]+ \d{4}) GMT", text)
    digest = re.search(r"Fingerprint=([0-9A-Fa-f:]+)", text)
    day = datetime.strptime(" ".join(after.group(1).split()), "%b %d %H:%M:%S %Y").strftime("%Y-%m-%d") if after else ""
    return day, digest.group(1).replace(":", "").lower() if digest else ""


def parse_probe(name: str, output: str | None, error: str = "") -> NodeState:
    if output is None:
        return NodeState(name, False, "UNKNOWN", False, "unknown", "unknown", error)
    values: dict[str, str] = {}
    hashes: dict[str, str] = {}
    certificates: dict[str, tuple[str, str]] = {}
    partition: list[str] = []
    foreign: list[str] = []
    for line in output.splitlines():
        key, _, rest = line.partition(" ")
        if key == "sha256":
            digest, _, path = rest.partition("  ")
            hashes[path.strip()] = digest.strip()
        elif key == "cert":
            path, _, info = rest.partition(" ")
            certificates[path] = _certificate(info)
        elif key == "partition":
            partition.append(rest.strip())
        elif key == "foreign":
            foreign.append(rest.strip())
        else:
            values[key] = rest.strip()
    return NodeState(
        name,
        True,
        values.get("state") or "UNKNOWN",
        values.get("vip") == "yes",
        values.get("active.haproxy") or "unknown",
        values.get("active.keepalived") or "unknown",
        enabled={u: values.get(f"enabled.{u}") or "unknown" for u in UNITS},
        held=values.get("held") == "yes",
        hashes=hashes,
        why=haproxy_trouble(values),
        others={k.removeprefix("vip."): v == "yes" for k, v in values.items() if k.startswith("vip.")},
        certificates=certificates,
        partition=[p for p in partition if "held in FAULT" in p],
        collisions=foreign,
    )


def haproxy_trouble(values: dict[str, str]) -> str:
    """Why haproxy does not count as healthy on a node, from the probe's values ('' when it does)."""
    restarts = values.get("restarts", "0")
    looped = values.get("result") == "start-limit-hit" or (
        values.get("active.haproxy") == "failed" and restarts.isdigit() and int(restarts) >= 4
    )
    if looped:
        return (
            f"haproxy crash loop: systemd gave up after {restarts} restarts "
            "(fix it, then `systemctl reset-failed haproxy; systemctl start haproxy`)"
        )
    if values.get("down") == "1":
        return "haproxy is not running"
    if values.get("health") == "1":
        return "haproxy does not answer /healthz (hung, or back for less than healthCheck.rise)"
    return ""


def drift(state: NodeState, expected: dict[str, str], fingerprints: dict[str, str] | None = None) -> list[str]:
    """Managed files whose live hash is not the rendered one (missing files included), and
    certificate files that do not hold the stack's certificate (`fingerprints`: file -> sha256)."""
    files = {p for p, digest in expected.items() if state.hashes.get(p) != digest}
    files |= {p for p, f in (fingerprints or {}).items() if state.certificates.get(p, ("", ""))[1] != f}
    return sorted(files)


def certificate_notes(state: NodeState, fingerprints: dict[str, str], today: str, soon: str) -> list[str]:
    """A line per certificate file on the node: expiry, whether it is the stack's, and a warning
    under WARN_DAYS (`today`, `soon`: YYYY-MM-DD)."""
    from halb.config.tls import WARN_DAYS

    out = []
    for path, (day, digest) in sorted(state.certificates.items()):
        mine = fingerprints.get(path)
        which = "" if mine is None else ", the stack's" if digest == mine else ", NOT the stack's certificate"
        late = (
            " (EXPIRED)" if day and day <= today else f" (renew it: under {WARN_DAYS} days left)" if day and day <= soon else ""
        )
        out.append(f"{path.rsplit('/', 1)[-1]} until {day or '?'}{late}{which}")
    return out


@dataclass(frozen=True)
class SshTarget:
    user: str
    port: int
    key_path: str | None


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


def ssh_run(
    target: SshTarget,
    address: str,
    command: str,
    strict_host_keys: bool,
    host_key: str | None = None,
    stdin: str = "",
    timeout: float = 20,
) -> tuple[int | None, str, str]:
    """Run `command` on a node: (exit code, stdout, stderr), exit code None when ssh got no answer
    in `timeout`. A pinned `host_key` is always checked."""
    with tempfile.TemporaryDirectory(prefix="halb-ssh-") as tmp:
        known_hosts = None
        if host_key:
            known_hosts = f"{tmp}/known_hosts"
            Path(known_hosts).write_text(known_hosts_line(address, target.port, host_key))
        cmd = [*ssh_command(target, address, strict_host_keys, known_hosts), command]
        try:
            p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, "", f"ssh: no answer within {timeout:g} s"
    return p.returncode, p.stdout, p.stderr


def probe(
    target: SshTarget,
    address: str,
    vip: str,
    strict_host_keys: bool,
    files: list[str] | None = None,
    host_key: str | None = None,
    others: Sequence[str] = (),
    certs: Sequence[str] = (),
) -> tuple[str | None, str]:
    """The probe's output, or None and ssh's reason."""
    script = probe_script(vip, files or [], others, certs)
    code, out, err = ssh_run(target, address, script, strict_host_keys, host_key)
    if code == 0:
        return out, ""
    return None, err if code is None else (err.strip().splitlines() or [f"ssh exited {code}"])[-1]


def expected_hashes(cfg: HalbConfig, node: str, secrets: Secrets | None) -> dict[str, str]:
    """What halb renders for a node, by path; secret files only when the secrets are known
    (certificates are compared by fingerprint instead: `stack_fingerprints`)."""
    from halb.render import node_files, secret_files

    files = node_files(cfg, node) + (secret_files(cfg, node, secrets) if secrets is not None else [])
    return {f.path: f.sha256 for f in files if f.step != "tls"}


def collect(
    cfg: HalbConfig, strict_host_keys: bool = True, secrets: Secrets | None = None
) -> tuple[list[NodeState], Verdict]:
    from dataclasses import replace

    from halb.config.addresses import plan_addresses

    plan = plan_addresses(cfg)
    target = SshTarget(cfg.ssh.user, cfg.ssh.port, cfg.ssh.private_key_path)
    prints = stack_fingerprints(cfg)
    certs = [path for path, _, _ in certificate_files(cfg)]
    states = []
    for node in cfg.nodes:
        expected = expected_hashes(cfg, node.name, secrets)
        address = str(plan.nodes[node.name])
        others = [str(v.address) for v in cfg.vip_plans if v.address != plan.vip]
        output, error = probe(
            target, address, str(plan.vip), strict_host_keys, sorted(expected), node.host_key, others, certs
        )
        state = parse_probe(node.name, output, error)
        states.append(
            replace(
                state, maintenance=node.maintenance, drift=drift(state, expected, prints) if state.reachable else []
            )
        )
    return states, assess(states)


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


def report(cfg: HalbConfig, states: list[NodeState], verdict: Verdict, secrets_known: bool = True) -> str:
    from halb.config.addresses import plan_addresses

    plan = plan_addresses(cfg)
    prints = stack_fingerprints(cfg)
    lines = []
    for node, state in zip(cfg.nodes, states, strict=True):
        if state.reachable:
            units = ", ".join(f"{u} {getattr(state, u)} ({state.enabled.get(u, '?')})" for u in UNITS)
            detail = f"VRRP {state.vrrp_state}, VIP {'held' if state.holds_vip else 'not held'}, {units}"
            detail += "; in maintenance" if node.maintenance else ""
            detail += "; out of VRRP for an unfinished rollout" if state.held else ""
            detail += f"; {state.why}" if state.why else ""
            detail += f"; DRIFT in {', '.join(state.drift)}" if state.drift else "; files as rendered"
            notes = certificate_notes(state, prints, *_days())
            detail += f"; certificates: {'; '.join(notes)}" if notes else ""
        else:
            detail = f"cannot reach it ({state.error})"
        lines.append(f"{node.name} {plan.nodes[node.name]} ({node.role}): {detail}")
    if not secrets_known:
        lines.append("(secret files not compared: the stack's secrets are not available here)")
    return "\n".join([*lines, verdict.summary])


def as_json(cfg: HalbConfig, states: list[NodeState], verdict: Verdict) -> dict[str, object]:
    from halb.config.addresses import plan_addresses

    plan = plan_addresses(cfg)
    return {
        "verdict": verdict.word,
        "exit_code": verdict.exit_code,
        "summary": verdict.summary,
        "vip": str(plan.vip),
        # Every VIP (`halb:vips`; the one VIP otherwise) and the nodes that hold it now.
        "vips": [
            {
                "name": v.name,
                "address": str(v.address),
                "preferred": v.preferred,
                "holders": [
                    s.name for s in states if (s.holds_vip if v.address == plan.vip else s.others.get(str(v.address)))
                ],
            }
            for v in cfg.vip_plans
        ],
        "nodes": [
            # File hashes stay out: a hash of a short password file could be brute-forced.
            {
                "name": n.name,
                "address": str(plan.nodes[n.name]),
                "role": n.role,
                **{k: v for k, v in vars(s).items() if k != "hashes"},
            }
            for n, s in zip(cfg.nodes, states, strict=True)
        ],
    }


def _days() -> tuple[str, str]:
    """Today and the day WARN_DAYS from now (YYYY-MM-DD, UTC)."""
    from datetime import timedelta

    from halb.config.tls import WARN_DAYS, utcnow

    now = utcnow()
    return f"{now:%Y-%m-%d}", f"{now + timedelta(days=WARN_DAYS):%Y-%m-%d}"
