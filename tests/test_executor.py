"""The mock deployer's executor keeps pulumi-command's rules: replace on triggers, update on other
inputs, nothing on no change, deletes in reverse dependency order, a failing script fails at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from halb.lab.executor import Executor, State, StepFailed, delete_order
from halb.lab.program import SECRET_SIG, Registered
from halb.lab.vault import Vault


class Args:
    """What Pulumi's mocks hand to new_resource."""

    def __init__(self, name: str, inputs: dict[str, Any], typ: str = "command:local:Command") -> None:
        self.typ, self.name, self.inputs = typ, name, inputs
        self.provider, self.resource_id, self.custom = "", "", True


def executor(tmp_path: Path, state: State) -> Executor:
    return Executor(state, Vault(tmp_path / "vault.json", "test"), tmp_path / "key", lambda _: None)


def register(ex: Executor, name: str, inputs: dict[str, Any], deps: list[str] | None = None) -> str:
    ex.resources[name] = Registered("command:local:Command", name, {}, dependencies=[f"urn::{d}" for d in deps or []])
    rid, _ = ex.new_resource(Args(name, inputs))  # type: ignore[arg-type]
    return str(rid)


def test_create_update_replace_and_nothing(tmp_path: Path) -> None:
    log = tmp_path / "log"
    state = State(tmp_path / "state.json")
    cmd = {"create": f"echo create >> {log}", "update": f"echo update >> {log}", "triggers": ["a"]}
    first = register(ex := executor(tmp_path, state), "r", cmd)
    assert [(a.name, a.op) for a in ex.actions] == [("r", "create")]
    same = register(ex := executor(tmp_path, state), "r", cmd)
    assert ex.actions == [] and same == first, "an unchanged resource ran or changed its id"
    register(ex := executor(tmp_path, state), "r", {**cmd, "environment": {"X": "1"}})
    assert [(a.name, a.op) for a in ex.actions] == [("r", "update")]
    replaced = register(ex := executor(tmp_path, state), "r", {**cmd, "triggers": ["b"]})
    assert [(a.name, a.op) for a in ex.actions] == [("r", "replace")] and replaced != first, "fresh id on replace"
    assert log.read_text().split() == ["create", "update", "create"]


def test_deletes_run_in_reverse_dependency_order(tmp_path: Path) -> None:
    log = tmp_path / "log"
    state = State(tmp_path / "state.json")
    ex = executor(tmp_path, state)
    register(ex, "a", {"create": "true", "delete": f"echo a >> {log}"})
    register(ex, "b", {"create": "true", "delete": f"echo b >> {log}"}, deps=["a"])
    register(ex, "c", {"create": "true", "delete": f"echo c >> {log}"}, deps=["b"])
    assert state.resources["c"]["deps"] == ["b"], "the dependency is kept in state"
    executor(tmp_path, state).finish()  # the program declares nothing any more
    assert log.read_text().split() == ["c", "b", "a"]
    assert state.resources == {}


def test_delete_order_is_dependents_first() -> None:
    res: dict[str, dict[str, Any]] = {"x": {"deps": []}, "y": {"deps": ["x"]}, "z": {"deps": ["x", "y"]}}
    assert delete_order(res) == ["z", "y", "x"]


def test_a_script_exiting_255_fails_at_once(tmp_path: Path) -> None:
    count = tmp_path / "count"
    with pytest.raises(StepFailed, match="exit 255"):
        register(executor(tmp_path, State(tmp_path / "s.json")), "r", {"create": f"echo x >> {count}; exit 255"})
    assert count.read_text().split() == ["x"], "the script ran more than once"


def test_secret_inputs_are_kept_as_digests(tmp_path: Path) -> None:
    state = State(tmp_path / "state.json")
    register(
        executor(tmp_path, state), "r", {"create": "cat >/dev/null", "stdin": {SECRET_SIG: "x", "value": "hunter2"}}
    )
    state.save()
    text = state.path.read_text()
    assert "hunter2" not in text and "hmac:" in text, text
