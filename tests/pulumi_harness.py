"""The program under Pulumi's mocks, as Pulumi's unit-testing guide runs it, with vSphere's data
sources answered.

The program is built afresh for each call (`preview=False`, so outputs are known and `apply`
bodies run). A recording monitor keeps each resource's type, inputs, parent, dependencies and
options, and each component's registered outputs.
"""

from __future__ import annotations

import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pmocks

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


PROJECT_DIR = Path(__file__).resolve().parents[1]
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a secret value
EXPORTS = (
    "vip",
    "nodes",
    "stats_urls",
    "metrics_urls",
    "prometheus_targets",
    "frontends",
    "host_keys",
    "stats_user",
    "stats_password",
    "vrrp_password",
)


def mock_host_key(step: str) -> str:
    """The host key the mocked `wait` step of resource `step` reports: one per node."""
    return f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{step.replace('-', '')}{'A' * 20}"


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    parent: str = ""
    dependencies: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    id: str = ""


class Recorder(pulumi.runtime.Mocks):
    """Answers every resource with its inputs as outputs; `invokes` answers data sources."""

    def __init__(self, invokes: dict[str, dict[str, Any]] | None = None) -> None:
        self.resources: dict[str, Registered] = {}
        self.invokes: list[str] = []
        self.answers = invokes or {}
        self.urn_names: dict[str, str] = {}
        self.component_outputs: dict[str, Any] = {}
        self.vcenter_checks: list[tuple[str, str]] = []  # (server, user) halb.vcenter would have checked

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            length = int(args.inputs["length"])
            outputs["result"] = f"GENERATED-{args.name}"[:length].ljust(length, "x")
        if args.typ.startswith("command:"):
            outputs.update(stdout="", stderr="")
        if args.typ == "command:remote:Command" and args.name.endswith("-wait"):  # what wait.sh prints
            outputs["stdout"] = f"halb: boot finished (running)\nhalb: host key {mock_host_key(args.name)}\n"
        rid = f"{args.name}-id"
        if args.typ == "vsphere:index/virtualMachine:VirtualMachine":
            rid = f"4221{abs(hash(args.name)) % 10**8:08d}-vm"
        self.record(args, outputs, rid)
        return rid, outputs

    def record(self, args: pulumi.runtime.MockResourceArgs, outputs: dict[str, Any], rid: str) -> None:
        rec = self.resources.setdefault(args.name, Registered(args.typ, args.name, {}))
        rec.inputs, rec.outputs, rec.id = args.inputs, outputs, rid

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:  # a dict of outputs, as the runtime accepts
        self.invokes.append(args.token)
        return self.answers.get(args.token, {})


class RecordingMonitor(pmocks.MockMonitor):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__(recorder)
        self.recorder = recorder

    def RegisterResource(self, request: Any) -> Any:
        rec = self.recorder.resources.setdefault(request.name, Registered(request.type, request.name, {}))
        rec.type = request.type
        rec.parent = request.parent
        rec.dependencies = list(request.dependencies)
        rec.options = {
            "replaceOnChanges": list(request.replaceOnChanges),
            "deleteBeforeReplace": request.deleteBeforeReplace,
            "ignoreChanges": list(request.ignoreChanges),
            "additionalSecretOutputs": list(request.additionalSecretOutputs),
            "provider": request.provider,
        }
        response = super().RegisterResource(request)
        self.recorder.urn_names[response.urn] = request.name
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        self.recorder.component_outputs[request.urn] = json_format.MessageToDict(request.outputs)
        return super().RegisterResourceOutputs(request)


@dataclass
class Run:
    recorder: Recorder
    exports: dict[str, Any]

    @property
    def resources(self) -> dict[str, Registered]:
        return self.recorder.resources

    def of_type(self, typ: str) -> dict[str, Registered]:
        return {n: r for n, r in self.resources.items() if r.type == typ}

    def name(self, urn: str) -> str:
        return self.recorder.urn_names.get(urn, urn)

    def deps(self, name: str) -> set[str]:
        return {self.name(u) for u in self.resources[name].dependencies}


def stack_config(raw: dict[str, Any], extra: dict[str, str] | None = None) -> dict[str, str]:
    """Pulumi's view of a stack's config: `halb:key` -> JSON text (plain strings as they are)."""
    out = {f"halb:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    out.update(extra or {})
    return out


def run_main(
    config: dict[str, str], secret_keys: list[str] | None = None, stack: str = "dev", recorder: Recorder | None = None
) -> Run:
    """Run the program once under mocks with `config` (Pulumi's flat `ns:key` -> text form)."""
    recorder = recorder or Recorder(INVOKES)
    # Under mocks there is no vCenter to log in to: the check records what it would have checked.
    import halb.components.vsphere

    def check_vcenter(server: str, user: str, password: str, allow_unverified_ssl: bool) -> None:
        recorder.vcenter_checks.append((server, user))

    halb.components.vsphere.check_vcenter = check_vcenter
    pulumi.runtime.reset_options(project="halb", stack=stack, preview=False)
    pulumi.runtime.set_mocks(recorder, project="halb", stack=stack, preview=False, monitor=RecordingMonitor(recorder))
    pulumi.runtime.set_all_config(config, secret_keys or [])
    exports: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        namespace = runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__main__")
        lb = namespace["lb"]
        outs = {name: getattr(lb, name if name != "nodes" else "node_info") for name in EXPORTS}
        return pulumi.Output.all(**outs).apply(exports.update)

    program()
    return Run(recorder, exports)
