"""The provisioning scripts, run for real by /bin/sh where that needs no node."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import require, stack_raw, tool
from halb import commands
from halb.config import load_config
from halb.config.paths import set_in
from halb.render import NodeFile, all_files

TRICKY = "line with $HOME and `date` and $(id -u)\n\\backslash\nEOF\nHALB_EOF_x\n'quotes' \"double\"\n"


def sh(script: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", script], input=stdin, capture_output=True, text=True, timeout=30)


def test_install_file_writes_content_verbatim_with_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.conf"
    p = sh(commands.install_file(NodeFile(str(target), TRICKY, "0640", "system")))
    assert p.returncode == 0, p.stderr
    assert target.read_text() == TRICKY
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert not (tmp_path / "sub" / "file.conf.halb-new").exists()


def test_as_root_runs_the_script_unchanged_and_passes_stdin() -> None:
    script = 'set -eu\nread -r line\nprintf "%s|%s\\n" "$line" \'$HOME `x`\'\n'
    p = sh(commands.as_root(script, "root"), stdin="secret-from-stdin\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "secret-from-stdin|$HOME `x`\n"


def test_as_root_keeps_the_scripts_exit_code() -> None:
    assert sh(commands.as_root("exit 7\n", "root")).returncode == 7


def test_non_root_user_goes_through_sudo() -> None:
    wrapped = commands.as_root("true\n", "deploy")
    assert 'sudo -n sh "$halb_script"' in wrapped


def inner_script(wrapped: str) -> str:
    """The body a step really runs: the script inside as_root's heredoc."""
    m = re.search(r"<<'(HALB_SCRIPT)'\n(.*)\1\n", wrapped, re.S)
    assert m, "no script inside the sudo wrapper"
    return m.group(2)


def shellcheck(path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path.write_text(text)
    return subprocess.run(["shellcheck", "--shell=sh", "--severity=warning", str(path)], capture_output=True, text=True)


def test_generated_scripts_pass_shellcheck(tmp_path: Path) -> None:
    """shellcheck reads the body each step runs, not just the wrapper (which hides it in a heredoc)."""
    require(tool("shellcheck") is not None, "the `shellcheck` binary")
    cfg = load_config(stack_raw("dev"))
    files = all_files(cfg, "lb1")
    scripts = {
        "wait": commands.wait_script(),
        "packages": commands.packages_script(cfg),
        "system": commands.system_script(cfg, "lb1", files),
        "haproxy": commands.haproxy_script(files, cfg, "lb1"),
        "keepalived": commands.keepalived_script(files, "192.168.4.60"),
        "services": commands.services_script(cfg),
        "commit": commands.commit_script(),
        "rejoin": commands.rejoin_script(),
        "teardown": commands.teardown_script("lb1", "halb-lb1#0"),
        "owner": commands.owner_script("halb-lb1#0"),
    }
    for name, script in scripts.items():
        wrapped = commands.as_root(script, "deploy")
        assert inner_script(wrapped) == script, f"{name} step: the wrapper changed the script"
        for label, text in (("wrapper", wrapped), ("body", inner_script(wrapped))):
            p = shellcheck(tmp_path / f"{name}-{label}.sh", text)
            assert p.returncode == 0, f"{name} step ({label}): {p.stdout}"


def test_shellcheck_of_the_body_can_fail(tmp_path: Path) -> None:
    require(tool("shellcheck") is not None, "the `shellcheck` binary")
    wrapped = commands.as_root("unused=1\n", "deploy")
    assert shellcheck(tmp_path / "wrapper.sh", wrapped).returncode == 0, "the wrapper alone hides the body"
    assert shellcheck(tmp_path / "body.sh", inner_script(wrapped)).returncode != 0, "shellcheck missed SC2034"


def test_validation_failure_leaves_the_live_file(tmp_path: Path) -> None:
    """The config-step skeleton with a validator that fails: nothing moves into place."""
    live = tmp_path / "live.cfg"
    live.write_text("old\n")
    main = NodeFile(str(live), "new\n", "0644", "haproxy")
    script = commands._config_script(main, None, str(tmp_path), "false", "echo applied\n", "test-validator")
    p = sh(script)
    assert p.returncode == 1 and "rejected the new live.cfg; the running config is untouched" in p.stderr
    assert live.read_text() == "old\n" and "applied" not in p.stdout
    assert list(tmp_path.iterdir()) == [live], "staging directory left behind"
    ok = sh(commands._config_script(main, None, str(tmp_path), "true", "echo applied\n", "test-validator"))
    assert ok.returncode == 0 and live.read_text() == "new\n" and "applied" in ok.stdout


PASSWORD = "Zx9$Q'no-echo"  # deliberately broken for haproxy: the quote ends the quoted part early


def test_a_rejected_secret_file_never_shows_the_secret_in_the_error(tmp_path: Path) -> None:
    """Real haproxy -c -dW on a secrets file it refuses: the step fails, says which validator and
    why, and neither the password nor any part of its line appears."""
    require(tool("haproxy") is not None, "the `haproxy` binary")
    live = tmp_path / "haproxy.cfg"
    cfg = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"
    main = NodeFile(str(live), cfg + "frontend f\n    bind 127.0.0.1:0\n", "0644", "haproxy")
    secret = NodeFile(str(tmp_path / "halb-secrets.cfg"), "", "0640", "haproxy")
    content = f"userlist halb_stats\n    user admin insecure-password '{PASSWORD}' bogus-keyword\n"
    validate = f'{tool("haproxy")} -c -dW -f "$stage/haproxy.cfg" -f "$stage/halb-secrets.cfg"'
    script = commands._config_script(main, secret, str(tmp_path), validate, "echo applied\n", "haproxy -c -dW")
    p = sh(script, stdin=content)
    assert p.returncode == 1 and "haproxy -c -dW rejected the new haproxy.cfg" in p.stderr, p.stderr
    assert "withheld" in p.stderr, f"haproxy's message about the secret file was not withheld: {p.stderr}"
    for part in ("Zx9", "no-echo", "bogus-keyword"):
        assert part not in p.stderr + p.stdout, f"{part!r} leaked: {p.stderr}"
    assert not live.exists(), "a rejected file went live"


def test_the_withhold_filter_masks_every_word_of_the_secret_file(tmp_path: Path) -> None:
    (tmp_path / "halb-auth.conf").write_text("auth_pass s3cr<t\n")
    out = "s3cr<t at the start, and s3cr<t again\nnothing here\n"
    p = subprocess.run(
        [
            "/bin/sh",
            "-c",
            f"stage={tmp_path}; printf '%s' \"$1\" | {commands.withhold_filter('halb-auth.conf')}",
            "sh",
            out,
        ],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert p.stdout == "<secret> at the start, and <secret> again\nnothing here\n", p.stdout


BEFORE_RULES = """*filter
:ufw-before-input - [0:0]
-A ufw-before-input -i lo -j ACCEPT
# don't delete the 'COMMIT' line or these rules won't be processed
COMMIT
"""


def _firewall_run(tmp_path: Path, rules: list[str]) -> list[str]:
    """Run halb's firewall script against stub ufw/firewall-cmd/systemctl that log their arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    for name, body in (
        ("ufw", 'if [ "$1" = status ]; then echo "Status: active"; exit 0; fi\necho "ufw $*" >> "$LOG"'),
        ("firewall-cmd", 'echo "firewall-cmd $*" >> "$LOG"'),
        ("systemctl", "exit 0"),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    log.write_text("")
    script = "set -eu\n" + commands.firewall(rules, str(tmp_path / "state/firewall"), str(tmp_path / "before.rules"))
    p = subprocess.run(
        ["/bin/sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log)},
    )
    assert p.returncode == 0, p.stderr
    return [line for line in log.read_text().splitlines() if "--reload" not in line and line[-6:] != "reload"]


def test_firewall_opens_exactly_halbs_rules_and_closes_stale_ones(tmp_path: Path) -> None:
    (tmp_path / "before.rules").write_text(BEFORE_RULES)
    cfg = load_config(set_in(stack_raw("dev"), "haproxy.stats.allowFrom", ["192.168.4.0/24", "10.9.9.9/32"]))
    rules = list(cfg.plan.firewall["lb1"])
    assert rules == [
        "vrrp 192.168.4.62/32",
        "tcp 80 0.0.0.0/0",
        "tcp 443 0.0.0.0/0",
        "tcp 8080 192.168.4.0/24",
        "tcp 8080 10.9.9.9/32",
        "tcp 9100 192.168.4.0/24",  # the node exporter, from where the stats port may be reached
        "tcp 9100 10.9.9.9/32",
    ]
    calls = _firewall_run(tmp_path, rules)
    assert "ufw allow from 0.0.0.0/0 to any port 80 proto tcp" in calls, calls
    assert "ufw allow from 10.9.9.9/32 to any port 8080 proto tcp" in calls, calls
    assert not any("ufw allow from 192.168.4.62" in c for c in calls), f"ufw opened every port to the peer: {calls}"
    assert any('protocol value="vrrp"' in c and "192.168.4.62/32" in c for c in calls), calls
    before = (tmp_path / "before.rules").read_text()
    assert before.count("-A ufw-before-input -p vrrp -s 192.168.4.62/32 -j ACCEPT") == 1, before
    assert before.index("# halb end") < before.index("\nCOMMIT"), before

    # The next deploy drops a service and an allowFrom entry: exactly those close.
    calls = _firewall_run(tmp_path, [r for r in rules if r not in ("tcp 443 0.0.0.0/0", "tcp 8080 10.9.9.9/32")])
    removed = [c for c in calls if "delete" in c or "--remove" in c]
    assert sorted(removed) == sorted(
        [
            "ufw delete allow from 0.0.0.0/0 to any port 443 proto tcp",
            "firewall-cmd --permanent --remove-port=443/tcp",
            'firewall-cmd --permanent --remove-rich-rule=rule family="ipv4" source address="10.9.9.9/32" port '
            'port="8080" protocol="tcp" accept',
            "ufw delete allow from 10.9.9.9/32 to any port 8080 proto tcp",
        ]
    ), removed
    assert (tmp_path / "before.rules").read_text().count("-p vrrp") == 1

    # Teardown: everything halb opened closes, the VRRP block leaves before.rules.
    calls = _firewall_run(tmp_path, [])
    assert len([c for c in calls if "delete" in c or "--remove" in c]) == 1 + 4 * 2, calls  # VRRP: firewalld only
    assert (tmp_path / "before.rules").read_text() == BEFORE_RULES
    assert not (tmp_path / "state/firewall").exists()


def test_content_that_would_end_its_heredoc_early_is_refused() -> None:
    """The delimiters are fixed words (a diff shows only changed lines), so a line equal to one is refused."""
    with pytest.raises(ValueError, match="HALB_EOF"):
        commands.install_file(NodeFile("/etc/x", "a\nHALB_EOF\nb\n", "0644", "system"))
    with pytest.raises(ValueError, match="HALB_SCRIPT"):
        commands.as_root("echo a\nHALB_SCRIPT\n", "deploy")


def test_firewall_with_an_ipv6_vip_lets_in_vrrp_from_the_peers_ipv6_address_and_the_v6_services(
    tmp_path: Path,
) -> None:
    from conftest import variants

    (tmp_path / "before.rules").write_text(BEFORE_RULES)
    (tmp_path / "before6.rules").write_text(BEFORE_RULES.replace("ufw-", "ufw6-"))
    cfg = load_config(variants()["dualstack"])
    rules = list(cfg.plan.firewall["lb1"])
    assert rules == [
        "vrrp 192.168.4.62/32",
        "vrrp 2001:db8:4::62/128",
        "tcp 80 0.0.0.0/0",
        "tcp 443 0.0.0.0/0",
        "tcp 8443 0.0.0.0/0",
        "tcp 80 ::/0",
        "tcp 443 ::/0",
        "tcp 8080 192.168.4.0/24",
        "tcp 8080 2001:db8:4::/64",
        "tcp 9100 192.168.4.0/24",  # the node exporter listens on the node's IPv4 address only
    ], "api (on the IPv4 VIP `internal` only) gets no IPv6 rule"
    calls = _firewall_run(tmp_path, rules)
    assert "ufw allow from ::/0 to any port 80 proto tcp" in calls, calls
    assert any('family="ipv6" source address="2001:db8:4::62/128" protocol value="vrrp"' in c for c in calls), calls
    assert not any("::/0" in c for c in calls if c.startswith("firewall-cmd")), "firewalld's port rule covers IPv6"
    assert any('family="ipv6" source address="2001:db8:4::/64" port port="8080"' in c for c in calls), calls
    before, before6 = (tmp_path / "before.rules").read_text(), (tmp_path / "before6.rules").read_text()
    assert "-A ufw-before-input -p vrrp -s 192.168.4.62/32 -j ACCEPT" in before and "2001:" not in before, before
    assert "-A ufw6-before-input -p vrrp -s 2001:db8:4::62/128 -j ACCEPT" in before6 and "192." not in before6, before6
    _firewall_run(tmp_path, [])
    assert (tmp_path / "before6.rules").read_text() == BEFORE_RULES.replace("ufw-", "ufw6-")


def test_vrid_step_listens_with_the_rendered_program_and_changes_only_with_the_vrids() -> None:
    from halb.render import PATHS, node_files

    def script(raw: dict[str, object]) -> str:
        cfg = load_config(raw)
        return commands.vrid_script(node_files(cfg, "lb1"), cfg.keepalived.vrid_probe_seconds)

    dev = stack_raw("dev")
    base = script(dev)
    adverts = next(f.content for f in node_files(load_config(dev), "lb1") if f.path == PATHS["vrrp_adverts"])
    assert base.startswith("python3 - 3 <<'HALB_EOF'\n") and adverts in base, "vrid step: python3 reads the program"
    assert script(set_in(dev, "haproxy.maxconn", 9000)) == base, "vrid step: a change that is not a VRID runs nothing"
    assert script(set_in(dev, "keepalived.vrid", 77)) != base, "vrid step: a new VRID listens again"
    off = script(set_in(dev, "keepalived.vridProbeSeconds", 0))
    assert "python3" not in off and "vridProbeSeconds is 0" in off, off
    assert script(set_in(dev, "keepalived.vridProbeSeconds", 0.5)).startswith("python3 - 0.5 <<"), "the window"


def test_the_host_key_the_wait_step_printed_is_recorded() -> None:
    out = "halb: boot finished (running)\nhalb: host key ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtmD9ymXsQk9c1bJ8kYyFq7Zx3Fw0s5S0a1b2c3d4e5\n"
    assert (
        commands.recorded_host_key("lb1", out)
        == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtmD9ymXsQk9c1bJ8kYyFq7Zx3Fw0s5S0a1b2c3d4e5"
    )


def test_a_wait_step_that_printed_no_host_key_is_an_error_naming_the_node_and_the_key() -> None:
    with pytest.raises(ValueError, match=r"lb2: the wait step printed no SSH host key.*halb:nodes\[\]\.hostKey"):
        commands.recorded_host_key("lb2", "halb: boot finished (running)\n")


ED, ECDSA = "AAAAC3NzaC1lZDI1NTE5AAAAI" + "e" * 43, "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI" + "c" * 40


def test_a_printed_line_that_is_not_a_host_key_is_not_taken_for_one() -> None:
    with pytest.raises(ValueError, match="lb1: the wait step printed no SSH host key"):
        commands.recorded_host_key("lb1", "halb: host key ssh-ed25519 short\n")


def test_the_wait_step_prints_the_key_sshd_offers_first(tmp_path: Path) -> None:
    """The script's key lookup, run against a fake /etc/ssh: ed25519 is preferred over ecdsa."""
    script = commands.wait_script()
    loop = script[script.index("for type in") :]
    (tmp_path / "ssh_host_ecdsa_key.pub").write_text(f"ecdsa-sha2-nistp256 {ECDSA} root@x\n")
    (tmp_path / "ssh_host_ed25519_key.pub").write_text(f"ssh-ed25519 {ED} root@x\n")
    out = subprocess.run(["sh", "-c", loop.replace("/etc/ssh/", f"{tmp_path}/")], capture_output=True, text=True)
    assert commands.recorded_host_key("lb1", out.stdout) == f"ssh-ed25519 {ED}", out
    (tmp_path / "ssh_host_ed25519_key.pub").unlink()
    out = subprocess.run(["sh", "-c", loop.replace("/etc/ssh/", f"{tmp_path}/")], capture_output=True, text=True)
    assert commands.recorded_host_key("lb1", out.stdout) == f"ecdsa-sha2-nistp256 {ECDSA}", out
