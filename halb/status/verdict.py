"""The pair's verdict from what each node reports (pure: no I/O).

Split brain is more than one node holding the VIP (typically VRRP blocked between them); no node
holding it is an outage. Drift is a managed file whose content is not what halb renders from the
stack's config (a hand edit, a node rebuilt at the same address).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


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
    from_metrics: bool = False  # the VIPs held and the VRRP state are halb-metrics' (as Prometheus reads them)


# Exit codes of `halb status`, one per verdict.
EXIT = {
    "OK": 0,
    "MAINTENANCE": 0,
    "SPLIT BRAIN": 1,
    "OUTAGE": 1,
    "VRRP PARTITION": 1,
    "VRID COLLISION": 1,
    "DEGRADED": 3,
    "UNREACHABLE": 4,
    "DRIFT": 5,
}


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


def _certificate(text: str) -> tuple[str, str]:
    """(expiry as YYYY-MM-DD, sha256 fingerprint in lowercase hex) from openssl's one line."""
    from datetime import datetime

    after = re.search(r"notAfter=(\w{3} +\d+ [\d:]+ \d{4}) GMT", text)
    digest = re.search(r"Fingerprint=([0-9A-Fa-f:]+)", text)
    day = datetime.strptime(" ".join(after.group(1).split()), "%b %d %H:%M:%S %Y").strftime("%Y-%m-%d") if after else ""
    return day, digest.group(1).replace(":", "").lower() if digest else ""


def _metric(line: str) -> tuple[str, dict[str, str], float] | None:
    """(name, labels, value) of one sample line of Prometheus's text format as halb-metrics writes it."""
    m = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line.strip())
    if m is None:
        return None
    labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
    return m.group(1), labels, float(m.group(3))


def from_metrics(values: dict[str, str], samples: list[tuple[str, dict[str, str], float]]) -> dict[str, str]:
    """`values` with the VIPs held and the primary VIP's VRRP state taken from halb-metrics' samples
    (what Prometheus reads too), when the node has halb-metrics; as asked directly otherwise."""
    out = dict(values)
    primary = values.get("primary", "")
    for name, labels, value in samples:
        if name == "halb_vip_held" and "vip" in labels:
            key = "vip" if labels["vip"] == primary else f"vip.{labels['vip']}"
            out[key] = "yes" if value == 1 else "no"
        elif name == "halb_vrrp_state" and labels.get("vip") == primary and value == 1:
            out["state"] = labels.get("state", "unknown").upper()
    return out


def parse_probe(name: str, output: str | None, error: str = "") -> NodeState:
    if output is None:
        return NodeState(name, False, "UNKNOWN", False, "unknown", "unknown", error)
    values: dict[str, str] = {}
    samples: list[tuple[str, dict[str, str], float]] = []
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
        elif key == "metric":
            if (sample := _metric(rest)) is not None:
                samples.append(sample)
        else:
            values[key] = rest.strip()
    values = from_metrics(values, samples)
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
        from_metrics=bool(samples),
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
            " (EXPIRED)"
            if day and day <= today
            else f" (renew it: under {WARN_DAYS} days left)"
            if day and day <= soon
            else ""
        )
        out.append(f"{path.rsplit('/', 1)[-1]} until {day or '?'}{late}{which}")
    return out
