"""halb: a highly available HAProxy + Keepalived pair with one floating VIP."""

import pulumi

from halb.components import HaLoadBalancer, HaLoadBalancerArgs
from halb.stack import load_stack_config, vsphere_credentials

config = load_stack_config()
lb = HaLoadBalancer("halb", HaLoadBalancerArgs(config=config, vsphere=vsphere_credentials()))

pulumi.export("vip", lb.vip)
if lb.vips:  # several VIPs (`halb:vips`): each by name
    pulumi.export("vips", lb.vips)
pulumi.export("nodes", lb.node_info)
pulumi.export("stats_urls", lb.stats_urls)
pulumi.export("metrics_urls", lb.metrics_urls)
pulumi.export("prometheus_targets", lb.prometheus_targets)  # for Prometheus's file_sd_configs
pulumi.export("frontends", lb.frontends)
pulumi.export("host_keys", lb.host_keys)  # each node's SSH host key: configured, else recorded on first use
pulumi.export("stats_user", lb.stats_user)
pulumi.export("stats_password", lb.stats_password)
if config.mode == "vrrp":  # BGP mode runs no VRRP
    pulumi.export("vrrp_password", lb.vrrp_password)
