"""How halb reaches the nodes over SSH."""

from __future__ import annotations

from pydantic import Field

from halb.config.base import Model, Port, SecretValue, patterned
from halb.config.errors import Problems


class Ssh(Model):
    user: str = patterned(
        r"^[a-z_][a-z0-9_-]{0,31}$",
        "a POSIX user name: a lowercase letter or '_', then up to 31 lowercase letters, digits, '_' or '-'",
        "deploy",
        default="root",
        description="SSH user on the nodes (non-root users need passwordless sudo).",
    )
    port: Port = Field(22, description="SSH port on the nodes.")
    private_key: SecretValue | None = Field(
        None,
        description="Private key text (secret: `pulumi config set --secret --path halb:ssh.privateKey < key`).",
    )
    private_key_path: str | None = Field(
        None,
        description="Path of a private key file on the machine running Pulumi (read at deploy time).",
        examples=["~/.ssh/id_ed25519"],
    )
    agent: bool = Field(False, description="Use the running ssh-agent (SSH_AUTH_SOCK) instead of a key.")
    dial_error_limit: int = Field(
        60,
        ge=-1,
        description="SSH connection attempts before a step fails (-1: unlimited); VMs reboot while customized.",
    )


def ssh_problems(ssh: Ssh) -> Problems:
    out = Problems()
    if ssh.private_key is None and ssh.private_key_path is None and not ssh.agent:
        out.add(
            "ssh",
            "no privateKey, no privateKeyPath and agent: false",
            "`privateKey` (secret), `privateKeyPath` or `agent: true`, e.g. "
            "`pulumi config set --secret --path halb:ssh.privateKey < ~/.ssh/id_ed25519`",
        )
    return out
