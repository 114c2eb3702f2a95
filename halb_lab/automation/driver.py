"""The real Pulumi engine, driven through the Automation API (`pulumi.automation`).

The CLI is an installed `pulumi` when there is one, else the one `make engine` builds into
.engine/bin. Each stack it drives has a home directory of its own: a file backend, a passphrase
secrets provider, the stack's config file, and a Pulumi.yaml that is the project's own with
`main:` pointing back at the checkout. The program and its commands run from the checkout, as
with `pulumi up` there, and no tracked file of the repository ever changes (the CLI writes a
stack's salt into the config file beside Pulumi.yaml, whatever `--config-file` says).

What the engine did comes from its own events: each resource's operation (same, create, update,
replace, delete) and how long it took, in the order the engine finished them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto
from pulumi.automation import events

from halb import PROJECT, PROJECT_DIR, virtualenv

BUILT = PROJECT_DIR / ".engine" / "bin"
Progress = Callable[[str], None]

# The engine's operations as a user reads them: a replacement is one `replace`, whatever its steps.
OPS = {
    "create": "create",
    "update": "update",
    "delete": "delete",
    "same": "same",
    "create-replacement": "replace",
    "refresh": "refresh",
    "read": "read",
}


class EngineMissing(Exception):
    pass


class EngineFailed(Exception):
    pass


@dataclass
class Action:
    name: str  # the resource's name (halb's names are unique in a stack)
    op: str  # same, create, update, replace, delete, refresh
    seconds: float


@dataclass
class Result:
    kind: str  # update, preview, destroy, refresh
    actions: list[Action] = field(default_factory=list)  # every resource, in the order the engine finished them
    changes: dict[str, int] = field(default_factory=dict)  # the engine's own summary: op -> count
    exports: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    first_event_s: float | None = None  # until the engine registered its first resource: CLI, program, plugins
    diff: str = ""  # what `pulumi preview --diff` printed (secrets masked by the engine)
    pending_warning: str = ""  # the engine's warning about operations an interrupted update left

    def ran(self) -> list[tuple[str, str]]:
        """(name, op) of every resource the engine did something to, in order."""
        return [(a.name, a.op) for a in self.actions if a.op != "same"]

    def ops(self) -> dict[str, str]:
        return {a.name: a.op for a in self.actions}


def cli() -> auto.PulumiCommand:
    """An installed Pulumi CLI wins; else the one `make engine` built."""
    installed = shutil.which("pulumi")
    if installed and Path(installed).resolve() != (BUILT / "pulumi").resolve():
        return auto.PulumiCommand(root=str(Path(installed).parent.parent), skip_version_check=True)
    if (BUILT / "pulumi").exists():
        return auto.PulumiCommand(root=str(BUILT.parent), skip_version_check=True)
    raise EngineMissing(
        "no Pulumi CLI: run `make engine` (builds it from Go modules; needs Go 1.26) or install the Pulumi CLI"
    )


@dataclass
class Engine:
    """One stack in a file backend under `home`, with its config file beside it."""

    home: Path  # the stack's own directory: backend/, Pulumi.yaml, Pulumi.<stack>.yaml
    stack_name: str
    passphrase: str
    _stack: auto.Stack | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def config_file(self) -> Path:
        return self.home / f"Pulumi.{self.stack_name}.yaml"

    @property
    def backend(self) -> Path:
        return self.home / "backend"

    @property
    def venv(self) -> Path:
        return PROJECT_DIR / virtualenv()

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.pathsep.join([str(BUILT), str(self.venv / "bin"), os.environ.get("PATH", "")]),
            "PULUMI_BACKEND_URL": f"file://{self.backend}",
            "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",  # nothing to download from here
        }

    def project(self) -> dict[str, Any]:
        """The project's Pulumi.yaml, run from here: the program and its virtualenv in the checkout."""
        project: dict[str, Any] = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
        options = project["runtime"].setdefault("options", {})
        options["virtualenv"] = str(self.venv)
        return {**project, "main": os.path.relpath(PROJECT_DIR, self.home)}

    def stack(self) -> auto.Stack:
        """The stack, created on first use (`stack init` writes its salt into its config file);
        selected once per process while its home is there."""
        if self._stack is not None and self.config_file.exists():
            return self._stack
        self.backend.mkdir(parents=True, exist_ok=True)
        (self.home / "Pulumi.yaml").write_text(yaml.safe_dump(self.project(), sort_keys=False))
        workspace = auto.LocalWorkspace(work_dir=str(self.home), env_vars=self.env(), pulumi_command=cli())
        try:
            self._stack = auto.Stack.select(self.stack_name, workspace)
        except auto.StackNotFoundError:
            self._stack = auto.Stack.create(self.stack_name, workspace)
        return self._stack

    def cli_run(self, args: list[str], stdin: str | None = None) -> None:
        """A CLI command against the stack's config file (secrets go on stdin, never on argv)."""
        cmd = [cli().command, *args, "--stack", self.stack_name]
        p = subprocess.run(
            cmd, cwd=self.home, env={**os.environ, **self.env()}, input=stdin, capture_output=True, text=True
        )
        if p.returncode != 0:
            raise EngineFailed(f"pulumi {args[0]} {args[1] if len(args) > 1 else ''}: {p.stderr.strip()}")

    def deployment(self) -> dict[str, Any]:
        """The stack's state (`pulumi stack export`)."""
        return dict(self.stack().export_stack().deployment or {})

    def resources(self) -> list[dict[str, Any]]:
        return list(self.deployment().get("resources") or [])

    def pending(self) -> list[str]:
        """Operations an interrupted update left in the state: `name (type)`."""
        return [
            f"{op['resource']['urn'].rsplit('::', 1)[-1]} ({op['type']})"
            for op in self.deployment().get("pending_operations") or []
        ]

    def history(self) -> list[dict[str, Any]]:
        """The file backend's own record of each update (newest last)."""
        folder = self.backend / ".pulumi" / "history" / PROJECT / self.stack_name
        files = sorted(folder.glob("*.history.json"), key=lambda p: p.stat().st_mtime)
        return [json.loads(p.read_text()) for p in files]

    # ------------------------------------------------------------------ operations

    def up(self, progress: Progress, replace: list[str] | None = None) -> Result:
        """`pulumi up`. When the engine warns that an earlier update was interrupted (operations
        pending in the state), this update runs the interrupted steps again (halb's steps are
        idempotent) and then the state is repaired as Pulumi documents it: `pulumi refresh --clear-pending-creates`
        drops the pending records, which the engine keeps for creates."""
        st = self.stack()
        urns = self._urns(replace or [])
        result = self._run("update", progress, lambda ev: st.up(replace=urns, on_event=ev))
        if result.pending_warning:
            progress(f"the last update was interrupted: {result.pending_warning}")
            progress("repairing the state: pulumi refresh --clear-pending-creates")
            self.refresh(progress, clear_pending_creates=True)
        return result

    def preview(self, progress: Progress) -> Result:
        st = self.stack()
        lines: list[str] = []
        result = self._run(
            "preview",
            progress,
            lambda ev: st.preview(diff=True, on_event=ev, on_output=lines.append),
        )
        result.diff = "\n".join(lines)
        return result

    def refresh(self, progress: Progress, clear_pending_creates: bool = False) -> Result:
        st = self.stack()
        return self._run(
            "refresh",
            progress,
            lambda ev: st.refresh(on_event=ev, clear_pending_creates=clear_pending_creates or None),
        )

    def destroy(self, progress: Progress) -> Result:
        st = self.stack()
        return self._run("destroy", progress, lambda ev: st.destroy(on_event=ev))

    def _urns(self, names: list[str]) -> list[str]:
        if not names:
            return []
        by_name = {r["urn"].rsplit("::", 1)[-1]: r["urn"] for r in self.resources()}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise EngineFailed(f"--replace {', '.join(unknown)}: no such resource in the stack")
        return [by_name[n] for n in names]

    def _run(
        self,
        kind: str,
        progress: Progress,
        call: Callable[[Callable[[events.EngineEvent], None]], Any],
        retried: bool = False,
    ) -> Result:
        watcher = _Watcher(progress)
        start = time.monotonic()
        try:
            answer = call(watcher.on_event)
        except auto.CommandError as e:
            if retried or not self._release_stale_lock(str(e), progress):
                raise EngineFailed(watcher.failure() or _last_lines(str(e))) from None
            return self._run(kind, progress, call, retried=True)  # once: a lock left again is not stale
        result = Result(kind, watcher.actions, seconds=round(time.monotonic() - start, 2))
        result.pending_warning = watcher.pending
        if watcher.first is not None:
            result.first_event_s = round(watcher.first - start, 2)
        summary = getattr(answer, "summary", None)
        changes = getattr(summary, "resource_changes", None) or getattr(answer, "change_summary", None) or {}
        result.changes = {str(getattr(k, "value", k)): int(v) for k, v in changes.items()}
        outputs = getattr(answer, "outputs", None) or {}
        result.exports = {k: v.value for k, v in outputs.items()}
        return result

    def _release_stale_lock(self, error: str, progress: Progress) -> bool:
        """A lock left by a pulumi process of this machine that is gone (killed mid-update) is
        released with `pulumi cancel`, as the CLI's message says; a live owner's lock never is."""
        pids = stale_lock_pids(error)
        if not pids:
            return False
        progress(f"the stack is locked by a pulumi that is gone (pid {', '.join(map(str, pids))}): pulumi cancel")
        self.stack().cancel()
        return True


def end_session(sid: int) -> list[int]:
    """SIGKILL what is left of session `sid`, one this lab started (`start_new_session`: the
    session's id is its first process's); the ids it ended. The engine starts each plugin in a
    process group of its own, so a signal to the engine's group misses them, and an engine stopped
    at once (a second Ctrl-C) leaves them running, still in its session."""
    ended = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            session = int(stat.read_text().rsplit(")", 1)[1].split()[3])  # after ')': state ppid pgrp session
            if session == sid:
                os.kill(int(stat.parent.name), signal.SIGKILL)
                ended.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return ended


LOCK_OWNER = re.compile(r"created by [^@\s]+@(\S+) \(pid (\d+)\)")


def stale_lock_pids(error: str) -> list[int]:
    """The owners' pids when an error says the stack is locked and every lock's owner is a process
    of this machine that no longer runs; else []."""
    owners = LOCK_OWNER.findall(error) if "currently locked" in error else []
    if not owners or any(host != socket.gethostname() or _alive(int(pid)) for host, pid in owners):
        return []
    return [int(pid) for _, pid in owners]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Watcher:
    """Collects the engine's per-resource events and failures, and reports each finished step."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.started: dict[str, float] = {}
        self.actions: list[Action] = []
        self.errors: list[str] = []
        self.pending = ""
        self.first: float | None = None

    def on_event(self, event: events.EngineEvent) -> None:
        if event.resource_pre_event is not None:
            self.first = self.first or time.monotonic()
            self.started.setdefault(event.resource_pre_event.metadata.urn, time.monotonic())
        elif event.res_outputs_event is not None:
            self._finished(event.res_outputs_event.metadata)
        elif event.diagnostic_event is not None and "pending operations" in event.diagnostic_event.message:
            self.pending = event.diagnostic_event.message.strip().splitlines()[0]
        elif event.diagnostic_event is not None and event.diagnostic_event.severity == "error":
            d = event.diagnostic_event
            name = (d.urn or "").rsplit("::", 1)[-1]
            self.errors.append(f"{name}: {_last_lines(d.message)}" if name else _last_lines(d.message))

    def _finished(self, meta: events.StepEventMetadata) -> None:
        op = OPS.get(str(getattr(meta.op, "value", meta.op)))
        if op is None or meta.type.startswith(("pulumi:", PROJECT + ":")):
            return  # the stack, providers and halb's components; a replacement's other halves
        name = meta.urn.rsplit("::", 1)[-1]
        took = time.monotonic() - self.started.get(meta.urn, time.monotonic())
        self.actions.append(Action(name, op, round(took, 2)))
        if op != "same":
            self.progress(f"{name:<28} {op:<8} {took:5.1f} s")

    def failure(self) -> str:
        return "\n".join(dict.fromkeys(self.errors))  # each message once, in order


def _last_lines(message: str, keep: int = 6) -> str:
    """A failed step's message without the command text the provider echoes: the lines halb's
    scripts print (`halb: ...`) and the last few others."""
    lines = [line.rstrip() for line in message.strip().splitlines() if line.strip()]
    said = [line.strip() for line in lines if line.strip().startswith("halb:")]
    tail = [line.strip() for line in lines[-keep:] if not line.strip().startswith("halb:")]
    return "\n".join(dict.fromkeys(said + tail))
