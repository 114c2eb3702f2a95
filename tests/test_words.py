"""halb.config.words, the typed boundary: every string and address field of the model, set to
hostile content behind the model's back (no validation), either stops rendering with UnsafeValue
or renders files whose every line has exactly the tokens it has with a harmless value. So no
value becomes a directive, whatever the model lets through."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any, get_args

import pytest
from pydantic import BaseModel, IPvAnyAddress, IPvAnyNetwork
from test_tls import CA

from conftest import boundary_off, variants
from halb.config import HalbConfig, load_config
from halb.config.paths import set_in
from halb.config.words import UnsafeValue, address, haproxy_word, keepalived_word, shell_word
from halb.render import all_files

HOSTILE = "a b#c\"d'e$f\\g{h}i!j\n  k;`l`%m"
SAFE = "zqxj"


def rich() -> HalbConfig:
    """The dual-stack golden stack with a TLS service that has SNI, groups and routes: a config in
    which every section of the model is present."""
    raw = variants()["dualstack"]
    other = CA.issue(["other.lab.internal"])
    good = CA.issue(["lab.internal", "api.lab.internal"])
    web = {
        "name": "web",
        "port": 9443,
        "mode": "http",
        "check": "http",
        "checkPath": "/up",
        "tls": {"certificate": good.chain, "key": good.key, "sni": [{"certificate": other.chain, "key": other.key}]},
        "servers": [{"name": "app1", "address": "192.168.4.70", "port": 8000}],
        "groups": [{"name": "api", "servers": [{"name": "a1", "address": "192.168.4.72"}]}],
        "routes": [{"host": "api.lab.internal", "pathPrefix": "/v1/", "group": "api"}],
    }
    raw = set_in(raw, "haproxy.services", [*raw["haproxy"]["services"], web])
    raw = set_in(raw, "haproxy.stats.allowFrom", ["192.168.4.0/24", "2001:db8:4::/64"])
    raw = set_in(raw, "nodes[1].interface", "ens224")
    return load_config(raw)


def _leaves(annotation: Any) -> set[Any]:
    args = get_args(annotation)
    return {leaf for a in args for leaf in _leaves(a)} if args else {annotation}


def fields(model: BaseModel, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], str]]:
    """(path, kind) of every str and IPv6-capable address field under `model`, into lists too."""
    out: list[tuple[tuple[Any, ...], str]] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, list):
            for i, item in enumerate(value):
                out += _kind(item, (*path, name, i), set())
        else:
            out += _kind(value, (*path, name), _leaves(field.annotation))
    return out


def _kind(value: Any, path: tuple[Any, ...], leaves: set[Any]) -> list[tuple[tuple[Any, ...], str]]:
    """A field's kind from its annotation (`leaves`), or a list item's from its value (no leaves);
    Literal fields are choices, not text."""
    if isinstance(value, BaseModel):
        return fields(value, path)
    if str in leaves or (not leaves and isinstance(value, str)):
        return [(path, "text")]
    if leaves & {IPv6Network, IPvAnyNetwork} or (not leaves and isinstance(value, IPv6Network | IPv4Network)):
        return [(path, "network")]
    if leaves & {IPv6Address, IPvAnyAddress} or (not leaves and isinstance(value, IPv6Address)):
        return [(path, "address")]
    return []


def replaced(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    """`node` with the value at `path` replaced, without validation."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, list):
        return [replaced(v, rest, value) if i == head else v for i, v in enumerate(node)]
    return node.model_copy(update={head: replaced(getattr(node, head), rest, value)})


def tokens(cfg: HalbConfig) -> dict[str, list[int]]:
    """Each rendered file's (and the firewall rules') number of tokens per line."""
    out = {}
    for node in cfg.nodes:
        for f in all_files(cfg, node.name):
            out[f"{node.name}:{f.path}"] = [len(line.split()) for line in f.content.split("\n")]
    rules = [rule for node in cfg.nodes for rule in cfg.plan.firewall[node.name]]
    out["firewall"] = [len(rule.split()) for rule in rules]
    return out


BASE = rich()
FIELDS = fields(BASE)


def _values(kind: str) -> tuple[Any, Any]:
    """(harmless, hostile) values of a kind."""
    if kind == "address":
        return ip_address("2001:db8:4::99"), IPv6Address("2001:db8:4::99%lo]:80 disabled #")
    if kind == "network":
        return ip_network("2001:db8:5::/64"), IPv6Network('2001:db8:5::%x" accept rule/64')
    return SAFE, HOSTILE


def test_the_walk_reaches_every_part_of_the_model() -> None:
    paths = {".".join(map(str, p)) for p, _ in FIELDS}
    for expected in (
        "haproxy.services.0.name",
        "haproxy.services.3.routes.0.host",
        "haproxy.services.3.groups.0.name",
        "vips.0.name",
        "keepalived.syncGroups.0.name",
        "nodes.0.name",
        "nodes.1.interface",
        "haproxy.services.0.servers.0.address",
        "haproxy.stats.allowFrom.1",
        "network.subnet6",
    ):
        assert expected.replace("syncGroups", "sync_groups").replace("allowFrom", "allow_from") in paths, paths
    assert len(FIELDS) > 40, len(FIELDS)


@pytest.mark.parametrize(("path", "kind"), FIELDS, ids=[".".join(map(str, p)) for p, _ in FIELDS])
def test_a_hostile_field_never_gains_a_token(path: tuple[Any, ...], kind: str) -> None:
    harmless, hostile = _values(kind)
    try:
        baseline = tokens(replaced(BASE, path, harmless))
    except (UnsafeValue, StopIteration, KeyError, ValueError) as e:
        pytest.fail(f"{path}: the harmless value does not render: {e}")
    try:
        attacked = tokens(replaced(BASE, path, hostile))
    except UnsafeValue:
        return  # refused at the boundary
    for name, counts in baseline.items():
        assert attacked.get(name) == counts, f"{'.'.join(map(str, path))}: {name} gained a token or a line"


def test_the_negative_control_a_template_without_the_boundary_gains_tokens() -> None:
    """Proof that the test above can fail: rendering with the boundary turned off (an identity
    `finalize`) lets the hostile service name add tokens."""
    path = ("haproxy", "services", 0, "name")
    with boundary_off():
        baseline = tokens(replaced(BASE, path, SAFE))
        attacked = tokens(replaced(BASE, path, HOSTILE))
    assert any(attacked[k] != v for k, v in baseline.items())


@pytest.mark.parametrize(
    ("word", "good", "bad"),
    [
        (
            haproxy_word,
            ["/v1/", "api.lab.internal", "5s", "web_api"],
            ["a b", "a#b", "'", '"', "a\\b", "${X}", "{", ""],
        ),
        (keepalived_word, ["lb1", "halb_public", "pw%&'()*", "@x"], ["a b", "a#b", "a!b", '"', "{", "}", "$x", "a\\"]),
    ],
)
def test_words(word: Any, good: list[str], bad: list[str]) -> None:
    for text in good:
        assert word(text) == text
    for text in bad:
        with pytest.raises(UnsafeValue) as err:
            word(text)
        assert text not in str(err.value) or len(text) < 2, "the message never holds the value"


def test_shell_words_and_addresses() -> None:
    assert shell_word("a b'c") == "'a b'\"'\"'c'" and shell_word(5) == "5"
    with pytest.raises(UnsafeValue):
        shell_word("a\0b")
    assert address(ip_network("2001:db8::/64")) == "2001:db8::/64"
    for zoned in (IPv6Address("fe80::1%eth0"), IPv6Network("fe80::%x/64")):
        with pytest.raises(UnsafeValue):
            address(zoned)
