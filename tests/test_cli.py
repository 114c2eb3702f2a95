"""`python -m halb check|render`, run as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT


def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "halb", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **(env or {})},
    )


def test_check_dev_exits_0_once_the_vcenter_password_is_given() -> None:
    p = run("check", "--stack", "dev", env={"VSPHERE_PASSWORD": "given-by-the-environment"})
    assert p.returncode == 0, p.stderr
    assert "ok" in p.stdout


def test_check_dev_without_the_vcenter_password_names_the_key() -> None:
    p = run("check", "--stack", "dev")
    assert p.returncode == 2 and "vsphere:password: got nothing" in p.stderr, p.stderr
    assert "pulumi config set --secret vsphere:password" in p.stderr, p.stderr


def test_check_prints_every_error_and_exits_2_without_traceback(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    doc["config"]["halb:keepalived"] = {"vrid": 999, "authPassword": "far-too-long-secret"}
    doc["config"]["halb:haproxy"]["services"][1]["port"] = 80
    (tmp_path / "Pulumi.broken.yaml").write_text(yaml.safe_dump(doc))
    p = run("check", "--stack", "broken", cwd=tmp_path)
    assert p.returncode == 2
    for key in ("halb:keepalived.vrid", "halb:keepalived.authPassword", "halb:haproxy.services[1].port"):
        assert key in p.stderr, f"{key} missing from: {p.stderr}"
    assert "Traceback" not in p.stderr and "far-too-long-secret" not in p.stderr + p.stdout


def test_check_unknown_stack_exits_2(tmp_path: Path) -> None:
    p = run("check", "--stack", "nope", cwd=tmp_path)
    assert p.returncode == 2 and "Pulumi.nope.yaml" in p.stderr


def test_render_writes_each_nodes_files_with_placeholder_secrets(tmp_path: Path) -> None:
    p = run("render", "--stack", "dev", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    for node in ("lb1", "lb2"):
        auth = tmp_path / node / "etc/keepalived/halb-auth.conf"
        assert auth.read_text().rstrip().endswith("auth_pass @SECRET@"), f"{node}: {auth}"
        assert (tmp_path / node / "etc/haproxy/haproxy.cfg").is_file()
        assert (tmp_path / node / "usr/local/libexec/halb/haproxy-watch").stat().st_mode & 0o111


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[0:2] for line in block[:2]] == [["make", "up"], ["make", "test"]]
