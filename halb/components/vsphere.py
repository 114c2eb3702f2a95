"""Two VMs cloned from a template with static addresses, kept on different hosts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any, TypeVar

import pulumi
import pulumi_vsphere as vsphere

from halb.components.node import NodeProvisioning
from halb.config import HalbConfig, VSphere
from halb.config.errors import Problem, Problems
from halb.config.network import Network
from halb.stack import VsphereCredentials
from halb.vcenter import check_vcenter

TEMPLATE_DERIVED = ["clone", "guestId", "scsiType", "firmware"]
T = TypeVar("T")


@dataclass(frozen=True)
class Site:
    """What the vCenter holds under the names `halb:vsphere` gives (the placement), as ids."""

    cluster_id: str
    resource_pool_id: str
    datastore_id: str
    network_id: str
    template: vsphere.GetVirtualMachineResult


# What the provider says when it cannot reach or log in to the vCenter, and the key to blame.
CONNECTION_ERRORS = [
    ("incorrect user name or password", "vsphere:password", "the vCenter user's password (or check vsphere:user)"),
    ("cannot complete login", "vsphere:user", "a vCenter user and its password"),
    ("no route to host", "vsphere:vsphereServer", "a vCenter this machine can reach"),
    ("connection refused", "vsphere:vsphereServer", "a vCenter this machine can reach"),
    ("i/o timeout", "vsphere:vsphereServer", "a vCenter this machine can reach"),
    ("no such host", "vsphere:vsphereServer", "a vCenter host name this machine can resolve"),
    ("certificate", "vsphere:vsphereServer", "a vCenter whose certificate this machine trusts"),
]


def explain_lookup_error(key: str, value: str, what: str, message: str) -> Problem:
    """A failed vCenter lookup as a config problem naming the key: the connection's key when the
    vCenter could not be reached or refused the login, else `halb:vsphere.<key>`. The provider's
    words are kept (its first line); they never hold the password."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    items = [line.lstrip("* ").strip() for line in lines if line.startswith("*")]  # the provider's own errors
    said = items[-1] if items else lines[-1] if lines else "no answer"
    said = said if len(said) < 300 else said[:297] + "..."
    for needle, conn_key, expected in CONNECTION_ERRORS:
        if needle in message.lower():
            return Problem(conn_key, f"an error from the vCenter ({said})", expected)
    return Problem(f"vsphere.{key}", repr(value), f"{what} that exists in the vCenter (it said: {said})")


PLACEMENT_LOOKUPS: dict[str, tuple[str, Callable[[str, str, pulumi.InvokeOptions], Any]]] = {
    # key of halb:vsphere: (what it names, the data source by name in the datacenter)
    "cluster": ("a compute cluster", lambda n, dc, o: vsphere.get_compute_cluster(name=n, datacenter_id=dc, opts=o)),
    "datastore": ("a datastore", lambda n, dc, o: vsphere.get_datastore(name=n, datacenter_id=dc, opts=o)),
    "network": ("a network or port group", lambda n, dc, o: vsphere.get_network(name=n, datacenter_id=dc, opts=o)),
    "template": ("a VM template", lambda n, dc, o: vsphere.get_virtual_machine(name=n, datacenter_id=dc, opts=o)),
}


def find_site(p: VSphere, invoke: pulumi.InvokeOptions) -> Site:
    """Looks up the datacenter, then the cluster, datastore, port group and template in it, before
    any VM is declared; every name the vCenter lacks is reported at once, naming its key, and a
    template without a network adapter is refused (its first NIC carries the node's address)."""
    problems = Problems()

    def lookup(key: str, value: str, what: str, call: Callable[[], T]) -> T | None:
        try:
            return call()
        except Exception as e:  # the provider's answer, whatever its type
            problem = explain_lookup_error(key, value, what, str(e))
            if problem not in problems:
                problems.append(problem)
            return None

    dc = lookup(
        "datacenter", p.datacenter, "a datacenter", lambda: vsphere.get_datacenter(name=p.datacenter, opts=invoke)
    )
    if dc is None:
        raise pulumi.RunError(_message(problems))
    found: dict[str, Any] = {}
    for key, (what, get) in PLACEMENT_LOOKUPS.items():
        name: str = getattr(p, key)
        found[key] = lookup(key, name, what, lambda: get(name, dc.id, invoke))  # noqa: B023 (called at once)
    template = found["template"]
    if template is not None and not template.network_interface_types:
        problems.add(
            "vsphere.template",
            f"{p.template!r}, a template with no network adapter",
            "a template with one network adapter: halb customizes its first NIC with the node's address",
        )
    if problems:
        raise pulumi.RunError(_message(problems))
    return Site(
        cluster_id=found["cluster"].id,
        resource_pool_id=found["cluster"].resource_pool_id,
        datastore_id=found["datastore"].id,
        network_id=found["network"].id,
        template=template,
    )


def check_connection(creds: VsphereCredentials) -> None:
    """The vCenter answers and takes the login (halb.vcenter), when the stack sets the server,
    user and password (not the provider's VSPHERE_* environment variables)."""
    from pulumi.runtime.config import get_config

    password = get_config("vsphere:password")  # plain here, never shown; the provider gets the secret
    if creds.server and creds.user and password:
        check_vcenter(creds.server, creds.user, password, creds.allow_unverified_ssl)


def _message(problems: list[Problem]) -> str:
    lines = [f"{len(problems)} vSphere error(s), found before any VM was declared:"]
    return "\n".join(lines + [f"  - {p}" for p in problems])


@dataclass(frozen=True)
class VmSpec:
    node: str
    address: IPv4Address


def customized_nic(
    spec: VmSpec, address6: IPv6Address | None, net: Network
) -> vsphere.VirtualMachineCloneCustomizeNetworkInterfaceArgs:
    """The clone's NIC as guest customization sets it: the node's IPv4 address, and its IPv6
    address when it has one (`nodes[].address6`)."""
    six = address6 is not None and net.subnet6 is not None
    return vsphere.VirtualMachineCloneCustomizeNetworkInterfaceArgs(
        ipv4_address=str(spec.address),
        ipv4_netmask=net.subnet.prefixlen,
        ipv6_address=str(address6) if six else None,
        ipv6_netmask=net.subnet6.prefixlen if six and net.subnet6 is not None else None,
    )


@dataclass(frozen=True)
class VmPairArgs:
    config: HalbConfig
    placement: VSphere
    vcenter: Vcenter  # the provider and what it found, from `vcenter()`
    vms: list[VmSpec]
    depends_on: list[pulumi.Resource]  # the address reservations
    # Called with each VM's node name, id and the previous node's provisioning, in order; returns
    # the node's provisioning, whose last step the next VM waits for: a change that replaces or
    # reboots VMs takes one at a time.
    provision: Callable[[str, pulumi.Output[str], list[pulumi.Resource]], NodeProvisioning]


@dataclass(frozen=True)
class Vcenter:
    provider: vsphere.Provider
    site: Site


def vcenter(name: str, creds: VsphereCredentials, placement: VSphere, parent: pulumi.Resource) -> Vcenter:
    """The vCenter, before any other resource of the stack: it answers and takes the login, then
    the provider, then the names in `halb:vsphere` looked up (every problem reported at once). The
    provider is `parent`'s child, with an alias to the VmPair as its parent, so that stacks
    deployed while the VmPair owned it keep the same provider (no replacement of every VM)."""
    check_connection(creds)
    provider = vsphere.Provider(
        f"{name}-vm-provider",
        user=creds.user,
        password=creds.password,
        vsphere_server=creds.server,
        allow_unverified_ssl=creds.allow_unverified_ssl,
        opts=pulumi.ResourceOptions(
            parent=parent,
            aliases=[pulumi.Alias(parent=pulumi.create_urn(f"{name}-vm", "halb:vsphere:VmPair", parent=parent))],
        ),
    )
    return Vcenter(provider, find_site(placement, pulumi.InvokeOptions(provider=provider, parent=parent)))


def template_disks(
    template_disks: Sequence[vsphere.outputs.GetVirtualMachineDiskResult], disk_gb: int | None
) -> list[vsphere.VirtualMachineDiskArgs]:
    """The template's disk layout; the first disk grows to `disk_gb` when that is larger."""
    out: list[vsphere.VirtualMachineDiskArgs] = []
    for i, d in enumerate(template_disks):
        size = max(d.size, disk_gb) if i == 0 and disk_gb else d.size
        out.append(
            vsphere.VirtualMachineDiskArgs(
                label=f"disk{i}",
                unit_number=i,
                size=size,
                thin_provisioned=d.thin_provisioned,
                eagerly_scrub=d.eagerly_scrub,
            )
        )
    return out


class VmPair(pulumi.ComponentResource):
    """The nodes' VMs, one at a time (each VM, then its node's provisioning, then the next VM),
    and the DRS anti-affinity rule that keeps them on different hosts."""

    def __init__(self, name: str, args: VmPairArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("halb:vsphere:VmPair", name, None, opts)
        self._args = args
        self._prefix = args.placement.name_prefix or pulumi.get_stack()  # two stacks in one vCenter never share a name
        self.vms: dict[str, vsphere.VirtualMachine] = {}
        self.provisioned: dict[str, NodeProvisioning] = {}  # by node, in order
        previous: list[pulumi.Resource] = []
        for spec in args.vms:
            self.vms[spec.node] = self._vm(name, spec, previous)
            self.provisioned[spec.node] = args.provision(spec.node, self.vms[spec.node].id, previous)
            previous = [self.vms[spec.node], self.provisioned[spec.node].done]
        self.anti_affinity = self._anti_affinity(name) if args.placement.anti_affinity.enabled else None
        self.ids: dict[str, pulumi.Output[str]] = {node: vm.id for node, vm in self.vms.items()}
        self.register_outputs({"vmIds": self.ids})

    def _vm(self, name: str, spec: VmSpec, previous: list[pulumi.Resource]) -> vsphere.VirtualMachine:
        """One node's VM, cloned from the template with its static addresses (guest customization)."""
        args, p = self._args, self._args.placement
        cfg, net = args.config, args.config.network
        site = args.vcenter.site
        template = site.template
        return vsphere.VirtualMachine(
            f"{name}-{spec.node}",
            name=f"{self._prefix}-{spec.node}",
            resource_pool_id=site.resource_pool_id,
            datastore_id=site.datastore_id,
            folder=p.folder,
            num_cpus=p.cpus,
            memory=p.memory_mb,
            guest_id=template.guest_id,
            scsi_type=template.scsi_type,
            firmware=template.firmware,
            network_interfaces=[
                vsphere.VirtualMachineNetworkInterfaceArgs(
                    network_id=site.network_id,
                    adapter_type=template.network_interface_types[0],
                )
            ],
            disks=template_disks(template.disks, p.disk_gb),
            clone=vsphere.VirtualMachineCloneArgs(
                template_uuid=template.id,
                customize=vsphere.VirtualMachineCloneCustomizeArgs(
                    linux_options=vsphere.VirtualMachineCloneCustomizeLinuxOptionsArgs(
                        host_name=spec.node, domain=net.domain
                    ),
                    network_interfaces=[customized_nic(spec, cfg.node(spec.node).address6, net)],
                    ipv4_gateway=str(net.gateway) if net.gateway else None,
                    ipv6_gateway=str(net.gateway6) if net.gateway6 else None,
                    dns_server_lists=[str(d) for d in net.dns_servers],
                    dns_suffix_lists=[net.domain],
                ),
            ),
            # The VIP moves between the guests: never treat it as the VM's address.
            ignored_guest_ips=[str(v.address) for v in cfg.plan.vips],
            # CPU and memory grow without a reboot.
            cpu_hot_add_enabled=True,
            memory_hot_add_enabled=True,
            tags=p.tags or None,
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.vcenter.provider,
                depends_on=args.depends_on + previous,
                # The new VM takes the old one's static address: never both at once. Its
                # steps (and the anti-affinity rule) go first, the node's teardown included.
                delete_before_replace=True,
                # A rebuilt template (new UUID) or changed clone settings never replace running
                # VMs by surprise; replace them one at a time with `pulumi up --replace` (docs/guides/replace-a-node.md).
                ignore_changes=TEMPLATE_DERIVED,
            ),
        )

    def _anti_affinity(self, name: str) -> vsphere.ComputeClusterVmAntiAffinityRule:
        """The DRS rule that keeps the VMs on different hosts. Updating the rule in place fails when
        its VMs are replaced: it is replaced with them."""
        p = self._args.placement
        return vsphere.ComputeClusterVmAntiAffinityRule(
            f"{name}-anti-affinity",
            name=f"{self._prefix}-halb-anti-affinity",
            compute_cluster_id=self._args.vcenter.site.cluster_id,
            virtual_machine_ids=[vm.id for vm in self.vms.values()],
            mandatory=p.anti_affinity.mandatory,
            enabled=True,
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=self._args.vcenter.provider,
                replace_on_changes=["virtualMachineIds"],
                delete_before_replace=True,
            ),
        )
