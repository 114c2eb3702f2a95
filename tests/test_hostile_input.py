"""Hostile and careless values: `halb check` refuses each with exit 2, names the key, shows no
traceback and never echoes a secret. One row per finding of the config-trust review."""

from __future__ import annotations

import copy
import io
import time
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
    # round two: one spelling per key (a field's Python name is an unknown key, its value never shown)
    ("snake_case vrrp password", {"halb:keepalived.auth_password": "31415926"}, "keepalived.auth_password",
     "31415926"),
    ("snake_case ssh key", {"halb:ssh.private_key": SSH_KEY}, "ssh.private_key", "b3BlbnNz"),
    ("snake_case advert interval", {"halb:keepalived.advert_int": 2}, "keepalived.advert_int", ""),
    ("snake_case allow list", {"halb:haproxy.stats.allow_from": ["0.0.0.0/0"]}, "haproxy.stats.allow_from", ""),
    ("snake_case section", {"halb:vsphere.anti_affinity": {"enabled": False}}, "vsphere.anti_affinity", ""),
    # booleans are not numbers
    ("stats port true", {"halb:haproxy.stats.port": True}, "haproxy.stats.port", ""),
    ("vrid true", {"halb:keepalived.vrid": True}, "keepalived.vrid", ""),
    ("maxconn false", {"halb:haproxy.maxconn": False}, "haproxy.maxconn", ""),
    # values that open the box
    ("subnet the whole Internet", {"halb:network.subnet": "0.0.0.0/0"}, "network.subnet", ""),
    ("subnet a /8", {"halb:network.subnet": "192.0.0.0/8"}, "network.subnet", ""),
    ("/32 subnet with a gateway", {"halb:network.subnet": "192.168.4.60/32",
     "halb:network.gateway": "192.168.4.60"}, "network.subnet", ""),
    ("DNS server at the VIP", {"halb:network.dnsServers": ["192.168.4.60"]}, "network.dnsServers[0]", ""),
    ("DNS server at a node", {"halb:network.dnsServers": ["192.168.4.1", "192.168.4.62"]},
     "network.dnsServers[1]", ""),
    ("stats port is SSH's", {"halb:haproxy.stats.port": 22}, "haproxy.stats.port", ""),
    ("service port is SSH's", {"halb:ssh.port": 2222, "halb:haproxy.services[1].port": 2222},
     "haproxy.services[1].port", ""),
    ("stats uri / shadows metrics and /healthz", {"halb:haproxy.stats.uri": "/"}, "haproxy.stats.uri", ""),
    ("stats uri /health prefixes /healthz", {"halb:haproxy.stats.uri": "/health"}, "haproxy.stats.uri", ""),
    ("metrics under the stats prefix", {"halb:haproxy.metrics.path": "/stats/metrics"}, "haproxy.metrics.path", ""),
    ("garp refresh past keepalived's range", {"halb:keepalived.garpMasterRefresh": 4294967296},
     "keepalived.garpMasterRefresh", ""),
]
# fmt: on


def check(
    changes: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: bytes | None = None
) -> tuple[int, str]:
    """`halb check` of Pulumi.dev.yaml with `changes` (or of the file `raw`), its exit code and output."""
    from halb.__main__ import main

    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    doc = copy.deepcopy(doc)
    _set(doc, "vsphere:password", SECURE)
    for path, value in changes.items():
        _set(doc, path, value)
    (tmp_path / "Pulumi.t.yaml").write_bytes(raw or yaml.safe_dump(doc, allow_unicode=True).encode())
    monkeypatch.chdir(tmp_path)
    for env in ("VSPHERE_SERVER", "VSPHERE_USER", "VSPHERE_PASSWORD"):
        monkeypatch.delenv(env, raising=False)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["check", "--stack", "t"])
    return rc, out.getvalue() + err.getvalue()


def test_the_table_covers_at_least_80_hostile_values() -> None:
    rows = [r[0] for r in ROWS] + [r[0] for r in FILES]
    assert len(rows) >= 80 and len(set(rows)) == len(rows)


def test_the_unchanged_stack_with_its_secret_set_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rc, text = check({}, tmp_path, monkeypatch)
    assert rc == 0, text


@pytest.mark.parametrize(("changes", "key", "secret"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_hostile_value_is_refused(
    changes: dict[str, Any], key: str, secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = time.monotonic()
    rc, text = check(changes, tmp_path, monkeypatch)
    assert time.monotonic() - start < 2, f"{key}: took {time.monotonic() - start:.1f} s"
    name = key if key.startswith("vsphere:") else f"halb:{key}"
    assert rc == 2, f"{name}: exit {rc}: {text}"
    assert f"{name}: got" in text, f"{name} not named: {text}"
    assert "Traceback" not in text, text
    if secret:
        assert secret not in text, f"{name}: the secret leaked: {text}"


# --------------------------------------------------------------------------- the file itself

DEV = (
    (ROOT / "Pulumi.dev.yaml")
    .read_text()
    .replace("config:\n", "config:\n  vsphere:password:\n    secure: v1:bm90LXJlYWxseS1lbmNyeXB0ZWQ=\n", 1)
)
DEV_LINES = DEV.count("\n")


def at_end(text: str) -> bytes:
    """Pulumi.dev.yaml (its vsphere password set) with `text` appended under `config:`."""
    return (DEV + text).encode()


def nested(key: str, text: str) -> bytes:
    """Pulumi.dev.yaml with `text` (indented lines) inserted right after the line `  halb:KEY:`."""
    return DEV.replace(f"  halb:{key}:\n", f"  halb:{key}:\n{text}", 1).encode()


# (id, the file, what the message must say: the file and line, or the key; text that must not appear)
# fmt: off
FILES: list[tuple[str, bytes, str, str]] = [
    ("duplicate top-level key", at_end("  halb:platform: hosts\n"),
     f"Pulumi.t.yaml:{DEV_LINES + 1}: a duplicate key 'halb:platform'", ""),
    ("duplicate nested key", nested("keepalived", "    vrid: 9\n"),
     "a duplicate key 'vrid' (first at line", ""),
    ("duplicate secret key", at_end("  vsphere:password: hunter2-plain\n"), "a duplicate key 'vsphere:password'",
     "hunter2"),
    ("anchor and alias", at_end("  halb:a: &x [1]\n  halb:b: *x\n"), f"Pulumi.t.yaml:{DEV_LINES + 1}: an anchor", ""),
    ("alias bomb", at_end("  halb:a: &a [x, x, x, x, x, x, x, x, x]\n  halb:b: &b [*a, *a, *a, *a, *a, *a]\n"
                          "  halb:c: [*b, *b, *b, *b, *b, *b, *b, *b]\n"), "an anchor or alias", ""),
    ("self-referencing alias", at_end("  halb:a: &s [*s]\n"), "an anchor or alias", ""),
    ("tab indentation", at_end("\thalb:a: 1\n"), f"Pulumi.t.yaml:{DEV_LINES + 1}: a tab", ""),
    ("tab in a value", at_end("  halb:a: \"x\ty\"\n"), f"Pulumi.t.yaml:{DEV_LINES + 1}: a tab", ""),
    ("two documents", at_end("---\nconfig: {}\n"), f"Pulumi.t.yaml:{DEV_LINES + 1}: a second YAML document", ""),
    ("file is a list", b"- config\n- x\n", "Pulumi.t.yaml:1: a list; expected a mapping", ""),
    ("file is a string", b"just text\n", "Pulumi.t.yaml:1: a str; expected a mapping", ""),
    ("config is a list", b"config:\n  - halb:platform\n", "Pulumi.t.yaml:1: `config:` is a list", ""),
    ("config is a string", b"config: hosts\n", "Pulumi.t.yaml:1: `config:` is a str", ""),
    ("invalid UTF-8", at_end("  halb:a: x").rstrip(b"\n") + b"\xff\xfe\n", f"Pulumi.t.yaml:{DEV_LINES + 1}: invalid UTF-8",
     ""),
    ("binary tag", at_end("  halb:a: !!binary aGVsbG8=\n"), "an explicit tag (tag:yaml.org,2002:binary)", ""),
    ("python object tag", at_end("  halb:a: !!python/object/apply:os.system ['touch /tmp/halb-pwned']\n"),
     "an explicit tag", "halb-pwned"),
    ("local tag", at_end("  halb:a: !secret x\n"), "an explicit tag (!secret)", ""),
    ("an integer of 5000 digits", at_end(f"  halb:a: {'9' * 5000}\n"), "a number of 5000 digits", "9" * 40),
    ("port on (YAML 1.1 boolean)", DEV.replace("port: 8080", "port: on", 1).encode(),
     "halb:haproxy.stats.port: got 'on'", ""),
    ("maxconn yes (YAML 1.1 boolean)", at_end("  halb:nodes[0].x: 1\n").replace(b"  halb:ssh:\n", b"  halb:ssh:\n    port: yes\n", 1),
     "halb:ssh.port: got 'yes'", ""),
    ("sexagesimal port", DEV.replace("port: 8080", "port: 1:20", 1).encode(), "halb:haproxy.stats.port: got '1:20'", ""),
    ("unterminated flow list", at_end("  halb:a: [1, 2\n"), "not valid YAML", ""),
    ("a list as a key", at_end("  ? [a, b]\n  : 1\n"), "a key that is a list or mapping", ""),
    ("a number as a config key", at_end("  1: x\n"), "a config key that is not text", ""),
    ("a flat secret key", at_end("  halb:keepalived.authPassword:\n    secure: v1:abc\n"),
     "pulumi config set --secret --path halb:keepalived.authPassword", ""),
    # keys from the file are shown escaped, and never become part of a command
    ("terminal escape in a top-level key", at_end('  "halb:x\\e[31mred": 1\n'), "halb:x\\x1b[31mred: got", "\x1b"),
    ("terminal escape in a nested key", nested("keepalived", '    "\\e]0;title\\a": 1\n'),
     "halb:keepalived.\\x1b]0;title\\x07: got", "\x1b"),
    ("shell text in a flat key", at_end('  "halb:a.b;rm -rf ~": 1\n'), "halb:a.b;rm -rf ~: got a flat key",
     "config set --path halb:a.b"),
]
# fmt: on


@pytest.mark.parametrize(("raw", "expected", "payload"), [r[1:] for r in FILES], ids=[r[0] for r in FILES])
def test_hostile_file_is_refused_naming_the_file_and_line_or_key(
    raw: bytes, expected: str, payload: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = time.monotonic()
    rc, text = check({}, tmp_path, monkeypatch, raw=raw)
    assert time.monotonic() - start < 2, f"took {time.monotonic() - start:.1f} s"
    assert rc == 2, f"exit {rc}: {text}"
    assert expected in text, f"{expected!r} not in: {text}"
    assert "Traceback" not in text, text
    assert not (tmp_path / "halb-pwned").exists() and not Path("/tmp/halb-pwned").exists(), "a tag ran code"
    if payload:
        assert payload not in text, f"the payload is echoed: {text}"
