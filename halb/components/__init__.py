"""Pulumi components: each has typed args, a `halb:<area>:<Name>` type token, children with
`parent=self` named after their parent and keyed by node name, and `register_outputs` last."""

from halb.components.loadbalancer import HaLoadBalancer, HaLoadBalancerArgs

__all__ = ["HaLoadBalancer", "HaLoadBalancerArgs"]
