"""Per-node provisioning: one stateful remote command per step, in order.

wait -> teardown -> packages -> vrid -> system -> (tls ->) haproxy -> keepalived -> services

`vrid` is the VRID pre-flight: it listens on the node's interface for other routers that use one
of the stack's VRIDs, and stops the deploy, before any file is written, when one does.

`teardown` does nothing when created; its delete (on `pulumi destroy`, a removed or renamed
node, a new host identity) stops keepalived, then haproxy, and removes halb's files. Its only
trigger is the host's identity, so config changes never run it.

Each step's only trigger is the node's identity (VM id or address record, and its
`generation`): a new host replaces every step, so it is provisioned from scratch. A config
change changes a step's script, which the engine runs again as an update (`~` in the preview,
with the changed lines in `--diff`), so a change re-runs only the steps it touches. Secret
file contents travel on stdin, marked secret, and steps that carry them log nothing and keep
stdout/stderr secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pulumi
from pulumi_command import remote

from halb import commands
from halb.config import HalbConfig
from halb.render import NodeFile, Secrets, certificate_files, certificate_texts, node_files, secret_files

STEPS = ("wait", "teardown", "packages", "vrid", "system", "haproxy", "keepalived", "services")
TLS_STEPS = ("wait", "teardown", "packages", "vrid", "system", "tls", "haproxy", "keepalived", "services")
BGP_STEPS = ("wait", "teardown", "packages", "system", "haproxy", "frr", "services")  # no VRRP


def steps_of(cfg: HalbConfig) -> tuple[str, ...]:
    """The steps of a node: `tls` (the certificates) only when a service ends TLS, before haproxy's."""
    steps: tuple[str, ...] = BGP_STEPS if cfg.mode == "bgp" else STEPS
    if certificate_files(cfg):
        steps = (*steps[: steps.index("haproxy")], "tls", *steps[steps.index("haproxy") :])
    return steps


@dataclass(frozen=True)
class NodeProvisioningArgs:
    config: HalbConfig
    node: str
    host_id: pulumi.Input[str]  # VM id, or the address record of an existing host
    # SSH to the node, checking the given host key (None: no check). The steps check the node's
    # `hostKey` when set, else the key the `wait` step recorded on first use. The teardown sends
    # no secret and no config: it checks none, so a rebuilt host (new keys) can still be torn
    # down and provisioned again.
    connect: Callable[[pulumi.Input[str] | None], remote.ConnectionArgs]
    vrrp_password: pulumi.Output[str]  # secret
    stats_password: pulumi.Output[str]  # secret
    reserved: list[pulumi.Resource] = field(default_factory=list)  # address records: checked before any step
    after: list[pulumi.Resource] = field(default_factory=list)  # steps that must finish first (the peer's)


def _secret_file(cfg: HalbConfig, node: str, secrets: pulumi.Output[list[str]], path: str) -> pulumi.Output[str]:
    """The content of one secret file, rendered inside apply (pure) and kept secret."""

    def render(values: list[str]) -> str:
        files = secret_files(cfg, node, Secrets(vrrp_password=values[0], stats_password=values[1], reveal_bgp=True))
        return next(f.content for f in files if f.path == path)

    return pulumi.Output.secret(secrets.apply(render))


def _scripts(cfg: HalbConfig, node: str, owner: str, steps: tuple[str, ...]) -> dict[str, str]:
    """Each step's script (pure): what it installs, validates and reloads on `node`."""
    files: list[NodeFile] = node_files(cfg, node)
    placeholders = secret_files(cfg, node, Secrets("x", "x"))  # which secret files exist, not their content
    scripts: dict[str, Callable[[], str]] = {
        "wait": commands.wait_script,
        "teardown": lambda: commands.owner_script(owner),
        "packages": lambda: commands.packages_script(cfg),
        "vrid": lambda: commands.vrid_script(files, cfg.keepalived.vrid_probe_seconds),
        "system": lambda: commands.system_script(cfg, node, files),
        "tls": lambda: commands.tls_script(placeholders),
        "haproxy": lambda: commands.haproxy_script(files + placeholders, cfg, node),
        "keepalived": lambda: commands.keepalived_script(files + placeholders, str(cfg.plan.vip)),
        "frr": lambda: commands.frr_script(cfg, node, files + placeholders),
        "services": lambda: commands.services_script(cfg),
    }
    return {step: scripts[step]() for step in steps}


def _secret_stdin(
    cfg: HalbConfig, node: str, args: NodeProvisioningArgs, steps: tuple[str, ...]
) -> dict[str, pulumi.Output[str]]:
    """The secret content each step reads on stdin, kept secret: the password files, and the
    certificates with their keys (read from config or files here)."""
    secrets = pulumi.Output.all(args.vrrp_password, args.stats_password)
    stdin: dict[str, pulumi.Output[str]] = {
        f.step: _secret_file(cfg, node, secrets, f.path)
        for f in secret_files(cfg, node, Secrets("x", "x"))
        if f.step != "tls"
    }
    if "tls" in steps:
        stdin["tls"] = pulumi.Output.secret(commands.certificate_payload(certificate_texts(cfg)))
    return stdin


class NodeProvisioning(pulumi.ComponentResource):
    host_key: pulumi.Output[str]  # configured (`nodes[].hostKey`), else recorded by `wait` on first use
    connection: remote.ConnectionArgs  # checking `host_key`: every step after `wait` but the teardown

    def __init__(self, name: str, args: NodeProvisioningArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("halb:node:NodeProvisioning", name, None, opts)
        cfg, node = args.config, args.node
        user = cfg.ssh.user
        owner = f"{name}#{cfg.node(node).generation}"  # the node's name and generation
        steps = steps_of(cfg)
        scripts = _scripts(cfg, node, owner, steps)
        stdin = _secret_stdin(cfg, node, args, steps)

        configured = cfg.node(node).host_key

        def connection(step: str) -> remote.ConnectionArgs:
            """`wait` checks the configured key (none on first use), `teardown` none, the rest `host_key`."""
            if step in ("wait", "teardown"):
                return args.connect(configured if step == "wait" else None)
            return self.connection

        self.steps: dict[str, remote.Command] = {}
        previous: list[pulumi.Resource] = list(args.reserved)
        for step in steps:
            script = commands.as_root(scripts[step], user)
            secret_step = step in stdin
            depends = previous + (args.after if step == "system" else [])
            self.steps[step] = remote.Command(
                f"{name}-{step}",
                connection=connection(step),
                create=script,  # a changed script runs again as an update (`~` in the preview)
                delete=commands.as_root(commands.teardown_script(node, owner, cfg.mode == "bgp"), user)
                if step == "teardown"
                else commands.as_root(commands.certificates_removal(), user)
                if step == "tls"
                else None,
                stdin=stdin.get(step),  # a changed password changes only this secret: an update too
                triggers=[args.host_id],  # only a new host identity replaces a step
                logging=remote.Logging.NONE if secret_step else remote.Logging.STDOUT_AND_STDERR,
                add_previous_output_in_env=False,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=depends,
                    additional_secret_outputs=["stdout", "stderr"] if secret_step else None,
                    # A new host identity tears the old one down before provisioning it again.
                    delete_before_replace=step == "teardown",
                ),
            )
            previous = [self.steps[step]]
            if step == "wait":  # the key every later step checks
                self.host_key = (
                    pulumi.Output.from_input(configured)
                    if configured
                    else self.steps["wait"].stdout.apply(lambda out: commands.recorded_host_key(node, out))
                )
                self.connection = args.connect(self.host_key)

        self.host_id = args.host_id
        self.done = self.steps["services"]
        self.script_hashes = {step: commands.sha256(commands.as_root(scripts[step], user)) for step in steps}
        self.secret_stdin = stdin
        self.register_outputs({"steps": {s: c.id for s, c in self.steps.items()}})
