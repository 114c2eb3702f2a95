"""bench (python -m bench): the parts registry and its command line."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import PARTS, main, selected
from bench.merge import RESULTS
from conftest import ROOT


def test_every_registered_part_has_run_and_table() -> None:
    for name, (module, _) in PARTS.items():
        part = importlib.import_module(f"bench.{module}")
        assert callable(getattr(part, "run", None)) and callable(getattr(part, "table", None)), f"bench part {name}"


def test_only_and_skip_choose_parts_and_an_unknown_name_is_an_error() -> None:
    assert selected(["engine"], []) == ["engine"]
    assert "fuzz" not in selected([], ["fuzz"]) and "holder" in selected([], ["fuzz"])
    with pytest.raises(SystemExit, match="no part named enigne; the parts: pair, engine"):
        selected(["enigne"], [])


def test_list_names_every_part(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PARTS), out


# --------------------------------------------------------------------------- options


def test_a_parts_options_set_its_settings_and_record_them() -> None:
    import types

    from bench.common import Knob, options

    module = types.SimpleNamespace(ROUNDS=5, PROFILES=["seed", "halb"], LAB=False)
    knobs = {
        "rounds": Knob("ROUNDS", "rounds"),
        "profiles": Knob("PROFILES", "setups", many=True, choices=["seed", "kubeadm", "halb"]),
        "lab": Knob("LAB", "on the lab"),
    }
    settings, json_file = options(
        "t", "doc", knobs, ["--rounds", "2", "--profiles", "halb", "--lab", "--json", "x.json"], module
    )
    assert (module.ROUNDS, module.PROFILES, module.LAB) == (2, ["halb"], True), vars(module)
    assert settings == {"rounds": 2, "profiles": "halb", "lab": True} and str(json_file) == "x.json", settings
    defaults, none = options("t", "doc", knobs, [], types.SimpleNamespace(ROUNDS=5, PROFILES=["seed"], LAB=False))
    assert defaults == {"rounds": 5, "profiles": "seed", "lab": False} and none is None, defaults
    with pytest.raises(SystemExit):  # a profile that does not exist: argparse names the choices
        options(
            "t", "doc", knobs, ["--profiles", "nope"], types.SimpleNamespace(ROUNDS=5, PROFILES=["seed"], LAB=False)
        )


@pytest.mark.parametrize(
    "part", ["pair", "holder", "iac", "vsphere", "watcher", "fuzz", "vips", "tls", "scale", "alerts"]
)
def test_every_part_answers_help_without_root(part: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", f"bench.{part}", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and "--json FILE" in run.stdout, f"bench.{part} --help: {run.stderr[-500:]}"


def test_every_size_the_scale_bench_runs_is_a_config_the_model_accepts() -> None:
    """Negative control built in: 1000 servers in one service is over the model's cap and is not a size."""
    from bench.scale import scaled, sizes
    from halb.config import load_config

    assert (1000, 1) not in sizes() and (500, 1) in sizes() and (1000, 10) in sizes(), sizes()
    for servers, services in sizes():
        cfg = load_config(scaled(servers, services))
        assert sum(len(s.servers) for s in cfg.haproxy.services) == servers, (servers, services)


@pytest.mark.parametrize("resumption", ["off", "as_shipped", "on"])
def test_the_like_for_like_tls_servers_are_configs_their_daemons_accept(resumption: str, tmp_path: Path) -> None:
    """bench.tls's haproxy and nginx, as each resumption setting renders them, pass `haproxy -c`
    and `nginx -t` with a real certificate (the lab CA's)."""
    from bench import tls
    from conftest import require, tool
    from halb_lab.infra import ca

    for name in ("haproxy", "nginx"):
        require(tool(name) is not None, f"the `{name}` binary")
    cert, key = ca.write(ca.Authority.create().issue(kind="ec"), tmp_path / "leaf")
    (tmp_path / "crt.pem").write_text(cert.read_text() + key.read_text())
    for server in tls.SERVERS:
        config, cmd = tls.server_config(server, resumption, tmp_path, cert, key)
        tickets, cache = tls.RESUMPTION[resumption][server]
        assert cache in config and (tickets in config), f"{server} ({resumption}): {tickets} {cache}"
        (tmp_path / f"{server}.conf").write_text(config)
        check = [cmd[0], "-c", "-f", cmd[-1]] if server == "haproxy" else [*cmd, "-t"]
        p = subprocess.run(check, capture_output=True, text=True)
        assert p.returncode == 0, f"{server} ({resumption}) refused its config: {p.stdout}{p.stderr}"


def test_the_like_for_like_tls_servers_logs_count_resumed_handshakes() -> None:
    from bench.tls import handshakes

    log = "[WARNING]  (1) : config : a warning 0\n0\n1\n1\n0\n0\n"
    assert handshakes(log, "haproxy") == (3, 2), "haproxy logs ssl_fc_is_resumed: 1 resumed; a warning is no request"
    assert handshakes("r\n.\n.\nr\nr\n", "nginx") == (2, 3), "nginx logs $ssl_session_reused: r resumed"
    assert handshakes("", "nginx") == (0, 0)


def test_the_alerts_summary_counts_undelivered_runs_and_leaves_them_out_of_the_percentiles() -> None:
    from bench.alerts import summary
    from halb_lab.scenarios.alerting import DRILLS, Seen

    drill = DRILLS["haproxy-down-on-backup"]
    seen = [
        Seen(
            drill.name,
            {"HalbRedundancyLost": 31.5, "HalbVrrpFault": 31.0},
            {"HalbRedundancyLost": 2.0, "HalbVrrpFault": 2.5},
        ),
        Seen(
            drill.name,
            {"HalbRedundancyLost": 33.0, "HalbVrrpFault": None},
            {"HalbRedundancyLost": 3.0, "HalbVrrpFault": None},
        ),
        Seen(
            drill.name,
            {"HalbRedundancyLost": 32.0, "HalbVrrpFault": 30.5},
            {"HalbRedundancyLost": 1.0, "HalbVrrpFault": 1.5},
            ["HalbVipNoHolder"],
        ),
    ]
    got = summary(drill, seen)
    lost, fault = got["HalbRedundancyLost"], got["HalbVrrpFault"]
    assert (lost["for_s"], lost["delivered"], lost["runs"]) == (30, 3, 3), f"HalbRedundancyLost: {lost}"
    assert (lost["fired_p50_s"], lost["fired_p99_s"], lost["resolved_p99_s"]) == (32.0, 33.0, 3.0), lost
    assert (fault["delivered"], fault["fired_p99_s"], fault["fired_s"]) == (2, 31.0, [31.0, None, 30.5]), fault
    assert lost["others"] == ["HalbVipNoHolder"], f"another alert seen meanwhile: {lost['others']}"


def test_running_vs_stopped_alternates_the_order_and_takes_medians() -> None:
    from bench.common import running_vs_stopped

    states: list[bool] = []
    values = iter([0.30, 0.10, 0.12, 0.32, 0.34, 0.14])  # running, stopped, stopped, running, running, stopped

    def measure() -> dict[str, float]:
        return {"added_p50_ms": next(values)}

    got = running_vs_stopped("test", 3, states.append, measure)
    assert states == [True, False, False, True, True, False, True], f"switched: {states} (left running)"
    assert got["running"]["added_p50_ms"] == {"median": 0.32, "runs": [0.30, 0.32, 0.34]}, got
    assert got["stopped"]["added_p50_ms"] == {"median": 0.12, "runs": [0.10, 0.12, 0.14]}, got
    assert got["added_p50_difference_ms"] == 0.2 and got["rounds"] == 3, got


def test_the_pair_parts_table_shows_each_key_it_measured() -> None:
    """bench.pair writes several keys; its table shows the medians, faults and scale from them."""
    from bench import pair
    from bench.__main__ import PAIR_KEYS

    results = json.loads(RESULTS.read_text())
    figures = {k: results[k] for k in PAIR_KEYS}
    text = pair.table(figures)
    assert f"| haproxy_death_s | {results['seed']['haproxy_death_s']} |" in text, text[:400]
    assert "| keepalived-crash | halb |" in text and "| lifecycle |" in text, "pair table: faults, lifecycle"
    assert pair.table({"halb": results["halb"]}).count("\n") == len(pair.KEYS) + 1, "medians only"
