"""halb:index:HaLoadBalancer: addresses, machines, per-node provisioning, outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi
from pulumi_command import local, remote

from halb.components.node import NodeProvisioning, NodeProvisioningArgs
from halb.components.reservations import AddressReservations, AddressReservationsArgs, Reservation
from halb.components.rollout import VrrpRollout, VrrpRolloutArgs
from halb.components.verify import VerifyArgs, verify_command
from halb.config import HalbConfig, Secret
from halb.config.secrets import STATS_PASSWORD, VRRP_PASSWORD
from halb.metrics import scrape_targets
from halb.plan import Plan
from halb.render import hostport, service_vips
from halb.stack import VsphereCredentials, ssh_private_key

if TYPE_CHECKING:
    from halb.components.vsphere import Vcenter, VmPair


@dataclass(frozen=True)
class HaLoadBalancerArgs:
    config: HalbConfig
    vsphere: VsphereCredentials | None = None


class HaLoadBalancer(pulumi.ComponentResource):
    """The pair: addresses reserved, passwords, then one node at a time, the BACKUP first (its
    machine and every step, then the MASTER's), so a bad change stops at the BACKUP and a change
    that replaces or reboots the VMs never takes both down together; then the VRRP rollout, the
    verify step and the outputs."""

    def __init__(self, name: str, args: HaLoadBalancerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("halb:index:HaLoadBalancer", name, None, opts)
        cfg = args.config
        plan = cfg.plan
        key = ssh_private_key(cfg)  # a missing key file fails here, before any resource exists
        self.vcenter = self._vcenter(name, cfg, args)  # a vCenter problem too
        self.addresses = self._reserve_addresses(name, cfg, plan)
        self.stats_password = self._password(
            name, "stats-password", cfg.haproxy.stats.password, STATS_PASSWORD.generated
        )
        self.vrrp_password = (
            self._password(name, "vrrp-password", cfg.keepalived.auth_password, VRRP_PASSWORD.generated)
            if cfg.keepalived.version == 2 and cfg.mode == "vrrp"
            else pulumi.Output.secret("")  # VRRPv3 has no authentication; BGP mode no VRRP
        )
        self.vms, self.nodes = self._machines_and_nodes(name, cfg, args, plan, key)
        self.host_keys = {n: p.host_key for n, p in self.nodes.items()}
        self.rollout = self._rollout(name, cfg) if cfg.mode == "vrrp" else None  # BGP mode: each node on its own
        self.verify = self._verify(name, cfg, key) if cfg.verify else None
        self._outputs(cfg, plan)
        self.register_outputs(
            {
                "vip": self.vip,
                "nodes": self.node_info,
                "statsUrls": self.stats_urls,
                "metricsUrls": self.metrics_urls,
                "prometheusTargets": self.prometheus_targets,
                "frontends": self.frontends,
                "hostKeys": self.host_keys,
                **({"vips": self.vips} if self.vips else {}),
                "statsUser": self.stats_user,
                "statsPassword": self.stats_password,
                "vrrpPassword": self.vrrp_password,
            }
        )

    def _vcenter(self, name: str, cfg: HalbConfig, args: HaLoadBalancerArgs) -> Vcenter | None:
        if cfg.platform != "vsphere":
            return None
        assert cfg.vsphere is not None and args.vsphere is not None  # checked by the config model
        from halb.components.vsphere import vcenter  # pulumi_vsphere: 0.1 s to import

        return vcenter(name, args.vsphere, cfg.vsphere, self)

    def _reserve_addresses(self, name: str, cfg: HalbConfig, plan: Plan) -> AddressReservations:
        """Every VIP must be free (an IPv6 one is pinged over ICMPv6, which resolves it by NDP); new
        VMs' addresses too. Existing hosts answer, of course."""
        new_vms = cfg.preflight and cfg.platform == "vsphere"
        return AddressReservations(
            f"{name}-address",
            AddressReservationsArgs(
                [Reservation("vip", plan.vip, cfg.preflight)]
                + [
                    Reservation(f"vip-{v.name}", v.address, cfg.preflight)
                    for v in cfg.plan.vips
                    if v.address != plan.vip
                ]
                + [Reservation(n.name, plan.address(n.name), new_vms) for n in cfg.nodes]
            ),
            pulumi.ResourceOptions(parent=self),
        )

    def _password(self, name: str, what: str, configured: Secret | None, length: int) -> pulumi.Output[str]:
        """From config, else generated once and kept in state."""
        if configured is not None and configured.value is not None:
            return pulumi.Output.secret(configured.value)
        import pulumi_random  # only a stack that leaves a password unset needs the plugin

        generated = pulumi_random.RandomPassword(
            f"{name}-{what}", length=length, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        return pulumi.Output.secret(generated.result)

    def _machines_and_nodes(
        self, name: str, cfg: HalbConfig, args: HaLoadBalancerArgs, plan: Plan, key: pulumi.Output[str] | None
    ) -> tuple[VmPair | None, dict[str, NodeProvisioning]]:
        """Each node's machine (a VM on vSphere, else the existing host) and its provisioning, in order."""
        order = [n.name for n in sorted(cfg.nodes, key=lambda n: n.role != "backup")]

        def provision(node: str, host_id: pulumi.Input[str], after: list[pulumi.Resource]) -> NodeProvisioning:
            generation = cfg.node(node).generation
            return NodeProvisioning(
                f"{name}-{node}",
                NodeProvisioningArgs(
                    config=cfg,
                    node=node,
                    host_id=pulumi.Output.concat(host_id, f"#{generation}") if generation else host_id,
                    connect=lambda host_key: _connection(cfg, plan, node, key, host_key),
                    vrrp_password=self.vrrp_password,
                    stats_password=self.stats_password,
                    reserved=list(self.addresses.records.values()),
                    after=after,
                ),
                pulumi.ResourceOptions(parent=self),
            )

        if self.vcenter is None:
            nodes: dict[str, NodeProvisioning] = {}
            for node in order:
                nodes[node] = provision(node, self.addresses.ids[node], [p.done for p in nodes.values()])
            return None, nodes
        assert cfg.vsphere is not None
        from halb.components.vsphere import VmPair, VmPairArgs, VmSpec

        vms = VmPair(
            f"{name}-vm",
            VmPairArgs(
                config=cfg,
                placement=cfg.vsphere,
                vcenter=self.vcenter,
                vms=[VmSpec(n, plan.address(n)) for n in order],
                depends_on=list(self.addresses.records.values()),
                provision=provision,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        return vms, vms.provisioned

    def _rollout(self, name: str, cfg: HalbConfig) -> VrrpRollout:
        """Shared VRRP settings change on both nodes without ever disagreeing (see rollout.py)."""
        return VrrpRollout(
            f"{name}-vrrp",
            VrrpRolloutArgs(
                user=cfg.ssh.user,
                connections={n: p.connection for n, p in self.nodes.items()},
                host_ids={n: p.host_id for n, p in self.nodes.items()},
                keepalived_scripts={n: p.script_hashes["keepalived"] for n, p in self.nodes.items()},
                keepalived_secrets=[
                    p.secret_stdin["keepalived"] for p in self.nodes.values() if "keepalived" in p.secret_stdin
                ],
                after=[p.done for p in self.nodes.values()],
            ),
            pulumi.ResourceOptions(parent=self),
        )

    def _verify(self, name: str, cfg: HalbConfig, key: pulumi.Output[str] | None) -> local.Command:
        """A deploy that proves itself: exactly one holder, every service answering through the VIP."""
        follows = {f"{name}-{n}-{step}": h for n, p in self.nodes.items() for step, h in p.script_hashes.items()}
        args = VerifyArgs(
            config=cfg,
            key=key,
            host_keys=self.host_keys,
            host_ids=[p.host_id for p in self.nodes.values()],
            follows=follows,
            secrets_digest=self.rollout.secret_digest if self.rollout else None,
            after=self.rollout.done if self.rollout else [p.done for p in self.nodes.values()],
        )
        return verify_command(name, args, pulumi.ResourceOptions(parent=self))

    def _outputs(self, cfg: HalbConfig, plan: Plan) -> None:
        """Derived from the plan, never from addresses the guests report."""
        h = cfg.haproxy
        self.vip = pulumi.Output.from_input(str(plan.vip))
        self.node_info = {n.name: {"address": str(plan.address(n.name)), "role": n.role} for n in cfg.nodes}
        self.stats_urls = {n: f"http://{a}:{h.stats.port}{h.stats.uri}" for n, a in _addrs(plan).items()}
        self.metrics_urls = (
            {n: f"http://{a}:{h.stats.port}{h.metrics.path}" for n, a in _addrs(plan).items()}
            if h.metrics.enabled
            else {}
        )
        self.frontends = {
            s.name: ", ".join(hostport(v.address, s.port) for v in service_vips(cfg, s))
            if cfg.vips
            else f"{plan.vip}:{s.port}"
            for s in h.services
        }
        # With `halb:vips`: every VIP by name. A one-VIP stack has `vip` only: a stack's outputs
        # gain no key for a feature it does not use.
        self.vips = {v.name: str(v.address) for v in cfg.plan.vips} if cfg.vips else {}
        self.prometheus_targets = scrape_targets(cfg)
        self.stats_user = h.stats.user


def _connection(
    cfg: HalbConfig, plan: Plan, node: str, key: pulumi.Output[str] | None, host_key: pulumi.Input[str] | None
) -> remote.ConnectionArgs:
    """SSH to a node, accepting only `host_key` when given."""
    ssh = cfg.ssh
    return remote.ConnectionArgs(
        host=str(plan.address(node)),
        port=ssh.port,
        user=ssh.user,
        private_key=key,
        dial_error_limit=ssh.dial_error_limit,
        per_dial_timeout=10,
        host_key=host_key,
    )


def _addrs(plan: Plan) -> dict[str, str]:
    return {n: str(a) for n, a in plan.addresses.nodes.items()}
