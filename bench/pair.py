"""Failover and throughput of three keepalived/haproxy setups, side by side on the local lab.

    python -m bench.pair [--json pair.json] [--reps 5] [--skip PART...] [--profiles ...]

Profiles, each deployed on a freshly booted lab:
  seed    the blog post's settings as published (weighted check: interval 2, fall 2, weight 5;
          priorities 101/100; multicast; frontends appended to Debian's haproxy.cfg), except
          that its check script is written correctly (the published heredoc checks nothing)
  kubeadm the keepalived settings of kubeadm's HA guide (docs/ha-considerations.md: interval 3,
          weight -2, fall 10, rise 2; priorities 101/100; multicast) over a TCP haproxy.cfg
  halb    halb's defaults, deployed by the Pulumi program (every command executed for real)

Each figure is the median of --reps repetitions:
  haproxy_death_s           haproxy SIGKILLed on the MASTER (and kept down) -> the VIP answers from the BACKUP
  link_cut_s                the MASTER unplugged from the switch -> the VIP answers from the BACKUP
  failed_requests_failover  requests failed out of a steady load (4 clients) during a haproxy-death failover
  failed_requests_reload    requests failed out of a steady load during `systemctl reload haproxy`
  rps_via_vip / rps_direct  requests per second (8 clients) through the VIP / straight to one worker

Then, under `lifecycle`, the day-two drills of halb_lab.drills (halb), or the hand-made switchover
the others offer (stop keepalived on the MASTER, start it again), each watched with a new connection
+ GET to the VIP every 10 ms (0.25 s budget) and the VIP's holders read every 50 ms: failed requests,
outages and samples with not exactly one holder. `--skip lifecycle` leaves them out.

Under `faults`, every drill of halb_lab.faults for every profile, watched the same way (keepalived
crash, haproxy crash, crash loop (halb only: the others have no crash-loop policy to test), hang,
link flap, power cycle, cold start, backend worker killed and hung), then link flap and hang
--fault-runs times each (default 20, injected at a random phase of the advert cycle: p50/p99), and
link flap again --fault-runs times on VRRPv3 with 0.5 s adverts. `--skip faults` leaves them out.

Under `scale`, bench/scale.py on the halb profile's lab as deployed last. `--skip scale` leaves it out.

This is the part `pair` of `python -m bench` (`make bench`), which runs the other parts (engine,
watcher, vsphere, fuzz, vips, tls, holder, alerts) after it; each key written here gets its own
provenance.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from string import Template
from typing import Any

from bench import latency, wrk
from bench.common import Knob, haproxy_cpu_seconds, percentile, standalone
from bench.common import machine as common_machine
from bench.load import Load
from halb.config import load_stack_file
from halb.render import PLACEHOLDERS, all_files
from halb_lab.automation.stack import deploy
from halb_lab.infra import image, lab, net, nodes
from halb_lab.infra.topology import VIP, WORKERS
from halb_lab.scenarios import drills, faults
from halb_lab.scenarios.probes import LabError, client_get, holders, node, vip_served_by, wait_until
from halb_lab.scenarios.watch import Watch

ROOT = Path(__file__).resolve().parent.parent

REPS = 5  # --reps
KEYS = [
    "haproxy_death_s",
    "link_cut_s",
    "failed_requests_failover",
    "failed_requests_reload",
    "rps_via_vip",
    "rps_direct",
]
LB = {"lb1": ("MASTER", 101), "lb2": ("BACKUP", 100)}


def push(name: str, files: dict[str, str], then: str) -> None:
    """Write files on a node (as a person following a guide would), then run `then`."""
    script = "set -e\n"
    for path, content in files.items():
        script += f"mkdir -p {os.path.dirname(path)}\ncat > {path} <<'BENCH_EOF'\n{content}BENCH_EOF\n"
    script += then + "\n"
    p = nodes.ssh(node(name), script, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"{name}: {p.stderr}")


PROFILES_DIR = ROOT / "bench" / "profiles"  # the competitors' files, as their sources give them


def profile_file(path: str, **fields: object) -> str:
    """A competitor's file from bench/profiles/, its `$name` fields filled in (a file without
    fields, such as a shell script, is read as it is)."""
    text = (PROFILES_DIR / path).read_text()
    return Template(text).substitute(fields) if fields else text


def seed_files(name: str) -> dict[str, str]:
    state, prio = LB[name]

    def servers(port: int) -> str:
        return "".join(f"server worker{i} {w.address}:{port} check\n" for i, w in enumerate(WORKERS, 1))

    appended = profile_file("seed/haproxy-appended.cfg", servers80=servers(80), servers443=servers(443))
    return {
        "/etc/keepalived/keepalived.conf": profile_file("seed/keepalived.conf", state=state, priority=prio, vip=VIP),
        "/usr/local/bin/haproxy-service-check.sh": profile_file("seed/haproxy-service-check.sh"),
        "/etc/haproxy/haproxy.cfg": packaged_haproxy_cfg(name) + appended,
    }


PACKAGED: dict[str, str] = {}  # each node's own packaged haproxy.cfg, read once per fresh lab


def packaged_haproxy_cfg(name: str) -> str:
    """The node's own /etc/haproxy/haproxy.cfg as its package installed it: the seed appends to it."""
    if name not in PACKAGED:
        p = nodes.ssh(node(name), "cat /etc/haproxy/haproxy.cfg", timeout=20)
        if p.returncode != 0 or "defaults" not in p.stdout:
            raise RuntimeError(f"{name}: no packaged /etc/haproxy/haproxy.cfg to append to ({p.stderr.strip()})")
        PACKAGED[name] = p.stdout
    return PACKAGED[name]


def kubeadm_files(name: str) -> dict[str, str]:
    state, prio = LB[name]
    keepalived = profile_file("kubeadm/keepalived.conf", state=state, priority=prio, vip=VIP)
    check = profile_file("kubeadm/check_apiserver.sh")
    cfg = load_stack_file(str(ROOT / "Pulumi.lab.yaml"))
    files = {f.path: f.content for f in all_files(cfg, name, PLACEHOLDERS)}
    haproxy = files["/etc/haproxy/haproxy.cfg"] + "\n" + files["/etc/haproxy/halb-secrets.cfg"]
    return {
        "/etc/keepalived/keepalived.conf": keepalived,
        "/etc/keepalived/check_apiserver.sh": check,
        "/etc/haproxy/haproxy.cfg": haproxy,
    }


def deploy_by_hand(files: Callable[[str], dict[str, str]], script: str) -> None:
    for name in ("lb2", "lb1"):
        push(
            name,
            files(name),
            f"chmod +x {script}\nsystemctl enable -q keepalived haproxy\nsystemctl restart keepalived haproxy",
        )


def deploy_halb() -> None:
    """halb's own deployer (`python -m halb_lab deploy`) onto the freshly booted nodes."""
    deploy(progress=lambda _: None)


BY_HAND: dict[str, tuple[Callable[[str], dict[str, str]], str]] = {
    "seed": (seed_files, "/usr/local/bin/haproxy-service-check.sh"),
    "kubeadm": (kubeadm_files, "/etc/keepalived/check_apiserver.sh"),
}
DEPLOYERS: dict[str, Callable[[], None]] = {
    "seed": lambda: deploy_by_hand(*BY_HAND["seed"]),
    "kubeadm": lambda: deploy_by_hand(*BY_HAND["kubeadm"]),
    "halb": deploy_halb,
}


def vrrp3_half_second(keepalived_conf: str) -> str:
    """The same keepalived.conf on VRRPv3 with 0.5 s adverts."""
    if "global_defs {" in keepalived_conf:
        text = keepalived_conf.replace("global_defs {", "global_defs {\n    vrrp_version 3", 1)
    else:
        text = "global_defs {\n    vrrp_version 3\n}\n" + keepalived_conf
    if re.search(r"advert_int \S+", text):
        return re.sub(r"advert_int \S+", "advert_int 0.5", text)
    return re.sub(r"(priority \d+)", r"\1\n    advert_int 0.5", text, count=1)


@contextmanager
def fast_adverts(profile: str) -> Iterator[None]:
    """The profile's pair on VRRPv3 with 0.5 s adverts for a while: halb's through its deployer,
    the others by hand, as their guides would be edited."""
    if profile == "halb":
        with faults.fast_adverts():
            yield
        return
    files, _ = BY_HAND[profile]
    conf = "/etc/keepalived/keepalived.conf"

    def put(fast: bool) -> None:
        for name in ("lb2", "lb1"):
            text = files(name)[conf]
            push(name, {conf: vrrp3_half_second(text) if fast else text}, "systemctl restart keepalived")
        settle()

    put(True)
    try:
        yield
    finally:
        put(False)


# --------------------------------------------------------------------------- load


def timed_load(host: str, seconds: float, concurrency: int = 8) -> dict[str, float]:
    load = Load(host, concurrency)
    time.sleep(seconds)
    return load.stop()


# --------------------------------------------------------------------------- measurements


def settle(timeout: float = 60) -> None:
    drills.settle("lb1", timeout)
    time.sleep(1)


def haproxy_death() -> tuple[float, int]:
    settle()
    lb1 = node("lb1")
    # Keep haproxy down once killed (all profiles' units restart it otherwise).
    nodes.ssh(
        lb1,
        "mkdir -p /run/systemd/system/haproxy.service.d && printf '[Service]\\nRestart=no\\n' "
        "> /run/systemd/system/haproxy.service.d/zz-bench.conf && systemctl daemon-reload",
        timeout=20,
    )
    load = Load(VIP, 4)
    time.sleep(1)
    t0 = float(nodes.ssh(lb1, "date +%s.%N; systemctl kill --signal=SIGKILL haproxy", timeout=20).stdout.split()[0])
    if wait_until(lambda: vip_served_by("lb2"), 90, 0.02) is None:
        raise RuntimeError("no failover after haproxy death")
    took = time.time() - t0
    time.sleep(1)
    failed = int(load.stop()["failed"])
    nodes.ssh(
        lb1,
        "rm -f /run/systemd/system/haproxy.service.d/zz-bench.conf; systemctl daemon-reload; "
        "systemctl reset-failed haproxy; systemctl start haproxy",
        timeout=20,
    )
    return took, failed


def link_cut() -> float:
    settle()
    lb1 = node("lb1")
    t0 = time.time()
    net.cut(lb1)
    try:
        ok = wait_until(lambda: "lb2" in holders() and client_get(f"http://{VIP}/", timeout=0.3)[0] == 200, 60, 0.02)
        if ok is None:
            raise RuntimeError("no failover after link cut")
        return time.time() - t0
    finally:
        net.plug(lb1)


def reload_failures() -> int:
    settle()
    load = Load(VIP, 4)
    time.sleep(0.7)
    nodes.ssh(node("lb1"), "systemctl reload haproxy", timeout=20)
    time.sleep(1.3)
    return int(load.stop()["failed"])


def fresh(profile: str) -> None:
    """A fresh lab with `profile` deployed on it, settled."""
    print(f"bench: {profile}: fresh lab, deploy", flush=True)
    lab.down()
    lab.up()
    PACKAGED.clear()
    DEPLOYERS[profile]()
    settle()


def measure(profile: str) -> dict[str, float]:
    fresh(profile)
    if "measure" in SKIP:  # the failover medians skipped
        return {}
    deaths = [haproxy_death() for _ in range(REPS)]
    print(
        f"bench: {profile}: haproxy death {[round(d[0], 2) for d in deaths]} failed {[d[1] for d in deaths]}",
        flush=True,
    )
    cuts = [link_cut() for _ in range(REPS)]
    print(f"bench: {profile}: link cut {[round(c, 2) for c in cuts]}", flush=True)
    reloads = [reload_failures() for _ in range(REPS)]
    settle()
    via = [timed_load(VIP, 3)["rps"] for _ in range(REPS)]
    direct = [timed_load(WORKERS[0].address, 3)["rps"] for _ in range(REPS)]
    return {
        "haproxy_death_s": round(statistics.median(d[0] for d in deaths), 2),
        "link_cut_s": round(statistics.median(cuts), 2),
        "failed_requests_failover": statistics.median(d[1] for d in deaths),
        "failed_requests_reload": statistics.median(reloads),
        "rps_via_vip": round(statistics.median(via)),
        "rps_direct": round(statistics.median(direct)),
    }


THROUGHPUT_SECONDS = 5.0  # --throughput-seconds
RATE = 200  # requests/s, a new connection each: the fixed moderate rate for latency


THROUGHPUT_ROUNDS = 3  # --throughput-rounds


def throughput(profile: str) -> dict[str, Any]:
    """wrk from the client namespace: via the VIP and direct to all four workers at once (the
    machine's physical limit), keep-alive at 64 connections, a new connection per request at 32,
    and one connection for latency; haproxy's CPU per request on the MASTER, from /proc.

    Every figure is the median of THROUGHPUT_ROUNDS rounds (default 3); a round runs every load
    via the VIP and then direct, so a passing disturbance on the shared cores (one 5 s run of the
    same config measured 4442 against 7000-8800 requests/s in others) moves one round, not the
    figure. `*_runs` keep every round's requests/s."""
    settle()
    vip = f"http://{VIP}/"
    direct_urls = [f"http://{w.address}/" for w in WORKERS]
    loads = (("keepalive_64", 64, False), ("new_connection_32", 32, True), ("one_connection", 1, False))
    rounds: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in loads}
    rates: list[tuple[dict[str, float], dict[str, float]]] = []
    for _ in range(THROUGHPUT_ROUNDS):
        for label, conns, close in loads:
            cpu0 = haproxy_cpu_seconds("lb1")
            via = wrk.run(vip, conns, THROUGHPUT_SECONDS, close)
            cpu = haproxy_cpu_seconds("lb1") - cpu0
            direct = (
                wrk.parallel(direct_urls, conns, THROUGHPUT_SECONDS, close)
                if conns > 1
                else wrk.run(direct_urls[0], 1, THROUGHPUT_SECONDS)
            )
            # At one connection haproxy mostly waits between requests: its CPU per request would
            # measure the wait, not the relaying, so it is left out (null).
            cpu_us = cpu / via.requests * 1e6 if via.requests and conns > 1 else None
            rounds[label].append({"via": via, "direct": direct, "cpu_us": cpu_us})
        rates.append(
            (
                latency.measure(VIP, RATE, THROUGHPUT_SECONDS),
                latency.measure(WORKERS[0].address, RATE, THROUGHPUT_SECONDS),
            )
        )

    def med(values: Sequence[float], digits: int) -> float:
        return round(statistics.median(values), digits)

    out: dict[str, Any] = {}
    for label, rs in rounds.items():
        via_rps, direct_rps = med([r["via"].rps for r in rs], 0), med([r["direct"].rps for r in rs], 0)
        cpus = [r["cpu_us"] for r in rs if r["cpu_us"] is not None]
        out[label] = {
            "via_vip_rps": round(via_rps),
            "direct_rps": round(direct_rps),
            "ratio_via_direct": round(via_rps / direct_rps, 3) if direct_rps else 0.0,
            "via_p50_ms": med([r["via"].p50_ms for r in rs], 3),
            "via_p99_ms": med([r["via"].p99_ms for r in rs], 3),
            "direct_p50_ms": med([r["direct"].p50_ms for r in rs], 3),
            "direct_p99_ms": med([r["direct"].p99_ms for r in rs], 3),
            "added_p50_ms": med([r["via"].p50_ms - r["direct"].p50_ms for r in rs], 3),
            "errors_via": sum(r["via"].errors for r in rs),
            "haproxy_cpu_us_per_request": med(cpus, 1) if cpus else None,
            "via_vip_rps_runs": [round(r["via"].rps) for r in rs],
            "direct_rps_runs": [round(r["direct"].rps) for r in rs],
        }
        print(f"bench: {profile}: throughput {label}: {out[label]}", flush=True)
    out["fixed_rate"] = {
        "rate": RATE,
        "via_p50_ms": med([v["p50_ms"] for v, _ in rates], 3),
        "via_p99_ms": med([v["p99_ms"] for v, _ in rates], 3),
        "direct_p50_ms": med([d["p50_ms"] for _, d in rates], 3),
        "direct_p99_ms": med([d["p99_ms"] for _, d in rates], 3),
        "added_p50_ms": med([v["p50_ms"] - d["p50_ms"] for v, d in rates], 3),
        "failed_via": int(sum(v["failed"] for v, _ in rates)),
    }
    print(f"bench: {profile}: latency at {RATE} req/s: {out['fixed_rate']}", flush=True)
    return out


def switchover_by_hand() -> dict[str, Any]:
    """What the seed and kubeadm's guide offer for planned work: stop keepalived on the MASTER, start it again."""
    settle()
    with Watch() as w:
        nodes.ssh(node("lb1"), "systemctl stop keepalived", timeout=20)
        wait_until(lambda: holders() == ["lb2"], 15, 0.05)
        nodes.ssh(node("lb1"), "systemctl start keepalived", timeout=20)
        wait_until(lambda: holders() == ["lb1"], 30, 0.05)
    return w.seen.figures()


def lifecycle(profile: str) -> dict[str, dict[str, Any]]:
    """Day-two operations under load (halb_lab.drills); by hand for the other profiles."""
    if profile != "halb":
        figures = switchover_by_hand()
        print(f"bench: {profile}: switchover by hand: {figures}", flush=True)
        return {"switchover": figures}
    out: dict[str, dict[str, Any]] = {}
    for name in drills.LIFECYCLE:
        d = drills.run(name)
        print(f"bench: halb: {name}: {d.report.summary()}", flush=True)
        out[name] = d.figures()
    return out


TIMELINES: dict[str, dict[str, list[tuple[float, int, int]]]] = {}  # profile -> fault -> per-100-ms counts
FAULT_RUNS = 20  # --fault-runs: link flap and hang, p50/p99 over this many runs
FAULT_ONLY: list[str] = []  # --fault-only: these single drills only (e.g. those the timeline picture shows)


def fault_rows(profile: str) -> dict[str, dict[str, Any]]:
    """Every fault drill once (halb_lab.faults), then link flap and hang FAULT_RUNS times each."""
    halb = profile == "halb"
    runs: dict[str, Callable[[], drills.Drill]] = {
        "keepalived-crash": lambda: faults.keepalived_crash(halb=halb),
        "haproxy-crash": faults.haproxy_crash,
        "haproxy-hang": faults.haproxy_hang,
        "link-flap": faults.link_flap,
        "power-cycle": faults.power_cycle,
        "cold-start": faults.cold_start,
    }
    if halb:
        runs["haproxy-crash-loop"] = faults.haproxy_crash_loop
    runs["worker-killed"] = faults.worker_killed
    runs["worker-hung"] = faults.worker_hung
    out: dict[str, dict[str, Any]] = {}
    only = FAULT_ONLY
    for name, run in runs.items():
        if only and name not in only:
            continue
        restore()
        try:
            d = run()
        except Exception as e:  # the pair did not heal (or a node did not come back): a result too
            out[name] = {"did_not_heal": f"{type(e).__name__}: {e}"}
            print(f"bench: {profile}: {name}: did not heal: {e}", flush=True)
            continue
        print(f"bench: {profile}: {name}: {d.report.summary()}", flush=True)
        out[name] = d.figures()
        TIMELINES.setdefault(profile, {})[name] = d.report.timeline
    if FAULT_RUNS == 0:  # the single runs only (their timelines draw docs/benchmarks/failover.svg)
        return out
    # Repeated runs cut or stop for 8 s (12 s once above): longer than any failover measured.
    # (--fault-only may have left out the single runs: the repeated ones stand alone then.)
    out.setdefault("link-flap", {}).update(repeated(profile, "link-flap", lambda: faults.link_flap(8)))
    out.setdefault("haproxy-hang", {}).update(repeated(profile, "haproxy-hang", lambda: faults.haproxy_hang(8)))
    restore()
    with fast_adverts(profile):
        out["link-flap-vrrp3-0.5s"] = repeated(profile, "link-flap-vrrp3-0.5s", lambda: faults.link_flap(8))
    return out


def repeated(profile: str, name: str, run: Callable[[], drills.Drill]) -> dict[str, Any]:
    """One drill FAULT_RUNS times (each injects at a random phase of the advert cycle): p50/p99 of
    the first outage and of the failback (every later outage summed), and of the failed requests."""
    first: list[float] = []
    after: list[float] = []
    failed: list[float] = []
    healed = 0
    for _ in range(FAULT_RUNS):
        restore()
        try:
            d = run()
        except Exception as e:
            print(f"bench: {profile}: {name}: did not heal: {type(e).__name__}: {e}", flush=True)
            continue
        healed += 1
        first.append(d.report.outages[0] if d.report.outages else 0.0)
        after.append(round(sum(d.report.outages[1:]), 3))
        failed.append(d.report.failed)
    out = {
        "runs": FAULT_RUNS,
        "healed": healed,
        "first_outage_p50_s": round(percentile(first, 50), 3),
        "first_outage_p99_s": round(percentile(first, 99), 3),
        "later_outages_p50_s": round(percentile(after, 50), 3),
        "later_outages_p99_s": round(percentile(after, 99), 3),
        "failed_requests_p50": percentile(failed, 50),
        "failed_requests_p99": percentile(failed, 99),
    }
    print(f"bench: {profile}: {name} x{FAULT_RUNS}: {out}", flush=True)
    return out


def restore() -> None:
    """Between fault drills: what a previous drill left stopped is started again (the seed's and
    kubeadm's keepalived do not come back by themselves), and the pair settles on lb1."""
    for name in ("lb1", "lb2"):
        if nodes.pid_of(node(name)) is None:  # a drill that failed half-way may leave a node off
            nodes.boot(node(name), image.image_dir())
            nodes.wait_ssh(node(name))
        nodes.ssh(node(name), "systemctl reset-failed; systemctl start haproxy keepalived", timeout=30)
    try:
        settle()
    except LabError as e:
        print(f"bench: {e}", flush=True)


def lifecycle_table(figures: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = ["| lifecycle | drill | failed requests | outages | longest outage s | samples not one holder |"]
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for profile, drills_ in figures.items():
        for name, f in drills_.items():
            lines.append(
                f"| {profile} | {name} | {f['failed_requests']}/{f['requests']} | {f['outages']} | "
                f"{f['longest_outage_s']} | {f['samples_not_one_holder']}/{f['holder_samples']} |"
            )
    return "\n".join(lines)


def fault_table(figures: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = ["| fault | profile | failed requests | outages (s) | p50 / p99 first outage s | p50 / p99 later s |"]
    lines.append("| --- | --- | --- | --- | --- | --- |")
    names = sorted({n for rows in figures.values() for n in rows})
    for name in names:
        for profile, rows in figures.items():
            f = rows.get(name, {})
            if "did_not_heal" in f:
                lines.append(f"| {name} | {profile} | did not heal: {f['did_not_heal']} | | | |")
                continue
            once = f"{f['failed_requests']}/{f['requests']}" if "requests" in f else ""
            outs = ", ".join(str(o) for o in f.get("outage_s", [])) if "requests" in f else ""
            p = (
                f"{f['first_outage_p50_s']} / {f['first_outage_p99_s']} (x{f['healed']}/{f['runs']})"
                if "runs" in f
                else ""
            )
            later = f"{f['later_outages_p50_s']} / {f['later_outages_p99_s']}" if "runs" in f else ""
            lines.append(f"| {name} | {profile} | {once} | {outs} | {p} | {later} |")
    return "\n".join(lines)


def throughput_table(figures: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| throughput | profile | via VIP rps | direct rps | via/direct | p50 / p99 ms via | added p50 ms | haproxy CPU µs/req |"
    ]
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for profile, rows in figures.items():
        for label, f in rows.items():
            if label == "fixed_rate":
                lines.append(
                    f"| {f['rate']} req/s | {profile} | | | | {f['via_p50_ms']} / {f['via_p99_ms']} | "
                    f"{f['added_p50_ms']} | |"
                )
                continue
            lines.append(
                f"| {label} | {profile} | {f['via_vip_rps']} | {f['direct_rps']} | {f['ratio_via_direct']} | "
                f"{f['via_p50_ms']} / {f['via_p99_ms']} | {f['added_p50_ms']} | {f['haproxy_cpu_us_per_request'] or ''} |"
            )
    return "\n".join(lines)


def medians_table(results: dict[str, dict[str, float]]) -> str:
    profiles = list(results)
    lines = [f"| metric (median of {REPS}) | {' | '.join(profiles)} |", "| --- |" + " --- |" * len(profiles)]
    for key in KEYS:
        lines.append(f"| {key} | " + " | ".join(str(results[p][key]) for p in profiles) + " |")
    return "\n".join(lines)


def machine() -> str:
    return f"{time.strftime('%Y-%m-%d')}, {common_machine()}"


def charts(speed: dict[str, dict[str, Any]]) -> None:
    """docs/benchmarks/failover.svg and docs/benchmarks/throughput.svg, committed and shown on the benchmark pages."""
    from bench.charts import throughput_svg, timeline_svg

    if TIMELINES:
        timeline_svg(TIMELINES, ROOT / "docs/benchmarks/failover.svg", f"Faults under load, {machine()}")
    if speed:
        throughput_svg(speed, ROOT / "docs/benchmarks/throughput.svg", f"Throughput with wrk, {machine()}")


PROFILES = ["seed", "kubeadm", "halb"]  # --profiles
PARTS = ["throughput", "faults", "lifecycle", "scale"]  # the failover medians always run
SKIP: list[str] = []  # --skip: parts left out
KNOBS = {
    "profiles": Knob("PROFILES", "the setups to compare", many=True, choices=list(DEPLOYERS)),
    "skip": Knob("SKIP", "parts to leave out", many=True, choices=PARTS),
    "reps": Knob("REPS", "repetitions of each failover median"),
    "fault-runs": Knob("FAULT_RUNS", "runs of the repeated faults (0: the single runs only)"),
    "fault-only": Knob("FAULT_ONLY", "these single fault drills only", many=True),
    "throughput-seconds": Knob("THROUGHPUT_SECONDS", "seconds per wrk run"),
    "throughput-rounds": Knob("THROUGHPUT_ROUNDS", "rounds of wrk; each figure is their median"),
}


def run() -> dict[str, Any]:
    """Every profile on a freshly booted lab: its failover medians (under the profile's name) and
    the parts not skipped, each under its key in results.json."""
    out: dict[str, Any] = {}
    speed: dict[str, Any] = {}
    try:
        for profile in PROFILES:
            out[profile] = measure(profile)
            if "throughput" not in SKIP:
                speed[profile] = throughput(profile)
                if profile == "halb":  # what halb's default `haproxy.log: errors` saves
                    deploy(sets=["haproxy.log=all"], progress=lambda _: None)
                    speed["halb, log: all"] = throughput("halb, log: all")
                    deploy(progress=lambda _: None)
            if "faults" not in SKIP:
                out.setdefault("faults", {})[profile] = fault_rows(profile)
            if "lifecycle" not in SKIP:
                out.setdefault("lifecycle", {})[profile] = lifecycle(profile)
        if "scale" not in SKIP and "halb" in PROFILES:
            from bench.scale import run as scale_run

            out["scale"] = scale_run(lab=True)  # on the halb profile's lab, as deployed last
    finally:
        lab.down()
    if speed:
        out["throughput"] = speed
    if TIMELINES:
        out["timelines"] = TIMELINES
    charts(speed)
    return out


def table(figures: dict[str, Any]) -> str:
    """The tables of whatever `run` measured."""
    from bench.scale import table as scale_table

    medians = {p: figures[p] for p in DEPLOYERS if p in figures}
    tables: list[tuple[Any, Callable[[Any], str]]] = [
        (medians, medians_table),
        (figures.get("throughput"), throughput_table),
        (figures.get("lifecycle"), lifecycle_table),
        (figures.get("faults"), fault_table),
        (figures.get("scale"), scale_table),
    ]
    return "\n\n".join(draw(part) for part, draw in tables if part)


def main(argv: list[str] | None = None) -> int:
    return standalone(None, run, table, KNOBS, argv)


if __name__ == "__main__":
    sys.exit(main())
