"""The config model: defaults, and every bad input rejected with key, value and expectation."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import ROOT, stack_raw
from halb.config import ConfigError, HalbConfig, load_config, load_stack_file
from halb.config.paths import delete_in, set_in

DEV = stack_raw("dev")


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(raw)
    return [str(p) for p in err.value.problems]


def test_dev_stack_is_valid_and_defaults_are_applied() -> None:
    cfg = load_config(DEV)
    assert cfg.platform == "vsphere"
    assert [(n.name, n.role, str(n.address)) for n in cfg.nodes] == [
        ("lb1", "master", "192.168.4.61"),
        ("lb2", "backup", "192.168.4.62"),
    ]
    assert cfg.plan.vips[0].vrid == 66
    assert cfg.keepalived.version == 2 and cfg.keepalived.unicast is True
    assert cfg.keepalived.master_priority > cfg.keepalived.backup_priority
    assert cfg.haproxy.stats.port == 8080 and cfg.haproxy.services[0].mode == "tcp"


def test_vrid_defaults_to_the_vips_last_octet() -> None:
    assert load_config(delete_in(DEV, "keepalived.vrid")).plan.vips[0].vrid == 60


BAD: list[tuple[str, dict[str, Any], str, str]] = [
    # (case, raw, key in the message, fragment of the expectation)
    ("malformed address", set_in(DEV, "addresses.vip", "192.168.4.300"), "halb:addresses.vip", "valid IPv4 address"),
    (
        "malformed server address",
        set_in(DEV, "haproxy.services[0].servers[0].address", "worker"),
        "halb:haproxy.services[0].servers[0].address",
        "a valid IPv4 or IPv6 address",
    ),
    ("subnet not a CIDR", set_in(DEV, "network.subnet", "192.168.4.0/33"), "halb:network.subnet", "IPv4 network"),
    ("subnet with host bits", set_in(DEV, "network.subnet", "192.168.4.7/24"), "halb:network.subnet", "IPv4 network"),
    (
        "gateway outside subnet",
        set_in(DEV, "network.gateway", "192.168.5.1"),
        "halb:network.gateway",
        "inside `network.subnet`",
    ),
    (
        "vip outside subnet",
        set_in(DEV, "addresses.vip", "192.168.5.60"),
        "halb:addresses.vip",
        "inside `network.subnet`",
    ),
    (
        "node outside subnet",
        set_in(DEV, "nodes[1].address", "192.168.5.62"),
        "halb:nodes[1].address",
        "inside `network.subnet`",
    ),
    (
        "vip equal to a node",
        set_in(DEV, "addresses.vip", "192.168.4.61"),
        "halb:nodes[0].address",
        "not already used by `addresses.vip`",
    ),
    ("vip equal to gateway", set_in(DEV, "addresses.vip", "192.168.4.1"), "halb:addresses.vip", "not the gateway"),
    (
        "vip equal to network",
        set_in(DEV, "addresses.vip", "192.168.4.0"),
        "halb:addresses.vip",
        "not the network address",
    ),
    (
        "vip equal to broadcast",
        set_in(DEV, "addresses.vip", "192.168.4.255"),
        "halb:addresses.vip",
        "not the broadcast address",
    ),
    (
        "duplicate node addresses",
        set_in(DEV, "nodes[1].address", "192.168.4.61"),
        "halb:nodes[1].address",
        "not already used by `nodes[0].address`",
    ),
    (
        "server equal to vip",
        set_in(DEV, "haproxy.services[1].servers[2].address", "192.168.4.60"),
        "halb:haproxy.services[1].servers[2].address",
        "other than `addresses.vip`",
    ),
    (
        "server equal to node",
        set_in(DEV, "haproxy.services[0].servers[0].address", "192.168.4.62"),
        "halb:haproxy.services[0].servers[0].address",
        "other than `nodes[1].address`",
    ),
    ("vrid 0", set_in(DEV, "keepalived.vrid", 0), "halb:keepalived.vrid", "from 1 to 255"),
    ("vrid 256", set_in(DEV, "keepalived.vrid", 256), "halb:keepalived.vrid", "from 1 to 255"),
    (
        "equal priorities",
        set_in(set_in(DEV, "keepalived.masterPriority", 100), "keepalived.backupPriority", 100),
        "halb:keepalived.masterPriority",
        "above the backup's",
    ),
    ("priority 255", set_in(DEV, "keepalived.masterPriority", 255), "halb:keepalived.masterPriority", "from 1 to 254"),
    ("priority 0", set_in(DEV, "keepalived.backupPriority", 0), "halb:keepalived.backupPriority", "from 1 to 254"),
    (
        "v2 password empty",
        set_in(DEV, "keepalived.authPassword", ""),
        "halb:keepalived.authPassword",
        "1-8 characters: ASCII letters",
    ),
    (
        "v2 password too long",
        set_in(DEV, "keepalived.authPassword", "ninechars"),
        "halb:keepalived.authPassword",
        "1-8 characters: ASCII letters",
    ),
    (
        "password with v3",
        set_in(set_in(DEV, "keepalived.version", 3), "keepalived.authPassword", "abc"),
        "halb:keepalived.authPassword",
        "no password with VRRPv3",
    ),
    (
        "fractional advert with v2",
        set_in(DEV, "keepalived.advertInt", 0.5),
        "halb:keepalived.advertInt",
        "whole seconds from 1 to 255 with VRRPv2",
    ),
    ("zero advert", set_in(DEV, "keepalived.advertInt", 0), "halb:keepalived.advertInt", "positive number"),
    ("negative advert", set_in(DEV, "keepalived.advertInt", -1), "halb:keepalived.advertInt", "positive number"),
    (
        "duplicate frontend ports",
        set_in(DEV, "haproxy.services[1].port", 80),
        "halb:haproxy.services[1].port",
        "not already used by `haproxy.services[0].port`",
    ),
    (
        "frontend port equal to stats port",
        set_in(DEV, "haproxy.services[0].port", 8080),
        "halb:haproxy.services[0].port",
        "not already used by `haproxy.stats.port`",
    ),
    (
        "port 0",
        set_in(DEV, "haproxy.services[0].port", 0),
        "halb:haproxy.services[0].port",
        "greater than or equal to 1",
    ),
    ("port 65536", set_in(DEV, "haproxy.stats.port", 65536), "halb:haproxy.stats.port", "less than or equal to 65535"),
    (
        "server port 70000",
        set_in(DEV, "haproxy.services[0].servers[0].port", 70000),
        "halb:haproxy.services[0].servers[0].port",
        "less than or equal to 65535",
    ),
    (
        "empty server list",
        set_in(DEV, "haproxy.services[0].servers", []),
        "halb:haproxy.services[0].servers",
        "at least one backend server",
    ),
    (
        "unknown balance",
        set_in(DEV, "haproxy.services[0].balance", "fastest"),
        "halb:haproxy.services[0].balance",
        "one of roundrobin",
    ),
    ("missing vsphere placement", delete_in(DEV, "vsphere"), "halb:vsphere", "VM placement when `platform: vsphere`"),
    ("vsphere key missing", delete_in(DEV, "vsphere.template"), "halb:vsphere.template", "required"),
    ("unknown top-level key", set_in(DEV, "keepalive", {"vrid": 3}), "halb:keepalive", "no such key"),
    ("unknown nested key", set_in(DEV, "haproxy.stats.passwd", "x"), "halb:haproxy.stats.passwd", "no such key"),
    (
        "unknown key in a list item",
        set_in(DEV, "nodes[0].adress", "192.168.4.61"),
        "halb:nodes[0].adress",
        "no such key",
    ),
    ("two masters", set_in(DEV, "nodes[1].role", "master"), "halb:nodes", "one `role: master` and one `role: backup`"),
    ("bad role", set_in(DEV, "nodes[1].role", "standby"), "halb:nodes[1].role", "'master' or 'backup'"),
    ("bad platform", set_in(DEV, "platform", "aws"), "halb:platform", "'vsphere' or 'hosts'"),
    (
        "hosts without addresses",
        set_in(delete_in(DEV, "nodes[1].address"), "platform", "hosts"),
        "halb:nodes",
        "`address` for every node",
    ),
    ("pool needed", delete_in(DEV, "nodes[1].address"), "halb:addresses.pool", "a pool to allocate lb2"),
    (
        "pool too small",
        set_in(delete_in(DEV, "addresses.vip"), "addresses.pool", {"first": "192.168.4.61", "last": "192.168.4.62"}),
        "halb:addresses.pool",
        "enough free addresses",
    ),
    (
        "no ssh credentials",
        set_in(DEV, "ssh.agent", False),
        "halb:ssh",
        "`privateKey` (secret), `privateKeyPath` or `agent: true`",
    ),
    (
        "bad interface name",
        set_in(DEV, "network.interface", "eth 0"),
        "halb:network.interface",
        "e.g. `interface: ens192`",
    ),
]


@pytest.mark.parametrize("raw,key,expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_rejected_naming_key_value_and_expectation(raw: dict[str, Any], key: str, expected: str) -> None:
    found = problems(raw)
    matching = [p for p in found if p.startswith(key + ":")]
    assert matching, f"no error names {key}; got {found}"
    assert any(expected in p for p in matching), f"{key}: expected text {expected!r} not in {matching}"
    assert all(": got " in p and "; expected " in p for p in found), f"message shape off: {found}"


def test_all_semantic_errors_are_reported_at_once() -> None:
    raw = set_in(
        set_in(set_in(DEV, "keepalived.vrid", 300), "haproxy.services[1].port", 80), "addresses.vip", "192.168.4.1"
    )
    keys = {p.split(":")[1] for p in problems(raw)}
    assert {"keepalived.vrid", "haproxy.services[1].port", "addresses.vip"} <= keys


def test_all_field_errors_are_reported_at_once() -> None:
    raw = set_in(set_in(set_in(DEV, "network.subnet", "nope"), "haproxy.stats.port", "x"), "bogus", 1)
    keys = {p.split(":")[1] for p in problems(raw)}
    assert {"network.subnet", "haproxy.stats.port", "bogus"} <= keys


def test_field_and_cross_field_errors_come_in_one_run() -> None:
    """A hostname as backend (field error), a VIP outside the subnet and two masters (cross-field)."""
    raw = set_in(
        set_in(set_in(DEV, "haproxy.services[0].servers[0].address", "worker1.example"), "addresses.vip", "10.9.9.9"),
        "nodes[1].role",
        "master",
    )
    keys = {p.split(":")[1] for p in problems(raw)}
    assert {"haproxy.services[0].servers[0].address", "addresses.vip", "nodes"} <= keys, keys


def test_a_pattern_error_gives_an_example_not_the_regex() -> None:
    found = problems(set_in(DEV, "nodes[0].name", "LB_1"))
    assert found == [
        "halb:nodes[0].name: got 'LB_1'; expected 2-32 lowercase letters, digits and '-', "
        "starting with a letter, e.g. `name: lb1`"
    ], found


def test_a_flat_key_says_to_use_path() -> None:
    raw = dict(DEV)
    raw["haproxy.stats.port"] = "9000"
    found = [p for p in problems(raw) if p.startswith("halb:haproxy.stats.port:")]
    assert found and "pulumi config set --path halb:haproxy.stats.port" in found[0], found
    assert "9000" not in found[0], found


def test_errors_show_a_valid_example() -> None:
    found = problems(set_in(DEV, "network.subnet", "nope"))
    assert any("e.g. `subnet: 192.168.4.0/24`" in p for p in found), found


def test_secret_values_never_appear_in_errors() -> None:
    raw = set_in(set_in(DEV, "keepalived.authPassword", "hunter2-is-long"), "haproxy.stats.password", 12345)
    text = "\n".join(problems(raw))
    assert "hunter2" not in text and "12345" not in text, text
    assert "<secret" in text


def test_encrypted_secret_from_a_stack_file_is_accepted_unread() -> None:
    cfg = load_config(set_in(DEV, "keepalived.authPassword", {"secure": "v1:abcd"}))
    assert cfg.keepalived.auth_password is not None and cfg.keepalived.auth_password.value is None
    assert "abcd" not in repr(cfg)


def test_every_key_is_documented() -> None:
    def walk(model: type[HalbConfig] | Any) -> None:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            for arg in getattr(field.annotation, "__args__", (field.annotation,)):
                inner = getattr(arg, "__args__", (arg,))
                for t in inner:
                    if isinstance(t, type) and hasattr(t, "model_fields"):
                        walk(t)

    walk(HalbConfig)


def test_the_fast_profile_sets_vrrp3_and_quarter_second_adverts_unless_the_stack_says_otherwise() -> None:
    fast = load_config(set_in(DEV, "keepalived.profile", "fast")).keepalived
    assert (fast.version, fast.advert_int) == (3, 0.25), fast
    own = load_config(set_in(set_in(DEV, "keepalived.profile", "fast"), "keepalived.advertInt", 0.5)).keepalived
    assert (own.version, own.advert_int) == (3, 0.5), "a key the stack sets wins over the profile"
    default = load_config(DEV).keepalived
    assert (default.profile, default.version, default.advert_int) == ("default", 2, 1.0), default
    found = problems(set_in(set_in(DEV, "keepalived.profile", "fast"), "keepalived.version", 2))
    assert any(p.startswith("halb:keepalived.version: got 2; expected 3 with `profile: fast`") for p in found), found


@pytest.mark.parametrize("stack", sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml")))
def test_every_stack_file_in_the_repository_is_a_valid_config(stack: str) -> None:
    """The dev example and every lab stack load as they are (their secrets stay encrypted)."""
    cfg = load_stack_file(str(ROOT / f"Pulumi.{stack}.yaml"))
    assert cfg.nodes, f"Pulumi.{stack}.yaml: no nodes"
