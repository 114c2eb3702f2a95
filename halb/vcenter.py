"""Before any vSphere resource: can this machine reach the vCenter and log in to it?

The pulumi-vsphere provider would answer the same questions later, naming only its own resource
(`halb-vm-provider: ... Login failure`), and a vCenter address that drops packets would hang it
until the operating system gives up on the connection (minutes). This check answers within
`CONNECT_TIMEOUT_S` per attempt and names the `vsphere:*` key to fix. The password is never shown.
"""

from __future__ import annotations

import socket
import ssl
import time

import pulumi

CONNECT_TIMEOUT_S = 5.0


def split_server(server: str) -> tuple[str, int]:
    """`vcenter.example.com` -> (host, 443); `198.18.0.1:8443` -> (host, 8443); `[2001:2::1]:443`."""
    host, sep, port = server.rpartition(":")
    bare_ipv6 = ":" in host and not host.endswith("]")
    if sep and port.isdigit() and not bare_ipv6:
        return host.strip("[]"), int(port)
    return server.strip("[]"), 443


def check_vcenter(server: str, user: str, password: str, allow_unverified_ssl: bool) -> None:
    """Raises pulumi.RunError naming vsphere:vsphereServer, vsphere:user or vsphere:password."""
    from pyVim.connect import Disconnect, SmartConnect  # pyvmomi: only vSphere stacks need it
    from pyVmomi import vim

    host, port = split_server(server)
    start = time.monotonic()
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        reason = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise pulumi.RunError(
            f"vsphere:vsphereServer: got {server!r}, which this machine cannot reach "
            f"({reason} after {time.monotonic() - start:.1f} s, port {port}); "
            "expected the vCenter's address, e.g. `pulumi config set vsphere:vsphereServer vcenter.example.com`"
        ) from None
    context = ssl._create_unverified_context() if allow_unverified_ssl else ssl.create_default_context()
    try:
        si = SmartConnect(
            host=host, port=port, user=user, pwd=password, sslContext=context, httpConnectionTimeout=CONNECT_TIMEOUT_S
        )
    except vim.fault.InvalidLogin:
        raise pulumi.RunError(
            f"vsphere:password: the vCenter at {server!r} refused the login of vsphere:user {user!r}; "
            "expected that user's password: `pulumi config set --secret vsphere:password` (prompts for it)"
        ) from None
    except ssl.SSLCertVerificationError as e:
        raise pulumi.RunError(
            f"vsphere:vsphereServer: the certificate of {server!r} is not trusted here ({e.verify_message}); "
            "expected a vCenter certificate this machine trusts (or, for a lab, vsphere:allowUnverifiedSsl true)"
        ) from None
    except (OSError, vim.fault.VimFault) as e:
        raise pulumi.RunError(
            f"vsphere:vsphereServer: {server!r} did not answer as a vCenter ({type(e).__name__}); "
            "expected the vCenter's address"
        ) from None
    Disconnect(si)
