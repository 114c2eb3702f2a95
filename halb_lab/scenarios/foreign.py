"""A third VRRP router on the lab's LAN: keepalived (this machine's binary) in the client namespace,
announcing an address of its own with a VRID chosen by the test. It proves that the VRID
pre-flight and `halb status` see a router that is not a node of the stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from halb_lab.infra.topology import CLIENT
from halb_lab.scenarios.probes import in_client

ADDRESS = "198.18.0.99"  # what the foreign router announces (no lab host or stack uses it)
KEEPALIVED = "/usr/sbin/keepalived"


def foreign_config(vrid: int, version: int, advert_int: float = 1.0) -> str:
    """keepalived.conf of the foreign router: one instance, MASTER from the start (a BACKUP alone sends nothing for 3 adverts), multicast adverts."""
    return (
        "global_defs {\n    router_id halb_lab_foreign\n}\n"
        "vrrp_instance foreign {\n"
        "    state MASTER\n    interface eth0\n"
        f"    virtual_router_id {vrid}\n    version {version}\n    priority 100\n    advert_int {advert_int:g}\n"
        f"    virtual_ipaddress {{\n        {ADDRESS}/24\n    }}\n"
        "}\n"
    )


@contextmanager
def foreign_router(vrid: int, version: int = 2) -> Iterator[str]:
    """Run the foreign router until the block ends; yields its source address (the client's)."""
    with tempfile.TemporaryDirectory(prefix="halb-foreign-") as tmp:
        conf = Path(tmp, "keepalived.conf")
        conf.write_text(foreign_config(vrid, version))
        cmd = in_client(
            KEEPALIVED,
            "--dont-fork",
            "--log-console",
            "--vrrp",
            "--use-file",
            str(conf),
            "--pid",
            f"{tmp}/keepalived.pid",
            "--vrrp_pid",
            f"{tmp}/vrrp.pid",
        )
        log = open(Path(tmp, "log"), "w")  # noqa: SIM115 (closed below, after the process)
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            time.sleep(1.0)  # already on the LAN, as a router the stack meets is
            if proc.poll() is not None:
                raise RuntimeError(f"the foreign keepalived exited {proc.returncode}: {Path(tmp, 'log').read_text()}")
            yield CLIENT.address
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # keepalived removes its address as it leaves
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()
            subprocess.run(
                ["ip", "-n", CLIENT.netns, "addr", "del", f"{ADDRESS}/24", "dev", "eth0"],
                capture_output=True,
                check=False,
            )


def check_probe(stack: str = "lab") -> tuple[int, str, float]:
    """`python -m halb check --stack STACK --probe`, as an operator runs it in the stack's project:
    exit code, what it printed, and how long it took."""
    from halb import PROJECT_DIR
    from halb_lab.automation.stack import engine

    start = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "halb", "check", "--stack", stack, "--probe", "--no-host-key-check"],
        cwd=engine(stack).home,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **engine(stack).env(), "PYTHONPATH": str(PROJECT_DIR)},
    )
    return p.returncode, p.stdout + p.stderr, time.monotonic() - start
