"""Cost as the config grows: 10, 100, 500 and 1000 backend servers across 1, 10 and 50 services
(at most 500 a service: the config model's MAX_SERVERS).

    python -m bench.scale [--json FILE]        # check and render times (no lab needed)
    python -m bench.scale --lab [--json FILE]  # also resource counts, haproxy's reload time, memory and failed requests on the lab

For each size: `halb check` and `halb render` time (the config model and the templates, as the
CLI runs them), and on the lab the number of Pulumi resources per node (as the engine reported
them when it deployed that size: it should not grow with the config), the MASTER's `systemctl reload haproxy` time under a
steady load, the requests failed during the reload (must be 0) and haproxy's memory after it.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import Knob, options
from halb.config import load_config, strip_prefix
from halb.config.haproxy import MAX_SERVERS
from halb.render import all_files

ROOT = Path(__file__).resolve().parent.parent

SERVERS = (10, 100, 500, 1000)
SERVICES = (1, 10, 50)
WORKER_ADDRESSES = ["198.18.0.21", "198.18.0.22", "198.18.0.23", "198.18.0.24"]


def scaled(servers: int, services: int) -> dict[str, Any]:
    """The lab stack with `servers` backend servers spread over `services` services (the first on
    port 80, the others on 10001...), every server one of the four lab workers on port 80."""
    doc = yaml.safe_load((ROOT / "Pulumi.lab.yaml").read_text())
    raw = strip_prefix(doc["config"])
    per = [servers // services + (1 if i < servers % services else 0) for i in range(services)]
    out = []
    n = 0
    for i, count in enumerate(per):
        srv = []
        for _ in range(max(1, count)):
            srv.append({"name": f"s{n}", "address": WORKER_ADDRESSES[n % 4], "port": 80})
            n += 1
        out.append(
            {
                "name": "http" if i == 0 else f"svc{i}",
                "port": 80 if i == 0 else 10000 + i,
                "check": "http",
                "servers": srv,
            }
        )
    raw["haproxy"] = {**raw["haproxy"], "services": out}
    return raw


def _timed(fn: Any, reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def offline(servers: int, services: int) -> dict[str, Any]:
    raw = scaled(servers, services)
    cfg = load_config(raw)
    check_s = _timed(lambda: load_config(raw))
    render_s = _timed(lambda: [all_files(cfg, n.name) for n in cfg.nodes])
    size = sum(len(f.content) for f in all_files(cfg, "lb1") if f.path.endswith("haproxy.cfg"))
    return {
        "check_ms": round(check_s * 1000, 2),
        "render_ms": round(render_s * 1000, 2),
        "haproxy_cfg_bytes": size,
    }


def on_lab(servers: int, services: int) -> dict[str, Any]:
    """Deploy the size on the lab, then reload haproxy on the MASTER under a steady load."""
    import tempfile

    from bench.load import Load
    from halb_lab.automation.stack import deploy
    from halb_lab.infra import nodes
    from halb_lab.infra.topology import VIP
    from halb_lab.scenarios.drills import settle
    from halb_lab.scenarios.probes import node

    doc = yaml.safe_load((ROOT / "Pulumi.lab.yaml").read_text())
    doc["config"]["halb:haproxy"] = scaled(servers, services)["haproxy"]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(doc, f)
    try:
        deployed = deploy(stack_file=Path(f.name), progress=lambda _: None)
        # what the engine holds for each node, as it reported every resource of the update
        per_node = {n: sum(1 for a in deployed.actions if f"-{n}-" in a.name) for n in ("lb1", "lb2")}
        settle(timeout=60)
        time.sleep(2)
        load = Load(VIP, 4)
        time.sleep(1)
        lb1 = node("lb1")
        p = nodes.ssh(
            lb1, "s=$(date +%s%N); systemctl reload haproxy; e=$(date +%s%N); echo $(((e - s) / 1000000))", 60
        )
        reload_ms = int(p.stdout.strip() or -1)
        time.sleep(2)
        figures = load.stop()
        rss = nodes.ssh(lb1, "ps -C haproxy -o rss= | awk '{s += $1} END {print s}'", 20).stdout.strip()
    finally:
        os.unlink(f.name)
    return {
        "resources_per_node": per_node,
        "reload_ms": reload_ms,
        "failed_during_reload": int(figures["failed"]),
        "requests_during_reload": int(figures["ok"]) + int(figures["failed"]),
        "haproxy_rss_kib": int(rss or 0),
    }


def sizes() -> list[tuple[int, int]]:
    """(servers, services) of every size the config allows: a service needs a server, and has at
    most MAX_SERVERS (so 10 servers never span 50 services, and 1000 never sit in one)."""
    return [
        (servers, services)
        for services in SERVICES
        for servers in SERVERS
        if services <= servers <= services * MAX_SERVERS
    ]


def run(lab: bool) -> dict[str, Any]:
    """Every size."""
    out: dict[str, Any] = {}
    for servers, services in sizes():
        key = f"{servers} servers / {services} services"
        row = offline(servers, services)
        if lab:
            row.update(on_lab(servers, services))
        out[key] = row
        print(f"scale: {key}: {row}", flush=True)
    if lab:
        from halb_lab.automation.stack import deploy

        deploy(progress=lambda _: None)  # the lab's own stack again
    return out


def table(figures: dict[str, Any]) -> str:
    """docs/benchmarks/scale.md's table: each size's figures, as results.json holds them."""
    lines = [
        "| size | check ms | render ms | haproxy.cfg bytes | resources per node | reload ms | failed during reload"
        " | requests during the 3 s window | haproxy RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size, f in figures.items():
        per_node = sorted(set(f["resources_per_node"].values()))
        cells = [
            size,
            f"{f['check_ms']:g}",
            f"{f['render_ms']:g}",
            str(f["haproxy_cfg_bytes"]),
            "/".join(map(str, per_node)),
            str(f["reload_ms"]),
            str(f["failed_during_reload"]),
            str(f["requests_during_reload"]),
            f"{f['haproxy_rss_kib'] / 1024:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


LAB = False  # --lab


def main(argv: list[str] | None = None) -> int:
    """Offline unless --lab; no provenance of its own (the lab run is part of `make bench`)."""
    _, json_file = options(
        "python -m bench.scale", __doc__, {"lab": Knob("LAB", "also on the lab (root)")}, argv, sys.modules[__name__]
    )
    out = run(LAB)
    if json_file is not None:
        json_file.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
