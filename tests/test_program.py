"""`__main__.py` under Pulumi's mocks: what it registers, in what order, with which secrets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest

from conftest import ROOT, stack_raw
from halb.components.node import STEPS
from halb.config.paths import delete_in, set_in
from pulumi_harness import SECRET_SIG, Recorder, Run, mock_host_key, run_main, stack_config

VM = "vsphere:index/virtualMachine:VirtualMachine"
RULE = "vsphere:index/computeClusterVmAntiAffinityRule:ComputeClusterVmAntiAffinityRule"
REMOTE = "command:remote:Command"
LOCAL = "command:local:Command"

SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUtest-key-material\n-----END OPENSSH PRIVATE KEY-----\n"
VC_PASSWORD = "vc-Pa55word-XYZ"
VRRP_PASSWORD = "vRrP-pw8"
STATS_PASSWORD = "st4ts-Secret-Pass"


def dev(**changes: Any) -> dict[str, Any]:
    raw = stack_raw("dev")
    for path, value in changes.items():
        raw = set_in(raw, path, value)
    return raw


def deploy(raw: dict[str, Any], secrets_in_config: bool = True, stack: str = "dev") -> Run:
    if secrets_in_config:
        raw = set_in(raw, "ssh.privateKey", SSH_KEY)
        raw = set_in(raw, "ssh.agent", False)
    config = stack_config(
        raw,
        {
            "vsphere:password": VC_PASSWORD,
            "vsphere:user": "admin@vsphere.local",
            "vsphere:vsphereServer": "vcenter.example.com",
        },
    )
    secret_keys = ["vsphere:password", "halb:ssh", "halb:keepalived", "halb:haproxy", "halb:bgp"]
    return run_main(config, secret_keys, stack=stack)


@pytest.fixture(scope="module")
def dev_run() -> Run:
    raw = dev(**{"keepalived.authPassword": VRRP_PASSWORD, "haproxy.stats.password": STATS_PASSWORD})
    return deploy(raw)


def unwrap(value: Any) -> Any:
    return value["value"] if isinstance(value, dict) and SECRET_SIG in value else value


# --------------------------------------------------------------------------- VMs


def test_two_vms_cloned_with_static_addresses(dev_run: Run) -> None:
    vms = dev_run.of_type(VM)
    assert set(vms) == {"halb-vm-lb1", "halb-vm-lb2"}
    for node, address in (("lb1", "192.168.4.61"), ("lb2", "192.168.4.62")):
        vm = vms[f"halb-vm-{node}"].inputs
        clone = vm["clone"]
        custom = clone["customize"]
        assert clone["templateUuid"] == "42216e55-7cf6-9d4b-1e3c-2d56e2c4f9a1", f"halb-vm-{node}: template"
        assert custom["linuxOptions"] == {"hostName": node, "domain": "example.com"}, f"halb-vm-{node}: hostname"
        assert custom["networkInterfaces"] == [{"ipv4Address": address, "ipv4Netmask": 24}], f"halb-vm-{node}: address"
        assert custom["ipv4Gateway"] == "192.168.4.1" and custom["dnsServerLists"] == ["192.168.4.1"]
        assert custom["dnsSuffixLists"] == ["example.com"]
        assert vm["ignoredGuestIps"] == ["192.168.4.60"], f"halb-vm-{node}: the VIP must be ignored"
        assert (vm["numCpus"], vm["memory"]) == (2, 2048), f"halb-vm-{node}: size"
        assert (vm["guestId"], vm["scsiType"], vm["firmware"]) == ("debian12_64Guest", "pvscsi", "efi")
        assert vm["resourcePoolId"] == "resgroup-9" and vm["datastoreId"] == "datastore-11" and vm["folder"] == "halb"
        assert vm["networkInterfaces"] == [{"networkId": "network-13", "adapterType": "vmxnet3"}]
        assert [(d["label"], d["size"], d["unitNumber"]) for d in vm["disks"]] == [("disk0", 16, 0), ("disk1", 8, 1)]
        assert dev_run.resources[f"halb-vm-{node}"].options["provider"].startswith("urn:"), "explicit vSphere provider"


def test_a_vm_is_replaced_delete_first_and_the_vcenter_is_checked_before_it(dev_run: Run) -> None:
    """The new VM takes the old one's static address: never two VMs with it at once."""
    for name, vm in dev_run.of_type(VM).items():
        assert vm.options["deleteBeforeReplace"], f"{name}: created before the old VM is deleted"
    assert dev_run.recorder.vcenter_checks == [("vcenter.example.com", "admin@vsphere.local")], (
        "halb.vcenter checks the server and the login once, before the provider is used"
    )


def placement_failure(answers: dict[str, Any], fail: frozenset[str] = frozenset()) -> tuple[str, list[str]]:
    """The program's error with these data-source answers (`fail`: tokens whose invoke errors),
    and the VMs, rules and remote steps it registered. (The address records come first; a
    `pulumi up` stops at its preview, which fails with the program, so none is created.)"""

    class Failing(Recorder):
        def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
            if args.token in fail:  # as the provider answers: a failure in the invoke's response
                self.invokes.append(args.token)
                return {}, [("", "1 error occurred:\n\t* error fetching: object 'x' not found\n\n")]
            return super().call(args)

    recorder = Failing(answers)
    raw = set_in(set_in(dev(), "ssh.privateKey", SSH_KEY), "ssh.agent", False)
    config = stack_config(
        raw,
        {
            "vsphere:password": VC_PASSWORD,
            "vsphere:vsphereServer": "vc.example.com",
            "vsphere:user": "admin@vsphere.local",
        },
    )
    with pytest.raises(Exception) as err:
        run_main(config, ["vsphere:password", "halb:ssh"], recorder=recorder)
    created = [r.name for r in recorder.resources.values() if r.type in (VM, RULE, REMOTE)]
    return str(err.value), created


def test_every_missing_vsphere_name_is_reported_at_once_naming_its_key_before_any_vm() -> None:
    from pulumi_harness import INVOKES

    token = "vsphere:index/{0}:{0}".format
    text, created = placement_failure(INVOKES, frozenset({token("getDatastore"), token("getNetwork")}))
    assert "2 vSphere error(s)" in text, text
    assert "halb:vsphere.datastore: got 'datastore1'; expected a datastore that exists" in text, text
    assert "halb:vsphere.network: got 'VM Network'" in text and "object 'x' not found" in text, text
    assert VC_PASSWORD not in text and created == [], (text, created)


def test_a_template_without_a_network_adapter_is_refused_before_any_vm() -> None:
    from pulumi_harness import INVOKES

    template = "vsphere:index/getVirtualMachine:getVirtualMachine"
    text, created = placement_failure({**INVOKES, template: {**INVOKES[template], "networkInterfaceTypes": []}})
    assert "halb:vsphere.template: got 'debian-12-template', a template with no network adapter" in text, text
    assert created == [], created


def test_vm_and_rule_names_carry_the_stack_so_two_stacks_never_collide(dev_run: Run) -> None:
    prod = deploy(dev(), stack="prod")
    names = {
        stack: {r.inputs["name"] for r in run.of_type(VM).values()} for stack, run in (("dev", dev_run), ("prod", prod))
    }
    assert names == {"dev": {"dev-lb1", "dev-lb2"}, "prod": {"prod-lb1", "prod-lb2"}}, names
    assert prod.resources["halb-vm-anti-affinity"].inputs["name"] == "prod-halb-anti-affinity"
    custom = deploy(dev(**{"vsphere.namePrefix": "edge"}), stack="prod")
    assert {r.inputs["name"] for r in custom.of_type(VM).values()} == {"edge-lb1", "edge-lb2"}


def test_disk_grows_to_configured_size() -> None:
    run = deploy(dev(**{"vsphere.diskGb": 40}))
    disks = run.resources["halb-vm-lb1"].inputs["disks"]
    assert [d["size"] for d in disks] == [40, 8]


def test_vsphere_provider_takes_a_secret_password(dev_run: Run) -> None:
    provider = dev_run.resources["halb-vm-provider"]
    assert SECRET_SIG in provider.inputs["password"], "halb-vm-provider: password must be secret"
    assert provider.inputs["user"] == "admin@vsphere.local"


def test_anti_affinity_rule_over_both_vm_ids(dev_run: Run) -> None:
    rule = dev_run.resources["halb-vm-anti-affinity"]
    vm_ids = sorted(dev_run.resources[n].id for n in ("halb-vm-lb1", "halb-vm-lb2"))
    assert len(set(vm_ids)) == 2, f"the mock gives each VM its own id: {vm_ids}"
    assert sorted(rule.inputs["virtualMachineIds"]) == vm_ids, "halb-vm-anti-affinity: the two VMs' ids"
    assert rule.inputs["computeClusterId"] == "domain-c8" and rule.inputs["mandatory"] is False
    assert rule.options["replaceOnChanges"] == ["virtualMachineIds"] and rule.options["deleteBeforeReplace"]
    assert dev_run.deps("halb-vm-anti-affinity") >= {"halb-vm-lb1", "halb-vm-lb2"}


def test_anti_affinity_mandatory_and_off() -> None:
    assert (
        deploy(dev(**{"vsphere.antiAffinity": {"mandatory": True}}))
        .resources["halb-vm-anti-affinity"]
        .inputs["mandatory"]
    )
    assert not deploy(dev(**{"vsphere.antiAffinity": {"enabled": False}})).of_type(RULE)


# --------------------------------------------------------------------------- addresses


def test_reservations_for_vip_and_nodes(dev_run: Run) -> None:
    records = {n: r for n, r in dev_run.of_type(LOCAL).items() if n.startswith("halb-address-")}
    assert {n: r.inputs["triggers"] for n, r in records.items()} == {
        "halb-address-vip": ["192.168.4.60"],
        "halb-address-lb1": ["192.168.4.61"],
        "halb-address-lb2": ["192.168.4.62"],
    }
    for vm in ("halb-vm-lb1", "halb-vm-lb2"):
        assert dev_run.deps(vm) >= set(records), f"{vm} must wait for the reservations"


def test_preflight_pings_vip_and_new_vm_addresses_only() -> None:
    run = deploy(dev(preflight=True))
    assert all("ping -c 2" in r.inputs["create"] for n, r in run.of_type(LOCAL).items() if n != "halb-verify")
    hosts = deploy(dev(platform="hosts", preflight=True))
    creates = {n: r.inputs["create"] for n, r in hosts.of_type(LOCAL).items()}
    assert "ping" in creates["halb-address-vip"] and "ping" not in creates["halb-address-lb1"]


# --------------------------------------------------------------------------- provisioning


def test_every_step_per_node_in_order(dev_run: Run) -> None:
    for node, vm in (("lb1", "halb-vm-lb1"), ("lb2", "halb-vm-lb2")):
        previous = None
        for step in STEPS:
            name = f"halb-{node}-{step}"
            res = dev_run.resources[name]
            assert res.type == REMOTE, f"{name}: type"
            assert "update" not in res.inputs, f"{name}: a changed script runs as `create` again (an update)"
            triggers = res.inputs["triggers"]
            assert triggers == [dev_run.resources[vm].id], f"{name}: {vm}'s id is the only trigger, got {triggers}"
            assert res.inputs["connection"], f"{name}: connection"
            if previous:
                assert previous in dev_run.deps(name), f"{name} must run after {previous}"
            assert dev_run.name(res.parent) == f"halb-{node}", f"{name}: parent is its node component"
            previous = name


def test_every_address_is_reserved_before_a_node_is_touched() -> None:
    run = deploy(dev(platform="hosts", preflight=True))
    for node in ("lb1", "lb2"):
        assert run.deps(f"halb-{node}-wait") >= {"halb-address-vip", "halb-address-lb1", "halb-address-lb2"}, node


def test_backup_is_configured_before_master(dev_run: Run) -> None:
    assert "halb-lb2-services" in dev_run.deps("halb-lb1-system"), "lb1 (MASTER) config waits for lb2 (BACKUP)"
    assert not any(d.startswith("halb-lb1") for n in STEPS for d in dev_run.deps(f"halb-lb2-{n}"))


def test_connection_allows_many_dial_attempts_and_uses_the_secret_key(dev_run: Run) -> None:
    conn = unwrap(dev_run.resources["halb-lb1-wait"].inputs["connection"])
    assert conn["host"] == "192.168.4.61" and conn["user"] == "root" and conn["port"] == 22
    assert conn["dialErrorLimit"] == 60
    assert SECRET_SIG in conn["privateKey"] or SECRET_SIG in dev_run.resources["halb-lb1-wait"].inputs["connection"]


HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtmD9ymXsQk9c1bJ8kYyFq7Zx3Fw0s5S0a1b2c3d4e5"


def test_a_pinned_host_key_reaches_every_step_but_the_teardown() -> None:
    run = deploy(dev(**{"nodes[0].hostKey": HOST_KEY}))
    for name, res in run.resources.items():
        if not name.startswith("halb-lb1-") or res.type != "command:remote:Command":
            continue
        conn = unwrap(res.inputs["connection"])
        if name == "halb-lb1-teardown":  # no secret, no config: a rebuilt host can still be torn down
            assert "hostKey" not in conn, f"{name}: pinned"
        else:
            assert conn.get("hostKey") == HOST_KEY, f"{name}: host key not pinned"
    spec = unwrap(run.resources["halb-verify"].inputs["create"])
    assert HOST_KEY in spec, "halb-verify: the pinned key is not in its spec"


def test_an_unpinned_node_is_pinned_on_first_use_to_the_key_its_wait_step_met(dev_run: Run) -> None:
    """No `nodes[].hostKey`: `wait` connects unchecked and prints the node's key; every later step,
    the VRRP rollout and the verify step check that key; it is an output for `halb status`."""
    for node in ("lb1", "lb2"):
        recorded = mock_host_key(f"halb-{node}-wait")
        for name, res in dev_run.resources.items():
            if res.type != "command:remote:Command" or not (
                name.startswith(f"halb-{node}-") or name.startswith(f"halb-vrrp-{node}-")
            ):
                continue
            conn = unwrap(res.inputs["connection"])
            if name in (f"halb-{node}-wait", f"halb-{node}-teardown"):
                assert "hostKey" not in conn, f"{name}: checks a key before one was recorded"
            else:
                assert conn.get("hostKey") == recorded, f"{name}: not pinned to the recorded key"
        assert recorded in unwrap(dev_run.resources["halb-verify"].inputs["create"]), "halb-verify: key not in spec"
        assert dev_run.exports["host_keys"][node] == recorded, f"host_keys output: {node}"


def test_config_steps_validate_before_replacing_and_reload(dev_run: Run) -> None:
    haproxy = dev_run.resources["halb-lb1-haproxy"].inputs["create"]
    assert haproxy.index("haproxy -c -dW -f") < haproxy.index('mv -f "$stage/haproxy.cfg" /etc/haproxy/haproxy.cfg')
    assert "systemctl reload haproxy" in haproxy and "frontend https" in haproxy, "main file shown in the script"
    keepalived = dev_run.resources["halb-lb1-keepalived"].inputs["create"]
    assert "unshare --pid --fork --mount-proc keepalived -t" in keepalived
    assert keepalived.index("keepalived -t") < keepalived.index("/etc/keepalived/keepalived.conf\n")
    assert "systemctl reload-or-restart keepalived" in keepalived and "restart haproxy" not in keepalived


def test_secret_steps_take_secrets_on_stdin_log_nothing_and_hide_output(dev_run: Run) -> None:
    for node in ("lb1", "lb2"):
        for step in ("haproxy", "keepalived"):
            res = dev_run.resources[f"halb-{node}-{step}"]
            assert SECRET_SIG in res.inputs["stdin"], f"halb-{node}-{step}: stdin must be secret"
            assert res.inputs["logging"] == "none", f"halb-{node}-{step}: logging"
            assert set(res.options["additionalSecretOutputs"]) >= {"stdout", "stderr"}, f"halb-{node}-{step}"
            assert SECRET_SIG not in json.dumps(res.inputs["triggers"]), f"halb-{node}-{step}: triggers stay reviewable"
        content = unwrap(dev_run.resources[f"halb-{node}-haproxy"].inputs["stdin"])
        assert f"insecure-password '{STATS_PASSWORD}'" in content
        assert unwrap(dev_run.resources[f"halb-{node}-keepalived"].inputs["stdin"]).rstrip().endswith(VRRP_PASSWORD)


def test_no_step_hands_previous_output_to_the_next_run(dev_run: Run) -> None:
    """pulumi-command's default puts a step's last stdout/stderr in the next run's environment."""
    for name, res in dev_run.resources.items():
        if res.type.startswith("command:"):
            assert res.inputs.get("addPreviousOutputInEnv") is False, f"{name}: addPreviousOutputInEnv"


def test_non_root_user_runs_steps_through_sudo() -> None:
    run = deploy(dev(**{"ssh.user": "deploy"}))
    for step in STEPS:
        assert 'sudo -n sh "$halb_script"' in run.resources[f"halb-lb1-{step}"].inputs["create"], step
    assert not any("environment" in r.inputs for r in run.of_type(REMOTE).values()), "never relies on AcceptEnv"


def test_hosts_platform_creates_no_vm() -> None:
    run = deploy(dev(platform="hosts"))
    assert not run.of_type(VM) and not run.of_type(RULE)
    assert not [r for r in run.resources.values() if r.type.startswith("vsphere:") or "vsphere" in r.type]
    trig = run.resources["halb-lb1-wait"].inputs["triggers"][0]
    assert trig == "halb-address-lb1-id", "existing hosts are identified by their address record"


def test_removing_a_backend_server_changes_only_the_haproxy_scripts_and_no_trigger(dev_run: Run) -> None:
    raw = dev(**{"keepalived.authPassword": VRRP_PASSWORD, "haproxy.stats.password": STATS_PASSWORD})
    servers = raw["haproxy"]["services"][0]["servers"]
    smaller = deploy(set_in(raw, "haproxy.services[0].servers", servers[:-1]))
    commands = {**dev_run.of_type(REMOTE), **dev_run.of_type(LOCAL)}
    changed = sorted(n for n, r in commands.items() if r.inputs != smaller.resources[n].inputs)
    assert changed == ["halb-lb1-haproxy", "halb-lb2-haproxy", "halb-verify"], changed
    retriggered = [
        n for n, r in commands.items() if r.inputs.get("triggers") != smaller.resources[n].inputs.get("triggers")
    ]
    assert retriggered == [], f"a config change must update, not replace: {retriggered}"
    assert "worker4 192.168.4.69:80" not in smaller.resources["halb-lb1-haproxy"].inputs["create"]


def test_changing_an_address_changes_its_record_and_that_nodes_steps() -> None:
    before = deploy(dev(platform="hosts"))
    after = deploy(dev(platform="hosts", **{"nodes[1].address": "192.168.4.63"}))
    assert after.resources["halb-address-lb2"].inputs["triggers"] == ["192.168.4.63"]
    assert before.resources["halb-address-lb1"].inputs == after.resources["halb-address-lb1"].inputs
    for step in STEPS:
        b, a = before.resources[f"halb-lb2-{step}"], after.resources[f"halb-lb2-{step}"]
        assert unwrap(b.inputs["connection"]) != unwrap(a.inputs["connection"]), f"halb-lb2-{step}: new host"


# --------------------------------------------------------------------------- outputs and secrets


def test_outputs(dev_run: Run) -> None:
    out = dev_run.exports
    assert out["vip"] == "192.168.4.60"
    assert out["nodes"] == {
        "lb1": {"address": "192.168.4.61", "role": "master"},
        "lb2": {"address": "192.168.4.62", "role": "backup"},
    }
    assert out["stats_urls"] == {"lb1": "http://192.168.4.61:8080/stats", "lb2": "http://192.168.4.62:8080/stats"}
    assert out["metrics_urls"]["lb2"] == "http://192.168.4.62:8080/metrics"
    assert out["prometheus_targets"] == [
        {"targets": ["192.168.4.61:9100", "192.168.4.62:9100"], "labels": {"job": "halb-node"}},
        {
            "targets": ["192.168.4.61:8080", "192.168.4.62:8080"],
            "labels": {"job": "halb-haproxy", "__metrics_path__": "/metrics"},
        },
    ], "file_sd groups: the node exporters, and haproxy's exporter on the stats port"
    assert out["frontends"] == {"http": "192.168.4.60:80", "https": "192.168.4.60:443"}
    assert out["stats_password"] == STATS_PASSWORD and out["vrrp_password"] == VRRP_PASSWORD


def test_unset_passwords_are_generated_once_and_secret() -> None:
    run = deploy(dev())
    stats = run.resources["halb-stats-password"]
    vrrp = run.resources["halb-vrrp-password"]
    assert stats.inputs["length"] == 24 and vrrp.inputs["length"] == 8 and not vrrp.inputs["special"]
    assert run.exports["vrrp_password"] == vrrp.outputs["result"]
    lb = [
        o
        for urn, o in run.recorder.component_outputs.items()
        if urn.split("::")[-2].endswith("halb:index:HaLoadBalancer")
    ]
    for key in ("vrrpPassword", "statsPassword"):
        assert SECRET_SIG in json.dumps(lb[0][key]), f"halb outputs: {key} must be secret"
    assert (
        not deploy(dev(**{"keepalived.version": 3, "keepalived.advertInt": 0.5}))
        .of_type("random:index/randomPassword:RandomPassword")
        .get("halb-vrrp-password")
    ), "VRRPv3 has no password"


def _leaks(value: Any, secrets: list[str], where: str) -> list[str]:
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return []  # wrapped as a secret: stored encrypted
        return [leak for k, v in value.items() for leak in _leaks(v, secrets, f"{where}.{k}")]
    if isinstance(value, list):
        return [leak for i, v in enumerate(value) for leak in _leaks(v, secrets, f"{where}[{i}]")]
    if isinstance(value, str):
        return [f"{where} holds a secret" for s in secrets if s in value]
    return []


def test_no_secret_in_plain_text_in_any_input_or_output(dev_run: Run) -> None:
    generated = deploy(dev())
    for run, secrets in (
        (dev_run, [VRRP_PASSWORD, STATS_PASSWORD, VC_PASSWORD, "test-key-material"]),
        (generated, [generated.exports["vrrp_password"], generated.exports["stats_password"]]),
    ):
        leaks = []
        for name, res in run.resources.items():
            if res.type == "random:index/randomPassword:RandomPassword":
                continue  # the provider's own state holds its result as a secret
            leaks += _leaks(res.inputs, secrets, f"{name}.inputs")
        for urn, outputs in run.recorder.component_outputs.items():
            leaks += _leaks(outputs, secrets, f"{run.name(urn)}.outputs")
        assert not leaks, leaks


def test_leak_scan_can_fail() -> None:
    assert _leaks({"a": [{"b": "x-secret-x"}]}, ["secret"], "r") == ["r.a[0].b holds a secret"]
    assert _leaks({"a": {SECRET_SIG: "1", "value": "secret"}}, ["secret"], "r") == []


# --------------------------------------------------------------------------- shape and errors


def test_component_types_and_child_names(dev_run: Run) -> None:
    types = {r.type for r in dev_run.resources.values() if r.type.startswith("halb:")}
    assert types == {
        "halb:index:HaLoadBalancer",
        "halb:network:AddressReservations",
        "halb:vsphere:VmPair",
        "halb:node:NodeProvisioning",
        "halb:node:VrrpRollout",
    }
    for name, res in dev_run.resources.items():
        parent = dev_run.name(res.parent) if res.parent else ""
        if parent and parent != "halb-dev" and not parent.startswith("urn:"):
            assert name.startswith(parent + "-"), f"{name} is not named after its parent {parent}"


def test_bad_config_fails_before_any_resource_is_created() -> None:
    raw = dev(**{"keepalived.vrid": 300})
    with pytest.raises(Exception) as err:
        deploy(raw)
    assert "halb:keepalived.vrid" in str(err.value)
    assert isinstance(err.value, pulumi.RunError) or "RunError" in repr(err.value)


def bgp_dev() -> dict[str, Any]:
    """The dev stack in BGP mode: three nodes, the VIP routed to them, one router."""
    raw = dev(mode="bgp", bgp={"asn": 64512, "peers": [{"address": "192.168.4.1", "asn": 64513}]})
    raw = set_in(delete_in(raw, "keepalived"), "addresses.vip", "192.168.40.10")
    raw["nodes"] = [{"name": f"lb{i}", "address": f"192.168.4.{60 + i}"} for i in (1, 2, 3)]
    return raw


def test_bgp_mode_provisions_every_node_with_frr_and_no_vrrp() -> None:
    run = deploy(bgp_dev())
    names = set(run.resources)
    for node in ("lb1", "lb2", "lb3"):
        steps = {n.rsplit("-", 1)[1] for n in names if n.startswith(f"halb-{node}-")}
        assert {"packages", "system", "haproxy", "frr", "services"} <= steps, f"halb-{node}: {sorted(steps)}"
        assert not steps & {"vrid", "keepalived"}, f"halb-{node}: VRRP steps in BGP mode: {sorted(steps)}"
    assert not [n for n in names if n.startswith("halb-vrrp")], "BGP mode: no VRRP rollout"
    frr = run.resources["halb-lb2-frr"].inputs["create"]
    assert "vtysh --dryrun" in frr and "neighbor 192.168.4.1 remote-as 64513" in frr, "halb-lb2-frr"
    verify = run.resources["halb-verify"].inputs["create"]
    assert '"peers":["192.168.4.1"]' in verify, f"halb-verify: {verify}"
    vm_ids = sorted(run.resources[f"halb-vm-lb{i}"].id for i in (1, 2, 3))
    rule = run.resources["halb-vm-anti-affinity"]
    assert sorted(rule.inputs["virtualMachineIds"]) == vm_ids, "halb-vm-anti-affinity: every node's VM"
    # one node at a time: each node's VM waits for the previous node's last step
    assert run.deps("halb-vm-lb2") >= {"halb-lb1-services"}, f"halb-vm-lb2: {run.deps('halb-vm-lb2')}"
    assert run.deps("halb-vm-lb3") >= {"halb-lb2-services"}, f"halb-vm-lb3: {run.deps('halb-vm-lb3')}"


def test_a_bgp_peers_password_reaches_its_node_only_as_a_secret() -> None:
    raw = set_in(bgp_dev(), "bgp.peers[0].password", "md5-Pa55word")
    run = deploy(raw)
    frr = run.resources["halb-lb1-frr"]
    assert "md5-Pa55word" not in json.dumps(frr.inputs["create"]), "halb-lb1-frr: the password in the script"
    assert SECRET_SIG in json.dumps(frr.inputs.get("stdin")), "halb-lb1-frr: frr.conf on stdin, as a secret"


def test_unknown_key_is_an_error_in_the_program_too() -> None:
    with pytest.raises(Exception) as err:
        deploy(set_in(delete_in(dev(), "keepalived"), "keepalivd", {"vrid": 3}))
    assert "halb:keepalivd" in str(err.value) and "no such key" in str(err.value)


def test_plain_text_secrets_are_refused_by_the_program_with_the_fix() -> None:
    """Pulumi hands the program every secret decrypted: a key not marked secret was plain text."""
    raw = dev(**{"keepalived.authPassword": VRRP_PASSWORD, "haproxy.stats.password": STATS_PASSWORD})
    raw = set_in(set_in(raw, "ssh.privateKey", SSH_KEY), "ssh.agent", False)
    config = stack_config(
        raw,
        {
            "vsphere:password": VC_PASSWORD,
            "vsphere:vsphereServer": "vc.example.com",
            "vsphere:user": "admin@vsphere.local",
        },
    )
    recorder = Recorder()
    with pytest.raises(Exception) as err:
        run_main(config, ["halb:ssh"], recorder=recorder)  # only the SSH key was set with --secret
    text = str(err.value)
    for key in ("halb:keepalived.authPassword", "halb:haproxy.stats.password", "vsphere:password"):
        assert f"{key}: got a plain-text value" in text, f"{key} not refused: {text}"
    assert "pulumi config set --secret --path halb:haproxy.stats.password" in text, text
    assert "halb:ssh.privateKey" not in text, f"the secret SSH key was refused: {text}"
    for secret in (VRRP_PASSWORD, STATS_PASSWORD, VC_PASSWORD, "b3BlbnNz"):
        assert secret not in text, f"a secret is in the error: {text}"
    created = [r.name for r in recorder.resources.values() if not r.type.startswith(("halb:", "pulumi:"))]
    assert created == [], f"resources registered before the config error: {created}"


def test_missing_key_file_fails_before_any_resource_is_created(tmp_path: Any) -> None:
    raw = set_in(dev(platform="hosts"), "ssh", {"user": "root", "privateKeyPath": str(tmp_path / "absent")})
    recorder = Recorder()
    with pytest.raises(Exception) as err:
        run_main(stack_config(raw), [], recorder=recorder)
    assert "halb:ssh.privateKeyPath" in str(err.value) and "absent" in str(err.value)
    created = [r.name for r in recorder.resources.values() if not r.type.startswith(("halb:", "pulumi:"))]
    assert created == [], f"resources registered before the key error: {created}"


# --------------------------------------------------------------------------- day two


def test_teardown_runs_only_on_a_new_host_and_before_its_replacement(dev_run: Run) -> None:
    for node in ("lb1", "lb2"):
        res = dev_run.resources[f"halb-{node}-teardown"]
        delete = res.inputs["delete"]
        assert delete.index("systemctl disable --now keepalived") < delete.index("systemctl disable --now haproxy"), (
            f"halb-{node}-teardown: keepalived stops first, so the VIP leaves with a priority-0 advert"
        )
        assert "rm -f /etc/keepalived/keepalived.conf" in delete and "userdel keepalived_script" in delete
        closes = "wanted=$(cat <<'HALB_FW'\n\nHALB_FW" in delete  # no rule wanted: every recorded one closes
        assert "apt-get" not in delete and closes, f"halb-{node}-teardown: packages stay, ports close"
        assert res.options["deleteBeforeReplace"], f"halb-{node}-teardown: the old host is torn down first"
        assert f"halb-{node}-teardown" in dev_run.deps(f"halb-{node}-packages"), "every later step depends on it"
    others = [n for n, r in dev_run.of_type(REMOTE).items() if not n.endswith("-teardown")]
    assert not any(dev_run.resources[n].inputs.get("delete") for n in others), "only the teardown deletes"


def test_config_changes_never_touch_the_teardown_trigger(dev_run: Run) -> None:
    changed = deploy(dev(**{"haproxy.maxconn": 999, "nodes[0].maintenance": True}))
    for node in ("lb1", "lb2"):
        name = f"halb-{node}-teardown"
        assert changed.resources[name].inputs["triggers"] == dev_run.resources[name].inputs["triggers"], name


def test_generation_gives_the_node_a_new_identity_and_only_that_node() -> None:
    base = deploy(dev(platform="hosts"))
    bumped = deploy(dev(platform="hosts", **{"nodes[1].generation": 1}))
    for step in STEPS:
        b, a = base.resources[f"halb-lb2-{step}"], bumped.resources[f"halb-lb2-{step}"]
        assert a.inputs["triggers"][0] == "halb-address-lb2-id#1", f"halb-lb2-{step}: {a.inputs['triggers'][0]}"
        assert b.inputs["triggers"][0] == "halb-address-lb2-id"
        lb1 = f"halb-lb1-{step}"
        assert base.resources[lb1].inputs["triggers"] == bumped.resources[lb1].inputs["triggers"], lb1


def test_vrrp_rollout_commits_then_rejoins_after_both_nodes(dev_run: Run) -> None:
    for node in ("lb1", "lb2"):
        commit, rejoin = f"halb-vrrp-{node}-commit", f"halb-vrrp-{node}-rejoin"
        assert dev_run.deps(commit) >= {"halb-lb1-services", "halb-lb2-services"}, commit
        assert dev_run.deps(rejoin) >= {"halb-vrrp-lb1-commit", "halb-vrrp-lb2-commit"}, rejoin
        assert SECRET_SIG in json.dumps(dev_run.resources[commit].inputs["stdin"]), f"{commit}: stdin is secret"
    raw = dev(**{"keepalived.authPassword": VRRP_PASSWORD, "haproxy.stats.password": STATS_PASSWORD})
    resting = deploy(set_in(raw, "nodes[0].maintenance", True))
    for name in ("halb-vrrp-lb1-commit", "halb-vrrp-lb2-rejoin"):  # a keepalived change updates the rollout
        before, after = dev_run.resources[name].inputs, resting.resources[name].inputs
        assert before["create"] != after["create"] and before["triggers"] == after["triggers"], name


def test_a_password_change_reruns_the_rollout_but_a_haproxy_change_does_not(dev_run: Run) -> None:
    rotated = deploy(dev(**{"keepalived.authPassword": "n3w-pw", "haproxy.stats.password": STATS_PASSWORD}))
    same = deploy(dev(**{"keepalived.authPassword": VRRP_PASSWORD, "haproxy.stats.password": "other-stats-pw"}))
    for name in ("halb-vrrp-lb1-commit", "halb-vrrp-lb2-rejoin"):
        assert unwrap(rotated.resources[name].inputs["stdin"]) != unwrap(dev_run.resources[name].inputs["stdin"]), name
        assert unwrap(same.resources[name].inputs["stdin"]) == unwrap(dev_run.resources[name].inputs["stdin"]), name


def test_verify_runs_last_and_can_be_turned_off(dev_run: Run) -> None:
    verify = dev_run.resources["halb-verify"]
    assert dev_run.deps("halb-verify") >= {"halb-vrrp-lb1-rejoin", "halb-vrrp-lb2-rejoin"}
    assert "-m halb verify --spec" in verify.inputs["create"] and "--key-stdin" in verify.inputs["create"]
    assert SECRET_SIG in json.dumps(verify.inputs["stdin"]), "halb-verify: the inline key goes on stdin, secret"
    assert "halb-verify" not in deploy(dev(verify=False)).resources


def test_vms_are_replaced_one_at_a_time_backup_first(dev_run: Run) -> None:
    assert dev_run.deps("halb-vm-lb1") >= {"halb-vm-lb2", "halb-lb2-services"}, "lb1's VM waits for lb2 to serve"
    assert not any(d.startswith(("halb-vm-lb1", "halb-lb1")) for d in dev_run.deps("halb-vm-lb2"))
    for node in ("lb1", "lb2"):
        vm = dev_run.resources[f"halb-vm-{node}"]
        assert vm.inputs["cpuHotAddEnabled"] and vm.inputs["memoryHotAddEnabled"], f"halb-vm-{node}: hot add"
        assert set(vm.options["ignoreChanges"]) >= {"clone", "guestId"}, (
            f"halb-vm-{node}: a new template never replaces"
        )


def test_maintenance_is_a_one_line_change_of_one_step(dev_run: Run) -> None:
    import difflib

    raw = dev(**{"keepalived.authPassword": VRRP_PASSWORD, "haproxy.stats.password": STATS_PASSWORD})
    resting = deploy(set_in(raw, "nodes[0].maintenance", True))
    changed = sorted(
        n
        for n, r in dev_run.of_type(REMOTE).items()
        if n.startswith(("halb-lb1-", "halb-lb2-")) and r.inputs["create"] != resting.resources[n].inputs["create"]
    )
    assert changed == ["halb-lb1-keepalived"], changed
    before = dev_run.resources["halb-lb1-keepalived"].inputs["create"].splitlines()
    after = resting.resources["halb-lb1-keepalived"].inputs["create"].splitlines()
    diff = [
        d
        for d in difflib.unified_diff(before, after, lineterm="", n=0)
        if d[:1] in "+-" and d[:3] not in ("+++", "---")
    ]
    assert diff == ["-    priority 250", "+    priority 1"], (
        f"halb-lb1-keepalived: the diff is the changed line: {diff}"
    )


def test_no_input_depends_on_the_machine_or_checkout_that_runs_pulumi_up(dev_run: Run) -> None:
    """Two operators previewing the same stack from different checkouts see no diff."""
    machine = [str(ROOT), sys.executable, str(Path(sys.executable).resolve())]
    for name, res in dev_run.resources.items():
        text = json.dumps(res.inputs)
        found = [m for m in machine if m in text]
        assert not found, f"{name}: an input holds {found}"
