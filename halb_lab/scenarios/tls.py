"""Drills on the lab-tls stack (TLS ended by haproxy for lab.internal, routes, PROXY protocol),
for the lab tests and `make bench` key `tls`. Clients trust the lab's CA only."""

from __future__ import annotations

import hashlib
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass

from halb_lab.automation.stack import deploy
from halb_lab.infra import ca, nodes
from halb_lab.infra.topology import VIP
from halb_lab.scenarios.drills import haproxy_worker, quiet
from halb_lab.scenarios.probes import holders, in_client, node, wait_until
from halb_lab.scenarios.watch import Report, Watch

STACK = "lab-tls"
NAME = ca.TLS_NAME


def curl(path: str = "/", host: str = NAME, scheme: str = "https", *extra: str) -> tuple[int, str, str]:
    """(status, body, HTTP version) of a request from the client's namespace to the VIP, for
    `host`, verified against the lab's CA."""
    port = 443 if scheme == "https" else 80
    cmd = in_client(
        "curl",
        "-s",
        "--max-time",
        "3",
        "--cacert",
        str(ca.ROOT_PEM),
        "--resolve",
        f"{host}:{port}:{VIP}",
        "-o",
        "-",
        "-w",
        "\n%{http_code} %{http_version}",
        *extra,
        f"{scheme}://{host}{path}",
    )
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    body, _, tail = p.stdout.rpartition("\n")
    code, _, version = tail.partition(" ")
    return (int(code) if code.isdigit() else 0), body, version


def served(address: str, name: str = NAME) -> tuple[str, str]:
    """(sha256 of the certificate, ALPN protocol) that `address`:443 serves for `name`, verified
    against the lab's CA (from this machine, which reaches each node's own address)."""
    context = ssl.create_default_context(cafile=str(ca.ROOT_PEM))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection((address, 443), timeout=3) as raw,
        context.wrap_socket(raw, server_hostname=name) as s,
    ):
        der = s.getpeercert(binary_form=True) or b""
        return hashlib.sha256(der).hexdigest(), s.selected_alpn_protocol() or ""


@dataclass
class Rotation:
    report: Report
    old: str  # fingerprints
    new: str
    served: dict[str, str]  # node -> fingerprint it serves after the deploy
    workers_before: dict[str, str]  # node -> haproxy worker pid
    workers_after: dict[str, str]
    ran: list[str]  # the steps the deploy ran
    seconds: float

    def figures(self) -> dict[str, object]:
        return {
            **self.report.figures(),
            "deploy_s": round(self.seconds, 2),
            "steps": self.ran,
            "reloaded": self.workers_before != self.workers_after,
            "new_certificate_served_by": sorted(n for n, f in self.served.items() if f == self.new),
        }


def rotate() -> Rotation:
    """A new certificate from the lab's CA in the stack's certificate files, then `pulumi up`,
    under a steady load of new TLS sessions to the VIP."""
    from halb_lab.infra.topology import NODES

    authority = ca.ensure()
    old = served(NODES[0].address)[0]
    before = {n.name: haproxy_worker(n.name) for n in NODES}
    issued = authority.issue()
    with Watch(port=443, tls=True) as w:
        ca.write(issued, ca.STACK_CERT)
        start = time.monotonic()
        result = deploy(stack=STACK, progress=quiet)
        seconds = time.monotonic() - start
    return Rotation(
        w.seen,
        old,
        issued.fingerprint,
        {n.name: served(n.address)[0] for n in NODES},
        before,
        {n.name: haproxy_worker(n.name) for n in NODES},
        [name for name, _ in result.ran()],
        seconds,
    )


def failover_keeps_the_certificate() -> tuple[Report, str, str]:
    """haproxy killed on the holder under the TLS load: (the report, the certificate served through
    the VIP before, and after the VIP moved)."""
    before = served(VIP)[0]
    with Watch(port=443, tls=True) as w:
        nodes.ssh(node("lb1"), "systemctl kill --signal=SIGKILL haproxy", timeout=10)
        wait_until(lambda: holders() == ["lb2"], 5, 0.01)
        after = served(VIP)[0]
        wait_until(lambda: holders() == ["lb1"], 30, 0.1)
    return w.seen, before, after


def install_certificate(days: float = 90) -> str:
    """A new certificate from the lab's CA, valid for `days`, in the stack's certificate files,
    then `pulumi up`: its fingerprint."""
    issued = ca.ensure().issue(days=days)
    ca.write(issued, ca.STACK_CERT)
    deploy(stack=STACK, progress=quiet)
    return issued.fingerprint
