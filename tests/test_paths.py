"""halb.config.paths: `pulumi config set --path` paths, parsed, set, read and deleted."""

from __future__ import annotations

import pytest

from halb.config.paths import delete_path, get_path, parse_path, set_in, set_path


def test_a_path_is_parsed_as_pulumi_does() -> None:
    assert parse_path("haproxy.services[0].servers[2].state") == ["haproxy", "services", 0, "servers", 2, "state"]
    for bad in ("nodes..0", ".a", "a.", "nodes[x]", "nodes.[0]", ""):
        with pytest.raises(ValueError, match="cannot read the path"):
            parse_path(bad)


def test_set_get_and_delete_a_stack_key_without_touching_the_original() -> None:
    config = {"halb:nodes": [{"name": "lb1"}]}
    changed = set_path(config, "nodes[1].name", "lb2")
    assert get_path(changed, "nodes[1].name") == "lb2" and config == {"halb:nodes": [{"name": "lb1"}]}
    assert get_path(set_path(changed, "password", "x", "vsphere"), "password", "vsphere") == "x"
    assert delete_path(changed, "nodes[1].name") == {"halb:nodes": [{"name": "lb1"}, {}]}
    with pytest.raises(KeyError):
        get_path(config, "keepalived.vrid")


def test_maps_and_lists_on_the_way_are_created() -> None:
    assert set_in({}, "a.b[1].c", 3) == {"a": {"b": [None, {"c": 3}]}}
