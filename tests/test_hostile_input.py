"""Hostile and careless values: `halb check` refuses each with exit 2, names the key, shows no
traceback and never echoes a secret. One row per finding of the config-trust review."""

from __future__ import annotations

import copy
import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT
from halb.config.paths import delete_path, set_path

SSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUtest\n-----END OPENSSH PRIVATE KEY-----\n"
)
INJECTION = "pw-long-enough\nfrontend evil\n bind *:2222\n default_backend ssh"
SECURE = {"secure": "v1:bm90LXJlYWxseS1lbmNyeXB0ZWQ="}  # how a stack file holds a secret


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    """`halb:a.b[0].c` or `vsphere:x` set in a stack file's config (None deletes), as `pulumi config set --path` would."""
    namespace, _, rest = path.partition(":")
    config = doc["config"]
    doc["config"] = (
        set_path(config, rest, value, namespace) if value is not None else delete_path(config, rest, namespace)
    )


# (id, changes to Pulumi.dev.yaml, key the error must name, secret text that must not appear)
# fmt: off
ROWS: list[tuple[str, dict[str, Any], str, str]] = [
    # secrets: what the daemons would not take byte for byte
    ("stats pw newline injects a frontend", {"halb:haproxy.stats.password": INJECTION}, "haproxy.stats.password", "evil"),
    ("stats pw single quote", {"halb:haproxy.stats.password": "it's-a-password"}, "haproxy.stats.password", "it's-a"),
    ("stats pw space", {"halb:haproxy.stats.password": "two words here"}, "haproxy.stats.password", "two words"),
    ("stats pw too short", {"halb:haproxy.stats.password": "short1"}, "haproxy.stats.password", "short1"),
    ("stats pw too long", {"halb:haproxy.stats.password": "x" * 129}, "haproxy.stats.password", "x" * 20),
    ("stats pw tab", {"halb:haproxy.stats.password": "tab\tinside-pw"}, "haproxy.stats.password", "inside-pw"),
    ("stats pw non-ascii", {"halb:haproxy.stats.password": "pässwörd-long-1"}, "haproxy.stats.password", "pässw"),
    ("vrrp pw hash", {"halb:keepalived.authPassword": "ab#cd"}, "keepalived.authPassword", "ab#cd"),
    ("vrrp pw bang", {"halb:keepalived.authPassword": "ab!cd"}, "keepalived.authPassword", "ab!cd"),
    ("vrrp pw space", {"halb:keepalived.authPassword": "ab cd"}, "keepalived.authPassword", "ab cd"),
    ("vrrp pw double quote", {"halb:keepalived.authPassword": 'a"b"c'}, "keepalived.authPassword", 'a"b"c'),
    ("vrrp pw brace", {"halb:keepalived.authPassword": "a}b"}, "keepalived.authPassword", "a}b"),
    ("vrrp pw dollar", {"halb:keepalived.authPassword": "a$b"}, "keepalived.authPassword", "a$b"),
    ("vrrp pw backslash", {"halb:keepalived.authPassword": "ab\\"}, "keepalived.authPassword", "ab\\"),
    ("vrrp pw 9 chars", {"halb:keepalived.authPassword": "abcdefghi"}, "keepalived.authPassword", "abcdefghi"),
    ("vrrp pw newline", {"halb:keepalived.authPassword": "ab\ncd"}, "keepalived.authPassword", "ab\ncd"),
    ("ssh key not a key", {"halb:ssh.privateKey": "hunter2-not-a-key"}, "ssh.privateKey", "hunter2"),
    # misspelled secret keys: named, value never shown
    ("misspelled stats password", {"halb:haproxy.stats.pasword": "Sup3r-Secret-Value"}, "haproxy.stats.pasword",
     "Sup3r-Secret"),
    ("ssh.privatekey holding a key", {"halb:ssh.privatekey": SSH_KEY}, "ssh.privatekey", "b3BlbnNz"),
    ("secret under a misspelled section", {"halb:keepalivd": {"authPassword": "Zq9-pw"}}, "keepalivd", "Zq9-pw"),
    ("stats as a list holding a secret", {"halb:haproxy.stats": [{"password": "Lst-Secret-99"}]},
     "haproxy.stats", "Lst-Secret"),
    # plain text where a secret is due
    ("plain ssh key", {"halb:ssh.privateKey": SSH_KEY}, "ssh.privateKey", "b3BlbnNz"),
    ("plain vrrp pw", {"halb:keepalived.authPassword": "Ok4-pw"}, "keepalived.authPassword", "Ok4-pw"),
    ("plain stats pw", {"halb:haproxy.stats.password": "A-fine-password-1"}, "haproxy.stats.password", "A-fine-pass"),
    ("plain vsphere pw", {"vsphere:password": "vc-plain-Pa55"}, "vsphere:password", "vc-plain"),
    # values that reach files or commands
    ("checkPath CRLF header", {"halb:haproxy.services[0].check": "http",
     "halb:haproxy.services[0].checkPath": "/h\r\nX-Evil: 1"}, "haproxy.services[0].checkPath", ""),
    ("checkPath hash", {"halb:haproxy.services[0].checkPath": "/h#x"}, "haproxy.services[0].checkPath", ""),
    ("checkPath quote", {"halb:haproxy.services[0].checkPath": "/h'x"}, "haproxy.services[0].checkPath", ""),
    ("stats uri hash", {"halb:haproxy.stats.uri": "/stats#x"}, "haproxy.stats.uri", ""),
    ("metrics path hash", {"halb:haproxy.metrics.path": "/m#x"}, "haproxy.metrics.path", ""),
    ("metrics path space", {"halb:haproxy.metrics.path": "/m x"}, "haproxy.metrics.path", ""),
    ("advertInt nan", {"halb:keepalived.advertInt": float("nan")}, "keepalived.advertInt", ""),
    ("advertInt inf", {"halb:keepalived.advertInt": float("inf")}, "keepalived.advertInt", ""),
    ("advertInt 300 v2", {"halb:keepalived.advertInt": 300}, "keepalived.advertInt", ""),
    ("advertInt 0.5 v2", {"halb:keepalived.advertInt": 0.5}, "keepalived.advertInt", ""),
    ("advertInt 0 v2", {"halb:keepalived.advertInt": 0}, "keepalived.advertInt", ""),
    ("advertInt 41 v3", {"halb:keepalived.version": 3, "halb:keepalived.advertInt": 41}, "keepalived.advertInt", ""),
    ("advertInt 0.005 v3", {"halb:keepalived.version": 3, "halb:keepalived.advertInt": 0.005},
     "keepalived.advertInt", ""),
    ("ssh user option", {"halb:ssh.user": "-oProxyCommand=touch /tmp/pwned"}, "ssh.user", ""),
    ("ssh user space", {"halb:ssh.user": "root x"}, "ssh.user", ""),
    ("service named stats", {"halb:haproxy.services[0].name": "stats"}, "haproxy.services[0].name", ""),
    ("service named halb_x", {"halb:haproxy.services[0].name": "halb_x"}, "haproxy.services[0].name", ""),
    ("timeout zero", {"halb:haproxy.timeouts.client": "0"}, "haproxy.timeouts.client", ""),
    ("timeout arabic-indic digits", {"halb:haproxy.timeouts.client": "٣s"}, "haproxy.timeouts.client", ""),
    ("timeout overflow", {"halb:haproxy.timeouts.server": "99999999h"}, "haproxy.timeouts.server", ""),
    ("timeout days", {"halb:haproxy.timeouts.connect": "1d"}, "haproxy.timeouts.connect", ""),
    ("port arabic-indic digits", {"halb:haproxy.services[0].port": "٨٠"}, "haproxy.services[0].port", ""),
    ("maxconn fullwidth digits", {"halb:haproxy.maxconn": "１０００"}, "haproxy.maxconn", ""),
    ("backend at loopback sshd", {"halb:haproxy.services[0].servers[0].address": "127.0.0.1",
     "halb:haproxy.services[0].servers[0].port": 22}, "haproxy.services[0].servers[0].address", ""),
    ("backend link-local", {"halb:haproxy.services[0].servers[0].address": "169.254.169.254"},
     "haproxy.services[0].servers[0].address", ""),
    ("backend unspecified", {"halb:haproxy.services[0].servers[0].address": "0.0.0.0"},
     "haproxy.services[0].servers[0].address", ""),
    ("backend multicast", {"halb:haproxy.services[0].servers[0].address": "224.0.0.18"},
     "haproxy.services[0].servers[0].address", ""),
    ("backend is a node", {"halb:haproxy.services[0].servers[0].address": "192.168.4.61"},
     "haproxy.services[0].servers[0].address", ""),
    ("backend is the VIP", {"halb:haproxy.services[0].servers[0].address": "192.168.4.60"},
     "haproxy.services[0].servers[0].address", ""),
    ("vsphere without server", {"vsphere:vsphereServer": None}, "vsphere:vsphereServer", ""),
    ("vsphere without gateway", {"halb:network.gateway": None}, "network.gateway", ""),
    ("zero-width space in a folder", {"halb:vsphere.folder": "lb\u200b"}, "vsphere.folder", ""),
    ("bidi override in a template name", {"halb:vsphere.template": "deb\u202eian"}, "vsphere.template", ""),
    ("newline in the domain", {"halb:network.domain": "example.com\nevil"}, "network.domain", ""),
    ("domain with a space", {"halb:network.domain": "example com"}, "network.domain", ""),
    ("server name with a newline", {"halb:haproxy.services[0].servers[0].name": "w1\nbind *:22"},
     "haproxy.services[0].servers[0].name", ""),
    ("interface with a space", {"halb:network.interface": "eth0 up"}, "network.interface", ""),
]
# fmt: on


def check(changes: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    from halb.__main__ import main

    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    doc = copy.deepcopy(doc)
    _set(doc, "vsphere:password", SECURE)
    for path, value in changes.items():
        _set(doc, path, value)
    (tmp_path / "Pulumi.t.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    monkeypatch.chdir(tmp_path)
    for env in ("VSPHERE_SERVER", "VSPHERE_USER", "VSPHERE_PASSWORD"):
        monkeypatch.delenv(env, raising=False)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["check", "--stack", "t"])
    return rc, out.getvalue() + err.getvalue()


def test_the_table_covers_at_least_40_hostile_values() -> None:
    assert len(ROWS) >= 40 and len({r[0] for r in ROWS}) == len(ROWS)


def test_the_unchanged_stack_with_its_secret_set_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rc, text = check({}, tmp_path, monkeypatch)
    assert rc == 0, text


@pytest.mark.parametrize(("changes", "key", "secret"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_hostile_value_is_refused(
    changes: dict[str, Any], key: str, secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc, text = check(changes, tmp_path, monkeypatch)
    name = key if key.startswith("vsphere:") else f"halb:{key}"
    assert rc == 2, f"{name}: exit {rc}: {text}"
    assert f"{name}: got" in text, f"{name} not named: {text}"
    assert "Traceback" not in text, text
    if secret:
        assert secret not in text, f"{name}: the secret leaked: {text}"
