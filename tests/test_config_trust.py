"""Config trust, round three: every example of the outside review's eight classes, through
`halb check` as a user runs it. Each is refused within 2 s with exit 2, names its key and shows
no traceback, escape byte, key line or payload; or (class 8, and the fixed renderings) it is
accepted, and `halb check` has run haproxy -c and keepalived -t on what it renders."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from test_hostile_input import check
from test_tls import CA, CHAIN, DIR, GOOD, KEYF, SVC, _file, files, service

from conftest import ROOT, require, tool
from halb_lab.certificates import BAD_SAN, Maker

KEY = "haproxy.services[2].tls"
SERVER0 = "halb:haproxy.services[0].servers[0]"

# --------------------------------------------------------------------------- certificates of every shape

M = Maker(DIR, CA)


def with_openssl(make: Any) -> Any:
    require(tool("openssl") is not None, "the `openssl` binary")
    return make()


# --------------------------------------------------------------------------- stacks

DUAL = {
    "halb:network.subnet6": "2001:db8:4::/64",
    "halb:nodes[0].address6": "2001:db8:4::61",
    "halb:nodes[1].address6": "2001:db8:4::62",
    "halb:keepalived.version": 3,
    "halb:keepalived.vrid": None,
    "halb:addresses.vip": None,
}


def vips(*extra: dict[str, Any], **more: Any) -> dict[str, Any]:
    """The dev stack with `halb:vips`: 192.168.4.60, 2001:db8:4::60 and `extra`."""
    listed = [{"name": "public", "address": "192.168.4.60"}, {"name": "six", "address": "2001:db8:4::60"}, *extra]
    return {**DUAL, "halb:vips": listed, **more}


def tls_route(chain: str, key: str, host: str) -> dict[str, Any]:
    return files(
        chain,
        key,
        groups=[{"name": "api", "servers": [{"name": "a1", "address": "192.168.4.71"}]}],
        routes=[{"host": host, "group": "api"}],
    )


def web(**more: Any) -> dict[str, Any]:
    return service({"certificateFile": CHAIN, "keyFile": KEYF}, **more)


SNI = [{"certificateFile": CHAIN, "keyFile": KEYF}]
KEY_ONE_LINE = " ".join(GOOD.key.split("\n")).strip()  # a key pasted as plain YAML folds into one line
KEY_LINE = GOOD.key.splitlines()[1]

# (class, id, changes to Pulumi.dev.yaml, key the error names, text that must not appear)
# fmt: off
ROWS: list[tuple[int, str, Any, str, str]] = [
    # 1. a value becomes a directive
    (1, "backend address with a zone that closes the bracket", {f"{SERVER0}.address": "2001:2::22%lo]:80 disabled #"},
     "haproxy.services[0].servers[0].address", ""),
    (1, "allowFrom with a zone carrying a rich-rule fragment",
     {"halb:haproxy.stats.allowFrom": ['2001:db8::%x" port port="22" accept/64']}, "haproxy.stats.allowFrom[0]", ""),
    (1, "VIP with a zone on a node's address", lambda: vips({"name": "z", "address": "2001:db8:4::61%lo"}),
     "vips[2].address", ""),
    (1, "node address6 with a zone", {**DUAL, "halb:nodes[0].address6": "2001:db8:4::61%eth0 x"},
     "nodes[0].address6", ""),
    (1, "gateway6 with a zone", {**DUAL, "halb:network.gateway6": "fe80::1%eth0"}, "network.gateway6", ""),
    (1, "subnet6 with a zone", {**DUAL, "halb:network.subnet6": "2001:db8:4::%x/64"}, "network.subnet6", ""),
    # 2. key material echoed
    (2, "a key folded into keyFile", lambda: files(CHAIN, KEY_ONE_LINE), f"{KEY}.keyFile", KEY_LINE[:20]),
    (2, "a key under a key that is not secret", {"halb:vsphere.folder": KEY_ONE_LINE}, "vsphere.folder", KEY_LINE[:20]),
    (2, "a key as a backend's name", {f"{SERVER0}.name": f"{KEY_LINE} x"}, "haproxy.services[0].servers[0].name",
     KEY_LINE[:20]),
    (2, "SAN names with terminal escapes", lambda: tls_route(*M.leaf(["a\x1b[31m.lab.internal"]), "x.lab.internal"),
     "haproxy.services[2].routes[0].host", "\x1b"),
    # 3. tracebacks and hangs
    (3, "an SM2 key", lambda: files(CHAIN, with_openssl(M.sm2_key)), f"{KEY}.keyFile", ""),
    (3, "a SAN extension that does not parse", lambda: files(*M.leaf([], raw_san=BAD_SAN)),
     f"{KEY}.certificateFile", ""),
    (3, "a 300-byte path component", lambda: files("/tmp/" + "a" * 300 + ".pem", KEYF), f"{KEY}.certificateFile", ""),
    (3, "300 VIPs", lambda: vips(*({"name": f"v{i}", "address": f"192.168.4.{100 + i % 150}"} for i in range(298))),
     "vips", ""),
    (3, "300 VIPs in a sync group", lambda: vips(*({"name": f"v{i}", "address": f"192.168.4.{100 + i % 150}"}
                                                   for i in range(298)),
                                                 **{"halb:keepalived.syncGroups": [{"name": "grp", "vips": ["public", "v1"]}]}),
     "vips", ""),
    # 4. certificate checks skipped
    (4, "a DER certificate", lambda: files(M.der(), KEYF), f"{KEY}.certificateFile", ""),
    (4, "a PKCS#12 bundle", lambda: files(M.pkcs12(), KEYF), f"{KEY}.certificateFile", ""),
    (4, "an expired chain behind a non-ASCII line", lambda: files(M.bag_attributes_expired(), KEYF),
     f"{KEY}.certificateFile", ""),
    (4, "a key file that is a directory", lambda: files(CHAIN, str(DIR)), f"{KEY}.keyFile", ""),
    (4, "a 256 MB certificate file", lambda: files(M.sparse(256 << 20), KEYF), f"{KEY}.certificateFile", ""),
    (4, "/dev/zero as the certificate", lambda: files("/dev/zero", KEYF), f"{KEY}.certificateFile", ""),
    # 5. accepted, but wrong by the standards
    (5, "a clientAuth-only leaf", lambda: files(*M.leaf(["lab.internal"], eku=[ExtendedKeyUsageOID.CLIENT_AUTH])),
     f"{KEY}.certificateFile", ""),
    (5, "*.com taken to cover shop.com", lambda: tls_route(*M.leaf(["*.com"]), "shop.com"),
     "haproxy.services[2].routes[0].host", ""),
    (5, "a route host over a public suffix", lambda: tls_route(*M.leaf(["*.lab.internal"]), "*.internal"),
     "haproxy.services[2].routes[0].host", ""),
    (5, "a pathPrefix with a query string", {SVC: web(groups=[{"name": "api", "servers": [
        {"name": "a1", "address": "192.168.4.71"}]}], routes=[{"pathPrefix": "/v1?x=1", "group": "api"}])},
     "haproxy.services[2].routes[0].pathPrefix", ""),
    (5, "a 10 MB chain", lambda: files(_file("big.pem", GOOD.chain * 4000), KEYF), f"{KEY}.certificateFile", ""),
    (5, "a SHA-1 leaf", lambda: files(*with_openssl(M.sha1_leaf)), f"{KEY}.certificateFile", ""),
    # 6. check said ok, then a daemon refused
    (6, "redirectHttp with groups and routes", {SVC: {"name": "redir", "port": 8081, "mode": "http",
        "redirectHttp": True, "groups": [{"name": "api", "servers": [{"name": "a1", "address": "192.168.4.71"}]}],
        "routes": [{"host": "api.lab.internal", "group": "api"}]}}, "haproxy.services[2].groups", ""),
    (6, "a service named like another's generated backend", {"halb:haproxy.services[2]": {"name": "web_api",
        "port": 8082, "servers": [{"name": "x", "address": "192.168.4.72"}]}, "halb:haproxy.services[3]": web(
        groups=[{"name": "api", "servers": [{"name": "a1", "address": "192.168.4.71"}]}], mode="http",
        routes=[{"pathPrefix": "/api/", "group": "api"}])}, "haproxy.services[3].name", ""),
    (6, "a service named like another's SNI file", {SVC: service({"certificateFile": CHAIN, "keyFile": KEYF,
        "sni": SNI}), "halb:haproxy.services[3]": {**web(), "name": "web-sni1", "port": 9443}},
     "haproxy.services[3].tls", ""),
    (6, "vips: []", lambda: vips(**{"halb:haproxy.services[0].vips": []}), "haproxy.services[0].vips", ""),
    (6, "vips naming a VIP without halb:vips", {"halb:haproxy.services[0].vips": ["public"]},
     "haproxy.services[0].vips", ""),
    (6, "40 SNI entries", {SVC: service({"certificateFile": CHAIN, "keyFile": KEYF, "sni": [dict(e) for e in SNI * 40]})},
     f"{KEY}.sni", ""),
    (6, "a sync group naming a VIP twice", lambda: vips(**{"halb:keepalived.syncGroups": [
        {"name": "grp", "vips": ["public", "six", "public"]}]}), "keepalived.syncGroups[0].vips[2]", ""),
    (6, "every server at weight 0", {f"halb:haproxy.services[0].servers[{i}].weight": 0 for i in range(4)},
     "haproxy.services[0].servers[*].weight", ""),
    (6, "stats uri /halb/backends", {"halb:haproxy.stats.uri": "/halb/backends"}, "haproxy.stats.uri", ""),
    # 7. addresses that break the segment or loop
    (7, "a second VIP at the gateway", lambda: vips({"name": "gw", "address": "192.168.4.1"}), "vips[2].address", ""),
    (7, "a second VIP at the broadcast address", lambda: vips({"name": "bc", "address": "192.168.4.255"}),
     "vips[2].address", ""),
    (7, "a second VIP at a DNS server", lambda: vips({"name": "dns", "address": "192.168.4.53"},
                                                     **{"halb:network.dnsServers": ["192.168.4.1", "192.168.4.53"]}),
     "vips[2].address", ""),
    (7, "a link-local VIP", lambda: vips({"name": "ll", "address": "fe80::5"}), "vips[2].address", ""),
    (7, "a multicast VIP", lambda: vips({"name": "mc", "address": "ff02::12"}), "vips[2].address", ""),
    (7, "VRRP's own group as a VIP", lambda: vips({"name": "vrrp", "address": "224.0.0.18"}), "vips[2].address", ""),
    (7, "a loopback VIP", lambda: vips({"name": "lo", "address": "::1"}), "vips[2].address", ""),
    (7, "an IPv4-mapped VIP", lambda: vips({"name": "map", "address": "::ffff:192.168.4.70"}), "vips[2].address", ""),
    (7, "the subnet-router anycast address as a VIP", lambda: vips({"name": "any", "address": "2001:db8:4::"}),
     "vips[2].address", ""),
    (7, "a link-local subnet6", lambda: {**vips(), "halb:network.subnet6": "fe80::/64", "halb:nodes[0].address6": "fe80::61",
                                         "halb:nodes[1].address6": "fe80::62", "halb:vips[1].address": "fe80::60"},
     "network.subnet6", ""),
    (7, "an IPv4-mapped subnet6", lambda: {**vips(), "halb:network.subnet6": "::ffff:192.168.4.0/120"},
     "network.subnet6", ""),
    (7, "a backend on the second VIP", lambda: vips(**{f"{SERVER0}.address": "2001:db8:4::60"}),
     "haproxy.services[0].servers[0].address", ""),
    (7, "a backend on a node's address6", lambda: vips(**{f"{SERVER0}.address": "2001:db8:4::62"}),
     "haproxy.services[0].servers[0].address", ""),
]
def at_the_limits() -> dict[str, Any]:
    """Every collection at its limit and every name at its longest: the longest lines halb writes
    (haproxy reads 2048 characters a line and 64 words, keepalived 1024 characters)."""
    name = "w" + "x" * 31
    groups = [{"name": f"g{i:02d}" + "y" * 29, "servers": [{"name": "s" * 64, "address": "192.168.4.71"}]}
              for i in range(32)]
    host = ("h" * 60 + ".") * 3 + "lab.internal"
    routes = [{"host": host, "pathPrefix": "/" + "p" * 255, "group": groups[i % 32]["name"]} for i in range(100)]
    chain, key = M.leaf([host, "lab.internal"])
    tls = {"certificateFile": chain, "keyFile": key, "sni": [{"certificateFile": chain, "keyFile": key} for _ in range(25)]}
    big = {"name": name, "port": 9443, "mode": "http", "tls": tls, "groups": groups, "routes": routes,
           "servers": [{"name": f"s{i:03d}" + "z" * 60, "address": f"192.168.{5 + i // 250}.{1 + i % 250}"} for i in range(500)]}
    many = [{"name": f"v{i:03d}", "address": f"2001:db8:4::1:{i:x}"} for i in range(253)]
    return vips(*many, **{
        SVC: big,
        "halb:network.subnet": "192.168.4.0/22",
        "halb:haproxy.stats.allowFrom": [f"2001:db8:ffff:ffff:ffff:ffff:ffff:{i:04x}/128" for i in range(256)],
    })


# Accepted (class 8, and values the review found rendered wrong, now rendered right): halb check
# exits 0, having run haproxy -c and keepalived -t on both nodes; `expect` is in its output.
ACCEPTED: list[tuple[int, str, Any, str]] = [
    (8, "a link-local gateway6", lambda: vips(**{"halb:network.gateway6": "fe80::1"}), "ok (vsphere"),
    (8, "an EC key with its EC PARAMETERS block", lambda: files(*M.ec_parameters_key()), "ok (vsphere"),
    (8, "a first VIP ending in .0 beside vips", lambda: vips(**{"halb:network.subnet": "192.168.4.0/23",
        "halb:vips[0].address": "192.168.5.0", "halb:network.gateway": "192.168.4.1"}), "ok (vsphere"),
    (5, "a route host wildcard", lambda: tls_route(*M.leaf(["*.lab.internal"]), "*.lab.internal"), "ok (vsphere"),
    (5, "a leaf without its intermediate", lambda: files(*M.leaf(["lab.internal"], chain=False)),
     "append the intermediate"),
    (5, "a world-readable key file", lambda: files(*M.world_readable_key()), "readable by every user"),
    (6, "every collection at its limit, every name at its longest", at_the_limits, "ok (vsphere"),
    (6, "70 allowFrom networks", {"halb:haproxy.stats.allowFrom": [f"10.{i}.0.0/16" for i in range(70)]}, "ok (vsphere"),
]
# fmt: on


def _changes(changes: Any) -> dict[str, Any]:
    return changes() if callable(changes) else changes


@pytest.mark.parametrize(("changes", "key", "payload"), [r[2:] for r in ROWS], ids=[r[1] for r in ROWS])
def test_round_three_value_is_refused_naming_its_key(
    changes: Any, key: str, payload: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changes = _changes(changes)
    start = time.monotonic()
    rc, text = check(changes, tmp_path, monkeypatch)
    took = time.monotonic() - start
    assert took < 2, f"halb:{key}: took {took:.1f} s"
    assert rc == 2, f"halb:{key}: exit {rc}: {text}"
    assert f"halb:{key}: got" in text, f"halb:{key} not named: {text}"
    assert "Traceback" not in text and "\x1b" not in text and "PRIVATE KEY-----" not in text, text
    assert KEY_LINE not in text, f"halb:{key}: a key line is shown: {text}"
    if payload:
        assert payload not in text, f"halb:{key}: the payload is shown: {text}"


@pytest.mark.parametrize(("changes", "expect"), [r[2:] for r in ACCEPTED], ids=[r[1] for r in ACCEPTED])
def test_round_three_value_that_is_valid_is_accepted_and_its_files_pass_the_daemons(
    changes: Any, expect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(all(tool(t) for t in ("haproxy", "keepalived", "unshare")), "haproxy, keepalived and unshare")
    rc, text = check(_changes(changes), tmp_path, monkeypatch)
    assert rc == 0, f"exit {rc}: {text}"
    assert expect in text and "not run through" not in text, text


def test_an_unreadable_key_is_a_problem_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PermissionError (a key in a directory this user cannot enter; root enters every directory,
    so the refusal is made by the filesystem call itself here)."""
    real_open = os.open

    def refusing(path: Any, *args: Any, **kwargs: Any) -> int:
        if str(path) == KEYF:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    rc, text = check(files(CHAIN, KEYF), tmp_path, monkeypatch)
    assert rc == 2 and f"halb:{KEY}.keyFile: got" in text and "permission denied" in text, text
    assert "Traceback" not in text


def test_the_ec_parameters_block_is_left_off_the_node() -> None:
    from conftest import stack_raw
    from halb.config import load_config
    from halb.config.paths import set_in
    from halb.render import certificate_texts

    chain, key = M.ec_parameters_key()
    raw = stack_raw("dev")
    svc = service({"certificateFile": chain, "keyFile": key})
    cfg = load_config(set_in(raw, "haproxy.services", [*raw["haproxy"]["services"], svc]))
    [text] = certificate_texts(cfg).values()
    assert "EC PARAMETERS" not in text and text.count("PRIVATE KEY-----") == 2, "web.pem: the chain and the key only"


def test_the_wildcard_route_renders_a_suffix_match() -> None:
    from conftest import stack_raw
    from halb.config import load_config
    from halb.config.paths import set_in
    from halb.render import all_files

    chain, key = M.leaf(["*.lab.internal"])
    raw = stack_raw("dev")
    svc = service(
        {"certificateFile": chain, "keyFile": key},
        groups=[{"name": "api", "servers": [{"name": "a1", "address": "192.168.4.71"}]}],
        routes=[{"host": "*.lab.internal", "group": "api"}],
    )
    cfg = load_config(set_in(raw, "haproxy.services", [*raw["haproxy"]["services"], svc]))
    text = next(f.content for f in all_files(cfg, "lb1") if f.path.endswith("haproxy.cfg"))
    assert "use_backend web_api if { req.hdr(host),field(1,:) -m end -i .lab.internal }\n" in text, text


def test_the_tables_cover_every_class_and_the_docs_count_them() -> None:
    counts = Counter(r[0] for r in ROWS) + Counter(r[0] for r in ACCEPTED)
    assert sorted(counts) == list(range(1, 9)), counts
    page = (ROOT / "docs/concepts/security.md").read_text()
    for cls, n in counts.items():
        assert f"| {cls}. " in page and f"| {n} |" in page.split(f"| {cls}. ", 1)[1].split("\n", 1)[0], (
            f"docs/concepts/security.md's round-three table: class {cls} has {n} cases"
        )
