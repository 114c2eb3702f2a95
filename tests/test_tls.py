"""halb.config.tls and TLS rendering: every certificate problem refused by `halb check` with the
key named and no key material shown; a good TLS stack renders files haproxy takes."""

from __future__ import annotations

import copy
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from test_hostile_input import check

from conftest import require, stack_raw, tool
from halb import commands
from halb.config import ConfigError, load_config
from halb.config.haproxy import tls_findings
from halb.config.paths import set_in
from halb.config.tls import expiry_warnings
from halb.render import Secrets, all_files, certificate_texts, write_tree
from halb.validate import haproxy_check
from halb_lab.infra.ca import Authority, Issued

CA = Authority.create()
GOOD = CA.issue(["lab.internal", "api.lab.internal"])
DIR = Path(tempfile.mkdtemp(prefix="halb-test-tls-"))
SVC = "halb:haproxy.services[2]"  # the dev stack's two services, then this one
KEY = "haproxy.services[2].tls"


def _file(name: str, text: str) -> str:
    path = DIR / name
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def _swap(chain: str) -> str:
    leaf, inter, _ = chain.split("-----END CERTIFICATE-----\n")
    return inter + "-----END CERTIFICATE-----\n" + leaf + "-----END CERTIFICATE-----\n"


def _encrypted(issued: Issued) -> str:
    key = serialization.load_pem_private_key(issued.key.encode(), None)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    ).decode()


ED = (
    ed25519.Ed25519PrivateKey.generate()
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode()
)
CHAIN, KEYF = _file("good.pem", GOOD.chain), _file("good.key", GOOD.key)
NOW = datetime.now(UTC)


def service(tls: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "name": "web",
        "port": 8443,
        "mode": "http",
        "tls": tls,
        "servers": [{"name": "app1", "address": "192.168.4.70", "port": 8000}],
        **more,
    }


def files(chain: str, key: str, **more: Any) -> dict[str, Any]:
    return {f"{SVC}": service({"certificateFile": chain, "keyFile": key}, **more)}


# (id, changes to Pulumi.dev.yaml, key the error must name)
# fmt: off
ROWS: list[tuple[str, dict[str, Any], str]] = [
    ("expired", files(_file("old.pem", CA.issue(days=1, start=NOW - timedelta(days=5)).chain), KEYF),
     f"{KEY}.certificateFile"),
    ("not valid yet", files(_file("new.pem", CA.issue(start=NOW + timedelta(days=5)).chain), KEYF),
     f"{KEY}.certificateFile"),
    ("mismatched key", files(CHAIN, _file("other.key", CA.issue().key)), f"{KEY}.keyFile"),
    ("chain out of order", files(_file("swapped.pem", _swap(GOOD.chain)), KEYF), f"{KEY}.certificateFile"),
    ("key in plain text", {SVC: service({"certificateFile": CHAIN, "key": GOOD.key})}, f"{KEY}.key"),
    ("certificate in plain text", {SVC: service({"certificate": GOOD.chain, "keyFile": KEYF})},
     f"{KEY}.certificate"),
    ("junk after the PEM", files(_file("junk.pem", GOOD.chain + "frontend evil\n"), KEYF), f"{KEY}.certificateFile"),
    ("CRLF newlines", files(CHAIN, _file("crlf.key", GOOD.key.replace("\n", "\r\n"))), f"{KEY}.keyFile"),
    ("a blank line injected in a block", files(_file("blank.pem", GOOD.chain.replace("\n", "\n\n", 2)), KEYF),
     f"{KEY}.certificateFile"),
    ("encrypted key", files(CHAIN, _file("enc.key", _encrypted(GOOD))), f"{KEY}.keyFile"),
    ("RSA 1024", files(*(lambda i: (_file("rsa.pem", i.chain), _file("rsa.key", i.key)))(CA.issue(kind="rsa1024"))),
     f"{KEY}.keyFile"),
    ("Ed25519 key", files(CHAIN, _file("ed.key", ED)), f"{KEY}.keyFile"),
    ("a key inside the certificate file", files(_file("both.pem", GOOD.chain + GOOD.key), KEYF),
     f"{KEY}.certificateFile"),
    ("certificate given as the key", files(CHAIN, CHAIN), f"{KEY}.keyFile"),
    ("base64 that is not X.509", files(_file("bad.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
                                       KEYF), f"{KEY}.certificateFile"),
    ("missing file", files(str(DIR / "nope.pem"), KEYF), f"{KEY}.certificateFile"),
    ("relative path", files("good.pem", KEYF), f"{KEY}.certificateFile"),
    ("no certificate at all", {SVC: service({"keyFile": KEYF})}, f"{KEY}.certificate"),
    ("both a secret and a file", {SVC: service({"certificateFile": CHAIN, "certificate": {"secure": "v1:eA=="},
                                                "keyFile": KEYF})}, f"{KEY}.certificateFile"),
    ("route host not covered", files(CHAIN, KEYF, groups=[{"name": "api", "servers": [
        {"name": "a1", "address": "192.168.4.71"}]}], routes=[{"host": "evil.example.com", "group": "api"}]),
     "haproxy.services[2].routes[0].host"),
    ("hsts with mode tcp", {SVC: {**service({"certificateFile": CHAIN, "keyFile": KEYF, "hsts": 600}),
                                  "mode": "tcp"}}, f"{KEY}.hsts"),
    ("SNI entry with a mismatched key", {SVC: service({"certificateFile": CHAIN, "keyFile": KEYF, "sni": [
        {"certificateFile": CHAIN, "keyFile": _file("other2.key", CA.issue().key)}]})}, f"{KEY}.sni[0].keyFile"),
]
# fmt: on
SECRETS = [GOOD.key, ED, _encrypted(GOOD)]


def leaked(text: str) -> list[str]:
    """Lines of key material (a PEM body line) found in `text`."""
    bodies = {line for s in SECRETS for line in s.splitlines() if not line.startswith("-----")}
    return [line for line in bodies if line in text] + (["PRIVATE KEY"] if "PRIVATE KEY-----" in text else [])


def test_the_table_has_at_least_15_certificate_cases() -> None:
    assert len(ROWS) >= 15 and len({r[0] for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize(("changes", "key"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_a_bad_certificate_is_refused_naming_the_key_and_showing_no_key_material(
    changes: dict[str, Any], key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc, text = check(changes, tmp_path, monkeypatch)
    assert rc == 2, f"halb:{key}: exit {rc}: {text}"
    assert f"halb:{key}: got" in text, f"halb:{key} not named: {text}"
    assert "Traceback" not in text and not leaked(text), f"halb:{key}: {text}"


def test_a_good_certificate_from_files_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rc, text = check(files(CHAIN, KEYF), tmp_path, monkeypatch)
    assert rc == 0, text


def dev_with_tls(**tls: Any) -> dict[str, Any]:
    raw = stack_raw("dev")
    web = service({"certificate": GOOD.chain, "key": GOOD.key, **tls})
    web["groups"] = [{"name": "api", "sendProxy": "v2", "servers": [{"name": "a1", "address": "192.168.4.71"}]}]
    web["routes"] = [{"host": "api.lab.internal", "group": "api"}]
    redirect = {"name": "redirect", "port": 8080 + 1, "mode": "http", "redirectHttp": True}
    return set_in(raw, "haproxy.services", [*copy.deepcopy(raw["haproxy"]["services"]), web, redirect])


def test_a_certificate_under_21_days_is_warned_about_not_refused() -> None:
    soon = CA.issue(days=10)
    cfg = load_config(set_in(dev_with_tls(), "haproxy.services[2].tls", {"certificate": soon.chain, "key": soon.key}))
    warnings = expiry_warnings(tls_findings(cfg.haproxy)[1], NOW)
    assert len(warnings) == 1 and "halb:haproxy.services[2].tls: the certificate expires on" in warnings[0], warnings


def test_tls_renders_termination_routes_redirect_and_proxy_protocol_and_haproxy_takes_it(tmp_path: Path) -> None:
    require(tool("haproxy") is not None, "the `haproxy` binary")
    cfg = load_config(dev_with_tls(hsts=600))
    secrets = Secrets("s3cr3tPw", "stats-Pass-123", certificate_texts(cfg))
    text = next(f.content for f in all_files(cfg, "lb1", secrets) if f.path.endswith("haproxy.cfg"))
    assert "bind *:8443 ssl crt /etc/haproxy/halb-certs/web.pem alpn h2,http/1.1\n" in text, text
    assert "ssl-default-bind-options prefer-client-ciphers ssl-min-ver TLSv1.2 no-tls-tickets" in text
    assert 'http-response set-header Strict-Transport-Security "max-age=600"' in text
    assert "use_backend web_api if { req.hdr(host),field(1,:) -m str -i api.lab.internal }\n" in text
    assert re.search(r"server a1 192\.168\.4\.71:8443 check send-proxy-v2 check-send-proxy\n", text), text
    assert "frontend redirect\n    mode http\n    bind *:8081\n" in text and "redirect scheme https code 301" in text
    certs = [f for f in all_files(cfg, "lb1", secrets) if f.step == "tls"]
    assert [(f.path, f.mode, f.secret) for f in certs] == [("/etc/haproxy/halb-certs/web.pem", "0600", True)]
    assert certs[0].content == GOOD.chain.strip() + "\n" + GOOD.key.strip() + "\n", "web.pem: chain, then key"
    write_tree(cfg, tmp_path, secrets)
    result = haproxy_check(tmp_path / "lb1")
    assert result.rc == 0 and "WARNING" not in result.output.upper(), f"web haproxy.cfg: {result.output}"


def test_no_tls_renders_no_tls_policy_and_the_stack_without_it_has_no_tls_step() -> None:
    from halb.components.node import STEPS, steps_of

    cfg = load_config(stack_raw("dev"))
    text = next(f.content for f in all_files(cfg, "lb1") if f.path.endswith("haproxy.cfg"))
    assert "ssl-default" not in text and steps_of(cfg) == STEPS
    assert "tls" in steps_of(load_config(dev_with_tls()))


def test_the_tls_step_carries_certificates_as_base64_lines_and_checks_before_writing() -> None:
    cfg = load_config(dev_with_tls())
    files_ = all_files(cfg, "lb1", Secrets("x", "stats-Pass-123", certificate_texts(cfg)))
    payload = commands.certificate_payload(certificate_texts(cfg))
    assert re.fullmatch(r"web\.pem [A-Za-z0-9+/=]+\n", payload), "one line per file, nothing else"
    script = commands.tls_script(files_)
    assert script.index("the key does not match") < script.index("mv -f"), "checked before anything is written"
    assert "set ssl cert" in script and "commit ssl cert" in script, "a served certificate changes at runtime"
    assert "PRIVATE" not in script and GOOD.key.splitlines()[1] not in script, "no key in the script (stdin only)"


def test_a_plain_text_key_is_refused_by_the_program_too() -> None:
    raw = dev_with_tls()
    with pytest.raises(ConfigError) as err:
        load_config(raw, refuse_plaintext=True, secret_tops=set())
    assert "halb:haproxy.services[2].tls.key: got a plain-text value" in str(err.value), str(err.value)
    assert not leaked(str(err.value))


def test_each_tls_service_binds_its_own_certificates_only() -> None:
    """`web` and `web2`: a name that prefixes another's does not take its certificates."""
    raw = dev_with_tls()
    other = CA.issue(["other.internal"])
    web2 = service({"certificate": other.chain, "key": other.key}, name="web2", port=9443)
    cfg = load_config(set_in(raw, "haproxy.services", [*raw["haproxy"]["services"], web2]))
    text = next(f.content for f in all_files(cfg, "lb1") if f.path.endswith("haproxy.cfg"))
    assert "bind *:8443 ssl crt /etc/haproxy/halb-certs/web.pem alpn" in text, text
    assert "bind *:9443 ssl crt /etc/haproxy/halb-certs/web2.pem alpn" in text, text
