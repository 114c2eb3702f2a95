"""`make bench` key `tls`: TLS ended by haproxy on the lab-tls stack, against nginx ending TLS
itself on a worker.

    python -m bench.tls [--json tls.json] [--rounds 3] [--rotations 3]

  handshakes   wrk with a new connection (so a full TLS handshake) per request, 32 connections:
               https through the VIP (haproxy ends TLS, then plain HTTP to w1/w2) against https
               straight to one worker's nginx (which ends TLS itself); haproxy's CPU per
               handshake on the holder, from /proc
  keepalive    wrk keep-alive over TLS, 64 connections, the same two ways
  rotation     the certificate rotated ROTATIONS times under a load of new TLS sessions (one every
               10 ms, each verified against the lab's CA): failed requests, reloads, deploy time
  like_for_like  haproxy and nginx side by side, each ending TLS and answering itself (no backend)
               from the same worker namespace with the same certificate, workers (2) and
               client: wrk with a new connection per request, 32 connections. Each with session
               resumption off on both sides, on on both sides, and as each ships (halb's haproxy:
               `no-tls-tickets` with its session cache; the lab worker's nginx: tickets on, no
               cache), for an ECDSA P-256 and an RSA 2048 certificate. Every request's handshake is
               counted as full or resumed from the server's own log (haproxy's
               `ssl_fc_is_resumed`, nginx's `$ssl_session_reused`), and the server's CPU per
               request comes from its rusage. The configs are bench/profiles/tls/.

Median of ROUNDS rounds of 5 s, TLS 1.3. wrk reconnects with SSL_clear, so it offers the last
session back: it resumes wherever the server lets it. The via-VIP rows count the resumptions
halb's haproxy made (`show info`: session cache lookups minus misses). The seed and the kubeadm
guide pass TCP through and end no TLS: the table says so.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from string import Template
from typing import Any

from bench import wrk
from bench.common import Knob, deployed, haproxy_cpu_seconds, standalone
from halb.commands import ADMIN_SOCKET
from halb.render import HAPROXY_BIN
from halb_lab.infra import ca, nodes, worker
from halb_lab.infra.topology import VIP, WORKERS
from halb_lab.scenarios.probes import client_get, in_netns, node, wait_until
from halb_lab.scenarios.tls import STACK, rotate

ROOT = Path(__file__).resolve().parent.parent

ROUNDS = 3  # --rounds
ROTATIONS = 3  # --rotations
SECONDS = 5
UNABLE = "TCP pass-through only: no TLS termination, no routing, no PROXY protocol"

PROFILES = ROOT / "bench" / "profiles" / "tls"
SIDE_BY_SIDE = WORKERS[3]  # w4: not a backend of the lab-tls stack, so idle during this part
PORT = 8443
SERVER_WORKERS = 2  # haproxy threads and nginx worker processes: one per core of the lab machine
# resumption -> {server: the settings its profile's $tickets and $cache take}
RESUMPTION: dict[str, dict[str, tuple[str, str]]] = {
    "off": {"haproxy": ("no-tls-tickets", "0"), "nginx": ("off", "off")},
    "as_shipped": {"haproxy": ("no-tls-tickets", "20000"), "nginx": ("on", "none")},
    "on": {"haproxy": ("", "20000"), "nginx": ("on", "shared:bench:10m")},
}
SERVERS = ("haproxy", "nginx")
CERTIFICATES = {"ecdsa_p256": "ec", "rsa_2048": "rsa2048"}  # the lab CA's kinds of leaf key


def load() -> dict[str, Any]:
    loads = {"handshakes_32": (32, True), "keepalive_64": (64, False)}
    targets = {"via_vip_haproxy": f"https://{VIP}/", "direct_nginx_one_worker": f"https://{WORKERS[0].address}/"}
    runs: dict[str, dict[str, list[dict[str, float]]]] = {t: {k: [] for k in loads} for t in targets}
    for _ in range(ROUNDS):
        for target, url in targets.items():
            for label, (conns, close) in loads.items():
                via = target.startswith("via")
                cpu0, cache0 = (haproxy_cpu_seconds("lb1"), resumed_by_halb()) if via else (0.0, (0, 0))
                r = wrk.run(url, conns, SECONDS, close)
                cpu, cache = (haproxy_cpu_seconds("lb1") - cpu0, resumed_by_halb()) if via else (0.0, (0, 0))
                runs[target][label].append(
                    {
                        "rps": r.rps,
                        "p99_ms": r.p99_ms,
                        "errors": r.errors,
                        "cpu_us": cpu / r.requests * 1e6 if cpu else 0,
                        "requests": r.requests,
                        "resumed": (cache[0] - cache0[0]) - (cache[1] - cache0[1]),
                    }
                )
    out: dict[str, Any] = {}
    for target, by_load in runs.items():
        out[target] = {}
        for label, rs in by_load.items():
            row: dict[str, Any] = {
                "rps": round(statistics.median(r["rps"] for r in rs)),
                "rps_runs": [round(r["rps"]) for r in rs],
                "p99_ms": round(statistics.median(r["p99_ms"] for r in rs), 2),
                "errors": sum(int(r["errors"]) for r in rs),
            }
            if target.startswith("via"):
                row["haproxy_cpu_us_per_request"] = round(statistics.median(r["cpu_us"] for r in rs), 1)
                row["resumed_pct"] = round(
                    100 * sum(r["resumed"] for r in rs) / max(1, sum(r["requests"] for r in rs)), 1
                )
            out[target][label] = row
    return out


def resumed_by_halb(name: str = "lb1") -> tuple[int, int]:
    """(session cache lookups, misses) of a node's haproxy so far, from `show info`."""
    info = nodes.ssh(node(name), f"echo 'show info' | socat -t 5 - UNIX-CONNECT:{ADMIN_SOCKET}", timeout=20).stdout
    fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line)
    return int(fields["SslCacheLookups"]), int(fields["SslCacheMisses"])


def server_config(server: str, resumption: str, prefix: Path, cert: Path, key: Path) -> tuple[str, list[str]]:
    """(config, command) of one side of the like-for-like comparison, from its profile in
    bench/profiles/tls/ (the caller writes the config to `prefix`)."""
    tickets, cache = RESUMPTION[resumption][server]
    text = Template((PROFILES / ("haproxy.cfg" if server == "haproxy" else "nginx.conf")).read_text())
    conf = prefix / f"{server}.conf"
    if server == "haproxy":
        config = text.substitute(
            workers=SERVER_WORKERS, tickets=tickets, cache=cache, port=PORT, pem=prefix / "crt.pem"
        )
        return config, [HAPROXY_BIN, "-db", "-f", str(conf)]
    config = text.substitute(
        workers=SERVER_WORKERS, prefix=prefix, port=PORT, cert=cert, key=key, tickets=tickets, cache=cache
    )
    return config, [worker.NGINX, "-p", str(prefix), "-c", str(conf)]


def handshakes(log: str, server: str) -> tuple[int, int]:
    """(full, resumed) handshakes in a server's one-line-a-request log (other lines, such as
    haproxy's warnings on the same stdout, are not requests)."""
    full, resumed = ("0", "1") if server == "haproxy" else (".", "r")
    lines = [line.strip() for line in log.splitlines()]
    return lines.count(full), lines.count(resumed)


def serve_and_load(server: str, resumption: str, cert: Path, key: Path) -> dict[str, float]:
    """One round: the server started fresh in SIDE_BY_SIDE's namespace, wrk against it, the server
    stopped; its figures with the handshakes it logged and the CPU it used."""
    with tempfile.TemporaryDirectory(prefix="halb-bench-tls-") as tmp:
        prefix = Path(tmp)
        (prefix / "crt.pem").write_text(cert.read_text() + key.read_text())
        config, cmd = server_config(server, resumption, prefix, cert, key)
        (prefix / f"{server}.conf").write_text(config)
        with open(prefix / "stdout", "w") as out:
            proc = subprocess.Popen(in_netns(SIDE_BY_SIDE, *cmd), stdout=out, stderr=subprocess.STDOUT)
        url = f"https://{SIDE_BY_SIDE.address}:{PORT}/"
        try:
            if wait_until(lambda: client_get(url, timeout=1)[0] == 200, 10, 0.1) is None:
                raise RuntimeError(f"{server} ({resumption}) did not answer: {(prefix / 'stdout').read_text()[-400:]}")
            r = wrk.run(url, 32, SECONDS, close=True)
        finally:
            os.kill(proc.pid, signal.SIGUSR1 if server == "haproxy" else signal.SIGQUIT)  # finish, then leave
            _, _, usage = os.wait4(proc.pid, 0)  # its CPU, and its reaped workers'
            proc.returncode = 0
        time.sleep(0.1)
        log = (prefix / ("stdout" if server == "haproxy" else "access.log")).read_text()
        full, resumed = handshakes(log, server)
        return {
            "rps": r.rps,
            "p99_ms": r.p99_ms,
            "errors": r.errors,
            "full": full,
            "resumed": resumed,
            "cpu_us": (usage.ru_utime + usage.ru_stime) / max(1, full + resumed) * 1e6,
        }


def like_for_like() -> dict[str, Any]:
    """Every certificate x server x resumption setting, ROUNDS rounds each (medians)."""
    authority = ca.ensure()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="halb-bench-certs-") as tmp:
        keys = {c: ca.write(authority.issue(kind=kind), Path(tmp, c)) for c, kind in CERTIFICATES.items()}
        for certificate in CERTIFICATES:
            out[certificate] = {}
            for server in SERVERS:
                out[certificate][server] = {}
                for resumption in RESUMPTION:
                    rs = [serve_and_load(server, resumption, *keys[certificate]) for _ in range(ROUNDS)]
                    full, resumed = sum(r["full"] for r in rs), sum(r["resumed"] for r in rs)
                    out[certificate][server][resumption] = {
                        "rps": round(statistics.median(r["rps"] for r in rs)),
                        "rps_runs": [round(r["rps"]) for r in rs],
                        "p99_ms": round(statistics.median(r["p99_ms"] for r in rs), 2),
                        "errors": sum(int(r["errors"]) for r in rs),
                        "resumed_pct": round(100 * resumed / max(1, full + resumed), 1),
                        "cpu_us_per_request": round(statistics.median(r["cpu_us"] for r in rs), 1),
                    }
    return out


def run() -> dict[str, Any]:
    with deployed(STACK):
        figures: dict[str, Any] = {"load": load(), "like_for_like": like_for_like()}
        rotations = [rotate() for _ in range(ROTATIONS)]
        figures["rotation"] = {
            "runs": [r.figures() for r in rotations],
            "failed_requests": sum(r.report.failed for r in rotations),
            "requests": sum(r.report.requests for r in rotations),
            "reloads": sum(r.workers_before != r.workers_after for r in rotations),
            "deploy_s_median": round(statistics.median(r.seconds for r in rotations), 2),
        }
    figures["seed"] = figures["kubeadm"] = UNABLE
    return figures


def table(figures: dict[str, Any]) -> str:
    lines = [
        "| TLS | load | rps | p99 ms | haproxy CPU µs/req | resumed % | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for target, by_load in figures["load"].items():
        for label, f in by_load.items():
            cpu, resumed = f.get("haproxy_cpu_us_per_request", ""), f.get("resumed_pct", "")
            lines.append(f"| {target} | {label} | {f['rps']} | {f['p99_ms']} | {cpu} | {resumed} | {f['errors']} |")
    if "like_for_like" in figures:
        lines += [
            "",
            "Side by side, each ending TLS and answering itself (new connection per request, 32 connections):",
            "",
            "| certificate | server | resumption | handshakes/s | p99 ms | resumed % | server CPU µs/req | errors |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for certificate, by_server in figures["like_for_like"].items():
            for server, by_setting in by_server.items():
                for setting, f in by_setting.items():
                    lines.append(
                        f"| {certificate} | {server} | {setting} | {f['rps']} | {f['p99_ms']} | {f['resumed_pct']} | "
                        f"{f['cpu_us_per_request']} | {f['errors']} |"
                    )
    r = figures["rotation"]
    lines += [
        "",
        f"rotation x{len(r['runs'])}: {r['failed_requests']}/{r['requests']} requests failed, {r['reloads']} reloads, "
        f"deploy {r['deploy_s_median']} s (median)",
        f"seed, kubeadm guide: {UNABLE}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    knobs = {
        "rounds": Knob("ROUNDS", "rounds of 5 s; each figure is their median"),
        "rotations": Knob("ROTATIONS", "certificate rotations under load"),
    }
    sys.exit(standalone("tls", run, table, knobs))
