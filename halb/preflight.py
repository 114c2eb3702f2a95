"""`halb check --probe`: the deploy's VRID pre-flight, run from here on every node at once.

Each node listens on its interface for VRRP adverts that use one of the stack's VRIDs but come from
a router that is not a node of the stack (vrrp_adverts.py, as halb renders it for the node, on
stdin to the node's python3). The deploy's `vrid` step runs the same program before a node first
runs a VRID."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from halb.config import HalbConfig
from halb.render import PATHS, node_files
from halb.status.remote import Reach, SshTarget, ssh_run

PROBE_SECONDS = 3.0  # when keepalived.vridProbeSeconds is 0 (no pre-flight on deploys), --probe still listens


def vrid_collisions(cfg: HalbConfig, strict_host_keys: bool = True) -> list[str]:
    """One line per collision or per node that could not listen; empty when the LAN is clear."""
    plan = cfg.plan
    target = SshTarget(cfg.ssh.user, cfg.ssh.port, cfg.ssh.private_key_path)
    seconds = cfg.keepalived.vrid_probe_seconds or PROBE_SECONDS
    command = f"{'' if cfg.ssh.user == 'root' else 'sudo -n '}python3 - {seconds:g}"

    def listen(index: int) -> list[str]:
        node = cfg.nodes[index]
        program = next(f.content for f in node_files(cfg, node.name) if f.path == PATHS["vrrp_adverts"])
        address = str(plan.address(node.name))
        reach = Reach(target, address, node.host_key, strict_host_keys)
        code, _, err = ssh_run(reach, command, stdin=program, timeout=seconds + 20)
        where = f"nodes[{index}] ({node.name}, {address})"
        if code == 0:
            return []
        found = [line.removeprefix("halb: ") for line in err.splitlines() if line.startswith("halb: VRID")]
        if code == 1 and found:
            return [f"{where}: {line}" for line in found]
        reason = (err.strip().splitlines() or [f"exit {code}"])[-1]
        return [f"{where}: could not listen for VRRP adverts ({reason}); it needs python3 and root (or sudo -n)"]

    with ThreadPoolExecutor(len(cfg.nodes)) as pool:
        return [line for lines in pool.map(listen, range(len(cfg.nodes))) for line in lines]
