"""halb's metrics (halb/metrics.py) as the node's writer (templates/halb-metrics.j2) exposes them:
Prometheus's text format as promtool reads it, every declared metric, values from the node's state."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import load_script, require, stack_raw, tool, variants
from halb.config import load_config
from halb.config.paths import set_in
from halb.metrics import NAMES, of_mode
from halb.render import PATHS, all_files
from halb_lab.infra import ca

SHOW_STAT = (
    "# pxname,svname,qcur,status,weight,act,bck\n"
    "http,w1,0,UP,1,1,0\nhttp,w2,0,DOWN,1,0,0\nhttp,BACKEND,0,UP,2,1,0\n"
    "api,BACKEND,0,DOWN,0,0,0\n"
    "halb_stats,BACKEND,0,UP,0,0,0\n"
)


def writer(variant: str = "dev", node: str = "lb1", raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """The rendered halb-metrics, loaded as a module (not run)."""
    cfg = load_config(raw if raw is not None else variants()[variant])
    return load_script(cfg, PATHS["metrics_writer"], node)


def admin_socket(path: Path) -> threading.Thread:
    """A stand-in for haproxy's admin socket that answers one `show stat`."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            assert conn.recv(100).startswith(b"show stat"), "halb-metrics asks `show stat`"
            conn.sendall(SHOW_STAT.encode())
        server.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


@pytest.fixture
def node_state(tmp_path: Path) -> dict[str, Any]:
    """halb-metrics of the dev stack's lb1, pointed at a node's state made up in tmp_path: MASTER
    after 3 changes, haproxy healthy, in maintenance, one certificate, an admin socket."""
    m = writer()
    state, certs = tmp_path / "run", tmp_path / "certs"
    state.mkdir()
    certs.mkdir()
    (state / "vrrp-state-halb").write_text("MASTER\n")
    (state / "vrrp-transitions-halb").write_text("3\n")
    (state / "vrrp-partition-66").write_text("0\n")
    (tmp_path / "health").write_text("0\n")
    (tmp_path / "haproxy.cfg").write_text("global\n")
    (tmp_path / "keepalived.conf").write_text("vrrp_instance halb {\n    virtual_router_id 66\n    priority 1\n}\n")
    issued = ca.Authority.create().issue(days=10)
    chain, key = ca.write(issued, tmp_path / "leaf")
    (certs / "https.pem").write_text(chain.read_text() + key.read_text())
    m.update(
        STATE_DIR=str(state),
        HEALTH=str(tmp_path / "health"),
        CERTS_DIR=str(certs),
        HAPROXY_CFG=str(tmp_path / "haproxy.cfg"),
        KEEPALIVED_CONF=str(tmp_path / "keepalived.conf"),
        ADMIN_SOCKET=str(tmp_path / "admin.sock"),
        OUT=str(tmp_path / "metrics" / "halb.prom"),
    )
    return {"m": m, "tmp": tmp_path, "fingerprint": issued.fingerprint}


def series(text: str) -> dict[str, float]:
    """`name{labels}` -> value of every sample line."""
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"}


def promtool_checked(node: dict[str, Any], what: str) -> tuple[str, set[tuple[str, str]]]:
    """The writer's exposition of the node's state (with an admin socket), which `promtool check
    metrics` must accept; and the (name, type) of each metric in it."""
    require(tool("promtool") is not None, "the `promtool` binary (Debian's prometheus)")
    m = node["m"]
    admin_socket(node["tmp"] / "admin.sock")
    text = m["exposition"](m["sample"](m["Certificates"]()))
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert p.returncode == 0, f"{what}: promtool check metrics: {p.stdout}{p.stderr}\n{text}"
    return text, set(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def test_halb_metrics_exposes_every_declared_metric_in_the_format_promtool_accepts(node_state: dict[str, Any]) -> None:
    text, names = promtool_checked(node_state, "halb-metrics")
    assert names == {(x.name, x.kind) for x in of_mode("vrrp")}, f"halb-metrics exposes {sorted(names)}"
    got = series(text)
    assert got['halb_vrrp_state{vrrp_instance="halb",vip="192.168.4.60",state="master"}'] == 1, text
    assert got['halb_vrrp_state{vrrp_instance="halb",vip="192.168.4.60",state="backup"}'] == 0, text
    assert got['halb_vrrp_transitions_total{vrrp_instance="halb"}'] == 3, text
    assert got['halb_vrrp_partition{vrrp_instance="halb"}'] == 0, text
    assert got['halb_vip_held{vip="192.168.4.60"}'] == 0, "halb-metrics: this machine has no such VIP"
    assert got["halb_haproxy_healthy"] == 1 and got["halb_maintenance"] == 1, text
    assert got['halb_backends_usable{backend="http"}'] == 1 and got['halb_backends_usable{backend="api"}'] == 0, text
    assert not any("halb_stats" in k for k in got), "halb-metrics: halb's own stats backend is no service"
    expiry = got[f'halb_certificate_not_after_seconds{{service="https",fingerprint="{node_state["fingerprint"]}"}}']
    import time

    assert 9.9 * 86400 < expiry - time.time() < 10.1 * 86400, (
        f"halb-metrics: the certificate expires in 10 days: {text}"
    )


def test_halb_metrics_labels_are_declared_and_values_follow_the_node(node_state: dict[str, Any]) -> None:
    m, tmp = node_state["m"], node_state["tmp"]
    (tmp / "health").write_text("1\n")  # halb-haproxy-watch: haproxy down
    (tmp / "run" / "vrrp-partition-66").write_text("1\n")
    (tmp / "keepalived.conf").write_text("vrrp_instance halb {\n    virtual_router_id 66\n    priority 250\n}\n")
    samples = m["sample"](m["Certificates"]())  # no admin socket: no backend figures, no error
    for name, labels, _ in samples:
        assert tuple(k for k, _ in labels) == NAMES[name].labels, f"halb-metrics: {name} labels {labels}"
    got = series(m["exposition"](samples))
    assert got["halb_haproxy_healthy"] == 0 and got["halb_maintenance"] == 0, got
    assert got['halb_vrrp_partition{vrrp_instance="halb"}'] == 1, got
    assert not any(k.startswith("halb_backends_usable") for k in got), got
    digest = next(k for k in got if k.startswith("halb_config_info"))
    (tmp / "keepalived.conf").write_text("vrrp_instance halb {\n    virtual_router_id 67\n    priority 250\n}\n")
    assert next(k for k in series(m["exposition"](m["sample"](m["Certificates"]()))) if "config_info" in k) != digest, (
        "halb-metrics: a changed shared VRRP setting changes the digest"
    )
    (tmp / "keepalived.conf").write_text("vrrp_instance halb {\n    virtual_router_id 67\n    priority 240\n}\n")
    changed = next(k for k in series(m["exposition"](m["sample"](m["Certificates"]()))) if "config_info" in k)
    (tmp / "keepalived.conf").write_text("vrrp_instance halb {\n    virtual_router_id 67\n    priority 250\n}\n")
    again = next(k for k in series(m["exposition"](m["sample"](m["Certificates"]()))) if "config_info" in k)
    assert changed == again, "halb-metrics: a node's own priority is not part of what both nodes share"


def test_halb_metrics_writes_the_file_whole(node_state: dict[str, Any]) -> None:
    m, tmp = node_state["m"], node_state["tmp"]
    (tmp / "metrics").mkdir()
    m["write"]("halb_maintenance 0\n")
    out = tmp / "metrics" / "halb.prom"
    assert out.read_text() == "halb_maintenance 0\n" and oct(out.stat().st_mode)[-3:] == "644"
    assert [p.name for p in (tmp / "metrics").iterdir()] == ["halb.prom"], "no temporary file left"


def test_without_the_node_exporter_no_metrics_files_and_no_port() -> None:
    raw = set_in(stack_raw("dev"), "monitoring", {"nodeExporter": False})
    cfg = load_config(raw)
    paths = {f.path for f in all_files(cfg, "lb1")}
    assert not paths & {PATHS["metrics_writer"], PATHS["metrics_unit"], PATHS["node_exporter_unit"]}, paths
    assert not any(r.startswith("tcp 9100") for r in cfg.plan.firewall["lb1"]), cfg.plan.firewall["lb1"]


def test_the_node_exporter_listens_on_the_nodes_address_with_halbs_textfile_directory() -> None:
    cfg = load_config(stack_raw("dev"))
    for node in cfg.nodes:
        unit = {f.path: f.content for f in all_files(cfg, node.name)}[PATHS["node_exporter_unit"]]
        assert f"--web.listen-address={cfg.plan.address(node.name)}:9100 " in unit, f"halb-node-exporter on {node.name}"
        assert f"--collector.textfile.directory={PATHS['metrics_dir']}'" in unit, unit
        assert PATHS["metrics"].startswith(PATHS["metrics_dir"] + "/"), "halb.prom in the textfile directory"


def test_a_node_exporter_port_that_ssh_uses_is_refused() -> None:
    from halb.config import ConfigError

    with pytest.raises(ConfigError) as e:
        load_config(set_in(stack_raw("dev"), "monitoring", {"nodeExporterPort": 22}))
    assert "monitoring.nodeExporterPort" in str(e.value) and "ssh.port" in str(e.value), str(e.value)


def test_a_port_the_node_exporter_takes_is_refused_to_a_service() -> None:
    from halb.config import ConfigError

    raw = set_in(stack_raw("dev"), "monitoring", {"nodeExporterPort": 80})
    with pytest.raises(ConfigError) as e:
        load_config(raw)
    assert "haproxy.services[0].port" in str(e.value) and "monitoring.nodeExporterPort" in str(e.value), str(e.value)


def test_halb_metrics_once_prints_the_metrics_now_and_writes_nothing(
    node_state: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`halb status` runs the writer with --once: the same exposition, on stdout, no file."""
    m = node_state["m"]
    monkeypatch.setattr(m["sys"], "argv", ["metrics", "--once"])
    assert m["main"]() == 0
    out = capsys.readouterr().out
    assert 'halb_vrrp_state{vrrp_instance="halb",vip="192.168.4.60",state="master"} 1' in out, out
    assert not (node_state["tmp"] / "metrics").exists(), "halb-metrics --once wrote a file"


def test_halb_vip_held_follows_the_interfaces_addresses_for_every_vip() -> None:
    """Each VIP of a several-VIP stack is held or not by the VRRP interface's addresses (a VIP that is
    only local through halb-handoff's route on lo is not held). The second and third VIPs caught a
    name clash once: the partition flag's variable shadowed the addresses after the first VIP."""
    m = writer("dualstack")
    vips = [line.split()[2] for line in m["INSTANCES"].split("\n") if line.strip()]
    assert len(vips) >= 3, f"dualstack: {vips}"
    m["vrrp_adverts"].addresses = lambda interface=None: {vips[1], vips[2]}
    got = series(m["exposition"](m["sample"](m["Certificates"]())))
    held = {v: got[f'halb_vip_held{{vip="{v}"}}'] for v in vips}
    assert held == {vips[0]: 0, vips[1]: 1, vips[2]: 1}, f"halb-metrics halb_vip_held: {held}"


# --------------------------------------------------------------------------- BGP mode

NEIGHBORS = {  # `vtysh -c 'show bgp neighbors json'`, trimmed to what halb-metrics reads
    "198.18.0.2": {"remoteAs": 64513, "bgpState": "Established"},
    "2001:2::2": {"remoteAs": 64513, "bgpState": "Active"},
}
BFD_PEERS = [{"peer": "198.18.0.2", "status": "up"}, {"peer": "2001:2::2", "status": "down"}]
LO = (
    "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
    "1: lo    inet 198.18.1.10/32 scope global lo:halb\\       valid_lft forever preferred_lft forever\n"
    "1: lo    inet6 2001:2:1::10/128 scope global \\       valid_lft forever preferred_lft forever\n"
)


def stand_ins(bin_dir: Path, neighbors: object, bfd: object, lo: str = LO) -> None:
    """`vtysh` and `ip` on PATH that answer as FRR and iproute2 do (vtysh: one JSON document per
    command, one after the other), counting vtysh's runs in `asked`; a `vtysh` given None fails, as
    it does while FRR is down."""
    import json

    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "answer.txt").write_text(
        "" if neighbors is None else json.dumps(neighbors, indent=2) + "\n" + json.dumps(bfd, indent=2) + "\n"
    )
    (bin_dir / "asked").write_text("0\n")
    wanted = "-c 'show bgp neighbors json' -c 'show bfd peers json'"
    (bin_dir / "vtysh").write_text(
        f"#!/bin/bash\nasked=$(( $(cat '{bin_dir}/asked') + 1 )); echo $asked > '{bin_dir}/asked'\n"
        f'[ "$(printf "%q " "$@")" = "$(printf "%q " {wanted})" ] || exit 2\n'
        f"[ -s '{bin_dir}/answer.txt' ] || {{ echo 'bgpd is not running' >&2; exit 1; }}\n"
        f"cat '{bin_dir}/answer.txt'\n"
    )
    (bin_dir / "lo.txt").write_text(lo)
    (bin_dir / "ip").write_text(
        f"#!/bin/sh\n[ \"$*\" = '-o addr show dev lo' ] || exit 2\ncat '{bin_dir / 'lo.txt'}'\n"
    )
    for tool_ in ("vtysh", "ip"):
        (bin_dir / tool_).chmod(0o755)


@pytest.fixture
def bgp_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """halb-metrics of lab-bgp's lb1 (peers 198.18.0.2 and 2001:2::2), with FRR and lo standing in."""
    m = load_script(load_config(stack_raw("lab-bgp")), PATHS["metrics_writer"], "lb1")
    (tmp_path / "health").write_text("0\n")
    (tmp_path / "haproxy.cfg").write_text("global\n")
    (tmp_path / "frr.conf").write_text("router bgp 64512\n bgp router-id 198.18.0.11\n")
    m.update(
        HEALTH=str(tmp_path / "health"),
        CERTS_DIR=str(tmp_path / "no-certs"),
        HAPROXY_CFG=str(tmp_path / "haproxy.cfg"),
        FRR_CONF=str(tmp_path / "frr.conf"),
        ADMIN_SOCKET=str(tmp_path / "admin.sock"),
        FRR_EVERY=0,  # FRR read at every sample (test_bgp_mode_reads_frr_every_frr_every_seconds: the default)
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    return {"m": m, "tmp": tmp_path}


def bgp_series(node: dict[str, Any]) -> dict[str, float]:
    m = node["m"]
    samples = m["sample"](m["Certificates"]())
    for name, labels, _ in samples:
        assert tuple(k for k, _ in labels) == NAMES[name].labels, f"halb-metrics (BGP): {name} labels {labels}"
    return series(m["exposition"](samples))


def test_bgp_mode_writes_its_metrics_in_the_format_promtool_accepts(bgp_node: dict[str, Any]) -> None:
    """lab-bgp's lb1: the IPv4 session up with BFD, the IPv6 one not: the IPv4 VIP is announced,
    the IPv6 VIP is on lo but has no session to go out on."""
    stand_ins(bgp_node["tmp"] / "bin", NEIGHBORS, BFD_PEERS)
    text, names = promtool_checked(bgp_node, "halb-metrics (BGP)")
    declared = {(x.name, x.kind) for x in of_mode("bgp") if x.name != "halb_certificate_not_after_seconds"}
    assert names == declared, f"halb-metrics (BGP) exposes {sorted(names)} (lab-bgp ends no TLS)"
    got = series(text)
    assert got['halb_bgp_session_up{peer="198.18.0.2"}'] == 1 and got['halb_bgp_session_up{peer="2001:2::2"}'] == 0
    assert got['halb_bfd_peer_up{peer="198.18.0.2"}'] == 1 and got['halb_bfd_peer_up{peer="2001:2::2"}'] == 0
    assert got['halb_vip_announced{vip="198.18.1.10"}'] == 1, text
    assert got['halb_vip_announced{vip="2001:2:1::10"}'] == 0, "no IPv6 session: the IPv6 VIP is not announced"
    assert got["halb_haproxy_healthy"] == 1 and got["halb_maintenance"] == 0, text
    assert got['halb_backends_usable{backend="http"}'] == 1, text
    assert not any(k.startswith(("halb_vip_held", "halb_vrrp", "halb_keepalived")) for k in got), (
        f"halb-metrics (BGP): a VRRP metric would fire the pair's alerts: {sorted(got)}"
    )


def test_bgp_mode_metrics_follow_lo_frr_and_maintenance(bgp_node: dict[str, Any]) -> None:
    tmp = bgp_node["tmp"]
    both_up = {p: {"bgpState": "Established"} for p in NEIGHBORS}
    stand_ins(tmp / "bin", both_up, [{"peer": p, "status": "up"} for p in NEIGHBORS], lo=LO.splitlines()[0] + "\n")
    got = bgp_series(bgp_node)
    assert got['halb_vip_announced{vip="198.18.1.10"}'] == 0, "haproxy down: the watcher took the VIPs off lo"
    assert got['halb_vip_announced{vip="2001:2:1::10"}'] == 0, got
    assert set(v for k, v in got.items() if k.startswith(("halb_bgp_session_up", "halb_bfd_peer_up"))) == {1}, got
    (tmp / "frr.conf").write_text("router bgp 64512\n bgp router-id 198.18.0.11\n bgp graceful-shutdown\n")
    assert bgp_series(bgp_node)["halb_maintenance"] == 1, "`bgp graceful-shutdown`: the node drains"
    stand_ins(tmp / "bin", None, None)  # FRR down
    got = bgp_series(bgp_node)
    sessions = {k: v for k, v in got.items() if k.startswith(("halb_bgp_session_up", "halb_bfd_peer_up"))}
    assert len(sessions) == 4 and set(sessions.values()) == {0}, f"FRR down: every peer's series stays, at 0: {got}"
    assert {k: v for k, v in got.items() if k.startswith("halb_vip_announced")} == {
        'halb_vip_announced{vip="198.18.1.10"}': 0,
        'halb_vip_announced{vip="2001:2:1::10"}': 0,
    }, "FRR down: on lo, but announced to nobody"


def test_bgp_mode_installs_the_node_exporter_and_opens_its_port_to_the_stats_sources() -> None:
    from halb import commands

    cfg = load_config(stack_raw("lab-bgp"))
    paths = {f.path for f in all_files(cfg, "lb2")}
    assert {PATHS["metrics_writer"], PATHS["metrics_unit"], PATHS["node_exporter_unit"]} <= paths, sorted(paths)
    assert "tcp 9100 198.18.0.0/24" in cfg.plan.firewall["lb2"], cfg.plan.firewall["lb2"]
    assert "prometheus-node-exporter" in commands.packages_script(cfg), "the packages step"
    assert commands.halb_units(cfg) == ["halb-haproxy-watch", "halb-metrics", "halb-node-exporter"]
    from halb.metrics import scrape_targets

    targets = scrape_targets(cfg)[0]
    assert targets["targets"] == ["198.18.0.11:9100", "198.18.0.12:9100", "198.18.0.13:9100"], targets
    off = load_config(set_in(stack_raw("lab-bgp"), "monitoring", {"nodeExporter": False}))
    assert PATHS["metrics_writer"] not in {f.path for f in all_files(off, "lb2")} and "halb-metrics" not in (
        commands.halb_units(off)
    ), "monitoring.nodeExporter: false in BGP mode"


def test_bgp_mode_reads_frr_every_frr_every_seconds_and_lo_every_second(
    bgp_node: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One vtysh for both answers, every FRR_EVERY s; what is on lo is read at every sample."""
    from halb.render import FRR_EVERY

    m, tmp = bgp_node["m"], bgp_node["tmp"]
    m["FRR_EVERY"] = FRR_EVERY
    stand_ins(tmp / "bin", NEIGHBORS, BFD_PEERS)
    clock = [1000.0]
    monkeypatch.setattr(m["time"], "monotonic", lambda: clock[0])
    frr = m["Frr"]()
    for _ in range(FRR_EVERY):
        assert m["sample_routing"](frr)[0] == ("halb_bgp_session_up", (("peer", "198.18.0.2"),), 1)
        clock[0] += 1
    assert (tmp / "bin" / "asked").read_text().strip() == "1", f"vtysh ran more than once in {FRR_EVERY} s"
    (tmp / "bin" / "lo.txt").write_text(LO.splitlines()[0] + "\n")  # the watcher took the VIPs off lo
    got = dict(((n, dict(labels).get("vip")), v) for n, labels, v in m["sample_routing"](frr))
    assert got[("halb_vip_announced", "198.18.1.10")] == 0, "lo is read at every sample"
    assert (tmp / "bin" / "asked").read_text().strip() == "2", f"FRR asked again after {FRR_EVERY} s"
