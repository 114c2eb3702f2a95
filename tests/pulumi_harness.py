"""The program under Pulumi's mocks (halb.lab.program), with vSphere's data sources answered."""

from __future__ import annotations

from typing import Any

from halb.lab.program import SECRET_SIG, Recorder, Registered, Run, stack_config
from halb.lab.program import run_main as _run_main

__all__ = ["INVOKES", "SECRET_SIG", "Recorder", "Registered", "Run", "run_main", "stack_config"]

# Realistic answers for the vSphere data sources (camelCase keys, as the engine returns them).
INVOKES: dict[str, dict[str, Any]] = {
    "vsphere:index/getDatacenter:getDatacenter": {"id": "datacenter-3", "name": "dc1"},
    "vsphere:index/getComputeCluster:getComputeCluster": {"id": "domain-c8", "resourcePoolId": "resgroup-9"},
    "vsphere:index/getDatastore:getDatastore": {"id": "datastore-11"},
    "vsphere:index/getNetwork:getNetwork": {"id": "network-13", "type": "Network"},
    "vsphere:index/getVirtualMachine:getVirtualMachine": {
        "id": "42216e55-7cf6-9d4b-1e3c-2d56e2c4f9a1",
        "guestId": "debian12_64Guest",
        "scsiType": "pvscsi",
        "firmware": "efi",
        "networkInterfaceTypes": ["vmxnet3"],
        "disks": [
            {"label": "Hard disk 1", "size": 16, "thinProvisioned": True, "eagerlyScrub": False, "unitNumber": 0},
            {"label": "Hard disk 2", "size": 8, "thinProvisioned": True, "eagerlyScrub": False, "unitNumber": 1},
        ],
    },
}


def run_main(
    config: dict[str, str], secret_keys: list[str] | None = None, stack: str = "dev", recorder: Recorder | None = None
) -> Run:
    return _run_main(config, secret_keys, stack, recorder or Recorder(INVOKES))
