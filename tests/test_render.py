"""Rendered node files: golden output, structure, and acceptance by the real daemons.

Regenerate golden files after an intended change: `make golden`.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

import jinja2
import pytest

from conftest import IN_CI, ROOT, load_script, require, require_root_tools, stack_raw, tool, variants
from halb import render
from halb.config import ConfigError, HalbConfig, load_config
from halb.config.paths import set_in
from halb.render import PATHS, Secrets, all_files, node_files, secret_files, write_tree
from halb.validate import handoff_check, haproxy_check, keepalived_check, shellcheck

GOLDEN = ROOT / "tests" / "golden"
VARIANTS = {name: load_config(raw) for name, raw in variants().items()}
CASES = [(v, n.name) for v, cfg in VARIANTS.items() for n in cfg.nodes]
REAL = Secrets(vrrp_password="s3cr3tPw", stats_password="stats-Pass-123")


def rendered(tmp: Path, variant: str) -> Path:
    write_tree(VARIANTS[variant], tmp)
    return tmp


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_render_matches_golden_files(variant: str, tmp_path: Path) -> None:
    out = rendered(tmp_path, variant)
    golden = GOLDEN / variant
    if os.environ.get("UPDATE_GOLDEN") == "1" and not IN_CI:  # only on request, never in CI
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(out, golden)
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    want = sorted(p.relative_to(golden).as_posix() for p in golden.rglob("*") if p.is_file())
    assert got == want, f"{variant}: rendered file set differs from golden (run `make golden` if intended)"
    for rel in got:
        assert (out / rel).read_text() == (golden / rel).read_text(), f"{variant}/{rel} differs from golden"


@pytest.mark.parametrize("variant,node", CASES)
def test_haproxy_accepts_rendered_config_with_no_warnings(variant: str, node: str, tmp_path: Path) -> None:
    require(tool("haproxy") is not None, "the `haproxy` binary")
    result = haproxy_check(rendered(tmp_path, variant) / node)
    assert result.rc == 0 and "WARNING" not in result.output.upper(), f"{variant}/{node} haproxy.cfg: {result.output}"


@pytest.mark.parametrize("variant,node", CASES)
def test_keepalived_accepts_rendered_config(variant: str, node: str, tmp_path: Path) -> None:
    require_root_tools("keepalived", "unshare", "ip")
    cfg = VARIANTS[variant]
    result = keepalived_check(rendered(tmp_path, variant) / node, cfg.interface(cfg.node(node)))
    assert result.rc == 0 and not result.output.strip(), (
        f"{variant}/{node} keepalived.conf: rc={result.rc} {result.output}"
    )


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_scripts_pass_shellcheck(variant: str, tmp_path: Path) -> None:
    require(tool("shellcheck") is not None, "the `shellcheck` binary")
    out = rendered(tmp_path, variant)
    scripts = [p for p in out.rglob("*") if p.is_file() and p.read_text().startswith(("#!/bin/sh", "#!/bin/bash"))]
    expected = 2 * (4 if VARIANTS[variant].keepalived.handoff else 3)  # + halb-handoff
    assert len(scripts) == expected, f"{variant}: expected {expected} shell scripts, found {scripts}"
    for script in scripts:
        result = shellcheck(script)
        assert result.rc == 0, f"{variant}/{script.relative_to(out)}: {result.output}"


@pytest.mark.parametrize("variant,node", CASES)
def test_handoff_starts_idempotently_and_stops_leaving_nothing(variant: str, node: str, tmp_path: Path) -> None:
    """halb-handoff's script, run for real in private namespaces: nft loads its rules, each VIP
    gets its route on lo, arp_ignore is 1; `stop` takes all of it away and restores arp_ignore."""
    require_root_tools("nft", "unshare", "ip")
    cfg = VARIANTS[variant]
    result = handoff_check(rendered(tmp_path, variant) / node, cfg.interface(cfg.node(node)))
    assert result.rc == 0, f"{variant}/{node} halb-handoff: rc={result.rc} {result.output}"
    started, _, stopped = result.output.partition("stopped:")
    families = {"ip" if v.family == 4 else "ip6" for v in cfg.plan.vips}
    tables = set(re.findall(r"^table (ip6?) halb_handoff$", started, re.M))
    assert tables == families, f"{variant}/{node} halb-handoff: nft tables {tables}, VIPs' families {families}"
    routes = set(re.findall(r"^local (\S+) dev lo", started, re.M))
    assert routes == {str(v.address) for v in cfg.plan.vips}, f"{variant}/{node} halb-handoff: routes on lo {routes}"
    assert "arp_ignore 1" in started and "arp_ignore 0" in stopped, f"{variant}/{node} halb-handoff: {result.output}"
    assert "halb_handoff" not in stopped and "local " not in stopped, (
        f"{variant}/{node} halb-handoff stop left: {stopped}"
    )


def test_handoff_is_off_with_its_key_and_its_check_can_fail(tmp_path: Path) -> None:
    """Negative control: a ruleset nft refuses fails the check. And `keepalived.handoff: false`
    installs neither the script nor its unit, nor nftables."""
    from halb.commands import HANDOFF, halb_units, packages_script

    require_root_tools("nft", "unshare", "ip")
    tree = rendered(tmp_path, "dev") / "lb1"
    script = tree / PATHS["handoff"].lstrip("/")
    script.write_text(script.read_text().replace(" dup to ", " dup too "))
    assert handoff_check(tree, "ens192").rc != 0, "halb-handoff's check accepted `dup too`"
    off = load_config(set_in(stack_raw("dev"), "keepalived.handoff", False))
    paths = {f.path for f in node_files(off, "lb1")}
    assert not paths & {PATHS["handoff"], PATHS["handoff_unit"]}, f"handoff off, yet installed: {paths}"
    assert HANDOFF not in halb_units(off) and "nftables" not in packages_script(off), "handoff off"
    assert HANDOFF in halb_units(VARIANTS["dev"]) and "nftables" in packages_script(VARIANTS["dev"]), "handoff on"


def test_validators_catch_broken_files(tmp_path: Path) -> None:
    """Negative controls: the harness must be able to fail."""
    require_root_tools("keepalived", "haproxy", "unshare")
    out = rendered(tmp_path, "dev") / "lb1"
    cfg = out / PATHS["haproxy_cfg"].lstrip("/")
    # what the seed inherits from the distribution's defaults: HTTP logging on a TCP frontend
    cfg.write_text(cfg.read_text().replace("    option tcplog\n", "    option httplog\n", 1))
    assert haproxy_check(out).rc != 0, "haproxy -dW accepted inherited `option httplog` in tcp proxies"
    conf = out / PATHS["keepalived_conf"].lstrip("/")
    conf.write_text(re.sub(r"virtual_router_id \d+", "virtual_router_id 999", conf.read_text()))
    assert keepalived_check(out, "ens192").rc == 5, "keepalived -t accepted virtual_router_id 999"


def test_roles_states_and_priorities() -> None:
    dev = VARIANTS["dev"]
    lb1 = _file(dev, "lb1", "keepalived_conf")
    lb2 = _file(dev, "lb2", "keepalived_conf")
    assert "state MASTER" in lb1 and "priority 250" in lb1, "lb1 keepalived.conf: master state/priority"
    assert "state BACKUP" in lb2 and "priority 240" in lb2, "lb2 keepalived.conf: backup state/priority"
    assert "unicast_src_ip 192.168.4.61" in lb1 and re.search(r"unicast_peer \{\s+192.168.4.62\s+\}", lb1)
    assert "virtual_router_id 66" in lb1 and "192.168.4.60/24 dev ens192" in lb1
    assert "nopreempt" not in lb1


def test_nopreempt_starts_both_nodes_as_backup() -> None:
    cfg = VARIANTS["nopreempt"]
    for node in ("lb1", "lb2"):
        text = _file(cfg, node, "keepalived_conf")
        assert "state BACKUP" in text and "nopreempt" in text, f"{node} keepalived.conf under nopreempt"


def test_vrrp3_has_subsecond_adverts_and_no_authentication() -> None:
    cfg = VARIANTS["vrrp3"]
    text = _file(cfg, "lb1", "keepalived_conf")
    assert "vrrp_version 3" in text and "advert_int 0.5" in text and "authentication" not in text
    assert [f.path for f in secret_files(cfg, "lb1", REAL)] == [PATHS["haproxy_secrets"]]


def test_haproxy_owns_the_file_with_tcp_defaults_and_one_frontend_per_service() -> None:
    cfg = VARIANTS["http"]
    text = _file(cfg, "lb1", "haproxy_cfg")
    assert text.count("\nglobal\n") == 1 and re.search(r"defaults\n    mode tcp\n", text)
    for svc in cfg.haproxy.services:
        assert f"frontend {svc.name}\n    mode {svc.mode}\n    bind *:{svc.port}\n" in text, f"frontend {svc.name}"
        assert f"backend {svc.name}\n    mode {svc.mode}\n" in text, f"backend {svc.name}"
    assert "option httpchk" in text and "http-check send meth GET uri /healthz" in text
    assert "server app1 192.168.4.70:8000 check" in text
    assert "check check-ssl verify none" in text, "https backend uses a real TLS check"
    assert "stats http-request auth" in text and "prometheus-exporter" in text


def test_secrets_live_only_in_secret_files() -> None:
    for variant, cfg in VARIANTS.items():
        for node in cfg.nodes:
            files = all_files(cfg, node.name, REAL)
            for f in files:
                leaked = [s for s in (REAL.vrrp_password, REAL.stats_password) if s in f.content]
                assert f.secret == bool(leaked) or (f.secret and cfg.keepalived.version == 3), (
                    f"{variant}/{node.name}:{f.path} secret={f.secret} but holds {len(leaked)} secret values"
                )
                if f.secret:
                    assert f.mode == "0600", f"{f.path} must be 0600"


def test_every_file_carries_the_managed_by_halb_header() -> None:
    for f in all_files(VARIANTS["dev"], "lb1"):
        head = "\n".join(f.content.splitlines()[:2])
        assert "Managed by halb" in head, f"{f.path} lacks the header"


def test_a_template_given_too_little_refuses_to_render() -> None:
    """halb's templates render strictly: a value missing from the context is an error, never ''."""
    from halb import render

    with pytest.raises(jinja2.UndefinedError):
        render._render("keepalived.conf.j2")


def test_removing_a_backend_server_changes_only_haproxy_cfg() -> None:
    dev = variants()["dev"]
    servers = dev["haproxy"]["services"][0]["servers"]
    smaller = load_config(set_in(dev, "haproxy.services[0].servers", servers[:-1]))
    before = {f.path: f.sha256 for f in node_files(VARIANTS["dev"], "lb1")}
    after = {f.path: f.sha256 for f in node_files(smaller, "lb1")}
    changed = {p for p in before if before[p] != after[p]}
    assert changed == {PATHS["haproxy_cfg"]}, changed


def _file(cfg: HalbConfig, node: str, key: str) -> str:
    return next(f.content for f in all_files(cfg, node, REAL) if f.path == PATHS[key])


# --------------------------------------------------------------------------- day two


def test_maintenance_lowers_that_node_only_and_lifts_the_peers_nopreempt() -> None:
    from halb.plan import MAINTENANCE_PRIORITY

    raw = set_in(set_in(stack_raw("dev"), "nodes[0].maintenance", True), "keepalived.nopreempt", True)
    cfg = load_config(raw)
    lb1 = _conf(cfg, "lb1")
    lb2 = _conf(cfg, "lb2")
    assert f"priority {MAINTENANCE_PRIORITY}\n" in lb1 and "nopreempt" in lb1.replace("# nopreempt", ""), "lb1"
    assert "priority 240\n" in lb2 and "\n    nopreempt\n" not in lb2, "lb2 must preempt while lb1 rests"


def test_both_nodes_in_maintenance_is_refused() -> None:
    raw = set_in(set_in(stack_raw("dev"), "nodes[0].maintenance", True), "nodes[1].maintenance", True)
    with pytest.raises(ConfigError) as err:
        load_config(raw)
    assert "halb:nodes[*].maintenance" in str(err.value) and "at most one node" in str(err.value)


def test_server_weight_backup_and_state_render_and_only_they_change_at_runtime() -> None:
    from halb.commands import runtime_commands
    from halb.render import haproxy_structure

    raw = stack_raw("dev")
    base = load_config(raw)
    servers = raw["haproxy"]["services"][0]["servers"]
    changed = [
        {**servers[0], "weight": 5},
        {**servers[1], "state": "drain"},
        {**servers[2], "state": "disabled"},
        {**servers[3], "backup": True},
    ]
    cfg = load_config(set_in(raw, "haproxy.services[0].servers", changed))
    text = _haproxy(cfg)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("server ") and ":80 " in ln]
    assert lines[0].endswith("check weight 5") and lines[1].endswith("check weight 0"), lines
    assert lines[2].endswith("check disabled") and lines[3].endswith("check backup"), lines
    only_state = [changed[0], changed[1], changed[2], servers[3]]
    state_cfg = load_config(set_in(raw, "haproxy.services[0].servers", only_state))
    shape = haproxy_structure(base, "lb1")
    assert haproxy_structure(state_cfg, "lb1") == shape, "weights and states are runtime-only"
    assert haproxy_structure(cfg, "lb1") != shape, "`backup` needs a reload"
    assert "weight 5" not in haproxy_structure(state_cfg, "lb1") and shape == _haproxy(base).replace(" disabled", ""), (
        "the structure: the file itself with default weights and every server enabled"
    )
    cmds = runtime_commands(state_cfg)
    assert "set server http/worker2 weight 0" in cmds and "set server http/worker3 state maint" in cmds, cmds
    assert "set server http/worker1 weight 5\nset server http/worker1 state ready" in cmds, cmds


def test_a_service_with_no_active_server_is_refused() -> None:
    raw = stack_raw("dev")
    servers = [{**s, "state": "drain"} for s in raw["haproxy"]["services"][0]["servers"]]
    with pytest.raises(ConfigError) as err:
        load_config(set_in(raw, "haproxy.services[0].servers", servers))
    assert "halb:haproxy.services[0].servers[*].state" in str(err.value)


def _conf(cfg: HalbConfig, node: str) -> str:
    return next(f.content for f in all_files(cfg, node) if f.path.endswith("keepalived.conf"))


def _haproxy(cfg: HalbConfig) -> str:
    return next(f.content for f in all_files(cfg, "lb1") if f.path.endswith("haproxy.cfg"))


def test_dual_stack_instances_sync_group_and_binds() -> None:
    cfg = VARIANTS["dualstack"]
    text = _file(cfg, "lb1", "keepalived_conf")
    six = text[text.index("vrrp_instance halb_public6") :]
    assert "unicast_src_ip 2001:db8:4::61" in six and "unicast_peer {\n        2001:db8:4::62\n" in six, six
    assert "2001:db8:4::60/64 dev ens192" in six and "state MASTER" in six and "priority 250" in six, six
    internal = text[text.index("vrrp_instance halb_internal") : text.index("vrrp_instance halb_public6")]
    assert "state BACKUP" in internal and "priority 240" in internal and "unicast_src_ip 192.168.4.61" in internal
    assert re.search(r"vrrp_sync_group halb_web \{\n    group \{\n        halb_public\n        halb_public6\n", text)
    h = _file(cfg, "lb1", "haproxy_cfg")
    assert "frontend http\n    mode tcp\n    bind *:80\n    bind :::80 v6only\n" in h, "every VIP: both wildcards"
    assert "frontend api\n    mode tcp\n    bind 192.168.4.59:8443 transparent\n    option" in h, "one VIP: its address"
    assert "server api1 [2001:db8:4::70]:8443 check" in h, "IPv6 server in brackets"


def _script(variant: str, path: str, node: str = "lb1") -> dict[str, Any]:
    """A rendered python3 script of a variant (vrrp-resign, vrrp-guard), loaded as a module (not run)."""
    return load_script(VARIANTS[variant], path, node)


def test_the_addresses_the_guard_and_metrics_see_are_the_interfaces_not_the_routes_on_lo(tmp_path: Path) -> None:
    """vrrp_adverts.addresses (a netlink dump) in a network namespace of its own: an address on the
    interface counts (IPv4 and IPv6); a VIP that is local through halb-handoff's route on lo does
    not, and neither does another interface's address."""
    import subprocess

    require_root_tools("unshare", "ip")
    module = next(f for f in all_files(VARIANTS["dev"], "lb1") if f.path == PATHS["vrrp_adverts"])
    (tmp_path / "vrrp_adverts.py").write_text(module.content)
    script = f"""
set -e
ip link add halbt0 type veth peer name halbt0p
ip link set halbt0 up
ip addr add 198.18.9.1/24 dev halbt0
ip addr add 2001:2::9:1/64 dev halbt0 nodad
ip route add local 198.18.9.2 dev lo table local metric 1024
ip link add halbt1 type veth peer name halbt1p
ip addr add 198.18.9.3/24 dev halbt1
python3 -c 'import sys; sys.path.insert(0, "{tmp_path}"); import vrrp_adverts; print(" ".join(sorted(vrrp_adverts.addresses("halbt0"))))'
"""
    p = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, f"vrrp_adverts.addresses: {p.stderr}"
    seen = set(p.stdout.split())
    assert {"198.18.9.1", "2001:2::9:1"} <= seen, f"vrrp_adverts.addresses(halbt0): {seen}"
    assert not seen & {"198.18.9.2", "198.18.9.3"}, f"vrrp_adverts.addresses(halbt0) counts what is not on it: {seen}"


def _resign(variant: str, node: str = "lb1") -> dict[str, Any]:
    return _script(variant, PATHS["vrrp_resign"], node)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_vrrp_resign_lists_every_instance_as_keepalived_runs_it(variant: str) -> None:
    cfg = VARIANTS[variant]
    for node in cfg.nodes:
        lines = [line.split() for line in _resign(variant, node.name)["INSTANCES"].split("\n") if line.strip()]
        instances = cfg.plan.instances[node.name]
        assert [int(line[0]) for line in lines] == [i["vrid"] for i in instances], f"{variant}/{node.name}: vrids"
        for line, i in zip(lines, instances, strict=True):
            assert line[5:] == [str(i["src"]), str(i["peer"]), f"{i['vip']}/{i['prefixlen']}"], f"{variant}/{node.name}"
            assert line[1:4] == [
                str(cfg.keepalived.version),
                str(round(cfg.keepalived.advert_int * 100)),
                "1" if cfg.keepalived.unicast else "0",
            ], f"{variant}/{node.name}"


def test_vrrp_resign_builds_priority_0_adverts_with_valid_checksums() -> None:
    from ipaddress import ip_address

    resign = _resign("dev")
    v2 = resign["advert"](66, 2, 100, ip_address("192.168.4.60"), "192.168.4.61", "192.168.4.62", b"s3cr3t")
    assert v2[:6] == bytes([0x21, 66, 0, 1, 1, 1]) and v2[8:12] == ip_address("192.168.4.60").packed, v2.hex()
    assert v2[12:] == b"s3cr3t\0\0" and resign["checksum"](v2) == 0, (
        "VRRPv2: PASS padded to 8, checksum over the message"
    )
    v3 = resign["advert"](66, 3, 50, ip_address("192.168.4.60"), "192.168.4.61", "192.168.4.62", b"")
    assert v3[:6] == bytes([0x31, 66, 0, 1, 0, 50]) and len(v3) == 12, v3.hex()
    pseudo = ip_address("192.168.4.61").packed + ip_address("192.168.4.62").packed + bytes([0, 112, 0, 12])
    assert resign["checksum"](pseudo + v3) == 0, "VRRPv3 over IPv4: checksum with the pseudo-header"
    v6 = resign["advert"](7, 3, 100, ip_address("2001:db8:4::60"), "2001:db8:4::61", "2001:db8:4::62", b"")
    assert len(v6) == 8 + 16 and v6[6:8] == b"\0\0", "IPv6: the kernel fills the checksum in"


def _guard(variant: str, node: str) -> dict[str, Any]:
    return _script(variant, PATHS["vrrp_guard"], node)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_vrrp_guard_watches_each_vip_whose_peer_adverts_name_the_peer(variant: str) -> None:
    """Every IPv4 VIP, and an IPv6 one when adverts are unicast (multicast VRRPv3 adverts come from
    a link-local address); keepalived tracks a partition file for exactly those."""
    cfg = VARIANTS[variant]
    for node in cfg.nodes:
        guard = _guard(variant, node.name)
        lines = [line for line in guard["INSTANCES"].split("\n") if line.strip()]
        got = [(i.vrid, i.vip, i.peer) for i in map(guard["Instance"], lines)]
        want = [
            (i["vrid"], str(i["vip"]), str(i["peer"]))
            for i in cfg.plan.instances[node.name]
            if ":" not in str(i["vip"]) or cfg.keepalived.unicast
        ]
        assert got == want, f"{variant}/{node.name}: {got} != {want}"
        conf = _file(cfg, node.name, "keepalived_conf")
        tracked = [int(v) for v in re.findall(r"^vrrp_track_file halb_partition_(\d+) \{", conf, re.M)]
        assert tracked == [vrid for vrid, _, _ in got], f"{variant}/{node.name}: partition files {tracked}"


def test_vrrp_guard_arp_probe_finds_another_machine_answering_for_the_vip() -> None:
    import socket
    import struct

    guard = _guard("dev", "lb2")
    mine, other = bytes.fromhex("02aa00000002"), bytes.fromhex("02aa00000001")

    def reply(sender_ip: str) -> bytes:
        arp = struct.pack(
            "!HHBBH6s4s6s4s",
            1,
            0x0800,
            6,
            4,
            2,
            other,
            socket.inet_aton(sender_ip),
            mine,
            socket.inet_aton("192.168.4.62"),
        )
        return mine + other + struct.pack("!H", 0x0806) + arp

    for answer, expected in (("192.168.4.60", "02:aa:00:00:00:01"), ("192.168.4.99", None)):
        ours, lan = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with ours, lan:
            asked: list[bytes] = []

            def answer_it(lan: socket.socket, asked: list[bytes], sender: str) -> None:  # the LAN answers
                asked.append(lan.recv(128))
                lan.send(reply(sender))

            lan.send(reply("192.168.4.60"))  # an answer from before this probe: not taken for one
            lan_thread = threading.Thread(target=answer_it, args=(lan, asked, answer))
            lan_thread.start()
            assert guard["arp_probe"](ours, mine, "192.168.4.62", "192.168.4.60") == expected, answer
            lan_thread.join(2)
            request = asked[0]
            assert request[:6] == b"\xff" * 6 and request[12:14] == b"\x08\x06", "a broadcast ARP request"
            assert request[38:42] == socket.inet_aton("192.168.4.60"), "asking for the VIP"


class _AdvertSocket:
    """A raw IPv6 VRRP socket as the guard reads it (VRRP message only, sender in recvfrom)."""

    family = socket.AF_INET6

    def __init__(self) -> None:
        self.ours, self.lan = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sender = ""

    def fileno(self) -> int:
        return self.ours.fileno()

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        return self.ours.recv(size), (self.sender, 0)

    def advert(self, sender: str, vrid: int, priority: int) -> None:
        self.sender = sender
        self.lan.send(bytes([0x31, vrid, priority, 1, 0, 100, 0, 0]))


def test_vrrp_guard_asks_for_the_peers_mac_once_when_its_adverts_come_back() -> None:
    """A peer whose adverts were missing for `hold` (it became MASTER, or its link is back) is
    asked for its MAC once, so this node's unicast adverts need not wait for the kernel's next ARP
    try; adverts that keep coming ask nothing."""
    guard = _guard("dev", "lb2")
    i = guard["Instance"]("66 100 ens192 192.168.4.62 192.168.4.61 192.168.4.60 240")
    sock = _AdvertSocket()
    with sock.ours, sock.lan:
        sock.advert("192.168.4.61", 66, 250)
        guard["adverts_heard"](sock, [i])
        assert not i.resumed, "adverts that keep coming: the peer's MAC is not asked for"
        i.last_advert -= i.hold
        sock.advert("192.168.4.99", 66, 250)  # another router's advert: not the peer's
        guard["adverts_heard"](sock, [i])
        assert not i.resumed and i.peer_priority == 250, "an advert from another address is not the peer's"
        sock.advert("192.168.4.61", 66, 250)
        guard["adverts_heard"](sock, [i])
        assert i.resumed, f"adverts back after {i.hold} s: the peer's MAC is asked for"
    ours, lan = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with ours, lan:
        guard["arp_request"](ours, bytes.fromhex("02aa00000002"), i.src, i.peer)
        request = lan.recv(128)
        assert request[:6] == b"\xff" * 6 and request[28:32] == socket.inet_aton(i.src), "from this node"
        assert request[38:42] == socket.inet_aton(i.peer), "asking for the peer"


def _adverts(variant: str, node: str = "lb1") -> dict[str, Any]:
    return _script(variant, PATHS["vrrp_adverts"], node)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_vrrp_adverts_names_each_vrid_by_its_config_key(variant: str) -> None:
    cfg = VARIANTS[variant]
    vrids = _adverts(variant)["stack_vrids"]()
    want = {(i["vip"].version, i["vrid"]) for i in cfg.plan.instances["lb1"]}  # type: ignore[attr-defined]
    assert set(vrids) == want, f"{variant}: vrrp_adverts.py lists {sorted(vrids)}, keepalived runs {sorted(want)}"
    for (_, vrid), (key, vips) in vrids.items():
        if cfg.vips:
            index = int(key.removeprefix("vips[").removesuffix("].vrid"))
            assert str(cfg.plan.vips[index].address) in vips and cfg.plan.vips[index].vrid == vrid, f"{variant}: {key}"
        else:
            assert key == "keepalived.vrid" and vrid == cfg.plan.vips[0].vrid, f"{variant}: {key}"


def _frame(source: str, vrid: int, version: int, addresses: list[str]) -> bytes:
    """An Ethernet frame carrying a VRRP advert (checksums left 0: the parser does not read them)."""
    import socket
    import struct

    six = ":" in source
    af = socket.AF_INET6 if six else socket.AF_INET
    body = bytes([version << 4 | 1, vrid, 100, len(addresses), 0, 1, 0, 0])
    body += b"".join(socket.inet_pton(af, a) for a in addresses)
    if six:
        ip = (
            struct.pack("!IHBB", 6 << 28, len(body), 112, 255)
            + socket.inet_pton(af, source)
            + socket.inet_pton(af, "ff02::12")
        )
        return bytes.fromhex("33330000001202aa0000000986dd") + ip + body
    ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(body), 0, 0, 255, 112, 0)
    ip += socket.inet_pton(af, source) + socket.inet_pton(af, "224.0.0.18")
    return bytes.fromhex("01005e00001202aa000000090800") + ip + body


def test_vrrp_adverts_finds_only_routers_that_are_not_nodes_of_the_stack() -> None:
    a = _adverts("dualstack")
    vrids, nodes = a["stack_vrids"](), set(a["NODES"].split())
    cases = [
        (("192.168.4.99", 60, 2, ["192.168.4.200"]), True),  # another router, one of our VRIDs
        (("192.168.4.99", 60, 3, ["192.168.4.60"]), True),  # VRRPv3, even for our VIP: not a node of ours
        (("192.168.4.62", 60, 2, ["192.168.4.60"]), False),  # the peer
        (("192.168.4.99", 61, 2, ["192.168.4.200"]), False),  # a VRID the stack does not use
        (("fe80::99", 96, 3, ["2001:db8:4::60"]), False),  # the peer, from its link-local address, for our VIP
        (("fe80::99", 96, 3, ["2001:db8:4::99"]), True),  # another router on our IPv6 VRID
        (("fe80::99", 60, 3, ["2001:db8:4::99"]), False),  # VRID 60 is ours for IPv4 only
    ]
    for (source, vrid, version, addresses), expected in cases:
        found = a["advert"](_frame(source, vrid, version, addresses))
        assert found is not None and found[:4] == (6 if ":" in source else 4, vrid, source, version), found
        assert a["collision"](found, vrids, nodes) is expected, f"{source} vrid {vrid} {addresses}"
    found = a["advert"](_frame("192.168.4.99", 60, 2, ["192.168.4.200"]))
    assert a["describe"](found, vrids).startswith("VRID 60 (vips[0].vrid, IPv4) is in use: 192.168.4.99 sends VRRPv2")
    assert a["advert"](_frame("192.168.4.99", 60, 2, [])[:40]) is None, "a truncated frame is no advert"


def test_vrrp_adverts_refuses_one_advert_cycle_after_the_first_collision(capsys: pytest.CaptureFixture[str]) -> None:
    """The pre-flight does not sit out its whole window once it has heard a collision: it listens
    AFTER_COLLISION more (for other routers) and refuses, saying when it heard the first."""
    import time

    a = _adverts("dualstack")
    ours, lan = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    frames = [_frame("192.168.4.99", 60, 2, ["192.168.4.200"]), _frame("192.168.4.62", 60, 2, ["192.168.4.60"])]
    with ours, lan:
        a["vrrp_tap"] = lambda interface: ours
        ours.setblocking(False)

        def heard(sock: socket.socket) -> list[Any]:  # one frame a call, as the tap may give them
            try:
                return [a["advert"](sock.recv(2048))]
            except BlockingIOError:
                return []

        a["heard"] = heard
        a["AFTER_COLLISION"] = 0.3
        for frame in frames:
            lan.send(frame)
        start = time.monotonic()
        assert a["listen"](30.0) == 1, "a collision refuses"
        took = time.monotonic() - start
    assert took < 2.0, f"vrrp_adverts.py listened {took:.1f} s after hearing a collision (window 30 s)"
    err = capsys.readouterr().err
    assert "VRID 60 (vips[0].vrid, IPv4) is in use: 192.168.4.99" in err and "(heard 0.0 s into listening)" in err, err
    assert "192.168.4.62" not in err, "the peer's advert is no collision"


def test_vrrp_guard_takes_a_node_for_cut_off_only_when_nothing_arrives_while_it_asks() -> None:
    guard = _guard("dev", "lb1")
    assert guard["WITNESSES"] == ("192.168.4.61", "192.168.4.1"), "vrrp-guard on lb1: its address, network.gateway"
    asked: list[float] = []
    isolation = guard["Isolation"](2.0, lambda: asked.append(1))
    ticks = [round(t * guard["TICK"], 1) for t in range(60)]
    verdicts = [isolation.update(t, 500) for t in ticks]  # nothing arrives, ever
    first = ticks[verdicts.index(True)]
    assert 2.0 + guard["ISOLATED_AFTER"] <= first <= 2.0 + guard["ISOLATED_AFTER"] + 0.15, (
        f"vrrp-guard on lb1: cut off after 2 quiet s and {guard['ISOLATED_AFTER']} s of asking, not at {first} s"
    )
    assert len(asked) > 3 and all(verdicts[verdicts.index(True) :]), "vrrp-guard on lb1: asks every tick, stays cut off"
    assert isolation.update(6.1, 501) is False, "vrrp-guard on lb1: one frame ends it at once"
    assert isolation.update(6.2, 501) is False and isolation.update(8.0, 501) is False, "quiet again: not yet"
    advert = guard["Instance"](next(line for line in guard["INSTANCES"].split("\n") if line.strip())).advert
    lets_go = guard["QUIET"] * advert + guard["ISOLATED_AFTER"] + guard["TICK"]  # after the last frame
    assert 2 * advert - lets_go >= 1.0, (  # the peer takes over 3 adverts after the last it heard
        f"vrrp-guard on lb1 ({advert} s adverts): lets go {lets_go:.2f} s after the cut, less than 1 s "
        f"before its peer can take over ({2 * advert} s): a stray frame would leave both holding"
    )
    slow = guard["Isolation"](1.0, lambda: None)  # a busy CPU: a tick every 0.26 s, not 0.1 s
    slow_ticks = [round(t * 0.26, 2) for t in range(20)]
    late = next(t for t in slow_ticks if slow.update(t, 500))
    assert late <= 1.0 + guard["ISOLATED_AFTER"] + 0.26, (
        f"vrrp-guard on lb1: with slow ticks, cut off at {late} s, not by 1 quiet s + {guard['ISOLATED_AFTER']} s + a tick"
    )
    stalled = guard["Isolation"](1.0, lambda: None)  # one tick after a long stall: asked once, not enough
    assert [stalled.update(t, 500) for t in (0.0, 3.0, 3.1)] == [False, False, True], (
        "vrrp-guard on lb1: cut off only after asking twice"
    )
    count = iter(range(1000))  # a frame every tick (a client, an answer): never cut off, never asking
    busy = guard["Isolation"](0.5, lambda: pytest.fail("vrrp-guard on lb1 asked the LAN while frames arrive"))
    assert not any(busy.update(t, next(count)) for t in ticks), "vrrp-guard on lb1: frames arrive"

    class Probes:
        def who_has(self, i: object) -> str:
            return "02:aa:00:00:00:02"

    i = guard["Instance"](next(line for line in guard["INSTANCES"].split("\n") if line.strip()))
    held, why = guard["judge"](i, Probes(), i.last_advert + 0.1, True)
    assert held and "cut off from the LAN" in why and i.peer in why, f"vrrp-guard on lb1: {why}"
    assert guard["judge"](i, Probes(), i.last_advert + 0.1, False) == (False, ""), "adverts arrive, not cut off"

    class Unanswerable:
        def who_has(self, i: object) -> str:
            raise AssertionError("vrrp-guard on lb1 probed a VIP while nothing arrives")

    quiet_for = i.last_advert + 5 * i.hold  # adverts missing: a probe, unless nothing arrives at all
    assert guard["judge"](i, Unanswerable(), quiet_for, False, True) == (False, ""), "silent: no probe"
    guard["holds"] = lambda i: False  # lb1 does not hold the VIP (no interface named ens192 here)
    held, why = guard["judge"](i, Probes(), quiet_for, False, False)
    assert held and "answers for" in why, f"vrrp-guard on lb1: frames arrive, adverts missing: {why}"


def test_vrrp_guard_checks_no_isolation_without_a_gateway_to_ask() -> None:
    raw = set_in(variants()["dev"], "platform", "hosts")
    raw["network"] = {k: v for k, v in raw["network"].items() if k != "gateway"}
    raw.pop("vsphere")
    cfg = load_config(raw)
    files = {f.path: f.content for f in all_files(cfg, "lb1")}
    assert "\nWITNESSES = None" in files[PATHS["vrrp_guard"]], "vrrp-guard without network.gateway: no isolation check"


def test_vrrp_guard_raises_a_taking_over_nodes_priority_above_the_peers_last_advert_for_a_while() -> None:
    guard = _guard("nopreempt", "lb2")
    assert guard["HOLD"] == 1, "nopreempt: the guard keeps hold files"
    assert _guard("dev", "lb2")["HOLD"] == 0, "preempt: no hold files"
    i = guard["Instance"](next(line for line in guard["INSTANCES"].split("\n") if line.strip()))
    raise_by = guard["raise_by"]
    i.last_advert, i.peer_priority = 0.0, 250  # lb1, the preferred node, last advertised 250
    assert raise_by(i, False, 10.0) == 0, "not holding: nothing to raise"
    assert raise_by(i, True, 10.0) == 251 - i.priority, "took over: one above the peer's last advert"
    assert raise_by(i, True, 10.0 + guard["HOLD_S"] - 1) is None, "unchanged while the raise lasts"
    assert raise_by(i, True, 10.0 + guard["HOLD_S"] + 1) == 0, "back to the configured priority"
    assert raise_by(i, True, 200.0) == 0, "the peer's priority is used once"
    i.raised_at, i.last_advert, i.peer_priority = None, 300.0, 250
    assert raise_by(i, True, 300.5) == 0, "adverts still arriving: no takeover, no raise"


def test_vrrp_guard_ndp_probe_finds_another_machine_answering_for_an_ipv6_vip() -> None:
    import socket
    import struct

    guard = _guard("dualstack", "lb2")
    assert any(guard["Instance"](line).six for line in guard["INSTANCES"].split("\n") if line.strip()), "IPv6 guarded"
    mine, other = bytes.fromhex("02aa00000002"), bytes.fromhex("02aa00000001")
    vip = socket.inet_pton(socket.AF_INET6, "2001:db8:4::60")

    class Lan:
        """A stand-in for the raw ICMPv6 socket: records the solicitation, then the LAN answers."""

        def __init__(self, answers: list[bytes]) -> None:
            self.ours, self.lan = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.answers = answers
            self.sent: list[tuple[bytes, Any]] = []

        def fileno(self) -> int:
            return self.ours.fileno()

        def recv(self, n: int) -> bytes:
            return self.ours.recv(n)

        def sendto(self, data: bytes, where: Any) -> None:
            self.sent.append((data, where))
            for a in self.answers:
                self.lan.send(a)

    advert = struct.pack("!BBHI16s", 136, 0, 0, 0x60000000, vip) + bytes([2, 1]) + other
    other_target = struct.pack("!BBHI16s", 136, 0, 0, 0, socket.inet_pton(socket.AF_INET6, "2001:db8:4::99"))
    for answers, expected in (([advert], "02:aa:00:00:00:01"), ([other_target], None), ([], None)):
        lan = Lan(answers)
        got = guard["ndp_probe"](lan, 3, mine, "2001:db8:4::60")
        ns, (group, _, _, index) = lan.sent[0]
        assert ns[0] == 135 and ns[8:24] == vip and ns[24:32] == bytes([1, 1]) + mine, "a neighbor solicitation"
        assert group == "ff02::1:ff00:60" and index == 3, "to the VIP's solicited-node group on the interface"
        assert got == expected, f"{answers}: {got}"


def test_every_context_key_is_read_by_some_template() -> None:
    """A key in render.context that no template reads is a second, dead source of a fact: the
    templates' top-level names (jinja2.meta), and each nested key as `name.key` in their text
    (a table the templates index, `name[...]`, counts as read whole)."""
    import jinja2.meta

    env = render._ENVS[render.haproxy_word]
    sources = "".join(env.loader.get_source(env, t)[0] for t in render.TARGETS)  # type: ignore[union-attr]
    names: set[str] = set()
    for template in render.TARGETS:
        names |= jinja2.meta.find_undeclared_variables(env.parse(env.loader.get_source(env, template)[0]))  # type: ignore[union-attr]
    unread: set[str] = set()
    for cfg in VARIANTS.values():
        for node in cfg.nodes:
            ctx = render.context(cfg, node.name)
            unread |= {k for k in ctx if k not in names}
            unread |= {
                f"{k}.{n}"
                for k, v in ctx.items()
                if isinstance(v, dict) and f"{k}[" not in sources
                for n in v
                if not re.search(rf"\b{k}\.{n}\b", sources)
            }
    assert not unread, f"render.context keys no template reads: {sorted(unread)}"
