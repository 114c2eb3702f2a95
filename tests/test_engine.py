"""halb.lab.engine's pure parts: reading the engine's messages (no engine needed)."""

from __future__ import annotations

import os
import socket
import subprocess

from halb.lab.engine.driver import _last_lines, stale_lock_pids


def locked(host: str, pid: int) -> str:
    return (
        "code: 1\nstderr: error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) "
        "to end or delete the lock file with `pulumi cancel`.\nfile:///x/.pulumi/locks/organization/halb/lab/a.json: "
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
