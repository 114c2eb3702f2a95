"""The lab's simulated vCenter (halb/lab/vcsim, built by `make engine`): started and stopped with
the lab, serving on the lab's own address (198.18.0.1:443), in memory only.

Its one user's password is the lab's, kept encrypted in the lab's vault; it reaches the simulator
on its stdin, never on a command line or in a file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from halb import PROJECT_DIR
from halb.lab.engine.vault import Vault
from halb.lab.infra.topology import STATE, VAULT, VCENTER, VCENTER_USER

BINARY = PROJECT_DIR / ".engine" / "bin" / "halb-vcsim"
HOME = STATE / "vcenter"
PIDFILE, READY, LOG = HOME / "pid", HOME / "ready", HOME / "log"
VAULT_KEY = "vsphere.password"  # the vault entry: the lab stacks give the same value to `vsphere:password`


def password() -> str:
    return Vault(VAULT).ensure(VAULT_KEY, 20)


def pid() -> int | None:
    try:
        value = int(PIDFILE.read_text())
    except (OSError, ValueError):
        return None
    with contextlib.suppress(ChildProcessError):
        os.waitpid(value, os.WNOHANG)  # reap it if this process started it and it has exited
    try:
        state = open(f"/proc/{value}/stat").read().rsplit(")", 1)[1].split()[0]  # noqa: SIM115
    except (OSError, IndexError):
        return None
    return None if state in ("Z", "X") else value


def start(timeout: float = 60) -> None:
    """Start the simulator with a fresh inventory and wait until it serves."""
    if pid() is not None:
        return
    if not BINARY.exists():
        raise FileNotFoundError(f"{BINARY} is missing: run `make engine` (it builds the lab's simulated vCenter)")
    HOME.mkdir(parents=True, exist_ok=True)
    READY.unlink(missing_ok=True)
    log = LOG.open("ab")
    proc = subprocess.Popen(
        [
            str(BINARY),
            "-listen",
            VCENTER,
            "-user",
            VCENTER_USER,
            "-password-file",
            "/dev/stdin",
            "-ready-file",
            str(READY),
        ],
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(password().encode())
    proc.stdin.close()
    PIDFILE.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while not READY.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop()
            raise RuntimeError(f"the simulated vCenter did not start (see {LOG})")
        time.sleep(0.1)


def stop() -> None:
    value = pid()
    if value is not None:
        os.killpg(value, signal.SIGTERM)  # its own session: only what the lab started
        deadline = time.monotonic() + 10
        while pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
    PIDFILE.unlink(missing_ok=True)
    READY.unlink(missing_ok=True)
