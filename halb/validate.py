"""Run the real daemons' validators on rendered node trees: `halb check`, the tests and the fuzzer.

keepalived -t checks the files at their real paths (scripts, included secrets,
the interface, the script user), so it runs in private namespaces where the
rendered tree is mounted at those paths, the interface exists (a veth end) and
the script user is in /etc/passwd. keepalived 2.2.7's -t kills itself after
dropping to a non-root script_user unless it is PID 1 of its own PID namespace,
hence --pid --fork with exec.

Without root, the same namespaces are entered through a user namespace (`unshare --user
--map-root-user`), which Debian and most distributions allow unprivileged users; where they do
not, `rendered_problems` says the checks were skipped (and `halb check` fails under CI=true).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from shutil import which as tool

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from halb.config import HalbConfig
from halb.config.errors import printable
from halb.render import HANDOFF_ROUTE_PROTOCOL, PATHS, SCRIPT_USER, Secrets, certificate_files, write_tree


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
        check = ["unshare", *_as_root(), "--mount", "sh", "-c", script]
    p = subprocess.run(check, capture_output=True, text=True, timeout=30)
    return Result(p.returncode, p.stdout + p.stderr)


def keepalived_check(tree: Path, interface: str) -> Result:
    t = shlex.quote(str(tree))
    script = f"""
set -e
mount --make-rprivate /
for d in /usr/local /run /etc/keepalived; do mount -t tmpfs halb-test "$d"; done
cp -R --preserve=mode {t}/usr/local/. /usr/local/
cp -R --preserve=mode {t}/etc/keepalived/. /etc/keepalived/
mkdir -p {shlex.quote(PATHS["state_dir"])}
cp /etc/passwd /run/passwd
grep -q '^{SCRIPT_USER}:' /run/passwd || echo '{SCRIPT_USER}:x:64999:64999::/nonexistent:/usr/sbin/nologin' >> /run/passwd
mount --bind /run/passwd /etc/passwd
ip link add {shlex.quote(interface)} type veth peer name halbpeer0
ip link set {shlex.quote(interface)} up
exec {shlex.quote(tool("keepalived") or "keepalived")} -t -f {PATHS["keepalived_conf"]}
"""
    p = subprocess.run(
        ["unshare", *_as_root(), "--mount", "--net", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return Result(p.returncode, p.stdout + p.stderr)


def handoff_check(tree: Path, interface: str) -> Result:
    """halb-handoff's script run for real in private namespaces (its own network, a tmpfs for its
    record): `start` twice (idempotent), what it left (the nft tables, the routes on lo, arp_ignore),
    then `stop`, and what `stop` left (nothing). nft and the kernel refuse a bad ruleset."""
    script = f"""
set -e
mount --make-rprivate /
mount -t tmpfs halb-test /var/lib
ip link set lo up
ip link add {shlex.quote(interface)} type veth peer name halbpeer0
ip link set {shlex.quote(interface)} up
handoff={shlex.quote(str(tree))}{PATHS["handoff"]}
sh "$handoff" start
sh "$handoff" start
echo "started:"; nft list tables; ip -4 route show table local proto {HANDOFF_ROUTE_PROTOCOL}
ip -6 route show table local proto {HANDOFF_ROUTE_PROTOCOL}
echo "arp_ignore $(cat /proc/sys/net/ipv4/conf/{shlex.quote(interface)}/arp_ignore)"
sh "$handoff" stop
echo "stopped:"; nft list tables; ip -4 route show table local proto {HANDOFF_ROUTE_PROTOCOL}
ip -6 route show table local proto {HANDOFF_ROUTE_PROTOCOL}
echo "arp_ignore $(cat /proc/sys/net/ipv4/conf/{shlex.quote(interface)}/arp_ignore)"
"""
    p = subprocess.run(
        ["unshare", *_as_root(), "--mount", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=30
    )
    return Result(p.returncode, p.stdout + p.stderr)


def frr_check(conf: str) -> Result:
    """FRR's own checker, `vtysh --dryrun`, on a node's frr.conf (BGP mode). It reads the file
    only: no daemon is needed, nor root."""
    with tempfile.TemporaryDirectory(prefix="halb-frr-") as d:
        path = Path(d) / "frr.conf"
        path.write_text(conf)
        proc = subprocess.run(
            [tool("vtysh") or "vtysh", "--dryrun", "-f", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=d,
        )
    return Result(proc.returncode, proc.stdout + proc.stderr)


def shellcheck(path: Path) -> Result:
    """shellcheck for the shell the script's own #! line names (sh or bash)."""
    p = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True, timeout=30)
    return Result(p.returncode, p.stdout + p.stderr)


def _as_root() -> list[str]:
    """unshare's options to be root in the new namespaces: none for root, a user namespace else."""
    return [] if os.geteuid() == 0 else ["--user", "--map-root-user"]


TOOLS = ("haproxy", "keepalived", "unshare")


def throwaway_certificate() -> str:
    """A self-signed P-256 certificate and its key (PEM), valid for a day: stands in for a
    stack's certificates when the rendered haproxy.cfg is checked, so that no key of the stack is
    ever written outside the nodes. It has no use beyond that check."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "halb check")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("halb-check.invalid")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM).decode() + pem.decode()


def check_secrets(cfg: HalbConfig) -> Secrets:
    """Stand-ins for the stack's secrets, of the shapes the daemons take."""
    certificate = throwaway_certificate() if certificate_files(cfg) else ""
    return Secrets("halbchk1", "halb-check-password-1", {path: certificate for path, _, _ in certificate_files(cfg)})


def _tools(cfg: HalbConfig) -> list[str]:
    """The validators this config's files need: FRR's in BGP mode, keepalived's (and nft for the
    handoff) otherwise."""
    if cfg.mode == "bgp":
        return ["haproxy", "unshare", "vtysh"]
    return [*TOOLS, *(["nft"] if cfg.keepalived.handoff else [])]


def rendered_problems(cfg: HalbConfig) -> tuple[list[str], str | None]:
    """Both nodes' files rendered (with stand-in secrets) and run through `haproxy -c -dW` and
    `keepalived -t`: what each refused, and why the checks did not run (None when they did)."""
    missing = [t for t in _tools(cfg) if tool(t) is None]
    if missing:
        return (
            [],
            f"{', '.join(missing)} not installed here, so the rendered files were not run through their daemons' checks",
        )
    refused: list[str] = []
    with tempfile.TemporaryDirectory(prefix="halb-check-") as out:
        os.chmod(out, 0o755)  # the user namespace's root is another user
        write_tree(cfg, Path(out), check_secrets(cfg))
        for node in cfg.nodes:
            tree = Path(out) / node.name
            checks = [("haproxy -c -dW", haproxy_check(tree))]
            if cfg.mode == "bgp":  # FRR announces the VIPs; no VRRP runs
                checks.append(("vtysh --dryrun", frr_check((tree / PATHS["frr_conf"].lstrip("/")).read_text())))
            else:
                checks.append(("keepalived -t", keepalived_check(tree, cfg.interface(node))))
            if cfg.keepalived.handoff and cfg.mode == "vrrp":
                checks.append(("halb-handoff start/stop (nft)", handoff_check(tree, cfg.interface(node))))
            for name, result in checks:
                if "unshare failed" in result.output:
                    return [], f"{name} needs root or user namespaces here ({printable(result.output.strip())[-120:]})"
                if result.rc != 0:
                    tail = " | ".join(line.strip() for line in result.output.strip().splitlines()[-4:])
                    refused.append(
                        f"{node.name}: {name} refused the rendered files (exit {result.rc}): {printable(tail)[-400:]}"
                    )
    return refused, None
