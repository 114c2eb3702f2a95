"""The lab stack through the real Pulumi engine: `python -m halb.lab deploy | preview | refresh | destroy`.

The stack's config is the repository's Pulumi.lab.yaml, plus this deploy's `--set`s, each
node's pinned host key, and the lab's passwords as Pulumi secrets (generated once, kept
encrypted). It is written to the lab's own config file in the lab's state directory, so
`--set` and `--set-secret` last one deploy and no tracked file ever changes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from halb import PROJECT_DIR
from halb.config.paths import get_path, parse_path, parse_value, set_path
from halb.lab.engine.driver import Engine, EngineFailed, Progress, Result
from halb.lab.engine.vault import DEFAULT_PASSPHRASE, Vault
from halb.lab.infra.nodes import host_key
from halb.lab.infra.topology import NODES, STACK_HOME, STATE

__all__ = ["STACK_FILE", "VAULT", "DeployFailed", "Result", "deploy", "destroy", "preview", "refresh"]

STACK_FILE = PROJECT_DIR / "Pulumi.lab.yaml"
VAULT = STATE / "lab-secrets.json"
ENGINE = Engine(STACK_HOME, "lab", os.environ.get("PULUMI_CONFIG_PASSPHRASE", DEFAULT_PASSPHRASE))
CIPHERTEXTS = ENGINE.home / "secret-config.json"  # path -> digest of the value and its ciphertext
LAB_PASSWORDS = {"keepalived.authPassword": 8, "haproxy.stats.password": 24}
DeployFailed = EngineFailed


def split_assignment(text: str) -> tuple[str, str]:
    path, sep, value = text.partition("=")
    if not sep or not path:
        raise ValueError(f"expected PATH=VALUE, e.g. `nodes[0].maintenance=true`; got {text.split('=')[0]!r}...")
    parse_path(path)
    return path, value


def lab_config(
    stack_file: Path, sets: Sequence[str], secret_sets: Sequence[str], vault: Vault
) -> tuple[dict[str, Any], dict[str, str]]:
    """The stack's config map with this deploy's settings, and the secret values by path."""
    doc = yaml.safe_load(stack_file.read_text()) or {}
    config: dict[str, Any] = dict(doc.get("config") or {})
    for text in sets:
        path, value = split_assignment(text)
        config = set_path(config, path, parse_value(value))
    config["halb:nodes"] = pin_host_keys(config.get("halb:nodes") or [])
    secrets = dict(split_assignment(t) for t in secret_sets)
    vrrp3 = (config.get("halb:keepalived") or {}).get("version") == 3
    for path, length in LAB_PASSWORDS.items():
        if path not in secrets and not (vrrp3 and path == "keepalived.authPassword"):
            secrets[path] = vault.ensure(path, length)
    return config, secrets


def pin_host_keys(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each node's `hostKey`, read from the lab machine's disk at its address (as an operator
    reads it from the VM console or the template), unless the stack file sets one."""
    by_address = {h.address: h for h in NODES}
    out = []
    for n in nodes:
        host = by_address.get(str(n.get("address")))
        key = host_key(host) if host is not None else None
        out.append({**n, "hostKey": key} if key and "hostKey" not in n else n)
    return out


def write_config(stack_file: Path = STACK_FILE, sets: Sequence[str] = (), secret_sets: Sequence[str] = ()) -> None:
    """The lab's config file for the next engine run. A secret is encrypted by the engine itself
    (`pulumi config set --secret`, the value on stdin) when it is new; its ciphertext is reused
    while the value stays the same."""
    vault = Vault(VAULT)
    config, secrets = lab_config(stack_file, sets, secret_sets, vault)
    ENGINE.stack()  # created on first use: its salt is in the config file from then on
    salt = (yaml.safe_load(ENGINE.config_file.read_text()) or {})["encryptionsalt"]
    known: dict[str, dict[str, str]] = json.loads(CIPHERTEXTS.read_text()) if CIPHERTEXTS.exists() else {}
    fresh = {}
    for path, value in secrets.items():
        kept = known.get(path)
        if kept and kept["digest"] == vault.digest(value):
            config = set_path(config, path, {"secure": kept["secure"]})
        else:
            fresh[path] = value
    ENGINE.config_file.write_text(yaml.safe_dump({"encryptionsalt": salt, "config": config}, sort_keys=False))
    for path, value in fresh.items():
        ENGINE.cli_run(["config", "set", "--secret", "--path", f"halb:{path}"], stdin=value)
        written = yaml.safe_load(ENGINE.config_file.read_text())["config"]
        known[path] = {"digest": vault.digest(value), "secure": str(get_path(written, path)["secure"])}
    if fresh:
        CIPHERTEXTS.write_text(json.dumps(known, indent=1))


def deploy(
    stack_file: Path = STACK_FILE,
    sets: Sequence[str] = (),
    secret_sets: Sequence[str] = (),
    progress: Progress = print,
    replace: Sequence[str] = (),
) -> Result:
    """`pulumi up`. `replace`: resource names to replace even if unchanged (`--replace`), e.g. to repair drift."""
    write_config(stack_file, sets, secret_sets)
    return ENGINE.up(progress, list(replace))


def preview(
    stack_file: Path = STACK_FILE, sets: Sequence[str] = (), secret_sets: Sequence[str] = (), progress: Progress = print
) -> Result:
    """`pulumi preview --diff`: what a deploy with these settings would do; nothing runs on the nodes."""
    write_config(stack_file, sets, secret_sets)
    return ENGINE.preview(progress)


def refresh(progress: Progress = print, clear_pending_creates: bool = False) -> Result:
    write_config()
    return ENGINE.refresh(progress, clear_pending_creates)


def destroy(progress: Progress = print) -> Result:
    """`pulumi destroy`: every declared delete, in reverse dependency order."""
    write_config()
    return ENGINE.destroy(progress)
