"""The lab's nodes: each boots in cgroups of its own, found from the host's mounts."""

from __future__ import annotations

from pathlib import Path

from halb_lab.infra.nodes import cgroup_hierarchies

HYBRID = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/freezer cgroup rw,relatime,freezer 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""


def test_hybrid_hierarchy_gives_the_name_systemd_and_unified_mounts() -> None:
    assert cgroup_hierarchies(HYBRID) == [Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified")]


def test_unified_only_hierarchy_gives_its_one_mount() -> None:
    mounts = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"
    assert cgroup_hierarchies(mounts) == [Path("/sys/fs/cgroup")]


def test_controller_hierarchies_are_not_taken_for_systemd_ones() -> None:
    mounts = "cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0\ncgroup /x cgroup rw,name=other 0 0\n"
    assert cgroup_hierarchies(mounts) == []
