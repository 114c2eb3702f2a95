"""Where the real engine cannot run: Pulumi's mocks run the program, and this executor carries
out its pulumi-command resources as pulumi-command 1.x does, with state kept between runs.

- `triggers` changed: the resource is replaced: the new one is created (fresh id), and the old
  one's `delete` runs after the deployment (before, with delete_before_replace).
- any other input changed: `update` runs (`create` when there is no `update`).
- nothing changed: nothing runs.
- gone from the program: its `delete` runs, in reverse dependency order.
- a failed SSH dial is retried (dialErrorLimit, perDialTimeout); a script that exits non-zero,
  255 included, fails its step at once.

State (JSON) holds inputs with every secret value replaced by a keyed digest, and connections
without their private key: nothing secret is written in plain text.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from halb.lab.nodes import SSH_OPTIONS
from halb.lab.program import SECRET_SIG, Recorder
from halb.lab.vault import Vault
from halb.status import known_hosts_line

COMMAND_TYPES = ("command:remote:Command", "command:local:Command")


class StepFailed(Exception):
    pass


@dataclass
class Action:
    name: str
    op: str  # create, update, replace, delete
    seconds: float


def reveal(value: Any) -> Any:
    """Inputs as the provider sees them: secrets unwrapped."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return reveal(value.get("value"))
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def conceal(value: Any, digest: Callable[[str], str]) -> Any:
    """Inputs as state keeps them: every secret value replaced by its digest."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return {"secret": digest(json.dumps(reveal(value.get("value")), sort_keys=True))}
        return {k: conceal(v, digest) for k, v in value.items()}
    if isinstance(value, list):
        return [conceal(v, digest) for v in value]
    return value


@dataclass
class State:
    path: Path
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> State:
        data = json.loads(path.read_text()) if path.exists() else {}
        return cls(path, data.get("resources", {}))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"resources": self.resources}, indent=1, sort_keys=True))
        tmp.chmod(0o600)
        tmp.rename(self.path)


def delete_order(resources: dict[str, dict[str, Any]]) -> list[str]:
    """Names in an order where each resource comes before everything it depends on."""
    order: list[str] = []
    remaining = dict(resources)
    while remaining:
        ready = [n for n in remaining if not any(n in r.get("deps", []) for m, r in remaining.items() if m != n)]
        if not ready:  # a cycle cannot come from Pulumi; delete the rest as they come
            ready = list(remaining)
        for n in sorted(ready):
            order.append(n)
            del remaining[n]
    return order


class Executor(Recorder):
    def __init__(
        self,
        state: State,
        vault: Vault,
        key_file: Path,
        progress: Callable[[str], None],
        replace: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()
        self.replace = replace  # names to replace whatever changed, as `pulumi up --replace URN` does
        self.previous = dict(state.resources)
        self.state = state
        self.vault = vault
        self.key_file = key_file  # the key that deletes use (state keeps no private key)
        self.progress = progress
        self.actions: list[Action] = []
        self.pending_deletes: dict[str, dict[str, Any]] = {}
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    # ---------------------------------------------------------------- the program's resources

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if args.typ == "random:index/randomPassword:RandomPassword":
            length = int(args.inputs["length"])
            outputs = {**args.inputs, "result": self.vault.ensure(f"random:{args.name}", length)}
            self.record(args, outputs, f"{args.name}-id")
            return f"{args.name}-id", outputs
        if args.typ not in COMMAND_TYPES:
            return super().new_resource(args)
        return self._command(args)

    def _command(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        name, inputs = args.name, reveal(args.inputs)
        kept = conceal(args.inputs, self.vault.digest)
        prev = self.previous.get(name)
        op = "replace" if prev is not None and name in self.replace else self._operation(prev, kept)
        entry = {
            "type": args.typ,
            "id": uuid.uuid4().hex if op in ("create", "replace") or prev is None else prev["id"],
            "inputs": kept,
            "deps": self._deps(name),
            "delete": inputs.get("delete"),
            "connection": {k: v for k, v in (inputs.get("connection") or {}).items() if k != "privateKey"},
            "deleteBeforeReplace": bool(
                self.resources.get(name) and self.resources[name].options.get("deleteBeforeReplace")
            ),
        }
        stdout = stderr = ""
        if op == "replace" and entry["deleteBeforeReplace"] and prev is not None:
            self.run_delete(name, prev)
        if op is not None:
            script = inputs.get("update") if op == "update" and inputs.get("update") else inputs.get("create")
            stdout, stderr = self._timed(name, op, lambda: self.execute(name, args.typ, inputs, script or ""))
        with self.lock:
            self.seen.add(name)
            if op == "replace" and prev is not None and not entry["deleteBeforeReplace"]:
                self.pending_deletes[name] = prev
            self.state.resources[name] = entry
        outputs = {**args.inputs, "stdout": stdout, "stderr": stderr}
        self.record(args, outputs, entry["id"])
        return entry["id"], outputs

    @staticmethod
    def _operation(prev: dict[str, Any] | None, kept: dict[str, Any]) -> str | None:
        if prev is None:
            return "create"
        if prev["inputs"].get("triggers") != kept.get("triggers"):
            return "replace"
        return "update" if prev["inputs"] != kept else None

    def _deps(self, name: str) -> list[str]:
        rec = self.resources.get(name)
        return sorted({self.name_of(u) for u in rec.dependencies}) if rec else []

    def name_of(self, urn: str) -> str:
        return self.urn_names.get(urn, urn.rsplit("::", 1)[-1])

    def _timed(self, name: str, op: str, run: Callable[[], tuple[str, str]]) -> tuple[str, str]:
        start = time.monotonic()
        result = run()
        took = time.monotonic() - start
        with self.lock:
            self.actions.append(Action(name, op, took))
        self.progress(f"{name:<28} {op:<8} {took:5.1f} s")
        return result

    # ---------------------------------------------------------------- deletes

    def finish(self) -> None:
        """After the program: delete replaced resources and those the program no longer declares."""
        gone = {n: r for n, r in self.previous.items() if n not in self.seen}
        doomed = {**gone, **self.pending_deletes}
        for name in delete_order(doomed):
            self.run_delete(name, doomed[name], record_noop=name in gone)
            if name in gone:
                self.state.resources.pop(name, None)

    def run_delete(self, name: str, entry: dict[str, Any], record_noop: bool = True) -> None:
        script = entry.get("delete")
        if script:
            conn = dict(entry.get("connection") or {})
            if entry["type"] == "command:remote:Command":
                conn["privateKey"] = self.key_file.read_text()
            inputs = {"connection": conn}
            self._timed(name, "delete", lambda: self.execute(name, entry["type"], inputs, script))
        elif record_noop:  # no delete declared: the resource only leaves the state
            with self.lock:
                self.actions.append(Action(name, "delete", 0.0))

    # ---------------------------------------------------------------- running commands

    def execute(self, name: str, typ: str, inputs: dict[str, Any], script: str) -> tuple[str, str]:
        stdin = inputs.get("stdin") or ""
        if typ == "command:local:Command":
            p = subprocess.run(["/bin/sh", "-c", script], input=stdin, capture_output=True, text=True, timeout=600)
        else:
            p = ssh_run(inputs["connection"], script, stdin)
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise StepFailed(f"{name}: exit {p.returncode}: {last}")
        return p.stdout, p.stderr


def ssh_run(conn: dict[str, Any], script: str, stdin: str) -> subprocess.CompletedProcess[str]:
    """Dial (retrying failed dials only, as pulumi-command does), then run the script once."""
    with tempfile.TemporaryDirectory(prefix="halb-ssh-") as tmp:
        key = Path(tmp) / "key"
        key.write_text(conn.get("privateKey") or "")
        key.chmod(0o600)
        target = [f"{conn.get('user', 'root')}@{conn['host']}"]
        pinned: list[str] = []
        if conn.get("hostKey"):  # as pulumi-command does with `host_key`: that key or no connection
            known = Path(tmp) / "known_hosts"
            known.write_text(known_hosts_line(conn["host"], int(conn.get("port", 22)), conn["hostKey"]))
            pinned = ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}"]
            pinned += ["-o", "GlobalKnownHostsFile=/dev/null"]
        base = [
            "ssh",
            "-i",
            str(key),
            "-p",
            str(int(conn.get("port", 22))),
            *pinned,  # ssh takes the first value of an option: these win over SSH_OPTIONS
            *SSH_OPTIONS,
            "-o",
            f"ControlPath={tmp}/ctl",
        ]
        dial = [*base, "-o", f"ConnectTimeout={int(conn.get('perDialTimeout', 15))}", "-M", "-N", "-f", *target]
        limit = int(conn.get("dialErrorLimit", 10))
        attempt = 0
        while True:
            attempt += 1
            d = subprocess.run(dial, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
            if d.returncode == 0:
                break
            if limit != -1 and attempt >= limit:
                return subprocess.CompletedProcess(dial, 255, "", f"dial failed {attempt} times: {d.stderr.strip()}")
            time.sleep(1)
        try:
            return subprocess.run([*base, *target, script], input=stdin, capture_output=True, text=True, timeout=900)
        finally:
            subprocess.run([*base, "-O", "exit", *target], capture_output=True, timeout=30, check=False)
