"""Deploy the lab stack and destroy it: `python -m halb.lab deploy | destroy`.

With the real engine this is a thin wrapper around `pulumi config set --path` and `pulumi up`.
Where the engine cannot run, the program runs under Pulumi's mocks and halb.lab.executor
carries out its commands, with state in the lab's state directory.

The lab sets its own VRRP and stats passwords, generated once and kept encrypted, so it never
needs pulumi-random. `--set` and `--set-secret` last for one deploy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from halb.lab import engine as real
from halb.lab.executor import Action, Executor, State, StepFailed
from halb.lab.nodes import host_key
from halb.lab.program import PROJECT_DIR, Run, run_main
from halb.lab.settings import parse_path, parse_value, set_path
from halb.lab.topology import NODES, SSH_KEY, STATE
from halb.lab.vault import Vault
from halb.render import Secrets

STACK_FILE = PROJECT_DIR / "Pulumi.lab.yaml"
MOCK_STATE = STATE / "mock-engine" / "lab.json"
VAULT = STATE / "lab-secrets.json"
LAB_PASSWORDS = {"keepalived.authPassword": 8, "haproxy.stats.password": 24}
Progress = Callable[[str], None]


class DeployFailed(Exception):
    pass


@dataclass
class Result:
    engine: str  # "pulumi" or "mocks"
    actions: list[Action] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)

    def ran(self) -> list[tuple[str, str]]:
        return [(a.name, a.op) for a in self.actions]


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


def lab_secrets() -> Secrets:
    """The passwords the lab deploys (kept encrypted in the lab's state)."""
    vault = Vault(VAULT)
    return Secrets(
        vrrp_password=vault.get("keepalived.authPassword") or "",
        stats_password=vault.get("haproxy.stats.password") or "",
    )


def deploy(
    stack_file: Path = STACK_FILE,
    sets: Sequence[str] = (),
    secret_sets: Sequence[str] = (),
    progress: Progress = print,
    use_engine: bool = True,
    replace: Sequence[str] = (),
) -> Result:
    """`replace`: resource names to replace even if unchanged (`pulumi up --replace`), e.g. to repair drift."""
    vault = Vault(VAULT)
    config, secrets = lab_config(stack_file, sets, secret_sets, vault)
    engine, why = real.find() if use_engine else (None, "mocks requested")
    if engine is not None:
        return _deploy_with_engine(engine, config, secrets, progress, replace)
    progress(f"the real engine cannot run here ({why}); running the program under Pulumi's mocks")
    for path, value in secrets.items():
        config = set_path(config, path, value)
    flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    secret_keys = sorted({f"halb:{parse_path(p)[0]}" for p in secrets} | {"halb:ssh"})
    state = State.load(MOCK_STATE)
    executor = Executor(state, vault, SSH_KEY, progress, frozenset(replace))
    unknown = set(replace) - set(state.resources)
    if unknown:
        raise DeployFailed(f"--replace {', '.join(sorted(unknown))}: no such resource in the lab's state")
    try:
        run: Run = run_main(flat, secret_keys, stack="lab", recorder=executor)
        executor.finish()
    except Exception as e:  # a failed step, or a config error before any resource
        raise DeployFailed(_reason(e)) from None
    finally:
        state.save()
    return Result("mocks", executor.actions, run.exports)


def destroy(progress: Progress = print, use_engine: bool = True) -> Result:
    engine, _ = real.find() if use_engine else (None, "mocks requested")
    if engine is not None:
        if engine.run("destroy", "--yes", config_file=real.WORKDIR / "Pulumi.lab.yaml") != 0:
            raise DeployFailed("pulumi destroy failed (see its output above)")
        return Result("pulumi")
    state = State.load(MOCK_STATE)
    executor = Executor(state, Vault(VAULT), SSH_KEY, progress)
    try:
        executor.finish()  # the program declares nothing: every resource in state is deleted
    except StepFailed as e:
        raise DeployFailed(str(e)) from None
    finally:
        state.save()
    return Result("mocks", executor.actions)


def _reason(e: BaseException) -> str:
    """The first line that says what failed; a step's error never carries its script or stdin."""
    seen: list[BaseException] = []
    while e is not None and e not in seen:
        seen.append(e)
        if isinstance(e, StepFailed):
            return str(e)
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    text = str(seen[0]).strip()
    return text.splitlines()[0] if "config error" not in text else text


def _deploy_with_engine(
    engine: real.Engine, config: dict[str, Any], secrets: dict[str, str], progress: Progress, replace: Sequence[str]
) -> Result:
    """`pulumi config set --path` each key on a copy of the stack file, then `pulumi up --yes`."""
    work = real.WORKDIR / "Pulumi.lab.yaml"
    work.parent.mkdir(parents=True, exist_ok=True)
    salt = (yaml.safe_load(work.read_text()) or {}).get("encryptionsalt") if work.exists() else None
    work.write_text(yaml.safe_dump({"encryptionsalt": salt} if salt else {}))
    engine.run("stack", "select", "--create", "--secrets-provider", "passphrase", config_file=work)
    for key, value in config.items():
        namespace, _, name = key.partition(":")
        flag = ["--json"] if not isinstance(value, str) else []
        text = json.dumps(value) if not isinstance(value, str) else value
        engine.run("config", "set", *flag, f"{namespace}:{name}", text, config_file=work)
    for path, value in secrets.items():
        engine.run("config", "set", "--secret", "--path", f"halb:{path}", config_file=work, stdin=value)
    progress("pulumi up --stack lab")
    targets = [f"--replace={engine.urn(name)}" for name in replace]
    if engine.run("up", "--yes", "--diff", *targets, config_file=work) != 0:
        raise DeployFailed("pulumi up failed (see its output above)")
    return Result("pulumi")
