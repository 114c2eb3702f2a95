"""The lab's simulated vCenter (halb_lab/vcsim, built by `make engine`): started and stopped with
the lab, serving on the lab's own address (198.18.0.1:443), in memory only.

Its one user's password is the lab's, kept encrypted in the lab's vault; it reaches the simulator
on its stdin, never on a command line or in a file."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from halb import PROJECT_DIR
from halb_lab.automation.vault import Vault
from halb_lab.infra import nodes
from halb_lab.infra.topology import STATE, VAULT, VCENTER, VCENTER_USER

BINARY = PROJECT_DIR / ".engine" / "bin" / "halb-vcsim"
HOME = STATE / "vcenter"
PIDFILE, READY, LOG = HOME / "pid", HOME / "ready", HOME / "log"
VAULT_KEY = "vsphere.password"  # the vault entry: the lab stacks give the same value to `vsphere:password`


def password() -> str:
    return Vault(VAULT).ensure(VAULT_KEY, 20)


def pid() -> int | None:
    return nodes.running(PIDFILE)


def start(timeout: float = 60) -> None:
    """Start the simulator with a fresh inventory and wait until it serves."""
    if pid() is not None:
        return
    if not BINARY.exists():
        raise FileNotFoundError(f"{BINARY} is missing: run `make engine` (it builds the lab's simulated vCenter)")
    HOME.mkdir(parents=True, exist_ok=True)
    READY.unlink(missing_ok=True)
    log = LOG.open("ab")
    proc = subprocess.Popen(
        [
            str(BINARY),
            "-listen",
            VCENTER,
            "-user",
            VCENTER_USER,
            "-password-file",
            "/dev/stdin",
            "-ready-file",
            str(READY),
        ],
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(password().encode())
    proc.stdin.close()
    PIDFILE.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while not READY.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop()
            raise RuntimeError(f"the simulated vCenter did not start (see {LOG})")
        time.sleep(0.1)


def stop() -> None:
    value = pid()
    if value is not None:
        os.killpg(value, signal.SIGTERM)  # its own session: only what the lab started
        deadline = time.monotonic() + 10
        while pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
    PIDFILE.unlink(missing_ok=True)
    READY.unlink(missing_ok=True)


# --------------------------------------------------------------------------- reading it back


@dataclass(frozen=True)
class VmView:
    """One VM as the vCenter reports it (pyvmomi, independent of halb and the provider)."""

    name: str
    moid: str
    uuid: str  # the BIOS UUID: the provider's id of the VM
    folder: str
    host: str  # the ESXi host it runs on
    power: str
    cpus: int
    memory_mb: int
    disks_gb: tuple[float, ...]
    nics: int
    template: bool
    hostname: str  # the guest's, after customization
    addresses: tuple[str, ...]  # address/prefix as the guest reports them
    gateways: tuple[str, ...]
    dns_servers: tuple[str, ...]
    dns_domain: str


@dataclass(frozen=True)
class RuleView:
    name: str
    cluster: str
    kind: str  # "anti-affinity", "affinity", ...
    vm_uuids: frozenset[str]
    mandatory: bool
    enabled: bool


@dataclass(frozen=True)
class Inventory:
    vms: dict[str, VmView]  # by name, templates included
    rules: dict[str, RuleView]  # by name, across clusters

    def of_stack(self, prefix: str) -> dict[str, VmView]:
        return {n: v for n, v in self.vms.items() if n.startswith(prefix + "-") and not v.template}


@contextlib.contextmanager
def session() -> Iterator[Any]:
    from pyVim.connect import Disconnect, SmartConnect

    host, _, port = VCENTER.partition(":")
    si = SmartConnect(
        host=host, port=int(port), user=VCENTER_USER, pwd=password(), sslContext=ssl._create_unverified_context()
    )
    try:
        yield si
    finally:
        Disconnect(si)


def inventory() -> Inventory:
    from pyVmomi import vim

    with session() as si:
        content = si.content
        vms: dict[str, VmView] = {}
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        for vm in view.view:
            vms[vm.name] = _vm_view(vm, vim)
        rules: dict[str, RuleView] = {}
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.ClusterComputeResource], True)
        by_moid = {v.moid: v.uuid for v in vms.values()}
        for cluster in view.view:
            for rule in cluster.configurationEx.rule or []:
                kind = {
                    vim.cluster.AntiAffinityRuleSpec: "anti-affinity",
                    vim.cluster.AffinityRuleSpec: "affinity",
                }.get(type(rule), type(rule).__name__)
                members = frozenset(by_moid.get(m._moId, m._moId) for m in getattr(rule, "vm", []) or [])
                rules[rule.name] = RuleView(
                    rule.name, cluster.name, kind, members, bool(rule.mandatory), bool(rule.enabled)
                )
        return Inventory(vms, rules)


def _vm_view(vm: Any, vim: Any) -> VmView:
    hardware = vm.config.hardware
    guest = vm.guest
    nets = list(guest.net or [])
    addresses = tuple(f"{a.ipAddress}/{a.prefixLength}" for n in nets if n.ipConfig for a in n.ipConfig.ipAddress or [])
    gateways = tuple(
        r.gateway.ipAddress
        for s in guest.ipStack or []
        if s.ipRouteConfig
        for r in s.ipRouteConfig.ipRoute or []
        if r.network in ("0.0.0.0", "::")
    )
    dns = next((s.dnsConfig for s in guest.ipStack or [] if s.dnsConfig), None)
    return VmView(
        name=vm.name,
        moid=vm._moId,
        uuid=vm.config.uuid,
        folder=vm.parent.name,
        host=vm.runtime.host.name if vm.runtime.host else "",
        power=str(vm.runtime.powerState),
        cpus=int(hardware.numCPU),
        memory_mb=int(hardware.memoryMB),
        disks_gb=tuple(
            d.capacityInKB / 1024 / 1024 for d in hardware.device if isinstance(d, vim.vm.device.VirtualDisk)
        ),
        nics=sum(isinstance(d, vim.vm.device.VirtualEthernetCard) for d in hardware.device),
        template=bool(vm.config.template),
        hostname=guest.hostName or "",
        addresses=addresses,
        gateways=gateways,
        dns_servers=tuple(dns.ipAddress or []) if dns else (),
        dns_domain=(dns.domainName or "") if dns else "",
    )


def power_events(moid: str) -> list[str]:
    """The VM's power events in the vCenter's event log (VmPoweredOnEvent, VmPoweredOffEvent, ...), oldest first."""
    from pyVmomi import vim

    with session() as si:
        vm = vim.VirtualMachine(moid, si._stub)
        spec = vim.event.EventFilterSpec(entity=vim.event.EventFilterSpec.ByEntity(entity=vm, recursion="self"))
        events = si.content.eventManager.QueryEvents(spec) or []
        kinds = [type(e).__name__.rsplit(".", 1)[-1] for e in sorted(events, key=lambda e: e.key)]
        return [k for k in kinds if k.startswith("VmPowered") or k in ("VmResettingEvent", "VmGuestShutdownEvent")]
