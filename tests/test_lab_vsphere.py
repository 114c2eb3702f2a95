"""The vSphere path under the real engine and the real pulumi-vsphere provider, against the
lab's simulated vCenter (stack lab-vsphere). Every result is read back from the vCenter with
pyvmomi (halb_lab.infra.vcenter), not from halb's outputs; the Pulumi state is read only to
learn which VM ids the provider recorded.

Root only: the lab's nodes stand in for the VMs' guests. Runs after test_lab.py's module (it
brings up a lab of its own)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from halb_lab.automation.stack import DeployFailed, Result, deploy, destroy, engine, preview, stack_file_of
from halb_lab.infra import lab, vcenter
from halb_lab.infra.topology import SPARE_NODES, VIP
from halb_lab.scenarios import drills
from halb_lab.scenarios.drills import quiet
from halb_lab.scenarios.probes import client_get, holders, wait_until

pytestmark = pytest.mark.lab
STACK = drills.VSPHERE_STACK
OTHER = "lab-vsphere2"  # a second stack in the same vCenter: the spare pair lb3/lb4, VIP .40
OTHER_SETS = [
    f"nodes[0].address={SPARE_NODES[0].address}",
    f"nodes[1].address={SPARE_NODES[1].address}",
    "addresses.vip=198.18.0.40",
    "keepalived.vrid=40",
]
NODES = {"lb1": "198.18.0.11", "lb2": "198.18.0.12"}
RULE = f"{STACK}-halb-anti-affinity"
TEMPLATES = {"debian-12-template", "debian-12-template-v2", "debian-12-template-nonic"}


@pytest.fixture(scope="module")
def fresh_preview(lab_up: None) -> Result:
    return preview(stack=STACK, progress=quiet)


@pytest.fixture(scope="module")
def deployed(fresh_preview: Result) -> Result:
    result = deploy(stack=STACK, progress=quiet)
    assert wait_until(lambda: holders() == ["lb1"], 30, 0.2) is not None, f"lb1 never held the VIP alone: {holders()}"
    return result


def _bookkeeping(typ: str) -> bool:
    """The stack, halb's components and the provider: records in the state, nothing in the world."""
    return typ == "pulumi:pulumi:Stack" or typ.startswith(("halb:", "pulumi:providers:"))


def vm_state(name: str) -> dict[str, Any]:
    """A VM's outputs in the stack's state."""
    found: dict[str, Any] = next(r["outputs"] for r in engine(STACK).resources() if r["urn"].endswith(f"::{name}"))
    return found


# --------------------------------------------------------------------------- before any VM


def test_a_fresh_vsphere_stack_previews_every_resource_under_the_real_provider(fresh_preview: Result) -> None:
    ops = fresh_preview.ops()
    assert set(fresh_preview.changes) == {"create"} and fresh_preview.changes["create"] >= 33, fresh_preview.changes
    for name in ("halb-vm-lb1", "halb-vm-lb2", "halb-vm-anti-affinity", "halb-verify"):
        assert ops.get(name) == "create", f"{name}: {ops.get(name)}"
    assert vcenter.password() not in fresh_preview.diff, "the vCenter's password is in the preview"
    assert set(vcenter.inventory().vms) == TEMPLATES, "a preview created something in the vCenter"


BAD_INPUT = [
    ("datacenter", ["vsphere.datacenter=dc-nope"], [], "halb:vsphere.datacenter: got 'dc-nope'"),
    ("cluster", ["vsphere.cluster=cl-nope"], [], "halb:vsphere.cluster: got 'cl-nope'"),
    ("datastore", ["vsphere.datastore=ds-nope"], [], "halb:vsphere.datastore: got 'ds-nope'"),
    ("network", ["vsphere.network=net-nope"], [], "halb:vsphere.network: got 'net-nope'"),
    ("template", ["vsphere.template=tpl-nope"], [], "halb:vsphere.template: got 'tpl-nope'"),
    ("template without a NIC", ["vsphere.template=debian-12-template-nonic"], [], "a template with no network adapter"),
    ("wrong password", [], ["vsphere:password=Wr0ng-Pa55-zz"], "vsphere:password: the vCenter at '198.18.0.1' refused"),
    ("unreachable vCenter", ["vsphere:vsphereServer=198.18.0.2"], [], "vsphere:vsphereServer: got '198.18.0.2'"),
]


@pytest.mark.parametrize(("case", "sets", "secret_sets", "expected"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_vsphere_input_is_named_before_any_vm(
    fresh_preview: Result, case: str, sets: list[str], secret_sets: list[str], expected: str
) -> None:
    start = time.monotonic()
    with pytest.raises(DeployFailed) as failure:
        preview(sets=sets, secret_sets=secret_sets, stack=STACK, progress=quiet)
    took = time.monotonic() - start
    message = str(failure.value)
    assert expected in message, f"{case}: {message}"
    assert "Traceback" not in message, f"{case}: {message}"
    for secret in (vcenter.password(), "Wr0ng-Pa55-zz"):
        assert secret not in message, f"{case}: a password in the error"
    # The reachability probe gives up after 5 s (halb.vcenter.CONNECT_TIMEOUT_S); the engine adds its start-up.
    assert took < 20, f"{case}: the error took {took:.1f} s"
    assert set(vcenter.inventory().vms) == TEMPLATES, f"{case}: a VM was created"


def test_an_up_with_a_bad_name_stops_at_its_preview_and_creates_nothing(fresh_preview: Result) -> None:
    with pytest.raises(DeployFailed, match=r"halb:vsphere\.cluster: got 'cl-nope'"):
        deploy(sets=["vsphere.cluster=cl-nope"], stack=STACK, progress=quiet)
    made = [r["urn"].rsplit("::", 1)[-1] for r in engine(STACK).resources() if not _bookkeeping(r["type"])]
    assert made == [], f"a failed up created {made}"
    assert set(vcenter.inventory().vms) == TEMPLATES, "a failed up created a VM"


# --------------------------------------------------------------------------- a) create


def test_create_clones_two_vms_as_requested_and_the_rule_names_their_ids(deployed: Result) -> None:
    inventory = vcenter.inventory()
    vms = inventory.of_stack(STACK)
    assert set(vms) == {f"{STACK}-lb1", f"{STACK}-lb2"}, sorted(inventory.vms)
    ids = drills.vm_ids(STACK)
    for node, address in NODES.items():
        vm = vms[f"{STACK}-{node}"]
        assert vm.uuid == ids[f"halb-vm-{node}"], f"halb-vm-{node}: the state's id is not the vCenter's VM"
        assert (vm.power, vm.folder, vm.cpus, vm.memory_mb, vm.disks_gb, vm.nics) == (
            "poweredOn",
            "halb",
            2,
            2048,
            (10.0,),
            1,
        ), f"halb-vm-{node}: {vm}"
        assert (vm.hostname, vm.addresses, vm.gateways) == (node, (f"{address}/24",), ("198.18.0.1",)), (
            f"halb-vm-{node}: customization {vm}"
        )
        assert (vm.dns_servers, vm.dns_domain) == (("198.18.0.1",), "lab.internal"), f"halb-vm-{node}: DNS {vm}"
        assert vm_state(f"halb-vm-{node}")["ignoredGuestIps"] == [VIP], f"halb-vm-{node}: the VIP is not ignored"
    rule = inventory.rules[RULE]
    assert (rule.kind, rule.cluster, rule.enabled) == ("anti-affinity", "lab-cluster", True), rule
    assert rule.vm_uuids == frozenset(ids.values()), f"{RULE}: {rule.vm_uuids} vs the state's {ids}"
    assert client_get(f"http://{VIP}/")[0] == 200 and holders() == ["lb1"], "the pair serves the VIP"


def test_a_second_up_and_a_preview_change_nothing(deployed: Result) -> None:
    again = deploy(stack=STACK, progress=quiet)
    assert set(again.changes) == {"same"}, again.ran()
    assert set(preview(stack=STACK, progress=quiet).changes) == {"same"}


# --------------------------------------------------------------------------- c) template, d) resize


def test_a_new_template_previews_as_no_replace_and_changes_nothing_in_the_vcenter(deployed: Result) -> None:
    before = vcenter.inventory()
    sets = ["vsphere.template=debian-12-template-v2"]
    p = preview(sets=sets, stack=STACK, progress=quiet)
    assert set(p.changes) == {"same"}, f"a new template planned {p.changes}: {p.ran()}"
    up = deploy(sets=sets, stack=STACK, progress=quiet)
    assert up.ran() == [], up.ran()
    after = vcenter.inventory()
    assert after.of_stack(STACK) == before.of_stack(STACK) and after.rules == before.rules, "the vCenter changed"


def test_cpus_and_memory_grow_in_place_on_running_vms(deployed: Result) -> None:
    before = vcenter.inventory().of_stack(STACK)
    events = {name: vcenter.power_events(vm.moid) for name, vm in before.items()}
    grown = deploy(sets=["vsphere.cpus=4", "vsphere.memoryMb=4096"], stack=STACK, progress=quiet)
    try:
        assert sorted(grown.ran()) == [("halb-vm-lb1", "update"), ("halb-vm-lb2", "update")], grown.ran()
        after = vcenter.inventory().of_stack(STACK)
        for name, vm in after.items():
            assert (vm.moid, vm.uuid) == (before[name].moid, before[name].uuid), f"{name} is a new VM"
            assert (vm.cpus, vm.memory_mb, vm.power) == (4, 4096, "poweredOn"), f"{name}: {vm}"
            assert vcenter.power_events(vm.moid) == events[name], f"{name} was power-cycled"
    finally:
        deploy(stack=STACK, progress=quiet)  # back to the stack file's size (shrinking needs a power cycle)


# --------------------------------------------------------------------------- e) rolling replacement


def test_rolling_replacement_of_both_vms_under_the_client_load(deployed: Result) -> None:
    lb2, lb1 = drills.vm_replacement(STACK)
    for d in (lb2, lb1):
        # Never a sample without a holder. Where the VIP moves by preemption, the new holder adds it
        # and its advert makes the old one remove it milliseconds later; the 50 ms sampler, which
        # reads the nodes one after the other, can catch both once (as in the switchover drill).
        gaps = [t for t, h in d.report.bad_samples if not h]
        assert not gaps and len(d.report.bad_samples) <= 1, f"{d.name}: not exactly one holder: {d.report.summary()}"
        assert d.facts["vm_id_after"] != d.facts["vm_id_before"], f"{d.name}: the VM was not replaced"
    ops2 = dict(lb2.steps)
    assert ops2.get("halb-vm-lb2") == "replace" and ops2.get("halb-lb2-packages") == "replace", lb2.steps
    assert not any(n.startswith("halb-lb1-") or n == "halb-vm-lb1" for n in ops2), f"lb1 touched: {lb2.steps}"
    assert lb2.report.holders_seen == ["lb1"] and lb2.report.failed == 0, lb2.report.summary()
    assert lb1.report.moves == ["lb1", "lb2", "lb1"], lb1.report.summary()  # the overlap: bounded above
    assert lb1.report.failed <= 2, f"at most one reset connection per switchover: {lb1.report.summary()}"
    ids = drills.vm_ids(STACK)
    assert vcenter.inventory().rules[RULE].vm_uuids == frozenset(ids.values()), f"{RULE} kept the old ids"


# --------------------------------------------------------------------------- b) two stacks


def test_two_stacks_in_one_vcenter_share_no_name_and_destroying_one_leaves_the_other(deployed: Result) -> None:
    lab.boot_spares()
    try:
        before = vcenter.inventory()
        deploy(stack_file=stack_file_of(STACK), sets=OTHER_SETS, stack=OTHER, progress=quiet)
        both = vcenter.inventory()
        ours, theirs = both.of_stack(STACK), both.of_stack(OTHER)
        assert set(theirs) == {f"{OTHER}-lb1", f"{OTHER}-lb2"} and not set(ours) & set(theirs), sorted(both.vms)
        assert set(both.rules) == {RULE, f"{OTHER}-halb-anti-affinity"}, sorted(both.rules)
        assert both.rules[f"{OTHER}-halb-anti-affinity"].vm_uuids == frozenset(v.uuid for v in theirs.values())
        assert ours == before.of_stack(STACK) and both.rules[RULE] == before.rules[RULE], "the first stack changed"
        destroy(stack_file=stack_file_of(STACK), sets=OTHER_SETS, stack=OTHER, progress=quiet)
        after = vcenter.inventory()
        assert after.of_stack(OTHER) == {} and set(after.rules) == {RULE}, (sorted(after.vms), sorted(after.rules))
        assert after.of_stack(STACK) == before.of_stack(STACK), "destroying the other stack touched this one's VMs"
        assert holders() == ["lb1"] and client_get(f"http://{VIP}/")[0] == 200, "the first pair stopped serving"
    finally:
        lab.remove_spares()


# --------------------------------------------------------------------------- f) destroy


def test_destroy_leaves_no_halb_vm_or_rule_and_tears_down_both_nodes(deployed: Result) -> None:
    gone = destroy(stack=STACK, progress=quiet)
    assert set(gone.changes) == {"delete"} and engine(STACK).resources() == [], gone.changes
    inventory = vcenter.inventory()
    assert set(inventory.vms) == TEMPLATES and inventory.rules == {}, (sorted(inventory.vms), inventory.rules)
    for node in NODES:
        assert drills.left_by_halb(node) == [], f"{node}: left after destroy: {drills.left_by_halb(node)}"
