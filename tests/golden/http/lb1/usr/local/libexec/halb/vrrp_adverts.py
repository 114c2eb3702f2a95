#!/usr/bin/python3
# Managed by halb: changes made here are overwritten by the next `pulumi up`.
# vrrp_adverts: the VRRP adverts on this node's LAN that use one of the stack's VRIDs but come from a
# router that is not a node of the stack (a VRID collision). A packet socket with a BPF filter taps
# the interface before the host firewall, so adverts the firewall drops are seen too.
#   python3 vrrp_adverts.py SECONDS   listen SECONDS (1 s after the first collision at most); exit 1
#                                     naming each collision (the deploy's VRID pre-flight and
#                                     `halb check --probe` run it)
# halb-vrrp-guard imports it and lists what it hears in the collision report for `halb status`.
"""The VRRP adverts on the LAN that collide with the stack's VRIDs."""

import ctypes
import os
import select
import socket
import struct
import sys
import time

INTERFACE = "ens192"
AFTER_COLLISION = 1.0  # the listener stops this long after the first collision (adverts are 1 s apart by default)
COLLISIONS = "/run/halb/vrrp-foreign"  # halb-vrrp-guard's report: one line per foreign router
# Every VRRP instance of the stack: family vrid config-key vip
VRIDS = """
4 66 keepalived.vrid 192.168.4.60
"""
FORGET = 10.0  # a foreign router not heard for this long leaves the report
# The stack's nodes: their adverts are never a collision.
NODES = """
192.168.4.61
192.168.4.62
"""
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SOL_PACKET, PACKET_ADD_MEMBERSHIP, PACKET_MR_MULTICAST, PACKET_OUTGOING = 263, 1, 0, 4
VRRP_GROUPS = (bytes.fromhex("01005e000012"), bytes.fromhex("333300000012"))  # 224.0.0.18, ff02::12
# A classic BPF program: IPv4 or IPv6 frames whose protocol is VRRP (112); the rest never reaches us.
VRRP_FILTER = [
    (0x28, 0, 0, 12),  # ldh [12]: the ethertype
    (0x15, 0, 2, 0x0800),  # IPv4?
    (0x30, 0, 0, 23),  # ldb [23]: its protocol
    (0x15, 3, 4, 112),
    (0x15, 0, 3, 0x86DD),  # IPv6?
    (0x30, 0, 0, 20),  # ldb [20]: its next header
    (0x15, 0, 1, 112),
    (0x06, 0, 0, 0x40000),  # accept
    (0x06, 0, 0, 0),  # drop
]


RTM_NEWADDR, RTM_GETADDR, NLMSG_ERROR, NLMSG_DONE = 20, 22, 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFA_ADDRESS, IFA_LOCAL = 1, 2


def addresses(interface=INTERFACE):
    """The addresses on `interface` now, from a netlink dump (no process started). Not a test
    bind: with keepalived.handoff every VIP is local on every node (a route on lo), held or not."""
    index = socket.if_nametoindex(interface)
    out = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as s:  # NETLINK_ROUTE
        # nlmsghdr (length, type, flags, seq, pid), then ifaddrmsg (family AF_UNSPEC: both)
        s.sendto(struct.pack("=IHHIIBBBBI", 24, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0, 0, 0, 0, 0, 0), (0, 0))
        while True:
            data, offset = s.recv(65536), 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind in (NLMSG_DONE, NLMSG_ERROR) or length < 16:
                    return out
                family, _, _, _, ifindex = struct.unpack_from("=BBBBI", data, offset + 16)
                if kind == RTM_NEWADDR and ifindex == index:
                    pos = offset + 24
                    while pos + 4 <= offset + length:
                        size, attr = struct.unpack_from("=HH", data, pos)
                        if size < 4:
                            break
                        if attr in (IFA_ADDRESS, IFA_LOCAL):
                            out.add(socket.inet_ntop(family, data[pos + 4:pos + size]))
                        pos += (size + 3) & ~3
                offset += (length + 3) & ~3


def stack_vrids():
    """{(family, vrid): (config key, {vip, ...})} for every instance of the stack."""
    out = {}
    for line in VRIDS.split("\n"):
        if line.strip():
            family, vrid, key, vip = line.split()
            entry = out.setdefault((int(family), int(vrid)), (key, set()))
            entry[1].add(vip)
    return out


def vrrp_tap(interface):
    """A packet socket that sees every VRRP advert on `interface`, before the host firewall."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    program = b"".join(struct.pack("HBBI", *op) for op in VRRP_FILTER)
    buf = ctypes.create_string_buffer(program)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(VRRP_FILTER), ctypes.addressof(buf)))
    sock.bind((interface, ETH_P_ALL))
    index = socket.if_nametoindex(interface)
    for group in VRRP_GROUPS:  # a real NIC filters multicast it was not asked for
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", index, PACKET_MR_MULTICAST, 6, group))
    return sock


def advert(frame):
    """(family, vrid, source, version, priority, {address, ...}) of a VRRP advert in an Ethernet
    frame, or None."""
    if len(frame) < 14 + 20:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == 0x0800 and frame[23] == 112:
        family, af, size = 4, socket.AF_INET, 4
        source = socket.inet_ntop(af, frame[26:30])
        vrrp = frame[14 + (frame[14] & 0x0F) * 4 :]
    elif ethertype == 0x86DD and len(frame) >= 14 + 40 and frame[20] == 112:
        family, af, size = 6, socket.AF_INET6, 16
        source = socket.inet_ntop(af, frame[22:38])
        vrrp = frame[54:]
    else:
        return None
    if len(vrrp) < 8 or vrrp[0] & 0x0F != 1 or vrrp[0] >> 4 not in (2, 3):
        return None
    count = min(vrrp[3], (len(vrrp) - 8) // size)
    addresses = {socket.inet_ntop(af, vrrp[8 + k * size : 8 + (k + 1) * size]) for k in range(count)}
    return family, vrrp[1], source, vrrp[0] >> 4, vrrp[2], addresses


def collision(found, vrids, nodes):
    """Whether an advert (from `advert`) is another router using one of the stack's VRIDs: it
    comes from none of the stack's nodes. An IPv6 advert comes from a link-local address, so one
    that carries only the stack's own VIPs for its VRID counts as the peer's."""
    family, vrid, source, _, _, addresses = found
    ours = vrids.get((family, vrid))
    if ours is None or source in nodes:
        return False
    return not (family == 6 and addresses and addresses <= ours[1])


def describe(found, vrids):
    family, vrid, source, version, priority, addresses = found
    key = vrids[(family, vrid)][0]
    return "VRID %d (%s, IPv%d) is in use: %s sends VRRPv%d adverts for it (priority %d, for %s)" % (
        vrid, key, family, source, version, priority, ", ".join(sorted(addresses)) or "no address")


def heard(sock):
    """Every VRRP advert that arrived on the tap since the last call (not the ones this node sent)."""
    out = []
    while select.select([sock], [], [], 0)[0]:
        frame, where = sock.recvfrom(2048)
        found = advert(frame) if where[2] != PACKET_OUTGOING else None
        if found is not None:
            out.append(found)
    return out


def listen(seconds):
    """Listen `seconds` for other routers using the stack's VRIDs; print each one and return 1 if any."""
    vrids, nodes = stack_vrids(), set(NODES.split())
    sock = vrrp_tap(INTERFACE)
    start = time.monotonic()
    end = start + seconds
    seen, found = set(), {}
    while time.monotonic() < end:
        select.select([sock], [], [], max(0.0, end - time.monotonic()))
        for f in heard(sock):
            seen.add((f[0], f[1]))
            if collision(f, vrids, nodes):
                if not found:  # one more advert cycle for the other routers, then refuse
                    end = min(end, time.monotonic() + AFTER_COLLISION)
                found.setdefault((f[0], f[1], f[2]), (f, time.monotonic() - start))
    wanted = ", ".join(str(vrid) for _, vrid in sorted(vrids))
    if not found:
        print("halb: no other VRRP router on %s uses VRID %s (listened %.1f s)" % (INTERFACE, wanted, seconds))
        return 0
    free = [n for n in range(1, 256) if all((fam, n) not in seen and (fam, n) not in vrids for fam in (4, 6))]
    for f, after in sorted(found.values()):
        near = sorted(free, key=lambda n: abs(n - f[1]))
        print("halb: %s on %s (heard %.1f s into listening). Two routers with one VRID on a LAN break each other's "
              "failover: set %s to a VRID no other router uses (%s)" % (describe(f, vrids), INTERFACE, after, vrids[(f[0], f[1])][0],
              "e.g. %d: no advert for it was heard" % near[0] if near else "none was free"), file=sys.stderr)
    return 1


class Watcher:
    """halb-vrrp-guard's part: the collision report, kept current on every tick."""

    def __init__(self):
        self.vrids, self.nodes = stack_vrids(), set(NODES.split())
        self.sock = vrrp_tap(INTERFACE)
        self.foreign = {}  # (family, vrid, source) -> (last heard, description)
        self.report = None

    def update(self, now):
        for f in heard(self.sock):
            if collision(f, self.vrids, self.nodes):
                if f[:3] not in self.foreign:
                    print("halb: %s, not a node of this stack" % describe(f, self.vrids), flush=True)
                self.foreign[f[:3]] = (now, describe(f, self.vrids))
        self.foreign = {k: v for k, v in self.foreign.items() if now - v[0] < FORGET}
        text = "".join(v[1] + "\n" for _, v in sorted(self.foreign.items()))
        if text != self.report:
            write(COLLISIONS, text)
            self.report = text


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(listen(float(sys.argv[1])))
