"""Run the real daemons' validators on a rendered node tree (root only).

keepalived -t checks the files at their real paths (scripts, included secrets,
the interface, the script user), so it runs in private namespaces where the
rendered tree is mounted at those paths, the interface exists (a veth end) and
the script user is in /etc/passwd. keepalived 2.2.7's -t kills itself after
dropping to a non-root script_user unless it is PID 1 of its own PID namespace,
hence --pid --fork with exec.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from shutil import which as tool

from halb.render import PATHS, SCRIPT_USER


@dataclass
class Result:
    rc: int
    output: str


def haproxy_check(tree: Path) -> Result:
    """`haproxy -c -dW` of the tree's haproxy.cfg and secrets file. With certificates, it runs in a
    private mount namespace where the tree's certificates are at their real path (root only)."""
    cfg = tree / PATHS["haproxy_cfg"].lstrip("/")
    secrets = tree / PATHS["haproxy_secrets"].lstrip("/")
    check = [tool("haproxy") or "haproxy", "-c", "-dW", "-f", str(cfg), "-f", str(secrets)]
    certs = tree / PATHS["certs_dir"].lstrip("/")
    if certs.is_dir():
        target = shlex.quote(PATHS["certs_dir"])
        script = f"""set -e
mount --make-rprivate /
mount -t tmpfs halb-test {shlex.quote(str(Path(PATHS["certs_dir"]).parent))}
mkdir {target}
mount --bind {shlex.quote(str(certs))} {target}
exec {" ".join(map(shlex.quote, check))}
"""
        check = ["unshare", "--mount", "sh", "-c", script]
    p = subprocess.run(check, capture_output=True, text=True, timeout=30)
    return Result(p.returncode, p.stdout + p.stderr)


def keepalived_check(tree: Path, interface: str) -> Result:
    t = shlex.quote(str(tree))
    script = f"""
set -e
mount --make-rprivate /
for d in /usr/local /run /etc/keepalived; do mount -t tmpfs halb-test "$d"; done
cp -a {t}/usr/local/. /usr/local/
cp -a {t}/etc/keepalived/. /etc/keepalived/
mkdir -p {shlex.quote(PATHS["state_dir"])}
cp /etc/passwd /run/passwd
grep -q '^{SCRIPT_USER}:' /run/passwd || echo '{SCRIPT_USER}:x:64999:64999::/nonexistent:/usr/sbin/nologin' >> /run/passwd
mount --bind /run/passwd /etc/passwd
ip link add {shlex.quote(interface)} type veth peer name halbpeer0
ip link set {shlex.quote(interface)} up
exec {shlex.quote(tool("keepalived") or "keepalived")} -t -f {PATHS["keepalived_conf"]}
"""
    p = subprocess.run(
        ["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return Result(p.returncode, p.stdout + p.stderr)


def shellcheck(path: Path) -> Result:
    """shellcheck for the shell the script's own #! line names (sh or bash)."""
    p = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True, timeout=30)
    return Result(p.returncode, p.stdout + p.stderr)
