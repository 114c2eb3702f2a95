"""halb:index:HaLoadBalancer: addresses, machines, per-node provisioning, outputs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi_command import local, remote

from halb.addresses import AddressPlan, plan_addresses
from halb.components.node import NodeProvisioning, NodeProvisioningArgs
from halb.components.reservations import AddressReservations, AddressReservationsArgs, Reservation
from halb.components.rollout import VrrpRollout, VrrpRolloutArgs
from halb.components.verify import verify_command
from halb.components.vsphere import VmPair, VmPairArgs, VmSpec
from halb.config import HalbConfig, Node, Secret
from halb.stack import VsphereCredentials, ssh_private_key


@dataclass(frozen=True)
class HaLoadBalancerArgs:
    config: HalbConfig
    vsphere: VsphereCredentials | None = None


class HaLoadBalancer(pulumi.ComponentResource):
    def __init__(self, name: str, args: HaLoadBalancerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("halb:index:HaLoadBalancer", name, None, opts)
        cfg = args.config
        plan = plan_addresses(cfg)
        child = pulumi.ResourceOptions(parent=self)
        key = ssh_private_key(cfg)  # a missing key file fails here, before any resource exists

        # Addresses: the VIP must be free; new VMs' addresses too. Existing hosts answer, of course.
        on_vsphere = cfg.platform == "vsphere"
        self.addresses = AddressReservations(
            f"{name}-address",
            AddressReservationsArgs(
                [Reservation("vip", plan.vip, cfg.preflight)]
                + [Reservation(n.name, plan.nodes[n.name], cfg.preflight and on_vsphere) for n in cfg.nodes]
            ),
            child,
        )

        # Secrets: from config, else generated once and kept in state.
        self.stats_password = self._password(name, "stats-password", cfg.haproxy.stats.password, 24)
        self.vrrp_password = (
            self._password(name, "vrrp-password", cfg.keepalived.auth_password, 8)
            if cfg.keepalived.version == 2
            else pulumi.Output.secret("")  # VRRPv3 has no authentication
        )

        # One node at a time, the BACKUP first: its machine and every step, then the MASTER's
        # machine and steps. A bad change stops at the BACKUP; a change that replaces or
        # reboots the VMs never takes both down together.
        ssh = cfg.ssh
        def connection(n: Node, pinned: bool) -> remote.ConnectionArgs:
            return remote.ConnectionArgs(
                host=str(plan.nodes[n.name]),
                port=ssh.port,
                user=ssh.user,
                private_key=key,
                dial_error_limit=ssh.dial_error_limit,
                per_dial_timeout=10,
                host_key=n.host_key if pinned else None,
            )

        connections = {n.name: connection(n, pinned=True) for n in cfg.nodes}
        unpinned = {n.name: connection(n, pinned=False) for n in cfg.nodes}
        order = [n.name for n in sorted(cfg.nodes, key=lambda n: n.role != "backup")]
        self.nodes: dict[str, NodeProvisioning] = {}
        host_ids: dict[str, pulumi.Input[str]] = {}

        def provision(node: str, host_id: pulumi.Input[str]) -> pulumi.Resource:
            generation = cfg.node(node).generation
            host_ids[node] = pulumi.Output.concat(host_id, f"#{generation}") if generation else host_id
            self.nodes[node] = NodeProvisioning(
                f"{name}-{node}",
                NodeProvisioningArgs(
                    config=cfg,
                    node=node,
                    host_id=host_ids[node],
                    connection=connections[node],
                    teardown_connection=unpinned[node],
                    vrrp_password=self.vrrp_password,
                    stats_password=self.stats_password,
                    reserved=list(self.addresses.records.values()),
                    after=[p.done for p in self.nodes.values()],
                ),
                child,
            )
            return self.nodes[node].done

        self.vms: VmPair | None = None
        if on_vsphere:
            assert cfg.vsphere is not None and args.vsphere is not None  # checked by the config model
            self.vms = VmPair(
                f"{name}-vm",
                VmPairArgs(
                    config=cfg,
                    placement=cfg.vsphere,
                    credentials=args.vsphere,
                    vms=[VmSpec(n, plan.nodes[n]) for n in order],
                    vip=plan.vip,
                    depends_on=list(self.addresses.records.values()),
                    provision=provision,
                ),
                child,
            )
        else:
            for n in order:
                provision(n, self.addresses.ids[n])

        # Shared VRRP settings change on both nodes without ever disagreeing (see rollout.py).
        self.rollout = VrrpRollout(
            f"{name}-vrrp",
            VrrpRolloutArgs(
                user=ssh.user,
                connections=connections,
                host_ids=host_ids,
                keepalived_scripts={n: p.script_hashes["keepalived"] for n, p in self.nodes.items()},
                keepalived_secrets=[
                    p.secret_stdin["keepalived"] for p in self.nodes.values() if "keepalived" in p.secret_stdin
                ],
                after=[p.done for p in self.nodes.values()],
            ),
            child,
        )

        # A deploy that proves itself: exactly one holder, every service answering through the VIP.
        self.verify: local.Command | None = None
        if cfg.verify:
            follows = {f"{name}-{n}-{step}": h for n, p in self.nodes.items() for step, h in p.script_hashes.items()}
            self.verify = verify_command(
                name, cfg, key, list(host_ids.values()), follows, self.rollout.secret_digest, self.rollout.done, child
            )

        # Outputs: derived from the plan, never from addresses the guests report.
        h = cfg.haproxy
        self.vip = pulumi.Output.from_input(str(plan.vip))
        self.node_info = {n.name: {"address": str(plan.nodes[n.name]), "role": n.role} for n in cfg.nodes}
        self.stats_urls = {n: f"http://{a}:{h.stats.port}{h.stats.uri}" for n, a in _addrs(plan).items()}
        self.metrics_urls = (
            {n: f"http://{a}:{h.stats.port}{h.metrics.path}" for n, a in _addrs(plan).items()}
            if h.metrics.enabled
            else {}
        )
        self.frontends = {s.name: f"{plan.vip}:{s.port}" for s in h.services}
        self.stats_user = h.stats.user
        self.register_outputs(
            {
                "vip": self.vip,
                "nodes": self.node_info,
                "statsUrls": self.stats_urls,
                "metricsUrls": self.metrics_urls,
                "frontends": self.frontends,
                "statsUser": self.stats_user,
                "statsPassword": self.stats_password,
                "vrrpPassword": self.vrrp_password,
            }
        )

    def _password(self, name: str, what: str, configured: Secret | None, length: int) -> pulumi.Output[str]:
        if configured is not None and configured.value is not None:
            return pulumi.Output.secret(configured.value)
        generated = random.RandomPassword(
            f"{name}-{what}", length=length, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        return pulumi.Output.secret(generated.result)


def _addrs(plan: AddressPlan) -> dict[str, str]:
    return {n: str(a) for n, a in plan.nodes.items()}
