"""The getting-started pages, followed as a new user would: each page's `sh` blocks run in order, in
one bash, from the checkout, with the plain Pulumi CLI on a fresh backend (a HOME of its own).

- docs/getting-started/vsphere.md against the lab's simulated vCenter, on lb1 and lb2;
- docs/getting-started/hosts.md on the spare nodes lb3 and lb4 (VIP .40), as two existing hosts.

Only a page's first block, the user's site, is replaced by the lab's values; the test checks that
it names the same variables. Lab-only lines are added after the stack is made, each with its
reason: `haproxy.maxconn 4096`, because this sandbox caps every process at 20000 open files
(haproxy needs about two per connection), and on vSphere `halb:preflight false`, because the
lab's guests answer at their addresses before their VMs exist. A page must end with `halb
status` exit 0: the host keys the deploy recorded on first use are what status checks. Then one
node gets new host keys, as a rebuilt node does, and `halb status` refuses it with the way to
accept it.

Root only. Brings up a lab of its own and takes it down."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import ROOT
from halb_lab.infra import lab, nodes, vcenter
from halb_lab.infra.topology import NODES, SPARE_NODES, SSH_KEY, VIP, Host
from halb_lab.scenarios.probes import client_get, wait_until

pytestmark = pytest.mark.lab
PASSPHRASE = "a passphrase for the getting-started test"
MAXCONN = (
    'pulumi config set --path halb:haproxy.maxconn 4096 --stack "$STACK"   # the lab caps a process at 20000 files\n'
)
REKEY = "rm -f /etc/ssh/ssh_host_*key* && ssh-keygen -A && systemctl restart ssh"


@dataclass(frozen=True)
class Page:
    path: Path
    site: dict[str, str]  # the lab's answers to the page's first block
    nodes: tuple[Host, Host]
    lab_only: str  # lines added after the page's stack block
    secrets: list[str] = field(default_factory=list)  # what the page's prompts read, after the passphrase

    @property
    def stack(self) -> str:
        return self.site["STACK"]


VSPHERE = Page(
    ROOT / "docs/getting-started/vsphere.md",
    {
        "STACK": "getting-started-vsphere",
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
    },
    (NODES[0], NODES[1]),
    'pulumi config set halb:preflight false --stack "$STACK"  # the lab\'s guests exist before their VMs\n' + MAXCONN,
    secrets=["vcenter"],
)
HOSTS = Page(
    ROOT / "docs/getting-started/hosts.md",
    {
        "STACK": "getting-started-hosts",
        "VIP": "198.18.0.40",
        "LB1": SPARE_NODES[0].address,
        "LB2": SPARE_NODES[1].address,
        "SUBNET": "198.18.0.0/24",
        "NIC": "eth0",
        "WEB1": "198.18.0.23",
        "WEB2": "198.18.0.24",
        "SSH_USER": "deploy",
        "SSH_KEY": str(SSH_KEY),
    },
    (SPARE_NODES[0], SPARE_NODES[1]),
    MAXCONN,
)
PAGES = {"vsphere": VSPHERE, "hosts": HOSTS}


def sh_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", markdown, flags=re.S | re.M)


def assigned(block: str) -> list[str]:
    """The variables a block assigns (NAME=value words, comments left out)."""
    names = []
    for line in block.splitlines():
        names += re.findall(r"(?:^|\s)([A-Z_][A-Z0-9_]*)=", line.split("#", 1)[0])
    return names


def script(page: Page) -> str:
    """The page's blocks as one script: the lab's site first, the lab-only lines after `stack init`."""
    blocks = sh_blocks(page.path.read_text())
    stack_block = next(i for i, b in enumerate(blocks) if "pulumi stack init" in b)
    site = "".join(f"{k}={v}\n" for k, v in page.site.items())
    return "\n".join(
        ["set -euo pipefail", site, *blocks[1 : stack_block + 1], page.lab_only, *blocks[stack_block + 1 :]]
    )


@pytest.mark.parametrize("name", list(PAGES))
def test_the_pages_site_block_names_what_the_lab_answers(name: str) -> None:
    page = PAGES[name]
    blocks = sh_blocks(page.path.read_text())
    assert sorted(assigned(blocks[0])) == sorted(page.site), f"{page.path.name}'s first block: {assigned(blocks[0])}"
    assert "-m halb status" in blocks[-1], f"{page.path.name}'s last block does not run halb status"


@pytest.fixture(scope="module")
def spares(lab_up: None) -> Iterator[None]:
    lab.boot_spares()
    yield
    lab.remove_spares()


def _env(home: Path) -> dict[str, str]:
    """The page's shell: a HOME of its own (the page logs in to a folder under it) and the CLI's
    own home in it too; nothing else of this machine's Pulumi setup."""
    return {
        "HOME": str(home),
        "PULUMI_HOME": str(home / ".pulumi-home"),
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "CI": os.environ.get("CI", ""),
        "PULUMI_SKIP_UPDATE_CHECK": "true",  # this sandbox reaches no update server
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }


def _cli(command: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """`command` in the page's shell after it: the engine on PATH, the stack's passphrase set."""
    line = f'export PATH="$PWD/.engine/bin:$PATH" PULUMI_CONFIG_PASSPHRASE="{PASSPHRASE}"; {command}'
    return subprocess.run(["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name", list(PAGES))
def test_a_getting_started_page_runs_as_written_and_ends_with_status_ok(
    name: str, spares: None, tmp_path: Path
) -> None:
    page = PAGES[name]
    env = _env(tmp_path)
    answers = "".join(f"{s}\n" for s in [PASSPHRASE, *(vcenter.password() for _ in page.secrets)])
    try:
        run = subprocess.run(
            ["bash", "-c", script(page)], cwd=ROOT, env=env, input=answers, capture_output=True, text=True, timeout=900
        )
        out = run.stdout + run.stderr
        (tmp_path / "page.log").write_text(out)
        errors = [line[:300] for line in out.splitlines() if "error" in line.lower() or "failed" in line][:20]
        assert run.returncode == 0, (
            f"{page.path.name} stopped (exit {run.returncode}; {tmp_path}/page.log):\n" + "\n".join(errors)
        )
        assert not any(s in out for s in [PASSPHRASE, vcenter.password()]), f"{page.path.name}: a secret was printed"
        assert re.search(r"^OK: lb\d holds the VIP", run.stdout, re.M), f"halb status:\n{run.stdout[-2000:]}"
        assert "host_keys" in run.stdout, f"the stack output lacks host_keys:\n{run.stdout[-2000:]}"
        vip = page.site["VIP"]
        assert wait_until(lambda: client_get(f"http://{vip}/", timeout=0.5)[0] == 200, 20, 0.2), (
            f"{vip} does not answer"
        )
        # The second node rebuilt with new host keys: status refuses it, names it, says how to accept it.
        nodes.ssh(page.nodes[1], REKEY, timeout=30, check=True)
        status = _cli(f".venv/bin/python -m halb status --stack {page.stack}", env, 120)
        assert status.returncode == 4, f"halb status after lb2's new key: exit {status.returncode}\n{status.stdout}"
        assert "lb2: its SSH host key is not the one pinned" in status.stdout, status.stdout
        assert "halb:nodes[1].generation" in status.stdout, status.stdout
        assert "lb1:" not in status.stdout.split("UNREACHABLE", 1)[1], f"lb1 was refused too: {status.stdout}"
    finally:
        _cli(f"pulumi destroy --yes --stack {page.stack}", env, 600)
        (ROOT / f"Pulumi.{page.stack}.yaml").unlink(missing_ok=True)
