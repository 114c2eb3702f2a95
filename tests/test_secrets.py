"""The secrets' character sets, proven on the real daemons: every allowed character reaches
keepalived and haproxy whole, through the files halb renders."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

from conftest import require_root_tools, stack_raw, tool
from halb.config import load_config
from halb.config.secrets import STATS_PASSWORD, VRRP_PASSWORD
from halb.render import PATHS, Secrets, all_files


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _rendered(path: str, vrrp: str, stats: str) -> str:
    cfg = load_config(stack_raw("dev"))
    files = all_files(cfg, "lb1", Secrets(vrrp_password=vrrp, stats_password=stats))
    return next(f.content for f in files if f.path == path)


def test_the_character_sets_refuse_what_breaks_the_daemons() -> None:
    for bad in '#! "{}$\\':
        assert VRRP_PASSWORD.problem(f"ab{bad}c") is not None, f"VRRP password with {bad!r} accepted"
    for bad in "' \t":
        assert STATS_PASSWORD.problem(f"long-enough-{bad}x") is not None, f"stats password with {bad!r} accepted"
    assert VRRP_PASSWORD.problem("abcdefghi") is not None and STATS_PASSWORD.problem("short") is not None


def test_keepalived_reads_every_allowed_vrrp_password_character_whole(tmp_path: Path) -> None:
    """keepalived -d dumps the password it parsed from halb's halb-auth.conf: each 8-character
    chunk of letters, digits and every allowed special character comes back whole (one keepalived,
    one VRRP instance per chunk)."""
    require_root_tools("keepalived", "unshare", "ip")
    passwords = _chunks(VRRP_PASSWORD.specials + "aZ9", 8)
    instances = ""
    links = ""
    for i, password in enumerate(passwords):
        auth = tmp_path / f"halb-auth-{i}.conf"
        auth.write_text(_rendered(PATHS["keepalived_auth"], password, "x" * 16))
        instances += (
            f"vrrp_instance V{i} {{\n  state BACKUP\n  interface d{i}\n  virtual_router_id {i + 1}\n"
            f"  priority 100\n  advert_int 1\n  authentication {{\n    auth_type PASS\n    include {auth}\n  }}\n"
            f"  virtual_ipaddress {{\n    198.18.9.{i + 1}/32\n  }}\n}}\n"
        )
        links += f"ip link add d{i} type veth peer name e{i} && ip link set d{i} up && "
    conf = tmp_path / "k.conf"
    conf.write_text(instances)
    script = f"{links}timeout 1 {tool('keepalived')} -n -l -D -d -f {conf} -p {tmp_path}/k.pid -r {tmp_path}/v.pid 2>&1"
    p = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=20)
    parsed = re.findall(r"Password = (.*)$", p.stdout, re.M)
    assert sorted(parsed) == sorted(passwords), f"keepalived parsed {parsed} from {passwords}: {p.stdout[-800:]}"


def test_haproxy_takes_every_allowed_stats_password_character_literally(tmp_path: Path) -> None:
    """haproxy, with halb's halb-secrets.cfg, lets the full password in and refuses its prefix."""
    require_root_tools("haproxy", "unshare", "curl")
    password = "Aa0" + STATS_PASSWORD.specials
    assert STATS_PASSWORD.problem(password) is None
    (tmp_path / "secrets.cfg").write_text(_rendered(PATHS["haproxy_secrets"], "x", password))
    (tmp_path / "h.cfg").write_text(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"
        "frontend f\n    bind 127.0.0.1:18080\n    stats enable\n    stats uri /s\n"
        "    stats http-request auth realm halb unless { http_auth(halb_stats) }\n"
    )
    check = subprocess.run(
        [str(tool("haproxy")), "-c", "-dW", "-f", str(tmp_path / "h.cfg"), "-f", str(tmp_path / "secrets.cfg")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    full, prefix = (base64.b64encode(f"admin:{pw}".encode()).decode() for pw in (password, password[:8]))
    script = (
        "ip link set lo up && "
        f"{tool('haproxy')} -D -f {tmp_path}/h.cfg -f {tmp_path}/secrets.cfg -p {tmp_path}/h.pid && sleep 0.3; "
        f"for c in {full} {prefix}; do curl -s -o /dev/null -w '%{{http_code}}\\n' "
        '-H "Authorization: Basic $c" http://127.0.0.1:18080/s; done; '
        f"kill $(cat {tmp_path}/h.pid)"
    )
    p = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=20)
    assert p.stdout.split() == ["200", "401"], f"full password / prefix: {p.stdout} {p.stderr}"


def test_the_secret_keys_are_the_models_secret_value_fields() -> None:
    """One declaration: a `SecretValue` field is a secret key everywhere (plain text refused, value
    never shown), nested in lists too; nothing else is."""
    from pydantic import Field

    from halb.config.base import Model, SecretValue, secret_paths
    from halb.config.model import SECRETS, HalbConfig

    class Inner(Model):
        token: SecretValue | None = None
        name: str = ""

    class Outer(Model):
        items: list[Inner] = Field(default_factory=list)
        password: SecretValue | None = None

    assert secret_paths(Outer) == ["items[].token", "password"], secret_paths(Outer)
    assert set(secret_paths(HalbConfig)) == {
        "bgp.peers[].password",
        "ssh.privateKey",
        "keepalived.authPassword",
        "haproxy.stats.password",
        "haproxy.services[].tls.certificate",
        "haproxy.services[].tls.key",
        "haproxy.services[].tls.sni[].certificate",
        "haproxy.services[].tls.sni[].key",
    }
    assert SECRETS.secret("haproxy.services[3].tls.sni[0].key") and not SECRETS.secret("haproxy.services[3].name")
    assert SECRETS.pem("ssh.privateKey") and not SECRETS.pem("haproxy.stats.password")
