"""Prometheus and Alertmanager, Debian's, in the lab's monitor namespace: they scrape a deployed
lab stack's `prometheus_targets`, load halb's alert rules (monitoring/halb.rules.yml) and deliver
alerts to a webhook receiver whose deliveries the tests read.

    with monitoring(deployed.exports["prometheus_targets"]) as m:
        ...a fault...
        m.wait_for("HalbVipNoHolder")          # seconds until delivered, or None
        m.query('sum by (vip) (halb_vip_held)')

Scrapes and rule evaluations every second, so an alert is delivered about its `for:` after the
fault. `python -m halb_lab.scenarios.monitor --out FILE --listen ADDR:PORT` is the receiver.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from halb import PROJECT_DIR
from halb.metrics import RULES
from halb_lab.infra.topology import MONITOR
from halb_lab.scenarios.probes import LabError, in_netns, wait_until

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
PROMETHEUS_PORT, ALERTMANAGER_PORT, RECEIVER_PORT = 9090, 9093, 9099
EVERY = "1s"  # scrape and evaluation interval


def prometheus_config(targets: Path) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": EVERY, "evaluation_interval": EVERY, "scrape_timeout": "900ms"},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ALERTMANAGER_PORT}"]}]}]},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "halb", "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "5s"}]}
        ],
    }


def alertmanager_config() -> dict[str, Any]:
    return {
        "route": {
            "receiver": "lab",
            "group_by": ["alertname", "vip", "instance", "service"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "lab", "webhook_configs": [{"url": f"http://127.0.0.1:{RECEIVER_PORT}/", "send_resolved": True}]}
        ],
    }


class Monitor:
    def __init__(self, deliveries: Path) -> None:
        self.deliveries = deliveries
        self.started = time.time()

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert delivered so far, each as Alertmanager sent it (`status`, `labels`, `startsAt`...),
        with `received` (Unix time) added."""
        out = []
        text = self.deliveries.read_text() if self.deliveries.exists() else ""
        for line in text.splitlines():
            body = json.loads(line)
            out += [{**a, "received": body["received"]} for a in body["payload"].get("alerts", [])]
        return out

    def delivered(self, name: str, status: str = "firing", since: float | None = None) -> list[dict[str, Any]]:
        since = self.started if since is None else since
        return [
            a
            for a in self.alerts()
            if a["labels"]["alertname"] == name and a["status"] == status and a["received"] >= since
        ]

    def wait_for(
        self, name: str, status: str = "firing", timeout: float = 90, since: float | None = None
    ) -> float | None:
        """Seconds from `since` (now) until `name` was delivered with `status`, or None."""
        since = time.time() if since is None else since
        if wait_until(lambda: bool(self.delivered(name, status, since)), timeout, 0.5) is None:
            return None
        return round(min(a["received"] for a in self.delivered(name, status, since)) - since, 1)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector, asked from the monitor's namespace."""
        url = f"http://{MONITOR.address}:{PROMETHEUS_PORT}/api/v1/query?query={urllib.parse.quote(expr)}"
        p = subprocess.run(in_netns(MONITOR, "curl", "-s", "--max-time", "5", url), capture_output=True, text=True)
        answer = json.loads(p.stdout or "{}")
        if answer.get("status") != "success":
            raise LabError(f"Prometheus query {expr!r}: {p.stdout[-300:]} {p.stderr[-300:]}")
        return list(answer["data"]["result"])


def _start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            in_netns(MONITOR, *cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=PROJECT_DIR,
            env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        )


@contextmanager
def monitoring(targets: list[dict[str, Any]]) -> Iterator[Monitor]:
    """Prometheus, Alertmanager and the receiver, until the block ends (stopped also on a failure)."""
    with tempfile.TemporaryDirectory(prefix="halb-monitor-") as tmp:
        d = Path(tmp)
        (d / "targets.json").write_text(json.dumps(targets))
        (d / "prometheus.yml").write_text(json.dumps(prometheus_config(d / "targets.json")))
        (d / "alertmanager.yml").write_text(json.dumps(alertmanager_config()))
        receiver = [sys.executable, "-m", "halb_lab.scenarios.monitor", "--out", str(d / "deliveries.jsonl")]
        procs = [
            _start([*receiver, "--listen", f"127.0.0.1:{RECEIVER_PORT}"], d / "receiver.log"),
            _start(
                [
                    ALERTMANAGER,
                    f"--config.file={d / 'alertmanager.yml'}",
                    f"--storage.path={d / 'alertmanager'}",
                    f"--web.listen-address=127.0.0.1:{ALERTMANAGER_PORT}",
                    "--cluster.listen-address=",
                ],
                d / "alertmanager.log",
            ),
            _start(
                [
                    PROMETHEUS,
                    f"--config.file={d / 'prometheus.yml'}",
                    f"--storage.tsdb.path={d / 'prometheus'}",
                    f"--web.listen-address={MONITOR.address}:{PROMETHEUS_PORT}",
                ],
                d / "prometheus.log",
            ),
        ]
        try:
            m = Monitor(d / "deliveries.jsonl")
            up = 'count(up{job="halb-node"} == 1)'
            if wait_until(lambda: _answers(m, up) >= len(targets[0]["targets"]), 60, 1) is None:
                logs = {p.name: p.read_text()[-600:] for p in d.glob("*.log")}
                raise LabError(f"Prometheus does not scrape the nodes' exporters: {logs}")
            yield m
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()


def _answers(m: Monitor, expr: str) -> float:
    try:
        result = m.query(expr)
    except (LabError, json.JSONDecodeError):
        return 0
    return float(result[0]["value"][1]) if result else 0


def receive(out: Path, listen: str) -> None:
    """The webhook receiver: each delivery appended to `out` as one JSON line."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with open(out, "a") as f:
                f.write(json.dumps({"received": time.time(), "payload": json.loads(body or b"{}")}) + "\n")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    host, port = listen.rsplit(":", 1)
    HTTPServer((host, int(port)), Handler).serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m halb_lab.scenarios.monitor", description="the lab's webhook receiver"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--listen", required=True)
    args = parser.parse_args()
    receive(args.out, args.listen)
