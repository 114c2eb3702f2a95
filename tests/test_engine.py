"""halb_lab.automation's pure parts: reading the engine's messages (no engine needed)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT
from halb_lab.automation.driver import _last_lines, end_session, stale_lock_pids


def locked(host: str, pid: int) -> str:
    return (
        "code: 1\nstderr: error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) "
        "to end or delete the lock file with `pulumi cancel`.\nfile:///x/.pulumi/locks/organization/halb_lab/a.json: "
        f"created by root@{host} (pid {pid}) at 2026-11-28T04:24:14Z"
    )


def a_finished_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_a_lock_whose_owner_is_gone_is_stale() -> None:
    pid = a_finished_pid()
    assert stale_lock_pids(locked(socket.gethostname(), pid)) == [pid], "a lock of a process that ended"


def test_a_lock_of_a_live_process_or_another_host_is_never_released() -> None:
    assert stale_lock_pids(locked(socket.gethostname(), os.getpid())) == [], "the owner still runs"
    assert stale_lock_pids(locked("another-host", a_finished_pid())) == [], "another machine's pulumi"
    assert stale_lock_pids("error: preview failed") == [], "not a lock error"


def test_a_failed_step_reads_as_halbs_own_lines_without_the_echoed_command() -> None:
    message = (
        'error: Process exited with status 1: running "halb_script=$(mktemp) || exit 1\\ncat > ...":\n'
        "halb: haproxy -c -dW rejected the new haproxy.cfg; the running config is untouched:\n"
        "[ALERT] parsing [haproxy.cfg:40]: unknown keyword 'balance no-such'\n"
    )
    text = _last_lines(message)
    assert text.splitlines()[0].startswith("halb: haproxy -c -dW rejected"), text
    assert "unknown keyword" in text, text


def test_build_engine_stops_with_one_message_when_neither_a_cli_nor_go_is_there(tmp_path: Path) -> None:
    """`make engine` (and so `make up`) never falls back to an imitation: it says what to install."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no Go (/usr/local/go/bin), no pulumi
    assert shutil.which("go", path=env["PATH"]) is None and shutil.which("pulumi", path=env["PATH"]) is None
    p = subprocess.run(["sh", str(ROOT / "scripts" / "build-engine")], env=env, capture_output=True, text=True)
    assert p.returncode == 1, p
    assert "no Pulumi CLI and no Go toolchain" in p.stderr and "install the Pulumi CLI" in p.stderr, p.stderr


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_end_session_ends_a_plugin_left_in_its_own_group_by_an_engine_stopped_at_once() -> None:
    """An "engine" in a session of its own starts a "plugin" in a process group of its own (as
    Pulumi does), prints its pid and exits: end_session ends the orphan, the session's last process."""
    plugin = "import time; time.sleep(60)"
    engine = (
        "import subprocess, sys; "
        f"p = subprocess.Popen([sys.executable, '-c', {plugin!r}], process_group=0, "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)"
    )
    proc = subprocess.run([sys.executable, "-c", engine], capture_output=True, text=True, start_new_session=True)
    orphan = int(proc.stdout)
    try:
        assert os.getpgid(orphan) == orphan != os.getsid(orphan), "the plugin: a group of its own, the engine's session"
        ended = end_session(os.getsid(orphan))
        assert ended == [orphan], f"end_session ended {ended}, not the orphaned plugin {orphan}"
        for _ in range(100):
            if not _running(orphan):
                break
            time.sleep(0.01)
        assert not _running(orphan), f"the orphaned plugin {orphan} still runs"
    finally:
        if _running(orphan):
            os.kill(orphan, 9)
    assert end_session(-1) == [], "no such session: nothing ended"
