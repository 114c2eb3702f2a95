"""Pulumi mocks that *execute* pulumi-command resources, as the provider would.

Pulumi calls `new_resource` in dependency order, so the commands run in the order a real
`pulumi up` runs them. Remote commands run over SSH with the connection and stdin the
program declared; local commands run under /bin/sh. Given the previous run's inputs, a
resource whose triggers changed is re-created, one whose other inputs changed runs its
`update`, and an unchanged one runs nothing: exactly Pulumi's rule for these resources.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from typing import Any

import pulumi

from halb.lab.nodes import SSH_OPTIONS
from pulumi_harness import SECRET_SIG, Recorder

COMMAND_TYPES = ("command:remote:Command", "command:local:Command")


def reveal(value: Any) -> Any:
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return reveal(value.get("value"))
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


class CommandFailed(Exception):
    pass


class Executor(Recorder):
    def __init__(self, previous: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.previous = previous or {}
        self.state: dict[str, dict[str, Any]] = {}
        self.executed: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        rid, outputs = super().new_resource(args)
        if args.typ not in COMMAND_TYPES:
            return rid, outputs
        inputs = reveal(args.inputs)
        prev = self.previous.get(args.name)
        if prev is None or prev.get("triggers") != inputs.get("triggers"):
            action: str | None = "create"
        elif prev != inputs:
            action = "update" if inputs.get("update") else "create"
        else:
            action = None
        if action:
            stdout, stderr = self._run(args.name, args.typ, inputs, inputs[action])
            outputs.update(stdout=stdout, stderr=stderr)
            with self.lock:
                self.executed.append((args.name, action))
        with self.lock:
            self.state[args.name] = inputs
        return rid, outputs

    def _run(self, name: str, typ: str, inputs: dict[str, Any], script: str) -> tuple[str, str]:
        stdin = inputs.get("stdin") or ""
        if typ == "command:local:Command":
            p = subprocess.run(["/bin/sh", "-c", script], input=stdin, capture_output=True, text=True, timeout=300)
        else:
            conn = inputs["connection"]
            with tempfile.NamedTemporaryFile("w", delete=False) as key:
                key.write(conn["privateKey"])
            os.chmod(key.name, 0o600)
            attempts = max(1, int(conn.get("dialErrorLimit", 10)))
            try:
                for attempt in range(attempts):
                    p = subprocess.run(
                        [
                            "ssh", "-i", key.name, "-p", str(int(conn.get("port", 22))), *SSH_OPTIONS,
                            "-o", f"ConnectTimeout={int(conn.get('perDialTimeout', 15))}",
                            f"{conn.get('user', 'root')}@{conn['host']}", script,
                        ],
                        input=stdin, capture_output=True, text=True, timeout=600,
                    )  # fmt: skip
                    # 255 with no output is ssh failing to connect: the provider redials (dialErrorLimit).
                    if not (p.returncode == 255 and not p.stdout) or attempt == attempts - 1:
                        break
                    time.sleep(1)
            finally:
                os.unlink(key.name)
        if p.returncode != 0:
            raise CommandFailed(f"{name}: exit {p.returncode}: {p.stderr.strip()[-2000:]}")
        return p.stdout, p.stderr
