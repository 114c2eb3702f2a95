"""Steady HTTP load from the client namespace: counts successes and failures.

Runs until --duration passes or --stop-file appears; prints one JSON line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from halb import PROJECT_DIR
from halb_lab.scenarios.probes import in_client


class Load:
    """A steady HTTP load from the client namespace until stopped."""

    def __init__(self, host: str, concurrency: int, duration: float = 600, timeout: float = 0.5):
        self.stop_file = Path(tempfile.mkdtemp(prefix="halb-bench-")) / "stop"
        self.proc = subprocess.Popen(
            in_client(
                sys.executable,
                "-m",
                "bench.load",
                "--host",
                host,
                "--concurrency",
                str(concurrency),
                "--duration",
                str(duration),
                "--timeout",
                str(timeout),
                "--stop-file",
                str(self.stop_file),
            ),
            cwd=PROJECT_DIR,
            env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
            stdout=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> dict[str, float]:
        self.stop_file.touch()
        out, _ = self.proc.communicate(timeout=30)
        self.stop_file.unlink()
        self.stop_file.parent.rmdir()
        return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--stop-file")
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    ok = failed = 0
    lock = threading.Lock()
    start = time.monotonic()

    def running() -> bool:
        if args.stop_file and os.path.exists(args.stop_file):
            return False
        return time.monotonic() - start < args.duration

    def worker() -> None:
        nonlocal ok, failed
        while running():
            try:
                conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
                conn.request("GET", "/")
                good = conn.getresponse().status == 200
                conn.close()
            except OSError:
                good = False
                time.sleep(0.01)  # a refused connection returns at once: do not spin
            with lock:
                if good:
                    ok += 1
                else:
                    failed += 1

    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    print(json.dumps({"ok": ok, "failed": failed, "seconds": round(elapsed, 3), "rps": round(ok / elapsed, 1)}))


if __name__ == "__main__":
    main()
