"""Monitoring: the distribution's Prometheus node exporter on each node, with halb's metrics."""

from __future__ import annotations

from pydantic import Field

from halb.config.base import Model, Port


class Monitoring(Model):
    node_exporter: bool = Field(
        True,
        description="Install the distribution's Prometheus node exporter (`prometheus-node-exporter`) on each "
        "node, with halb's metrics (`halb_*`, see docs/reference/metrics.md) in its textfile collector. It "
        "listens on the node's address, and the host firewall lets in only `haproxy.stats.allowFrom`, as for "
        "the stats port. The stack output `prometheus_targets` lists it for Prometheus's `file_sd_configs`.",
    )
    node_exporter_port: Port = Field(9100, description="The node exporter's port on each node.")
