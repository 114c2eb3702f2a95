"""Read the stack's `halb:*` and `vsphere:*` config through Pulumi and validate it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from halb.config import PROJECT, ConfigError, HalbConfig, load_config
from halb.config.vsphere import provider_problems


@dataclass(frozen=True)
class VsphereCredentials:
    user: str | None
    password: pulumi.Output[str] | None  # always a secret
    server: str | None
    allow_unverified_ssl: bool


def _parse(value: str) -> Any:
    """Pulumi hands structured config over as JSON text and plain strings as they are."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def load_stack_config() -> HalbConfig:
    """Every `halb:*` key, validated; all problems reported before any resource exists."""
    from pulumi.runtime.config import CONFIG, get_config_env, get_config_secret_keys_env, is_config_secret

    everything = {**(get_config_env() or {}), **CONFIG.get()}
    secret = {k for k in everything if is_config_secret(k)} | set(get_config_secret_keys_env())
    prefix = PROJECT + ":"
    raw = {k[len(prefix) :]: _parse(v) for k, v in everything.items() if k.startswith(prefix)}
    vsphere = {k.removeprefix("vsphere:"): v for k, v in everything.items() if k.startswith("vsphere:")}
    tops = {k[len(prefix) :] for k in secret if k.startswith(prefix)}
    extra = provider_problems(raw.get("platform"), vsphere, lambda k: f"vsphere:{k}" in secret)
    try:
        cfg = load_config(raw, refuse_plaintext=True, secret_tops=tops, extra=extra)
    except ConfigError as e:
        raise pulumi.RunError(str(e)) from None
    for warning in certificate_warnings(cfg):  # shown by preview and up; nothing is refused
        pulumi.log.warn(warning)
    return cfg


def certificate_warnings(cfg: HalbConfig) -> list[str]:
    """Certificates that expire in under WARN_DAYS (halb.config.tls)."""
    from halb.config.haproxy import tls_findings
    from halb.config.tls import expiry_warnings, utcnow

    return expiry_warnings(tls_findings(cfg.haproxy)[1], utcnow())


def ssh_private_key(cfg: HalbConfig) -> pulumi.Output[str] | None:
    """The SSH key as a secret: from config, or read from `ssh.privateKeyPath`."""
    ssh = cfg.ssh
    if ssh.private_key is not None and ssh.private_key.value is not None:
        return pulumi.Output.secret(ssh.private_key.value)
    if ssh.private_key_path is not None:
        path = Path(ssh.private_key_path).expanduser()
        try:
            return pulumi.Output.secret(path.read_text())
        except OSError as e:
            raise pulumi.RunError(
                f"halb:ssh.privateKeyPath: cannot read {path} ({e.strerror}); expected a readable private key file"
            ) from None
    return None  # the ssh-agent


def vsphere_credentials() -> VsphereCredentials:
    config = pulumi.Config("vsphere")
    password = config.get_secret("password")
    return VsphereCredentials(
        user=config.get("user"),
        password=password,
        server=config.get("vsphereServer"),
        allow_unverified_ssl=config.get_bool("allowUnverifiedSsl") or False,
    )
