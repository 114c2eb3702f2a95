"""LB nodes: one overlay over the base image per node, booted with systemd-nspawn."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from halb_lab.infra.image import DEPLOY_USER
from halb_lab.infra.topology import SSH_KEY, STATE, Host


def node_dir(host: Host) -> Path:
    return STATE / "nodes" / host.name


def pid_of(host: Host) -> int | None:
    return running(node_dir(host) / "pid")


def running(pidfile: Path) -> int | None:
    """The pid in `pidfile` if that process still runs (reaped when this process started it)."""
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return None
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if this process started it and it has exited
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    return None if state in ("Z", "X") else pid


# Lab hosts are recreated often: no host-key bookkeeping, no prompts.
SSH_OPTIONS = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=yes",
]


def ssh_args(host: Host) -> list[str]:
    return ["ssh", "-i", str(SSH_KEY), *SSH_OPTIONS, "-o", "ConnectTimeout=3", f"root@{host.address}"]


def ssh(
    host: Host, command: str, timeout: float = 60, check: bool = False, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ssh_args(host), command], capture_output=True, text=True, timeout=timeout, check=check, input=stdin
    )


def mount(host: Host, base: Path) -> Path:
    d = node_dir(host)
    upper, work, root = d / "upper", d / "work", d / "root"
    for p in (upper, work, root):
        p.mkdir(parents=True, exist_ok=True)
    if not os.path.ismount(root):
        subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={base},upperdir={upper},workdir={work}", str(root)],
            check=True,
        )
    return root


NET_SYSCTL_UNIT = "halb-lab-net-sysctl.service"
NET_SYSCTL = """# The lab's, not halb's: the node's /proc/sys/net writable, as on a VM.
[Unit]
Description=lab: /proc/sys/net writable (systemd-nspawn leaves it read-only)
DefaultDependencies=no
Before=sysinit.target systemd-sysctl.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'mount --bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net'
"""


def prepare(host: Host, root: Path) -> None:
    marker = root / "etc/ssh/.halb-lab-host-keys"
    if not marker.exists():  # the image's keys are shared: each node gets its own (the stack pins them)
        for old in (root / "etc/ssh").glob("ssh_host_*"):
            old.unlink()
        subprocess.run(["ssh-keygen", "-A", "-f", str(root)], check=True, capture_output=True)
        marker.touch()
    # systemd-nspawn mounts /proc/sys read-only, and /proc/sys/net writable only for a network it
    # made itself (not one given by --network-namespace-path): on a VM, as here, the node's own
    # network settings are its own to change (halb-handoff sets arp_ignore).
    units = root / "etc/systemd/system"
    (units / NET_SYSCTL_UNIT).write_text(NET_SYSCTL)
    (units / "sysinit.target.wants").mkdir(exist_ok=True)
    wants = units / "sysinit.target.wants" / NET_SYSCTL_UNIT
    if not wants.is_symlink():
        wants.symlink_to(f"../{NET_SYSCTL_UNIT}")
    (root / "etc/hostname").write_text(host.name + "\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n{host.address} {host.name}\n")
    key = Path(str(SSH_KEY) + ".pub").read_text()
    for home, uid in (("root", 0), (f"home/{DEPLOY_USER}", _uid(root, DEPLOY_USER))):
        ssh_dir = root / home / ".ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(key)
        (ssh_dir / "authorized_keys").chmod(0o600)
        for p in (ssh_dir, ssh_dir / "authorized_keys"):
            os.chown(p, uid, uid)


def host_key(host: Host) -> str | None:
    """The node's SSH host key (ed25519) as `type base64`, read from its disk; None when not built."""
    try:
        return " ".join((node_dir(host) / "root/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2])
    except OSError:
        return None


def _uid(root: Path, user: str) -> int:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2])
    raise RuntimeError(f"no user {user} in the lab image")


def cgroup_hierarchies(mounts: str | None = None) -> list[Path]:
    """The cgroup hierarchies a container's systemd tracks its units in: the unified one (cgroup2)
    and the legacy `name=systemd` one, where the host mounts them (from /proc/self/mounts)."""
    text = Path("/proc/self/mounts").read_text() if mounts is None else mounts
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and (
            fields[2] == "cgroup2" or (fields[2] == "cgroup" and "name=systemd" in fields[3].split(","))
        ):
            found.append(Path(fields[1]))
    return found


def cgroups(host: Host) -> list[Path]:
    """The node's own cgroup in each hierarchy systemd uses. systemd-nspawn with --keep-unit puts
    the container's units under the cgroup it was started in: started from one shell, every node
    shared /payload/system.slice/<unit>, so one node's systemd saw (and waited on) another node's
    processes, and a boot could hang with /run/nologin in place."""
    return [h / f"halb-lab-{host.name}" for h in cgroup_hierarchies()]


def _remove_cgroup(group: Path) -> None:
    """Remove a node's cgroup tree, deepest first (a cgroup goes only once it has no process)."""
    if not group.is_dir():
        return
    for d in sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        group.rmdir()


def boot(host: Host, base: Path) -> None:
    root = mount(host, base)
    prepare(host, root)
    Path("/run/systemd").mkdir(parents=True, exist_ok=True)
    groups = cgroups(host)
    for group in groups:
        _remove_cgroup(group)  # what an earlier run of this node left
        group.mkdir(exist_ok=True)
    # The shell joins the node's cgroups, then becomes nspawn (no preexec_fn: the drills run threads).
    join = "".join(f'echo $$ > "{g}/cgroup.procs" && ' for g in groups)
    log = (node_dir(host) / "console.log").open("ab")
    proc = subprocess.Popen(
        [
            "sh",
            "-c",
            f'{join}exec "$@"',
            "sh",
            "systemd-nspawn",
            "--register=no",
            "--keep-unit",
            "--quiet",
            "--capability=CAP_NET_ADMIN,CAP_NET_RAW",
            "-D",
            str(root),
            "-b",
            f"--network-namespace-path=/run/netns/{host.netns}",
            f"--machine={host.name}",
            "--console=passive",
        ],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    (node_dir(host) / "pid").write_text(str(proc.pid))


def wait_ssh(host: Host, timeout: float = 120) -> None:
    """Until the node answers SSH and lets unprivileged users in (while it boots, /run/nologin
    keeps the deploy user out and sshd lets in root only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ssh(host, "test ! -e /run/nologin", timeout=5).returncode == 0:
                return
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.5)
    raise TimeoutError(
        f"{host.name}: no SSH on {host.address} after {timeout:.0f} s (see {node_dir(host)}/console.log)\n"
        + boot_diagnosis(host)
    )


def boot_diagnosis(host: Host) -> str:
    """What a node that did not finish booting is waiting for: systemd's state and pending jobs
    (root may log in while /run/nologin keeps others out), and the console's last lines."""
    try:
        jobs = ssh(host, "systemctl is-system-running; systemctl list-jobs --no-pager", timeout=10)
        inside = (jobs.stdout + jobs.stderr).strip()
    except subprocess.TimeoutExpired:
        inside = "(no answer as root either)"
    try:
        console = (node_dir(host) / "console.log").read_text(errors="replace").splitlines()[-25:]
    except OSError:
        console = ["(no console.log)"]
    return f"systemd on {host.name}:\n{inside}\nconsole.log, last lines:\n" + "\n".join(console)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def poweroff(host: Host, timeout: float = 15) -> None:
    """Graceful poweroff (SIGTERM to nspawn); after `timeout`, SIGKILL the container's init,
    which ends every process in its PID namespace, then nspawn."""
    pid = pid_of(host)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_of(host) is not None:
        time.sleep(0.1)
    if pid_of(host) is not None:
        for init in _children(pid):
            os.kill(init, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pid_of(host) is not None:
            time.sleep(0.1)
        if pid_of(host) is not None:
            os.kill(pid, signal.SIGKILL)
    (node_dir(host) / "pid").unlink(missing_ok=True)
    for group in cgroups(host):
        _remove_cgroup(group)


FREEZER = Path("/sys/fs/cgroup/freezer")  # the cgroup v1 freezer, as this lab's machines mount it


def processes(host: Host) -> list[int]:
    """Every process of the node: those in its init's PID namespace."""
    pid = pid_of(host)
    inits = _children(pid) if pid is not None else []
    if not inits:
        raise RuntimeError(f"{host.name} is not running")
    ns = os.readlink(f"/proc/{inits[0]}/ns/pid")
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns" / "pid") == ns:
                    out.append(int(entry.name))
    return out


@contextlib.contextmanager
def freezer(host: Host) -> Iterator[Callable[[bool], None]]:
    """Every process of the node in a freezer cgroup of its own for the block; yields
    `freeze(True|False)`, which stops or resumes them all at once, as a hypervisor's stun stops a
    VM. The processes go back to the root cgroup, thawed, when the block ends."""
    if not FREEZER.is_dir():
        raise RuntimeError(f"no cgroup v1 freezer at {FREEZER}: the stun drill needs it")
    group = FREEZER / f"halb-lab-{host.name}"
    group.mkdir(exist_ok=True)

    def freeze(on: bool) -> None:
        (group / "freezer.state").write_text("FROZEN" if on else "THAWED")
        want = "FROZEN" if on else "THAWED"
        deadline = time.monotonic() + 5
        while (group / "freezer.state").read_text().strip() != want:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host.name}: the freezer did not reach {want}")
            time.sleep(0.001)

    try:
        for pid in processes(host):
            with contextlib.suppress(OSError):  # a process that ended meanwhile
                (group / "cgroup.procs").write_text(str(pid))
        yield freeze
    finally:
        freeze(False)
        for leftover in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (FREEZER / "cgroup.procs").write_text(leftover)
        group.rmdir()


def rebuild(host: Host, base: Path) -> None:
    """Wipe the node and boot it afresh from the lab image, at the same address."""
    remove(host)
    boot(host, base)
    wait_ssh(host)


def remove(host: Host) -> None:
    poweroff(host)
    for group in cgroups(host):
        _remove_cgroup(group)
    root = node_dir(host) / "root"
    if os.path.ismount(root):
        subprocess.run(["umount", "-l", str(root)], check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", str(node_dir(host))], check=False)
