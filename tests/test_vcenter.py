"""halb.vcenter and the vCenter error messages of halb.components.vsphere (no vCenter needed)."""

from __future__ import annotations

import socket
import time

import pulumi
import pytest

from halb.components.vsphere import explain_lookup_error
from halb.vcenter import CONNECT_TIMEOUT_S, check_vcenter, split_server


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("vcenter.example.com", ("vcenter.example.com", 443)),
        ("198.18.0.1:8443", ("198.18.0.1", 8443)),
        ("[2001:2::1]:443", ("2001:2::1", 443)),
        ("2001:2::1", ("2001:2::1", 443)),
    ],
)
def test_split_server(server: str, expected: tuple[str, int]) -> None:
    assert split_server(server) == expected


def test_a_vcenter_that_refuses_the_connection_is_named_at_once_without_the_password() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(pulumi.RunError) as err:
        check_vcenter(f"127.0.0.1:{port}", "admin@vsphere.local", "s3cret-Pa55", False)
    text = str(err.value)
    assert text.startswith(f"vsphere:vsphereServer: got '127.0.0.1:{port}', which this machine cannot reach"), text
    assert "Connection refused" in text and "s3cret" not in text, text
    assert time.monotonic() - start < CONNECT_TIMEOUT_S, "a refused connection is not waited for"


def test_lookup_errors_name_the_connection_key_or_the_placement_key() -> None:
    login = explain_lookup_error(
        "datacenter",
        "dc1",
        "a datacenter",
        "ServerFaultCode: Cannot complete login due to an incorrect user name or password.",
    )
    assert login.key == "vsphere:password", login
    unreachable = explain_lookup_error(
        "datacenter", "dc1", "a datacenter", "Post https://x/sdk: dial tcp: connect: no route to host"
    )
    assert unreachable.key == "vsphere:vsphereServer", unreachable
    missing = explain_lookup_error(
        "cluster", "c9", "a compute cluster", "invoke failed:\n1 error occurred:\n\t* cluster 'c9' not found\n"
    )
    assert (
        str(missing)
        == "halb:vsphere.cluster: got 'c9'; expected a compute cluster that exists in the vCenter (it said: cluster 'c9' not found)"
    ), missing
