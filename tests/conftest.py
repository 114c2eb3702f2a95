"""Shared helpers. With CI=true a missing prerequisite fails instead of skipping."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from halb.config import strip_prefix
from halb.config.paths import delete_in, set_in

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true")
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


def tool(name: str) -> str | None:
    """A binary's path: PATH first, then the sbin directories a user's PATH may lack."""
    return shutil.which(name, path=SBIN_PATH)


def require(condition: bool, what: str) -> None:
    """Skip locally when a prerequisite is missing; fail in CI, where it must be there."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing in CI: {what}")
    pytest.skip(f"prerequisite missing: {what}")


def require_root_tools(*tools: str) -> None:
    require(os.geteuid() == 0, "root")
    for name in tools:
        require(tool(name) is not None, f"the `{name}` binary")


@pytest.fixture(scope="module")
def lab_up() -> Iterator[None]:
    """A fresh lab for a module of lab tests (its nodes, its simulated vCenter, no stack), taken
    down after it, also when a test fails."""
    from halb_lab.infra import lab

    require_root_tools(*lab.TOOLS)
    lab.down()  # whatever an earlier run left; `down` removes the lab stacks' state too
    try:
        lab.up()
        yield
    finally:
        lab.down()


def stack_deployed(stack: str) -> Any:
    """A module fixture: `stack` deployed through the real engine on a fresh lab, destroyed after."""

    @pytest.fixture(scope="module")
    def deployed(lab_up: None) -> Iterator[Any]:
        from halb_lab.automation.stack import deploy, destroy
        from halb_lab.infra import lab
        from halb_lab.scenarios.drills import quiet

        lab.prepare(stack)
        result = deploy(stack=stack, progress=quiet)
        yield result
        destroy(stack=stack, progress=quiet)

    return deployed


def stack_raw(stack: str) -> dict[str, Any]:
    """The halb:* keys of Pulumi.<stack>.yaml, prefix stripped."""
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return strip_prefix(doc["config"])


def variants() -> dict[str, dict[str, Any]]:
    """The configurations whose rendered files are proven by the daemons and kept as golden files."""
    dev = stack_raw("dev")
    http = set_in(
        dev,
        "haproxy.services",
        dev["haproxy"]["services"]
        + [
            {
                "name": "web",
                "port": 8081,
                "mode": "http",
                "check": "http",
                "checkPath": "/healthz",
                "balance": "leastconn",
                "servers": [
                    {"name": "app1", "address": "192.168.4.70", "port": 8000},
                    {"name": "app2", "address": "192.168.4.71", "port": 8000},
                ],
            }
        ],
    )
    nopreempt = set_in(dev, "keepalived.nopreempt", True)
    vrrp3 = set_in(set_in(dev, "keepalived.version", 3), "keepalived.advertInt", 0.5)
    pool = set_in(dev, "addresses", {"pool": {"first": "192.168.4.60", "last": "192.168.4.69"}})
    pool["nodes"] = [{"name": "lb1", "role": "master"}, {"name": "lb2", "role": "backup"}]
    pool = set_in(pool, "keepalived", {"healthCheck": {"interval": 2, "fall": 3}, "unicast": False})
    servers = dev["haproxy"]["services"][0]["servers"]
    day_two = set_in(
        set_in(nopreempt, "nodes[0].maintenance", True),
        "haproxy.services[0].servers",
        [
            {**servers[0], "weight": 5},
            {**servers[1], "state": "drain"},
            {**servers[2], "state": "disabled"},
            {**servers[3], "backup": True},
        ],
    )
    # Several VIPs, active/active and dual stack: two IPv4 VIPs preferring different nodes, an IPv6
    # one moving with the first (a sync group), a service on one VIP only with an IPv6 backend.
    dual = delete_in(delete_in(vrrp3, "addresses"), "keepalived.vrid")
    dual = set_in(dual, "network.subnet6", "2001:db8:4::/64")
    dual = set_in(set_in(dual, "nodes[0].address6", "2001:db8:4::61"), "nodes[1].address6", "2001:db8:4::62")
    dual = set_in(
        dual,
        "vips",
        [
            {"name": "public", "address": "192.168.4.60"},
            {"name": "internal", "address": "192.168.4.59", "preferred": "lb2"},
            {"name": "public6", "address": "2001:db8:4::60"},
        ],
    )
    dual = set_in(dual, "keepalived.syncGroups", [{"name": "web", "vips": ["public", "public6"]}])
    dual = set_in(
        dual,
        "haproxy.services",
        [
            *dev["haproxy"]["services"],
            {
                "name": "api",
                "port": 8443,
                "vips": ["internal"],
                "servers": [{"name": "api1", "address": "2001:db8:4::70"}, {"name": "api2", "address": "192.168.4.71"}],
            },
        ],
    )
    return {
        "dev": dev,
        "http": http,
        "nopreempt": nopreempt,
        "vrrp3": vrrp3,
        "pool": pool,
        "daytwo": day_two,
        "dualstack": dual,
    }


@contextlib.contextmanager
def boundary_off() -> Iterator[None]:
    """Rendering with the typed boundary turned off (an identity `finalize`): the negative control
    of the tests that prove the boundary."""
    import halb.render as render

    saved = dict(render._ENVS)
    try:
        for env in render._ENVS.values():
            env.finalize, env.cache = None, None  # templates compile the finalize in: no cached ones
        yield
    finally:
        for word in saved:
            render._ENVS[word] = render._environment(word)


def load_script(cfg: Any, path: str, node: str = "lb1") -> dict[str, Any]:
    """A rendered python3 script of a stack (vrrp-resign, vrrp-guard, halb-metrics), loaded as a
    module (not run), with the vrrp_adverts module it imports from beside itself, as rendered."""
    import posixpath
    import sys
    import types

    from halb.render import PATHS, all_files

    files = {f.path: f.content for f in all_files(cfg, node)}
    text = files[path]
    assert text.startswith("#!/usr/bin/python3\n"), f"{path}: a python3 script"
    namespace: dict[str, Any] = {"__name__": posixpath.basename(path), "__file__": path}
    adverts = types.ModuleType("vrrp_adverts")
    if PATHS["vrrp_adverts"] in files:  # BGP mode has no VRRP
        exec(compile(files[PATHS["vrrp_adverts"]], PATHS["vrrp_adverts"], "exec"), adverts.__dict__)
    saved = sys.modules.get("vrrp_adverts")
    sys.modules["vrrp_adverts"] = adverts
    try:
        exec(compile(text, path, "exec"), namespace)
    finally:
        if saved is None:
            del sys.modules["vrrp_adverts"]
        else:
            sys.modules["vrrp_adverts"] = saved
    return namespace
