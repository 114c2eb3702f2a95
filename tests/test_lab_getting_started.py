"""docs/getting-started/vsphere.md, followed as a new user would: its `sh` blocks run in order, in
one bash, from the checkout, with the plain Pulumi CLI on a fresh local backend (a HOME of its
own), against the lab's simulated vCenter. Only the page's first block, the user's site, is
replaced by the lab's values; the test checks that it names the same variables. Two lab-only
lines are added: `halb:preflight false`, because the lab's guests answer at their addresses before
their VMs exist, and `haproxy.maxconn 4096`, because this sandbox caps every process at 20000
open files (haproxy needs about two per connection). The page must end with `halb status` exit 0 (the host keys the deploy recorded on
first use are what status checks); then lb2 gets new host keys, as a rebuilt node does, and
`halb status` refuses it with the way to accept it.

Root only. Brings up a lab of its own and takes it down."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT
from halb_lab.infra import nodes, vcenter
from halb_lab.infra.topology import SSH_KEY, VIP
from halb_lab.scenarios.probes import holders, node, wait_until

pytestmark = pytest.mark.lab
PAGE = ROOT / "docs/getting-started/vsphere.md"
STACK = "getting-started"
PASSPHRASE = "a passphrase for the getting-started test"
SITE = {  # the lab's answers to the page's first block
    "STACK": STACK,
    "VIP": VIP,
    "LB1": "198.18.0.11",
    "LB2": "198.18.0.12",
    "SUBNET": "198.18.0.0/24",
    "GATEWAY": "198.18.0.1",
    "DNS": "198.18.0.1",
    "DOMAIN": "lab.internal",
    "NIC": "eth0",
    "WEB1": "198.18.0.21",
    "WEB2": "198.18.0.22",
    "VCENTER": "198.18.0.1",
    "VCENTER_USER": "administrator@vsphere.local",
    "INSECURE": "true",  # the simulator's self-signed certificate
    "DATACENTER": "lab-dc",
    "CLUSTER": "lab-cluster",
    "DATASTORE": "LocalDS_0",
    "PORTGROUP": "lab-lan",
    "TEMPLATE": "debian-12-template",
    "SSH_USER": "deploy",
    "SSH_KEY": str(SSH_KEY),
}
REKEY = "rm -f /etc/ssh/ssh_host_*key* && ssh-keygen -A && systemctl restart ssh"
STATUS = f'export PATH="$PWD/.engine/bin:$PATH" PULUMI_CONFIG_PASSPHRASE="{PASSPHRASE}"; .venv/bin/python -m halb status --stack {STACK}'
LAB_ONLY = """\
pulumi config set halb:preflight false --stack "$STACK"                # the lab's guests exist before their VMs
pulumi config set --path halb:haproxy.maxconn 4096 --stack "$STACK"   # the lab caps a process at 20000 files
"""


def sh_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", markdown, flags=re.S | re.M)


def assigned(block: str) -> list[str]:
    """The variables a block assigns (NAME=value words at the start of its lines)."""
    names = []
    for line in block.splitlines():
        code = line.split("#", 1)[0]
        names += re.findall(r"(?:^|\s)([A-Z_][A-Z0-9_]*)=", code)
    return names


def test_the_pages_site_block_names_what_the_lab_answers() -> None:
    blocks = sh_blocks(PAGE.read_text())
    assert len(blocks) == 5, f"{PAGE.name}: expected 5 sh blocks (site, tools, stack, password, deploy): {len(blocks)}"
    assert sorted(assigned(blocks[0])) == sorted(SITE), f"{PAGE.name}'s first block: {assigned(blocks[0])}"


@pytest.fixture
def home(tmp_path: Path, lab_up: None) -> Iterator[Path]:
    """A fresh HOME (so a fresh local backend); the stack file the page writes is removed after."""
    yield tmp_path
    (ROOT / f"Pulumi.{STACK}.yaml").unlink(missing_ok=True)


def test_the_vsphere_getting_started_page_runs_as_written_and_ends_with_status_ok(home: Path) -> None:
    blocks = sh_blocks(PAGE.read_text())
    site = "".join(f"{k}={v}\n" for k, v in SITE.items())
    script = "\n".join(["set -euo pipefail", site, blocks[1], blocks[2], LAB_ONLY, blocks[3], blocks[4]])
    # A fresh backend of this test's own: the page logs in to a folder under $HOME, and the CLI's
    # own home (credentials, plugins' cache) follows PULUMI_HOME.
    env = {
        "HOME": str(home),
        "PULUMI_HOME": str(home / ".pulumi-home"),
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "CI": os.environ.get("CI", ""),
        "PULUMI_SKIP_UPDATE_CHECK": "true",  # this sandbox reaches no update server
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }
    answers = f"{PASSPHRASE}\n{vcenter.password()}\n"  # the two prompts, in the page's order
    destroy = f'export PATH="$PWD/.engine/bin:$PATH" PULUMI_CONFIG_PASSPHRASE="{PASSPHRASE}"; pulumi destroy --yes --stack {STACK}'
    try:
        run = subprocess.run(
            ["bash", "-c", script], cwd=ROOT, env=env, input=answers, capture_output=True, text=True, timeout=900
        )
        out = run.stdout + run.stderr
        (home / "page.log").write_text(out)
        errors = [line[:300] for line in out.splitlines() if "error" in line.lower() or "failed" in line][:20]
        assert run.returncode == 0, f"the page stopped (exit {run.returncode}; {home}/page.log):\n" + "\n".join(errors)
        assert vcenter.password() not in out, "the vCenter password was printed"
        assert re.search(r"^OK: lb[12] holds the VIP", run.stdout, re.M), f"halb status:\n{run.stdout[-2000:]}"
        assert "host_keys" in run.stdout, f"the stack output lacks host_keys:\n{run.stdout[-2000:]}"
        assert wait_until(lambda: holders() == ["lb1"], 20, 0.2) is not None, f"lb1 never took the VIP: {holders()}"
        # lb2 rebuilt with new host keys: status refuses it, names it, and says how to accept it.
        nodes.ssh(node("lb2"), REKEY, timeout=30, check=True)
        status = subprocess.run(["bash", "-c", STATUS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert status.returncode == 4, f"halb status after lb2's new key: exit {status.returncode}\n{status.stdout}"
        assert "lb2: its SSH host key is not the one pinned" in status.stdout, status.stdout
        assert "halb:nodes[1].generation" in status.stdout and "lb1:" not in status.stdout.split("UNREACHABLE", 1)[1], (
            status.stdout
        )
    finally:
        subprocess.run(["bash", "-c", destroy], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
