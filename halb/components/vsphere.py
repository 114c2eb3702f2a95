"""Two VMs cloned from a template with static addresses, kept on different hosts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

import pulumi
import pulumi_vsphere as vsphere

from halb.components.node import NodeProvisioning
from halb.config import HalbConfig, VSphere
from halb.stack import VsphereCredentials

TEMPLATE_DERIVED = ["clone", "guestId", "scsiType", "firmware"]


@dataclass(frozen=True)
class VmSpec:
    node: str
    address: IPv4Address


@dataclass(frozen=True)
class VmPairArgs:
    config: HalbConfig
    placement: VSphere
    credentials: VsphereCredentials
    vms: list[VmSpec]
    vip: IPv4Address
    depends_on: list[pulumi.Resource]  # the address reservations
    # Called with each VM's node name, id and the previous node's provisioning, in order; returns
    # the node's provisioning, whose last step the next VM waits for: a change that replaces or
    # reboots VMs takes one at a time.
    provision: Callable[[str, pulumi.Output[str], list[pulumi.Resource]], NodeProvisioning]


class VmPair(pulumi.ComponentResource):
    def __init__(self, name: str, args: VmPairArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("halb:vsphere:VmPair", name, None, opts)
        p, net = args.placement, args.config.network
        prefix = p.name_prefix or pulumi.get_stack()  # two stacks in one vCenter never share a name
        creds = args.credentials
        provider = vsphere.Provider(
            f"{name}-provider",
            user=creds.user,
            password=creds.password,
            vsphere_server=creds.server,
            allow_unverified_ssl=creds.allow_unverified_ssl,
            opts=pulumi.ResourceOptions(parent=self),
        )
        invoke = pulumi.InvokeOptions(provider=provider, parent=self)
        dc = vsphere.get_datacenter_output(name=p.datacenter, opts=invoke)
        cluster = vsphere.get_compute_cluster_output(name=p.cluster, datacenter_id=dc.id, opts=invoke)
        datastore = vsphere.get_datastore_output(name=p.datastore, datacenter_id=dc.id, opts=invoke)
        network = vsphere.get_network_output(name=p.network, datacenter_id=dc.id, opts=invoke)
        template = vsphere.get_virtual_machine_output(name=p.template, datacenter_id=dc.id, opts=invoke)

        def disks(
            template_disks: list[vsphere.outputs.GetVirtualMachineDiskResult],
        ) -> list[vsphere.VirtualMachineDiskArgs]:
            # The template's disk layout; the first disk grows to diskGb when that is larger.
            out: list[vsphere.VirtualMachineDiskArgs] = []
            for i, d in enumerate(template_disks):
                size = max(d.size, p.disk_gb) if i == 0 and p.disk_gb else d.size
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

        self.vms: dict[str, vsphere.VirtualMachine] = {}
        self.provisioned: dict[str, NodeProvisioning] = {}  # by node, in order
        previous: list[pulumi.Resource] = []
        for spec in args.vms:
            self.vms[spec.node] = vsphere.VirtualMachine(
                f"{name}-{spec.node}",
                name=f"{prefix}-{spec.node}",
                resource_pool_id=cluster.resource_pool_id,
                datastore_id=datastore.id,
                folder=p.folder,
                num_cpus=p.cpus,
                memory=p.memory_mb,
                guest_id=template.guest_id,
                scsi_type=template.scsi_type,
                firmware=template.firmware,
                network_interfaces=[
                    vsphere.VirtualMachineNetworkInterfaceArgs(
                        network_id=network.id,
                        adapter_type=template.network_interface_types.apply(lambda t: t[0] if t else "vmxnet3"),
                    )
                ],
                disks=template.disks.apply(disks),
                clone=vsphere.VirtualMachineCloneArgs(
                    template_uuid=template.id,
                    customize=vsphere.VirtualMachineCloneCustomizeArgs(
                        linux_options=vsphere.VirtualMachineCloneCustomizeLinuxOptionsArgs(
                            host_name=spec.node, domain=net.domain
                        ),
                        network_interfaces=[
                            vsphere.VirtualMachineCloneCustomizeNetworkInterfaceArgs(
                                ipv4_address=str(spec.address), ipv4_netmask=net.subnet.prefixlen
                            )
                        ],
                        ipv4_gateway=str(net.gateway) if net.gateway else None,
                        dns_server_lists=[str(d) for d in net.dns_servers],
                        dns_suffix_lists=[net.domain],
                    ),
                ),
                # The VIP moves between the guests: never treat it as the VM's address.
                ignored_guest_ips=[str(args.vip)],
                # CPU and memory grow without a reboot.
                cpu_hot_add_enabled=True,
                memory_hot_add_enabled=True,
                tags=p.tags or None,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    provider=provider,
                    depends_on=args.depends_on + previous,
                    # A rebuilt template (new UUID) or changed clone settings never replace running
                    # VMs by surprise; replace them one at a time with `pulumi up --replace` (README).
                    ignore_changes=TEMPLATE_DERIVED,
                ),
            )
            self.provisioned[spec.node] = args.provision(spec.node, self.vms[spec.node].id, previous)
            previous = [self.vms[spec.node], self.provisioned[spec.node].done]

        self.anti_affinity: vsphere.ComputeClusterVmAntiAffinityRule | None = None
        if p.anti_affinity.enabled:
            # Updating the rule in place fails when its VMs are replaced: replace it with them.
            self.anti_affinity = vsphere.ComputeClusterVmAntiAffinityRule(
                f"{name}-anti-affinity",
                name=f"{prefix}-halb-anti-affinity",
                compute_cluster_id=cluster.id,
                virtual_machine_ids=[vm.id for vm in self.vms.values()],
                mandatory=p.anti_affinity.mandatory,
                enabled=True,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    provider=provider,
                    replace_on_changes=["virtualMachineIds"],
                    delete_before_replace=True,
                ),
            )
        self.ids: dict[str, pulumi.Output[str]] = {node: vm.id for node, vm in self.vms.items()}
        self.register_outputs({"vmIds": self.ids})
