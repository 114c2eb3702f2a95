"""BGP mode on vSphere under the real engine and the real pulumi-vsphere provider, against the
lab's simulated vCenter: lab-bgp's three nodes as three cloned VMs under one anti-affinity rule
(lb1-lb3 stand in for their guests), and a rolling replacement of one VM under the client load.
What the vCenter holds is read back from it with pyvmomi (halb_lab.infra.vcenter). Root only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from halb_lab.automation.stack import deploy, destroy
from halb_lab.infra import image, lab, nodes, router, vcenter
from halb_lab.scenarios import bgp
from halb_lab.scenarios.drills import quiet, vm_ids
from halb_lab.scenarios.probes import wait_until
from halb_lab.scenarios.watch import Watch

pytestmark = pytest.mark.lab
STACK = bgp.VSPHERE_STACK
RULE = f"{STACK}-halb-anti-affinity"
IN_FLIGHT = 2  # as in test_lab_bgp: a change of the router's next hops can reset a request in flight


@pytest.fixture(scope="module")
def stack_file(lab_up: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    lab.prepare("lab-bgp")
    path = bgp.vsphere_stack_file(tmp_path_factory.mktemp("bgp-vsphere"))
    deploy(stack_file=path, stack=STACK, progress=quiet)
    yield path
    destroy(stack=STACK, stack_file=path, progress=quiet)


def test_three_vms_share_one_anti_affinity_rule_and_each_announces_the_vips(stack_file: Path) -> None:
    inventory = vcenter.inventory()
    names = {f"{STACK}-{n.name}" for n in bgp.BGP_NODES}
    assert set(inventory.of_stack(STACK)) == names, sorted(inventory.vms)
    ids = vm_ids(STACK)
    assert len(ids) == 3, ids
    rule = inventory.rules[RULE]
    assert (rule.kind, rule.enabled) == ("anti-affinity", True), f"{RULE}: {rule}"
    assert rule.vm_uuids == frozenset(ids.values()), f"{RULE}: {rule.vm_uuids} vs the state's {ids}"
    hops = bgp.serving(timeout=60)
    assert hops == sorted(n.address for n in bgp.BGP_NODES), f"router: next hops for {bgp.VIP}: {hops}"


def test_a_vm_replaced_after_a_drain_costs_no_outage_and_touches_no_other_node(stack_file: Path) -> None:
    """The runbook: drain lb2 (`maintenance`), replace its VM (`--replace`), return it. lb1 and
    lb3 serve throughout; only lb2's resources (and the rule, which names the new VM) change."""
    lb2 = bgp.BGP_NODES[1]
    before = vm_ids(STACK)
    drained = ["nodes[1].maintenance=true"]
    bgp.serving()
    with Watch(vip=bgp.VIP, client=router.BGP_CLIENT.netns) as w:
        deploy(stack_file=stack_file, sets=drained, stack=STACK, progress=quiet)
        gone = wait_until(lambda: lb2.address not in router.next_hops(bgp.VIP), 15, 0.05)
        nodes.rebuild(lb2, image.image_dir())  # the new clone's guest starts blank
        router.route_clients(lb2)
        replaced = deploy(stack_file=stack_file, sets=drained, replace=["halb-vm-lb2"], stack=STACK, progress=quiet)
        deploy(stack_file=stack_file, stack=STACK, progress=quiet)
        bgp.serving(timeout=60)
    report = w.seen
    assert gone is not None, f"lb2 stayed in the router's next hops after its drain: {router.next_hops(bgp.VIP)}"
    touched = dict(replaced.ran())
    assert touched.get("halb-vm-lb2") == "replace", replaced.ran()
    others = [n for n in touched if n.startswith(("halb-lb1-", "halb-lb3-")) or n in ("halb-vm-lb1", "halb-vm-lb3")]
    assert not others, f"the replacement of lb2 touched {others}: {replaced.ran()}"
    after = vm_ids(STACK)
    assert after["halb-vm-lb2"] != before["halb-vm-lb2"], "halb-vm-lb2: the VM was not replaced"
    assert {k: v for k, v in after.items() if k != "halb-vm-lb2"} == {
        k: v for k, v in before.items() if k != "halb-vm-lb2"
    }, f"other VMs changed: {before} -> {after}"
    assert vcenter.inventory().rules[RULE].vm_uuids == frozenset(after.values()), f"{RULE} kept the old id"
    assert report.failed <= IN_FLIGHT and report.longest_outage < 0.1, report.summary()
