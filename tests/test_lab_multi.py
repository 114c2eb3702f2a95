"""Stack lab-multi through the real engine: two IPv4 VIPs, active/active (198.18.0.10 preferred
by lb1, 198.18.0.9 by lb2), each VIP watched under the client load. Root only."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from halb.lab.engine.stack import Result, deploy, destroy
from halb.lab.infra import nodes
from halb.lab.scenarios.drills import quiet
from halb.lab.scenarios.probes import client_get, holders, node, wait_until
from halb.lab.scenarios.watch import Watch

pytestmark = pytest.mark.lab
STACK = "lab-multi"
PUBLIC, INTERNAL = "198.18.0.10", "198.18.0.9"  # preferred by lb1, by lb2


@pytest.fixture(scope="module")
def deployed(lab_up: None) -> Iterator[Result]:
    result = deploy(stack=STACK, progress=quiet)
    yield result
    destroy(stack=STACK, progress=quiet)


def settled() -> bool:
    return holders(PUBLIC) == ["lb1"] and holders(INTERNAL) == ["lb2"]


def test_each_vip_is_held_by_its_preferred_node_and_serves(deployed: Result) -> None:
    assert wait_until(settled, 30, 0.1) is not None, (holders(PUBLIC), holders(INTERNAL))
    for vip in (PUBLIC, INTERNAL):
        code, body = client_get(f"http://{vip}/")
        assert code == 200 and body.strip().startswith("w"), (vip, code, body)


def test_haproxy_killed_on_lb1_moves_its_vip_to_lb2_and_lb2s_own_vip_never_blinks(deployed: Result) -> None:
    assert wait_until(settled, 30, 0.1) is not None
    with Watch(vip=INTERNAL) as untouched, Watch(vip=PUBLIC) as moved:
        start = time.monotonic()
        nodes.ssh(node("lb1"), "systemctl kill --signal=SIGKILL haproxy", timeout=10)
        took = wait_until(lambda: holders(PUBLIC) == ["lb2"], 5, 0.01)
        assert took is not None, f"{PUBLIC} never moved to lb2: {holders(PUBLIC)}"
        moved_s = time.monotonic() - start
        back = wait_until(settled, 30, 0.1)  # haproxy restarts (Restart=always): failback by preference
    assert back is not None, (holders(PUBLIC), holders(INTERNAL))
    assert moved_s < 1.0, f"{PUBLIC} reached lb2 after {moved_s:.2f} s"
    assert untouched.report is not None and moved.report is not None
    u, m = untouched.report, moved.report
    assert u.failed == 0 and u.holders_seen == ["lb2"] and not u.bad_samples, f"{INTERNAL}: {u.summary()}"
    # The VIP that moves may be between holders for one sample; never on both for more than one.
    assert m.outages and m.longest_outage <= 0.3, f"{PUBLIC}: {m.summary()}"
    assert len([h for _, h in m.bad_samples if len(h) > 1]) <= 1, f"{PUBLIC}: {m.summary()}"
    seen = [h for i, h in enumerate(m.holders_seen) if "+" not in h and (i == 0 or m.holders_seen[i - 1] != h)]
    assert seen == ["lb1", "lb2", "lb1"], m.summary()


def test_a_second_up_changes_nothing(deployed: Result) -> None:
    assert deploy(stack=STACK, progress=quiet).ran() == []
