"""The lab's nginx workers and the wrk report the benchmark reads."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench import wrk
from conftest import require, tool
from halb_lab.infra import worker

WRK_REPORT = """Running 1s test @ http://127.0.0.1/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    80.09us  191.34us   3.76ms   96.06%
    Req/Sec    34.13k     6.02k   46.12k    72.73%
  Latency Distribution
     50%   47.00us
     75%   57.00us
     90%   80.00us
     99%    1.00ms
  37296 requests in 1.10s, 5.34MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:  33921.77
Transfer/sec:      4.85MB
"""


def test_wrk_report_is_read_with_its_units_and_errors() -> None:
    r = wrk.parse(WRK_REPORT)
    assert (r.requests, r.rps, r.p50_ms, r.p99_ms, r.errors) == (37296, 33921.77, 0.047, 1.0, 9)


def test_a_report_without_latency_is_refused() -> None:
    with pytest.raises(ValueError, match="not a wrk --latency report"):
        wrk.parse("Requests/sec: 10\n")


def test_the_worker_nginx_conf_passes_nginx_t(tmp_path: Path) -> None:
    require(tool("nginx") is not None and tool("openssl") is not None, "the `nginx` and `openssl` binaries")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    worker.self_signed(cert, key, "w1", days=1)
    cmd = worker.command("w1", tmp_path / "w1", cert, key)
    p = subprocess.run([*cmd, "-t"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    assert 'return 200 "w1\\n";' in (tmp_path / "w1/nginx.conf").read_text()


def test_wrk_gets_whole_seconds() -> None:
    """wrk refuses `-d5.0s` (it prints its usage and exits 1)."""
    assert "-d5s" in wrk.command("http://198.18.0.10/", 64, 5.0) and "-d1s" in wrk.command("http://x/", 1, 0.2)
