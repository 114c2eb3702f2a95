"""vSphere placement of the two VMs (when `platform: vsphere`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pydantic import Field

from halb.config.base import Model, patterned
from halb.config.errors import Problems


class AntiAffinity(Model):
    enabled: bool = Field(True, description="Keep the two VMs on different ESXi hosts (DRS rule).")
    mandatory: bool = Field(False, description="Make the rule a hard requirement.")


class VSphere(Model):
    datacenter: str = Field(description="Datacenter name.", examples=["dc1"], min_length=1)
    cluster: str = Field(
        description="Compute cluster name (its resource pool is used).", examples=["cluster1"], min_length=1
    )
    datastore: str = Field(description="Datastore for the VM disks.", examples=["vsanDatastore"], min_length=1)
    network: str = Field(description="Port group the VMs attach to.", examples=["VM Network"], min_length=1)
    template: str = Field(description="VM template to clone.", examples=["debian-12-template"], min_length=1)
    folder: str | None = Field(None, description="VM folder path.", examples=["lb"])
    name_prefix: str | None = patterned(
        r"^[a-z0-9][a-z0-9-]{0,40}$",
        "1-41 lowercase letters, digits and '-'",
        "prod",
        default=None,
        description="Prefix of the VM names (`<prefix>-lb1`) and of the DRS rule; the stack name when unset, "
        "so two stacks in one vCenter never share a name.",
    )
    cpus: int = Field(2, ge=1, le=64, description="vCPUs per VM.")
    memory_mb: int = Field(2048, ge=512, le=262144, description="Memory per VM in MiB.")
    disk_gb: int | None = Field(None, ge=1, description="Disk size in GB; the template's size when unset.")
    tags: list[str] = Field(default_factory=list, description="vSphere tag ids attached to both VMs.")
    anti_affinity: AntiAffinity = Field(default_factory=AntiAffinity, description="DRS anti-affinity rule.")


def platform_problems(platform: str, vsphere: VSphere | None, vsphere_given: bool) -> Problems:
    """`vsphere_given`: the key is present (it may have failed its own field checks)."""
    out = Problems()
    if platform == "vsphere" and vsphere is None and not vsphere_given:
        out.add(
            "vsphere",
            "nothing",
            "VM placement when `platform: vsphere`, e.g. "
            "`{datacenter: dc1, cluster: cluster1, datastore: ds1, network: VM Network, template: debian-12}`",
        )
    return out


PROVIDER_KEYS = {  # key: (the provider's environment variable, how to set the key)
    "vsphereServer": ("VSPHERE_SERVER", "`pulumi config set vsphere:vsphereServer vcenter.example.com`"),
    "user": ("VSPHERE_USER", "`pulumi config set vsphere:user administrator@vsphere.local`"),
    "password": ("VSPHERE_PASSWORD", "`pulumi config set --secret vsphere:password` (prompts for it)"),
}


def provider_problems(platform: Any, values: dict[str, Any], is_secret: Callable[[str], bool]) -> Problems:
    """The pulumi-vsphere provider's own keys (`vsphere:*`), needed when `platform: vsphere`;
    `vsphere:password` must be a Pulumi secret. Values are never shown."""
    out = Problems()
    if platform != "vsphere":
        return out
    for key, (env, how) in PROVIDER_KEYS.items():
        if values.get(key) in (None, "") and not os.environ.get(env):
            out.add(f"vsphere:{key}", "nothing", f"the vCenter's {key} when `platform: vsphere`: {how}, or ${env}")
    if values.get("password") not in (None, "") and not is_secret("password"):
        out.add(
            "vsphere:password",
            "a plain-text value (it would be stored unencrypted, e.g. in git)",
            "a secret: `pulumi config rm vsphere:password && pulumi config set --secret vsphere:password`",
        )
    return out
