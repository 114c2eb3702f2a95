"""Steady HTTP load from the client namespace: counts successes and failures.

Runs until --duration passes or --stop-file appears; prints one JSON line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time


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
