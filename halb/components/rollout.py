"""halb:node:VrrpRollout: the last two phases of every keepalived change, on both nodes.

When a change touches the settings both nodes must share (VRRP password, version, router id,
advert interval), each node's keepalived step has already either left VRRP (the node without
the VIP: `held`) or put the new files in place without loading them (the VIP holder:
`pending`). Then, after both nodes:

    commit (both nodes): the holder loads the new settings; its peer is out of VRRP by now
    rejoin (both nodes): a node that left VRRP comes back, agreeing with the holder

so at no moment do two running nodes disagree, however long either node's steps take. For any
other change both phases do nothing. They re-run whenever either node's keepalived step does.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from halb import commands

PHASES = ("commit", "rejoin")


@dataclass(frozen=True)
class VrrpRolloutArgs:
    user: str  # the SSH user (steps run through sudo unless root)
    connections: dict[str, remote.ConnectionArgs]  # by node name
    host_ids: dict[str, pulumi.Input[str]]
    keepalived_scripts: dict[str, str]  # hash of each node's keepalived step script, by node name
    keepalived_secrets: list[pulumi.Output[str]]  # the keepalived steps' secret stdin
    after: list[pulumi.Resource]  # every node's last step


class VrrpRollout(pulumi.ComponentResource):
    def __init__(self, name: str, args: VrrpRolloutArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("halb:node:VrrpRollout", name, None, opts)
        # Whatever re-runs a keepalived step re-runs these: its script (named in a comment line of
        # theirs) or its secret stdin (a digest of it here, secret too). Both are updates.
        follows = "".join(
            f"# follows halb's keepalived step on {n}: {args.keepalived_scripts[n][:16]}\n"
            for n in sorted(args.keepalived_scripts)
        )
        digest: pulumi.Output[str] = pulumi.Output.all(*args.keepalived_secrets).apply(
            lambda v: commands.sha256("\n".join(map(str, v)))
        )
        secrets: pulumi.Output[str] = pulumi.Output.secret(digest)
        scripts_for = {"commit": commands.commit_script(), "rejoin": commands.rejoin_script()}
        self.steps: dict[str, remote.Command] = {}
        previous: list[pulumi.Resource] = list(args.after)
        for phase in PHASES:
            done: list[pulumi.Resource] = []
            for node in sorted(args.connections):
                script = commands.as_root(follows + scripts_for[phase], args.user)
                key = f"{node}-{phase}"
                self.steps[key] = remote.Command(
                    f"{name}-{key}",
                    connection=args.connections[node],
                    create=script,
                    stdin=secrets,
                    triggers=[args.host_ids[node]],
                    logging=remote.Logging.STDOUT_AND_STDERR,
                    add_previous_output_in_env=False,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=previous),
                )
                done.append(self.steps[key])
            previous = done
        self.done = previous
        self.secret_digest = secrets
        self.register_outputs({"steps": {k: c.id for k, c in self.steps.items()}})
