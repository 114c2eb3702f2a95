"""Watch an operation the way a client and an auditor would, for drills and the benchmark.

    with Watch() as w:
        ...the operation...
    report = w.seen     # outages, failed requests, holder samples

A separate process (`python -m halb_lab.scenarios.watch`) does two things until it is told to stop:
- from the client's namespace, a new TCP connection and an HTTP GET to the VIP every 10 ms,
  each with a 0.25 s budget (connect, send, full answer); with `tls`, a new TLS session to
  lab.internal verified against the lab's CA, inside the same budget;
- every 50 ms, which nodes carry the VIP, read over netlink in each node's namespace (one
  dump each, well under a millisecond apart).
Times are CLOCK_MONOTONIC, one clock for the whole host.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from types import TracebackType
from typing import Any

from halb_lab.infra.ca import ROOT_PEM, TLS_NAME
from halb_lab.infra.topology import CLIENT, NODES, VIP

PERIOD = 0.01  # a new request every 10 ms
TIMEOUT = 0.25  # each request's budget
SAMPLE = 0.05  # holders read every 50 ms
BUCKET = 0.1  # the timeline counts good and failed requests per 100 ms
KEEPALIVES = 8  # long-lived HTTP/1.1 connections (Watch(keepalives=True)), each asking every KEEPALIVE_PERIOD
KEEPALIVE_PERIOD = 0.1
KEEPALIVE_TIMEOUT = 1.0  # an answer later than this counts as a connection lost

CLONE_NEWNET = 0x40000000
RTM_NEWADDR, RTM_GETADDR, NLMSG_DONE, NLMSG_ERROR = 20, 22, 3, 2
IFA_ADDRESS, IFA_LOCAL = 1, 2


# --------------------------------------------------------------------------- analysis (pure)


class WatchError(Exception):
    """A watch that cannot say what it saw."""


@dataclass(frozen=True)
class Report:
    requests: int
    failed: int
    outages: list[float]  # seconds each, in order: first failed request to the next good one
    samples: int
    bad_samples: list[tuple[float, tuple[str, ...]]]  # (seconds from start, holders) where not exactly one
    holders_seen: list[str] = field(default_factory=list)  # distinct holders, in order of appearance
    seconds: float = 0.0
    timeline: list[tuple[float, int, int]] = field(default_factory=list)  # (bucket start s, good, failed)
    keepalive_resets: int = 0  # long-lived connections that had answered and then broke (reset, or silent 1 s)
    resets_by_node: dict[str, int] = field(default_factory=dict)  # the broken ones by the node that served them

    @property
    def longest_outage(self) -> float:
        return max(self.outages, default=0.0)

    @property
    def moves(self) -> list[str]:
        """The single holders in order, without the samples where two nodes held the VIP at once
        (a preempting node adds it milliseconds before the one stepping down removes it, and the
        50 ms sampler can catch that); tests bound those samples separately, by `bad_samples`."""
        single = [h for h in self.holders_seen if "+" not in h]
        return [h for i, h in enumerate(single) if i == 0 or single[i - 1] != h]

    def figures(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "failed_requests": self.failed,
            "outages": len(self.outages),
            "outage_s": [round(o, 3) for o in self.outages],
            "longest_outage_s": round(self.longest_outage, 3),
            "holder_samples": self.samples,
            "samples_not_one_holder": len(self.bad_samples),
            "holders_seen": self.holders_seen,
            "keepalive_resets": self.keepalive_resets,
            "keepalive_resets_by_node": self.resets_by_node,
            "seconds": round(self.seconds, 2),
        }

    def summary(self) -> str:
        bad = ", ".join(f"{t:.2f}s:{'+'.join(h) or 'none'}" for t, h in self.bad_samples[:8])
        return (
            f"{self.failed}/{self.requests} requests failed in {len(self.outages)} outage(s) "
            f"(longest {self.longest_outage:.3f} s); {len(self.bad_samples)}/{self.samples} holder samples "
            f"not exactly one{': ' + bad if bad else ''}; holders seen: {' -> '.join(self.holders_seen)}; "
            f"{self.keepalive_resets} long-lived connection(s) broken"
        )


def analyse(
    requests: list[tuple[float, bool]],
    samples: list[tuple[float, list[str]]],
    broken: Sequence[tuple[float, str]] = (),
) -> Report:
    """Outages are runs of failed requests (by start time); an outage ends at the next good request.
    `broken`: when each long-lived connection broke, and the address of the node that served it."""
    requests = sorted(requests)
    start = min([t for t, _ in requests] + [t for t, _ in samples], default=0.0)
    end = max([t for t, _ in requests] + [t for t, _ in samples], default=0.0)
    outages: list[float] = []
    began: float | None = None
    for t, ok in requests:
        if not ok and began is None:
            began = t
        elif ok and began is not None:
            outages.append(t - began)
            began = None
    if began is not None:  # still failing when the watch ended
        outages.append(end - began)
    seen: list[str] = []
    for _, hs in samples:
        who = "+".join(hs)
        if who and (not seen or seen[-1] != who):
            seen.append(who)
    bad = [(round(t - start, 3), tuple(hs)) for t, hs in samples if len(hs) != 1]
    buckets: dict[int, list[int]] = {}
    for t, ok in requests:
        counts = buckets.setdefault(int((t - start) / BUCKET), [0, 0])
        counts[0 if ok else 1] += 1
    timeline = [(round(b * BUCKET, 2), c[0], c[1]) for b, c in sorted(buckets.items())]
    return Report(
        requests=len(requests),
        failed=sum(1 for _, ok in requests if not ok),
        outages=outages,
        samples=len(samples),
        bad_samples=bad,
        holders_seen=seen,
        seconds=end - start,
        timeline=timeline,
        keepalive_resets=len(broken),
        resets_by_node=dict(Counter(node for _, node in broken)),
    )


# --------------------------------------------------------------------------- the watcher process


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def _netlink_in(netns: str) -> socket.socket:
    """A route netlink socket that lives in `netns` (a socket stays in the namespace it was made in)."""
    _setns(f"/run/netns/{netns}")
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)


def addresses(sock: socket.socket, seq: int) -> set[str]:
    """Every IPv4 and IPv6 address of the socket's namespace (IPv6 compressed), from one RTM_GETADDR dump."""
    sock.send(
        struct.pack("=IHHII", 24, RTM_GETADDR, 0x301, seq, 0) + struct.pack("=BBBBI", socket.AF_UNSPEC, 0, 0, 0, 0)
    )
    out: set[str] = set()
    while True:
        data = sock.recv(65536)
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, off)
            if kind in (NLMSG_DONE, NLMSG_ERROR):
                return out
            if kind == RTM_NEWADDR:
                a = off + 16 + 8  # nlmsghdr + ifaddrmsg
                while a + 4 <= off + length:
                    rlen, rtype = struct.unpack_from("=HH", data, a)
                    if rtype in (IFA_ADDRESS, IFA_LOCAL) and rlen == 8:
                        out.add(socket.inet_ntoa(data[a + 4 : a + 8]))
                    elif rtype == IFA_ADDRESS and rlen == 20:
                        out.add(socket.inet_ntop(socket.AF_INET6, data[a + 4 : a + 20]))
                    a += (rlen + 3) & ~3 if rlen else 4
            off += (length + 3) & ~3 if length else len(data)


async def _request(vip: str, port: int, tls: ssl.SSLContext | None = None) -> bool:
    host = TLS_NAME if tls is not None else f"[{vip}]" if ":" in vip else vip

    async def once() -> bool:
        if tls is not None:  # a new TLS session each time: the handshake is part of the request
            reader, writer = await asyncio.open_connection(vip, port, ssl=tls, server_hostname=TLS_NAME)
        else:
            reader, writer = await asyncio.open_connection(vip, port)
        writer.write(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        answer = await reader.read()
        writer.close()
        return answer.startswith(b"HTTP/1.") and answer.split(b"\r\n", 1)[0].split()[1:2] == [b"200"]

    try:
        return await asyncio.wait_for(once(), TIMEOUT)
    except (TimeoutError, OSError, IndexError, ssl.SSLError):
        return False


async def _keepalive(vip: str, port: int, stop: asyncio.Event, broken: list[tuple[float, str]]) -> None:
    """One long-lived HTTP/1.1 connection, asking every KEEPALIVE_PERIOD; when one that has answered
    breaks (reset, closed, or no answer within KEEPALIVE_TIMEOUT), its time goes to `broken` with
    the node that served it, and a new one is opened (failed opens are not counted: the requests
    measure those). It asks the workers' /whoami, whose answer names the address the request came
    from: the node's."""
    host = f"[{vip}]" if ":" in vip else vip
    request = f"GET /whoami HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    while not stop.is_set():
        answered = False
        node = ""
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(vip, port), TIMEOUT)
            while not stop.is_set():
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), KEEPALIVE_TIMEOUT)
                length = next(
                    (int(h.split(b":", 1)[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")),
                    0,
                )
                body = await asyncio.wait_for(reader.readexactly(length), KEEPALIVE_TIMEOUT)
                node = (body.split()[1:2] or [b""])[0].decode()
                answered = True
                await asyncio.sleep(KEEPALIVE_PERIOD)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            if answered and not stop.is_set():
                broken.append((time.monotonic(), node))
            await asyncio.sleep(KEEPALIVE_PERIOD)
        finally:
            if writer is not None:
                writer.close()


def client_context() -> ssl.SSLContext:
    """A client that trusts the lab's CA only and verifies the name (ALPN: HTTP/1.1, what the watcher speaks)."""
    context = ssl.create_default_context(cafile=str(ROOT_PEM))
    context.set_alpn_protocols(["http/1.1"])
    return context


async def _watch(
    vip: str,
    port: int,
    out: Path,
    stop: asyncio.Event,
    also: list[str],
    tls: bool = False,
    keepalives: int = 0,
    client: str = CLIENT.netns,
) -> None:
    context = client_context() if tls else None
    socks = {n.name: _netlink_in(n.netns) for n in NODES}
    _setns(f"/run/netns/{client}")  # from here on this thread's sockets are the client's
    requests: list[tuple[float, bool]] = []
    samples: list[tuple[float, list[str]]] = []
    tracked: list[tuple[float, dict[str, list[str]]]] = []  # `also`: other VIPs' holders, same dumps
    pending: set[asyncio.Task[None]] = set()
    broken: list[tuple[float, str]] = []  # when each long-lived connection broke, and its node

    async def one(t: float) -> None:
        requests.append((t, await _request(vip, port, context)))

    async def sampler() -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            t = time.monotonic()
            held = {n: addresses(s, seq) for n, s in socks.items()}
            samples.append((t, [n for n, a in held.items() if vip in a]))
            if also:
                tracked.append((t, {v: [n for n, a in held.items() if v in a] for v in also}))
            await asyncio.sleep(max(0.0, t + SAMPLE - time.monotonic()))

    sampling = asyncio.create_task(sampler())
    long_lived = [asyncio.create_task(_keepalive(vip, port, stop, broken)) for _ in range(keepalives)]
    tick = time.monotonic()
    while not stop.is_set():
        task = asyncio.create_task(one(time.monotonic()))
        pending.add(task)
        task.add_done_callback(pending.discard)
        tick += PERIOD
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
    await asyncio.gather(sampling, *pending, *long_lived)
    out.write_text(json.dumps({"requests": requests, "samples": samples, "also": tracked, "broken": broken}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--vip", default=VIP)
    parser.add_argument("--also", action="append", default=[], help="another VIP whose holders are sampled too")
    parser.add_argument("--tls", action="store_true", help=f"HTTPS to {TLS_NAME}, verified against the lab's CA")
    parser.add_argument("--keepalives", type=int, default=0, help="long-lived HTTP/1.1 connections to watch too")
    parser.add_argument("--client", default=CLIENT.netns, help="the client's namespace (lab-bgp: behind the router)")
    args = parser.parse_args()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("watching", flush=True)
    vip, also = ip_address(args.vip).compressed, [ip_address(a).compressed for a in args.also]
    loop.run_until_complete(_watch(vip, args.port, args.out, stop, also, args.tls, args.keepalives, args.client))


# --------------------------------------------------------------------------- the caller's side


class Watch:
    """Runs the watcher for the duration of a `with` block; `report` is ready after it."""

    def __init__(
        self,
        port: int = 80,
        settle: float = 0.3,
        vip: str = VIP,
        also: tuple[str, ...] = (),
        tls: bool = False,
        keepalives: bool = False,
        client: str = CLIENT.netns,
    ) -> None:
        self.port = port
        self.client = client  # the client's namespace: the lab's client, or lab-bgp's behind the router
        self.tls = tls  # HTTPS (a new verified TLS session per request) instead of plain HTTP
        self.vip = vip  # the lab stack's VIP, or another of a several-VIP stack (IPv4 or IPv6)
        self.also = also  # other VIPs whose holders are sampled in the same dumps (`data["also"]`)
        self.settle = settle  # watch a little before and after, so the edges are seen
        # KEEPALIVES long-lived connections too (not by default: each keeps an old haproxy worker
        # alive across a reload, which the day-two drills count)
        self.keepalives = KEEPALIVES if keepalives and not tls else 0
        self.report: Report | None = None
        self.data: dict[str, list[Any]] = {}  # the raw requests and samples, for a closer look
        self._tmp = tempfile.TemporaryDirectory(prefix="halb-watch-")
        self._out = Path(self._tmp.name) / "watch.json"
        self._proc: subprocess.Popen[str] | None = None

    @property
    def seen(self) -> Report:
        """What the watch saw, once it has ended."""
        if self.report is None:
            raise WatchError("the watch has not ended, or its client wrote no data: no report")
        return self.report

    def __enter__(self) -> Watch:
        cmd = [
            sys.executable,
            "-m",
            "halb_lab.scenarios.watch",
            "--out",
            str(self._out),
            "--port",
            str(self.port),
            "--vip",
            self.vip,
            *(a for v in self.also for a in ("--also", v)),
            *(["--tls"] if self.tls else []),
            "--keepalives",
            str(self.keepalives),
            "--client",
            self.client,
        ]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != "watching":
            self._proc.wait(timeout=10)
            raise RuntimeError(f"the watcher did not start (exit {self._proc.returncode})")
        time.sleep(self.settle)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self._proc is not None
        time.sleep(self.settle)
        self._proc.send_signal(signal.SIGTERM)  # our own child, by its id
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        try:
            if self._out.exists():
                data = json.loads(self._out.read_text())
                self.data = data
                broken = [(float(t), str(node)) for t, node in data.get("broken", [])]
                self.report = analyse([(t, ok) for t, ok in data["requests"]], data["samples"], broken)
        finally:
            self._tmp.cleanup()


if __name__ == "__main__":
    main()
