"""The deploy's last step: a local command that runs `python -m halb verify` after both nodes."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pulumi
from pulumi_command import local

from halb import virtualenv
from halb.config import HalbConfig
from halb.plan import service_vips
from halb.verify import Spec


def verify_spec(cfg: HalbConfig, host_keys: dict[str, str]) -> Spec:
    """What `halb verify` checks; `host_keys`: each node's key, configured or recorded on first use."""
    plan = cfg.plan
    return Spec(
        vip=str(plan.vip),
        nodes={n.name: str(plan.address(n.name)) for n in cfg.nodes},
        # Through the primary VIP: the services it carries (`services[].vips`: all when unset).
        services=[
            (s.name, s.port, s.mode + ("+tls" if s.tls is not None else ""))
            for s in cfg.haproxy.services
            if plan.vip in {v.address for v in service_vips(cfg, s)}
        ],
        user=cfg.ssh.user,
        port=cfg.ssh.port,
        key_path=cfg.ssh.private_key_path,
        maintenance=[n.name for n in cfg.nodes if n.maintenance],
        host_keys=host_keys,
        others=[str(v.address) for v in cfg.plan.vips if v.address != plan.vip],
        peers=[str(p.address) for p in cfg.bgp.peers] if cfg.bgp is not None and cfg.mode == "bgp" else [],
    )


@dataclass(frozen=True)
class VerifyArgs:
    config: HalbConfig
    key: pulumi.Output[str] | None  # the inline SSH key (secret), sent on stdin
    host_keys: dict[str, pulumi.Output[str]]  # each node's host key, configured or recorded on first use
    host_ids: list[pulumi.Input[str]]  # a new host replaces the check
    follows: dict[str, str]  # resource name -> script hash of every step it follows
    secrets_digest: pulumi.Output[str] | None  # secret: a changed password runs it again (none in BGP mode)
    after: list[pulumi.Resource]


def verify_command(name: str, args: VerifyArgs, opts: pulumi.ResourceOptions) -> local.Command:
    """Runs again whenever a step it follows or a secret changes: both update it. A new host
    replaces it. Nothing in it depends on the machine or checkout that runs `pulumi up`: the
    interpreter is the project's virtualenv (Pulumi.yaml), relative to the project, where the
    engine runs commands. A single command, not a component: a component would give it a new URN
    (a replacement in every deployed stack's preview) and nothing to group."""
    cfg, key, follows = args.config, args.key, args.follows
    inline_key = cfg.ssh.private_key is not None and key is not None

    def script(host_keys: dict[str, str]) -> str:
        spec = verify_spec(cfg, host_keys)
        lines = [f"# follows {step}: {digest[:16]}" for step, digest in sorted(follows.items())]
        command = f"{virtualenv()}/bin/python -m halb verify --spec {shlex.quote(spec.to_json())}"
        lines.append(command + (" --key-stdin" if inline_key else ""))
        return "\n".join(lines) + "\n"

    return local.Command(
        f"{name}-verify",
        create=pulumi.Output.all(**args.host_keys).apply(script),
        stdin=key if inline_key else None,
        environment={"HALB_SECRETS_DIGEST": args.secrets_digest} if args.secrets_digest is not None else None,
        triggers=args.host_ids,
        logging=local.Logging.STDOUT_AND_STDERR,
        add_previous_output_in_env=False,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=args.after)),
    )
