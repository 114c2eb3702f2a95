"""The VIP and both node addresses as resources in state (shown in every preview)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

import pulumi
from pulumi_command import local


@dataclass(frozen=True)
class Reservation:
    key: str  # "vip" (the primary VIP), "vip-<name>" (another of `halb:vips`) or a node name
    address: IPv4Address | IPv6Address
    preflight: bool  # refuse the address if it already answers


@dataclass(frozen=True)
class AddressReservationsArgs:
    reservations: list[Reservation]


def preflight_script(address: IPv4Address | IPv6Address) -> str:
    a = shlex.quote(str(address))
    return (
        f"if ping -c 2 -W 1 {a} >/dev/null 2>&1; then\n"
        f"    echo 'halb: {address} already answers on the network; refusing to use it' >&2\n"
        "    exit 1\n"
        "fi\n"
        f"echo {a}\n"
    )


class AddressReservations(pulumi.ComponentResource):
    """One record per address; changing an address replaces it and what depends on it."""

    def __init__(self, name: str, args: AddressReservationsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("halb:network:AddressReservations", name, None, opts)
        self.records: dict[str, local.Command] = {}
        for r in args.reservations:
            self.records[r.key] = local.Command(
                f"{name}-{r.key}",
                create=preflight_script(r.address) if r.preflight else f"echo {r.address}",
                # Only a new address runs the preflight (a trigger); any other change of these
                # inputs must not re-run it against the address now in use.
                update=f"echo {r.address}",
                triggers=[str(r.address)],
                add_previous_output_in_env=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.ids = {key: rec.id for key, rec in self.records.items()}
        self.register_outputs({"addresses": {r.key: str(r.address) for r in args.reservations}})
