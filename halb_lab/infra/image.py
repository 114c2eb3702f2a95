"""The lab's Debian base image: debootstrap once, cache, share read-only between nodes."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from halb_lab.infra.topology import CACHE

SUITE = "bookworm"
PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "iputils-ping",
    "procps",
    "keepalived",
    "haproxy",
    "curl",
    "socat",
    "python3",
    "openssl",  # as on a standard VM template (halb's TLS step checks keys with it)
    "prometheus-node-exporter",  # what halb's packages step installs (monitoring.nodeExporter)
    "nftables",  # likewise (keepalived.handoff)
    "frr",  # likewise, in BGP mode (stack lab-bgp)
    "frr-pythontools",  # frr-reload.py
    "util-linux",
    "sudo",
]
DEPLOY_USER = "deploy"  # an unprivileged SSH user with passwordless sudo, as on many VMs


def mirror_from_apt(
    sources_dir: Path = Path("/etc/apt/sources.list.d"), sources_list: Path = Path("/etc/apt/sources.list")
) -> str:
    """The machine's own Debian mirror, read from its apt configuration (never hard-coded)."""
    for path in sorted(sources_dir.glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.+)$", stanza, re.M))
            suites = fields.get("Suites", "").split()
            if "deb" in fields.get("Types", "").split() and SUITE in suites and "main" in fields.get("Components", ""):
                return fields["URIs"].split()[0]
    if sources_list.exists():
        for line in sources_list.read_text().splitlines():
            m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + SUITE + r"\s+.*\bmain\b", line.strip())
            if m:
                return m.group(1)
    raise RuntimeError(f"no Debian {SUITE} main mirror in the machine's apt configuration")


def image_dir() -> Path:
    key = hashlib.sha256(" ".join([SUITE, *PACKAGES]).encode()).hexdigest()[:12]
    return CACHE / f"base-{SUITE}-{key}"


def build(log: Path) -> Path:
    """Build the base image unless the cache has it; returns its directory."""
    target = image_dir()
    if (target / ".halb-complete").exists():
        return target
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(tmp), mirror_from_apt()],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    # Like a fresh VM: sshd takes root's key, nothing else is configured.
    (tmp / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (tmp / "etc/ssh/sshd_config.d/halb-lab.conf").write_text("PermitRootLogin prohibit-password\nUseDNS no\n")
    for unit in ("getty@tty1.service", "console-getty.service", "systemd-networkd-wait-online.service"):
        (tmp / "etc/systemd/system" / unit).unlink(missing_ok=True)
        (tmp / "etc/systemd/system" / unit).symlink_to("/dev/null")
    subprocess.run(["chroot", str(tmp), "useradd", "--create-home", "--shell", "/bin/bash", DEPLOY_USER], check=True)
    (tmp / "etc/sudoers.d" / DEPLOY_USER).write_text(f"{DEPLOY_USER} ALL=(ALL) NOPASSWD: ALL\n")
    (tmp / "etc/sudoers.d" / DEPLOY_USER).chmod(0o440)
    subprocess.run(["chroot", str(tmp), "apt-get", "clean"], check=True, capture_output=True)
    (tmp / ".halb-complete").write_text("ok\n")
    tmp.rename(target)
    return target
