"""The deploy's last step: a local command that runs `python -m halb verify` after both nodes."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pulumi
from pulumi_command import local

from halb import commands
from halb.addresses import plan_addresses
from halb.config import HalbConfig
from halb.verify import Spec

PROJECT = Path(__file__).resolve().parents[2]


def verify_spec(cfg: HalbConfig) -> Spec:
    plan = plan_addresses(cfg)
    return Spec(
        vip=str(plan.vip),
        nodes={n.name: str(plan.nodes[n.name]) for n in cfg.nodes},
        services=[(s.name, s.port, s.mode) for s in cfg.haproxy.services],
        user=cfg.ssh.user,
        port=cfg.ssh.port,
        key_path=cfg.ssh.private_key_path,
        maintenance=[n.name for n in cfg.nodes if n.maintenance],
        host_keys={n.name: n.host_key for n in cfg.nodes if n.host_key},
    )


def verify_command(
    name: str,
    cfg: HalbConfig,
    key: pulumi.Output[str] | None,
    changes: list[pulumi.Input[str]],
    after: list[pulumi.Resource],
    opts: pulumi.ResourceOptions,
) -> local.Command:
    """Runs whenever anything in `changes` does (script hashes, host ids, a secret digest)."""
    inline_key = cfg.ssh.private_key is not None and key is not None
    spec = verify_spec(cfg)
    create = f"{shlex.quote(sys.executable)} -m halb verify --spec {shlex.quote(spec.to_json())}"
    create += " --key-stdin" if inline_key else ""
    digest: pulumi.Output[str] = pulumi.Output.all(*changes).apply(lambda c: commands.sha256("\n".join(map(str, c))))
    secret_digest: pulumi.Output[str] = pulumi.Output.secret(digest)
    return local.Command(
        f"{name}-verify",
        create=create,
        update=create,
        dir=str(PROJECT),
        stdin=key if inline_key else None,
        triggers=[secret_digest],
        logging=local.Logging.STDOUT_AND_STDERR,
        add_previous_output_in_env=False,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=after)),
    )
