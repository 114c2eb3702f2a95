"""VRRP: router id, version, timing, priorities, authentication and the haproxy probe."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any, Literal

from pydantic import Field, model_validator

from halb.config.base import NAME_HINT, NAME_RE, Model, SecretValue, patterned
from halb.config.errors import Problems, show
from halb.config.secrets import VRRP_PASSWORD
from halb.config.words import KeepalivedWord


class HealthCheck(Model):
    """How halb-haproxy-watch.service judges haproxy (GET /healthz on the node, as keepalived sees it)."""

    interval: float = Field(0.1, ge=0.05, le=10, description="Seconds between probes.")
    timeout: float = Field(0.2, ge=0.05, le=10, description="Seconds before a probe counts as failed.")
    fall: int = Field(2, ge=1, le=10, description="Failed probes in a row before the node gives up the VIP.")
    rise: float = Field(
        5, ge=0, le=600, description="Seconds of good probes before the node may hold the VIP again (no flapping)."
    )


class SyncGroup(Model):
    """VIPs that always move together (keepalived's `vrrp_sync_group`), e.g. a service's v4 and v6 VIPs."""

    name: KeepalivedWord = patterned(NAME_RE, NAME_HINT, "web", description="The group's name.")
    vips: list[str] = Field(
        max_length=255, description="Two or more `halb:vips` names.", examples=[["public", "public6"]]
    )


# What a profile sets when the stack does not set the key itself.
PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    # Link loss under a second: VRRPv3 adverts every 0.25 s make the master-down interval 0.77 s.
    "fast": {"version": 3, "advertInt": 0.25},
}


class Keepalived(Model):
    profile: Literal["default", "fast"] = Field(
        "default",
        description="`fast`: VRRPv3 with 0.25 s adverts, so link loss costs under a second (no VRRP "
        "authentication, 4 adverts a second, and a freeze of the MASTER longer than 0.77 s, e.g. a "
        "vMotion stun, moves the VIP); `default`: VRRPv2, 1 s adverts. Keys set here win over the profile.",
    )
    vrid: int | None = Field(
        None,
        description="VRRP virtual router id (1-255), unique per L2 segment. Defaults to the VIP's last octet.",
        examples=[66],
    )
    version: Literal[2, 3] = Field(
        2, description="VRRP version: 2 (with PASS auth) or 3 (sub-second adverts, no auth)."
    )
    advert_int: float = Field(
        1.0, description="Seconds between adverts; whole seconds with VRRPv2, 0.01 steps with v3.", examples=[1]
    )
    master_priority: int = Field(
        250, description="Priority of the master node (1-254). High priorities shorten the backup's skew time."
    )
    backup_priority: int = Field(240, description="Priority of the backup node (1-254), below the master's.")
    unicast: bool = Field(True, description="Send adverts by unicast to the peer instead of multicast.")
    nopreempt: bool = Field(False, description="Do not take the VIP back when the master recovers (both start BACKUP).")
    handoff: bool = Field(
        True,
        description="Connections survive a move of the VIP: the new holder passes the packets of a "
        "connection it does not know to its peer, which still serves it (halb-handoff.service). Services "
        "bound to the wildcard address (no `vips` list) only.",
    )
    auth_password: SecretValue | None = Field(
        None,
        description=f"VRRPv2 PASS password (secret): {VRRP_PASSWORD.describe()}. Generated and kept in "
        "state when unset. It only stops a misconfigured neighbour: it travels in clear text in every advert.",
    )
    health_check: HealthCheck = Field(default_factory=HealthCheck, description="haproxy liveness probe tuning.")
    garp_master_refresh: int = Field(
        60,
        ge=0,
        le=86400,
        description="Seconds between gratuitous ARP refreshes from the master (0: off; at most a day).",
    )
    sync_groups: list[SyncGroup] = Field(
        default_factory=list,
        max_length=64,
        description="VIPs that move together: when one of a group's instances fails over, all of them do.",
    )
    startup_delay: int = Field(
        2, ge=0, le=60, description="Seconds keepalived waits at start before VRRP runs (0: none)."
    )
    vrid_probe_seconds: float = Field(
        3.0,
        ge=0,
        le=30,
        description="Before a node first runs a VRID (and in `halb check --probe`), listen this long on its "
        "interface for VRRP adverts (v2 and v3) from other routers that use it; refuse the deploy when one "
        "does, 1 s after its first advert (0: do not listen). 3 s hears a router with 1 s adverts at least twice.",
    )

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("profile") in PROFILES:
            return {**PROFILES[data["profile"]], **data}
        return data


def keepalived_problems(k: Keepalived, vip: IPv4Address | None) -> Problems:
    """Cross-field checks of the VRRP settings; `vip` (when known) gives the default router id."""
    out = Problems()
    if k.vrid is not None and not 1 <= k.vrid <= 255:
        out.add("keepalived.vrid", show(k.vrid), "an integer from 1 to 255, e.g. `vrid: 66`")
    if k.vrid is None and vip is not None and not 1 <= int(vip) & 0xFF <= 254:
        out.add(
            "keepalived.vrid",
            f"nothing (VIP {vip} ends in {int(vip) & 0xFF})",
            "an explicit `vrid` (1-255) because the VIP's last octet cannot be used, e.g. `vrid: 66`",
        )
    if k.profile == "fast" and k.version != 3:
        out.add(
            "keepalived.version",
            show(k.version),
            "3 with `profile: fast` (sub-second adverts need VRRPv3), or no `version`",
        )
    out += _priority_problems(k)
    out += _advert_problems(k)
    out += _password_problems(k)
    return out


def _priority_problems(k: Keepalived) -> Problems:
    out = Problems()
    for key, prio in (
        ("keepalived.masterPriority", k.master_priority),
        ("keepalived.backupPriority", k.backup_priority),
    ):
        if not 1 <= prio <= 254:
            out.add(key, show(prio), "a priority from 1 to 254 (255 is reserved for the address owner), e.g. `250`")
    if k.master_priority <= k.backup_priority:
        out.add(
            "keepalived.masterPriority",
            f"{k.master_priority} (backupPriority {k.backup_priority})",
            "a master priority above the backup's, e.g. `masterPriority: 250, backupPriority: 240`",
        )
    return out


def _advert_problems(k: Keepalived) -> Problems:
    out = Problems()
    a = k.advert_int
    if not a > 0:
        out.add("keepalived.advertInt", show(a), "a positive number of seconds, e.g. `advertInt: 1`")
    elif k.version == 2 and (a != int(a) or a > 255):
        out.add(
            "keepalived.advertInt",
            show(a),
            "whole seconds from 1 to 255 with VRRPv2 (use `version: 3` for sub-second adverts), e.g. `advertInt: 1`",
        )
    elif k.version == 3 and (abs(round(a * 100) - a * 100) > 1e-6 or not 0.01 <= a <= 40.95):
        out.add("keepalived.advertInt", show(a), "0.01 to 40.95 s in 0.01 s steps with VRRPv3, e.g. `advertInt: 0.5`")
    return out


def _password_problems(k: Keepalived) -> Problems:
    out = Problems()
    if k.auth_password is None:
        return out
    if k.version == 3:
        out.add(
            "keepalived.authPassword",
            "<secret>",
            "no password with VRRPv3 (it has no authentication); remove it or use `version: 2`",
        )
    return out  # its characters and length: halb.config.secrets
