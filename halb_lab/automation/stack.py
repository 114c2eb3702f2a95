"""The lab's stacks through the real Pulumi engine: `python -m halb_lab [--stack NAME] deploy | preview | refresh | destroy`.

A lab stack's config is the repository's Pulumi.<stack>.yaml (`lab`: the pair on the lab's
hosts; `lab-vsphere`: the same pair as VMs of the lab's simulated vCenter), plus this deploy's
`--set`s, each node's pinned host key, and the lab's passwords as Pulumi secrets (generated
once, kept encrypted; on vSphere also the simulated vCenter's). It is written to the stack's own
config file in the lab's state directory, so `--set` and `--set-secret` last one deploy and no
tracked file ever changes. Every lab stack shares one file backend.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from halb import PROJECT_DIR
from halb.config.keepalived import PROFILES
from halb.config.paths import get_path, parse_path, parse_value, set_path
from halb.config.secrets import CHARSETS
from halb_lab.automation.driver import Engine, EngineFailed, Progress, Result
from halb_lab.automation.vault import Vault, lab_passphrase
from halb_lab.infra import vcenter
from halb_lab.infra.nodes import host_key
from halb_lab.infra.topology import NODES, SPARE_NODES, STACK_HOME, VAULT

__all__ = ["STACK_FILE", "VAULT", "DeployFailed", "Result", "deploy", "destroy", "engine", "preview", "refresh"]

STACK_FILE = PROJECT_DIR / "Pulumi.lab.yaml"  # the default lab stack's
_ENGINES: dict[str, Engine] = {}
# The passwords the program generates when a stack sets none, as it generates them (a peer's BGP password is never generated)
LAB_PASSWORDS = {path: charset.generated for path, charset in CHARSETS.items() if "[]" not in path}
DeployFailed = EngineFailed


def engine(stack: str = "lab") -> Engine:
    """The lab stack `stack` in the lab's file backend (one Engine per stack and process)."""
    if stack not in _ENGINES:
        _ENGINES[stack] = Engine(STACK_HOME, stack, lab_passphrase())
    return _ENGINES[stack]


ENGINE = engine("lab")


def ciphertexts(stack: str) -> Path:
    """The stack's secrets as the engine encrypted them: path -> digest of the value and its ciphertext."""
    return STACK_HOME / f"secret-config.{stack}.json"


def stack_file_of(stack: str) -> Path:
    return PROJECT_DIR / f"Pulumi.{stack}.yaml"


def _key(path: str) -> tuple[str, str]:
    """`vsphere:password` -> (vsphere, password); a path without a namespace is halb's."""
    namespace, sep, rest = path.partition(":")
    return (namespace, rest) if sep else ("halb", path)


def split_assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected PATH=VALUE, e.g. `nodes[0].maintenance=true`; got {text.split('=')[0]!r}...")
    parse_path(_key(key)[1])
    return key, value


def lab_config(
    stack_file: Path, sets: Sequence[str], secret_sets: Sequence[str], vault: Vault
) -> tuple[dict[str, Any], dict[str, str]]:
    """The stack's config map with this deploy's settings, and the secret values by key
    (`keepalived.authPassword` for halb's, `vsphere:password` for the provider's)."""
    doc = yaml.safe_load(stack_file.read_text()) or {}
    config: dict[str, Any] = dict(doc.get("config") or {})
    for text in sets:
        key, value = split_assignment(text)
        namespace, path = _key(key)
        config = set_path(config, path, parse_value(value), namespace=namespace)
    config["halb:nodes"] = pin_host_keys(config.get("halb:nodes") or [])
    secrets = dict(split_assignment(t) for t in secret_sets)
    keepalived = config.get("halb:keepalived") or {}
    vrrp3 = {**PROFILES.get(str(keepalived.get("profile")), {}), **keepalived}.get(
        "version"
    ) == 3  # a profile may imply it
    for path, length in LAB_PASSWORDS.items():
        no_vrrp_password = vrrp3 or config.get("halb:mode") == "bgp"
        if path not in secrets and not (no_vrrp_password and path == "keepalived.authPassword"):
            secrets[path] = vault.ensure(path, length)
    if config.get("halb:platform") == "vsphere" and "vsphere:password" not in config:
        secrets.setdefault("vsphere:password", vault.ensure(vcenter.VAULT_KEY, 20))  # the simulator's
    return config, secrets


def pin_host_keys(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each node's `hostKey`, read from the lab machine's disk at its address (as an operator
    reads it from the VM console or the template), unless the stack file sets one."""
    by_address = {h.address: h for h in [*NODES, *SPARE_NODES]}
    out = []
    for n in nodes:
        host = by_address.get(str(n.get("address")))
        key = host_key(host) if host is not None else None
        out.append({**n, "hostKey": key} if key and "hostKey" not in n else n)
    return out


def write_config(
    stack_file: Path | None = None, sets: Sequence[str] = (), secret_sets: Sequence[str] = (), stack: str = "lab"
) -> None:
    """The stack's config file for the next engine run. A secret is encrypted by the engine itself
    (`pulumi config set --secret`, the value on stdin) when it is new; its ciphertext is reused
    while the value stays the same."""
    vault = Vault(VAULT)
    config, secrets = lab_config(stack_file or stack_file_of(stack), sets, secret_sets, vault)
    eng = engine(stack)
    eng.stack()  # created on first use: its salt is in the config file from then on
    salt = (yaml.safe_load(eng.config_file.read_text()) or {})["encryptionsalt"]
    kept_file = ciphertexts(stack)
    known: dict[str, dict[str, str]] = json.loads(kept_file.read_text()) if kept_file.exists() else {}
    fresh = {}
    for key, value in secrets.items():
        kept = known.get(key)
        if kept and kept["digest"] == vault.digest(value):
            config = set_path(config, _key(key)[1], {"secure": kept["secure"]}, namespace=_key(key)[0])
        else:
            fresh[key] = value
    eng.config_file.write_text(yaml.safe_dump({"encryptionsalt": salt, "config": config}, sort_keys=False))
    for key, value in fresh.items():
        namespace, path = _key(key)
        eng.cli_run(["config", "set", "--secret", "--path", f"{namespace}:{path}"], stdin=value)
        written = yaml.safe_load(eng.config_file.read_text())["config"]
        secure = get_path(written, path, namespace=namespace)["secure"]
        known[key] = {"digest": vault.digest(value), "secure": str(secure)}
    if fresh:
        kept_file.write_text(json.dumps(known, indent=1))


def deploy(
    stack_file: Path | None = None,
    sets: Sequence[str] = (),
    secret_sets: Sequence[str] = (),
    progress: Progress = print,
    replace: Sequence[str] = (),
    stack: str = "lab",
) -> Result:
    """`pulumi up`. `replace`: resource names to replace even if unchanged (`--replace`), e.g. to repair drift."""
    write_config(stack_file, sets, secret_sets, stack)
    return engine(stack).up(progress, list(replace))


def preview(
    stack_file: Path | None = None,
    sets: Sequence[str] = (),
    secret_sets: Sequence[str] = (),
    progress: Progress = print,
    stack: str = "lab",
) -> Result:
    """`pulumi preview --diff`: what a deploy with these settings would do; nothing runs on the nodes."""
    write_config(stack_file, sets, secret_sets, stack)
    return engine(stack).preview(progress)


def refresh(
    progress: Progress = print,
    clear_pending_creates: bool = False,
    stack: str = "lab",
    stack_file: Path | None = None,
    sets: Sequence[str] = (),
) -> Result:
    write_config(stack_file, sets, stack=stack)
    return engine(stack).refresh(progress, clear_pending_creates)


def destroy(
    progress: Progress = print, stack: str = "lab", stack_file: Path | None = None, sets: Sequence[str] = ()
) -> Result:
    """`pulumi destroy`: every declared delete, in reverse dependency order."""
    write_config(stack_file, sets, stack=stack)
    return engine(stack).destroy(progress)
