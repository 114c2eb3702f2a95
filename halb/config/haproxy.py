"""haproxy: services (frontends and their backends), stats, metrics, timeouts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Literal

from pydantic import Field

from halb.config.base import PATH_HINT, PATH_RE, Model, Port, SecretValue, patterned
from halb.config.errors import Problems, show
from halb.config.secrets import STATS_PASSWORD
from halb.config.tls import Checked, Tls, tls_problems, utcnow, wildcard_ok
from halb.config.words import AnyAddr, AnyNet, HaproxyWord

BALANCE = ("roundrobin", "static-rr", "leastconn", "first", "source")
TIMEOUT_RE = r"^[1-9][0-9]{0,8}(ms|s|m|h)?$"
TIMEOUT_HINT = "a whole number above 0 (ASCII digits) with an optional unit ms, s, m or h"
# Limits the daemons take (haproxy reads at most 64 words a line) with room to spare.
MAX_SERVICES = 64
MAX_SERVERS = 500  # per backend
MAX_GROUPS = 32
MAX_ROUTES = 100
MAX_ALLOW_FROM = 256  # split over `acl` lines of 40 networks


class Server(Model):
    name: HaproxyWord = patterned(
        r"^[A-Za-z0-9_.-]{1,64}$",
        "1-64 letters, digits, '_', '.' or '-'",
        "worker1",
        description="Server name in haproxy.",
    )
    address: AnyAddr = Field(description="Server address, IPv4 or IPv6 (no zone).", examples=["192.168.4.66"])
    port: Port | None = Field(None, description="Server port; the service's port when unset.")
    weight: int = Field(1, ge=0, le=256, description="Share of new connections (0-256); 0 takes none.")
    backup: bool = Field(False, description="Used only when every non-backup server of the service is down.")
    state: Literal["active", "drain", "disabled"] = Field(
        "active",
        description="`drain`: no new connections, established ones finish; `disabled`: out of service. "
        "Changes are applied through haproxy's runtime API, without a reload.",
    )

    @property
    def live_weight(self) -> int:
        """The weight haproxy runs the server with: a drained server takes no new connection."""
        return 0 if self.state == "drain" else self.weight


HOST_RE = r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
HOST_HINT = "a DNS name: dot-separated labels of letters, digits and '-'"
ROUTE_PATH_RE = r"^/[A-Za-z0-9._~%/=&+:@,-]{0,255}$"
ROUTE_PATH_HINT = "a URL path starting with '/', of letters, digits and any of . _ ~ % / = & + : @ , - (no query string: haproxy matches the path alone)"
GROUP_RE = r"^[a-z][a-z0-9_-]{0,31}$"
GROUP_HINT = "1-32 lowercase letters, digits, '_' or '-', starting with a letter"
SendProxy = Literal["v1", "v2"]


class ServerGroup(Model):
    """Servers a route sends to (its own backend, `<service>_<group>`)."""

    name: HaproxyWord = patterned(GROUP_RE, GROUP_HINT, "api", description="The group's name, as routes name it.")
    servers: list[Server] = Field(
        description=f"Its servers (at most {MAX_SERVERS}).",
        max_length=MAX_SERVERS,
        examples=[[{"name": "api1", "address": "192.168.4.70"}]],
    )
    send_proxy: SendProxy | None = Field(
        None, description="Pass the client's address to these servers with the PROXY protocol, `v1` or `v2`."
    )


class Route(Model):
    """`mode: http`: requests for a host and/or under a path go to a server group."""

    host: HaproxyWord | None = patterned(
        HOST_RE,
        HOST_HINT,
        "api.example.com",
        default=None,
        description="The Host the request names (any when unset); `*.example.com` matches every name that ends in "
        "`.example.com`.",
    )
    path_prefix: HaproxyWord | None = patterned(
        ROUTE_PATH_RE, ROUTE_PATH_HINT, "/v1/", default=None, description="A path prefix (any path when unset)."
    )
    group: HaproxyWord = patterned(GROUP_RE, GROUP_HINT, "api", description="The server group (`groups[].name`).")


class Service(Model):
    name: HaproxyWord = patterned(
        r"^[a-z][a-z0-9_-]{0,31}$",
        "1-32 lowercase letters, digits, '_' or '-', starting with a letter",
        "https",
        description="Service name (frontend/backend names).",
    )
    port: Port = Field(description="Port the service listens on, on every node address and the VIP.", examples=[443])
    vips: list[str] | None = Field(
        None,
        min_length=1,
        description="The `halb:vips` (by name) it serves; all of them when unset.",
        examples=[["public"]],
    )
    mode: Literal["tcp", "http"] = Field("tcp", description="`tcp` pass-through or `http` proxying.")
    balance: HaproxyWord = Field("roundrobin", description=f"Balance algorithm: one of {', '.join(BALANCE)}.")
    check: Literal["tcp", "tls", "http", "none"] = Field(
        "tcp", description="Server health check: TCP connect, TLS handshake, HTTP request, or none."
    )
    check_path: HaproxyWord = patterned(
        PATH_RE, PATH_HINT, "/healthz", default="/", description="Path for `check: http`."
    )
    servers: list[Server] = Field(
        default_factory=list,
        max_length=MAX_SERVERS,
        description=f"Backend servers (none with `redirectHttp`; at most {MAX_SERVERS}).",
        examples=[[{"name": "worker1", "address": "192.168.4.66"}]],
    )
    send_proxy: SendProxy | None = Field(
        None, description="Pass the client's address to `servers` with the PROXY protocol, `v1` or `v2`."
    )
    tls: Tls | None = Field(
        None, description="End TLS here with these certificates (see docs/guides/tls-and-routing.md)."
    )
    redirect_http: bool = Field(
        False, description="`mode: http`: answer every request with a redirect to https (no servers)."
    )
    groups: list[ServerGroup] = Field(
        default_factory=list,
        max_length=MAX_GROUPS,
        description=f"More server groups, for `routes` (at most {MAX_GROUPS}).",
    )
    routes: list[Route] = Field(
        default_factory=list,
        max_length=MAX_ROUTES,
        description="`mode: http`: host and/or path prefix -> server group, first match wins; the rest go to `servers` "
        f"(at most {MAX_ROUTES}).",
    )


class Stats(Model):
    port: Port = Field(8080, description="Port of the stats page, metrics and /healthz on each node.")
    user: HaproxyWord = patterned(
        r"^[A-Za-z0-9_.-]{1,32}$",
        "1-32 letters, digits, '_', '.' or '-'",
        "admin",
        default="admin",
        description="Stats page user.",
    )
    password: SecretValue | None = Field(
        None,
        description=f"Stats page password (secret): {STATS_PASSWORD.describe()}. Generated and kept in state "
        "when unset.",
    )
    uri: HaproxyWord = patterned(PATH_RE, PATH_HINT, "/stats", default="/stats", description="Path of the stats page.")
    allow_from: list[AnyNet] | None = Field(
        None,
        max_length=MAX_ALLOW_FROM,
        description="CIDRs (IPv4 or IPv6) that may reach the stats port (stats page, metrics, /healthz), in "
        "haproxy and in the host firewall; the node itself always may. Unset: `network.subnet`, and "
        "`network.subnet6` when set.",
        examples=[["192.168.4.0/24", "10.20.0.5/32"]],
    )


class Metrics(Model):
    enabled: bool = Field(True, description="Serve Prometheus metrics on the stats port.")
    auth: bool = Field(False, description="Require the stats user and password for the metrics too.")
    path: HaproxyWord = patterned(
        PATH_RE, PATH_HINT, "/metrics", default="/metrics", description="Path of the Prometheus metrics."
    )


def _timeout(default: str, what: str) -> Any:
    return patterned(TIMEOUT_RE, TIMEOUT_HINT, default, default=default, description=f"haproxy `timeout {what}`.")


class Timeouts(Model):
    connect: HaproxyWord = _timeout("5s", "connect")
    client: HaproxyWord = _timeout("1m", "client")
    server: HaproxyWord = _timeout("1m", "server")
    check: HaproxyWord = _timeout("500ms", "check")


class Haproxy(Model):
    services: list[Service] = Field(
        max_length=MAX_SERVICES,
        description=f"Frontends and their backends (at most {MAX_SERVICES}).",
        examples=[[{"name": "http", "port": 80, "servers": []}]],
    )
    stats: Stats = Field(default_factory=Stats, description="Password-protected stats page.")
    metrics: Metrics = Field(default_factory=Metrics, description="Prometheus exporter.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Proxy timeouts.")
    maxconn: int = Field(20000, ge=1, description="haproxy global `maxconn`.")
    log: Literal["errors", "all"] = Field(
        "errors",
        description="`errors`: log only connections that fail or end abnormally (`option dontlog-normal`); "
        "`all`: one syslog line per connection, which costs haproxy CPU on every request (see "
        "docs/benchmarks/throughput.md).",
    )


RESERVED_NAMES = ("stats",)  # halb's frontend; its userlist and files are halb_*
MAX_TIMEOUT_MS = 2**31 - 1
UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "": 1}


def timeout_ms(value: str) -> int:
    digits = value.rstrip("mshd")
    return int(digits) * UNITS_MS[value[len(digits) :]]


def unusable_backend(address: IPv4Address | IPv6Address) -> str:
    """Why an address cannot be a backend (empty when it can)."""
    for kind in ("loopback", "link_local", "unspecified", "multicast", "reserved"):
        if getattr(address, f"is_{kind}"):
            return f"{'an' if kind == 'unspecified' else 'a'} {kind.replace('_', '-')} address"
    return ""


HEALTHZ = "/healthz"  # keepalived's liveness probe asks the stats port for it (monitor-uri)
HALB_PATHS = "/halb/"  # halb's own routes on the stats port (e.g. /halb/backends), answered before the stats page


def backend_names(s: Service) -> list[str]:
    """The haproxy backends a service makes: its own, then `<service>_<group>` per group."""
    return ([] if s.redirect_http else [s.name]) + [f"{s.name}_{g.name}" for g in s.groups]


def certificate_names(s: Service) -> list[str]:
    """A TLS service's certificate files (in `halb.render.PATHS["certs_dir"]`): its own first
    (haproxy's default for the bind), then one per `sni` entry."""
    if s.tls is None:
        return []
    return [f"{s.name}.pem"] + [f"{s.name}-sni{j + 1}.pem" for j in range(len(s.tls.sni))]


def haproxy_problems(
    h: Haproxy, owners: Mapping[IPv4Address | IPv6Address, str], taken: Mapping[int, str] | None = None
) -> Problems:
    """Cross-field checks; `owners` maps halb's own addresses (VIPs, nodes) to their keys; `taken`
    the nodes' other ports (SSH, the node exporter) to their keys: no haproxy port may take one."""
    out = Problems()
    if not h.services:
        out.add("haproxy.services", "[]", "at least one service, e.g. `[{name: http, port: 80, servers: [...]}]`")
    ports: dict[int, str] = dict(taken or {})
    if h.stats.port in ports:
        out.add("haproxy.stats.port", show(h.stats.port), f"a port not already used by `{ports[h.stats.port]}`")
    ports.setdefault(h.stats.port, "haproxy.stats.port")
    names: set[str] = set()
    for i, s in enumerate(h.services):
        key = f"haproxy.services[{i}]"
        if s.port in ports:
            out.add(f"{key}.port", show(s.port), f"a port not already used by `{ports[s.port]}`")
        ports.setdefault(s.port, f"{key}.port")
        if s.name in names:
            out.add(f"{key}.name", show(s.name), "a unique service name, e.g. `name: https`")
        if s.name in RESERVED_NAMES or s.name.startswith("halb"):
            out.add(
                f"{key}.name",
                show(s.name),
                f"a name other than halb's own sections ({', '.join(RESERVED_NAMES)}, halb*), e.g. `name: https`",
            )
        names.add(s.name)
        if s.balance not in BALANCE:
            out.add(f"{key}.balance", show(s.balance), f"one of {', '.join(BALANCE)}, e.g. `balance: roundrobin`")
        out += _service_shape_problems(key, s)
        if not s.redirect_http:
            out += _server_problems(key, s.servers, owners)
        for g, group in enumerate(s.groups):
            out += _server_problems(f"{key}.groups[{g}]", group.servers, owners)
    out += _route_problems(h)
    out += _generated_name_problems(h)
    for name in ("connect", "client", "server", "check"):
        value = getattr(h.timeouts, name)
        if timeout_ms(value) > MAX_TIMEOUT_MS:
            out.add(f"haproxy.timeouts.{name}", show(value), "at most 24d (haproxy's timer limit), e.g. `1m`")
    return out


def _generated_name_problems(h: Haproxy) -> Problems:
    """Names halb derives must stay unique across services: backends (`<service>_<group>`) and
    certificate files (`<service>-sni<n>.pem`)."""
    out = Problems()
    for what, names_of, part in (("backend", backend_names, "name"), ("certificate file", certificate_names, "tls")):
        first: dict[str, str] = {}
        for i, s in enumerate(h.services):
            for name in names_of(s):
                if name in first and first[name] != f"haproxy.services[{i}]":
                    out.add(
                        f"haproxy.services[{i}].{part}",
                        show(s.name),
                        f"a service name whose {what} `{name}` is not also `{first[name]}`'s: rename one of them",
                    )
                first.setdefault(name, f"haproxy.services[{i}]")
    return out


def _route_problems(h: Haproxy) -> Problems:
    """The stats port's routes never shadow each other: /healthz (exact, answered first), halb's
    own /halb/ paths, the metrics path (exact) and the stats page (`stats uri` is a prefix: it
    takes every path that starts with it)."""
    out = Problems()
    for key, path in (("haproxy.stats.uri", h.stats.uri), ("haproxy.metrics.path", h.metrics.path)):
        if (path + "/").startswith(HALB_PATHS):
            out.add(key, show(path), f"a path outside {HALB_PATHS}, which halb answers itself (/halb/backends)")
    if HEALTHZ.startswith(h.stats.uri):
        out.add(
            "haproxy.stats.uri", show(h.stats.uri), f"a path that is not {HEALTHZ} or a prefix of it, e.g. `/stats`"
        )
    if h.metrics.enabled:
        if h.metrics.path == HEALTHZ:
            out.add("haproxy.metrics.path", show(h.metrics.path), f"a path other than {HEALTHZ}, e.g. `/metrics`")
        elif h.metrics.path.startswith(h.stats.uri):
            out.add(
                "haproxy.metrics.path",
                show(h.metrics.path),
                f"a path outside the stats page's prefix `{h.stats.uri}` (the stats page takes every path "
                "that starts with it), e.g. `/metrics`",
            )
    return out


def _service_shape_problems(key: str, s: Service) -> Problems:
    """What goes with what: routes and redirects need `mode: http`, routes name known groups, a
    redirecting service has no servers and no certificate."""
    out = Problems()
    if s.mode != "http":
        for what, given in (("routes", s.routes), ("redirectHttp", s.redirect_http)):
            if given:
                out.add(
                    f"{key}.{what}", show(given if what == "redirectHttp" else "a list"), "`mode: http` on the service"
                )
    if s.redirect_http:
        lists: dict[str, list[Any]] = {"servers": s.servers, "groups": s.groups, "routes": s.routes}
        for what in (name for name, given in lists.items() if given):
            out.add(f"{key}.{what}", "a list", f"no {what} with `redirectHttp` (every request is redirected)")
        if s.tls is not None:
            out.add(f"{key}.tls", "a certificate", "no `tls` with `redirectHttp` (it redirects plain HTTP to https)")
    groups = [g.name for g in s.groups]
    for g, name in enumerate(groups):
        if name in groups[:g]:
            out.add(f"{key}.groups[{g}].name", show(name), "a group name unique in its service")
    for r, route in enumerate(s.routes):
        if route.group not in groups:
            out.add(
                f"{key}.routes[{r}].group",
                show(route.group),
                f"one of the groups: {', '.join(groups) or '(none: add `groups`)'}",
            )
        if route.host is not None and route.host.startswith("*") and not wildcard_ok(route.host):
            out.add(
                f"{key}.routes[{r}].host",
                show(route.host),
                "a wildcard over one label of a registrable domain (RFC 6125), not over a public suffix, "
                "e.g. `*.example.com`",
            )
        if route.host is None and route.path_prefix is None:
            out.add(f"{key}.routes[{r}]", "neither host nor pathPrefix", "a `host`, a `pathPrefix` or both")
    return out


def _server_problems(key: str, servers: list[Server], owners: Mapping[IPv4Address | IPv6Address, str]) -> Problems:
    out = Problems()
    if not servers:
        out.add(f"{key}.servers", "[]", "at least one backend server, e.g. `[{name: worker1, address: 192.168.4.66}]`")
    seen: set[str] = set()
    for j, srv in enumerate(servers):
        unusable = unusable_backend(srv.address)
        if unusable:
            out.add(
                f"{key}.servers[{j}].address",
                show(str(srv.address)),
                f"a backend's unicast address, not {unusable} (it would expose the node itself or go nowhere)",
            )
        elif srv.address in owners:
            out.add(
                f"{key}.servers[{j}].address",
                show(str(srv.address)),
                f"a backend address other than `{owners[srv.address]}` (halb's own addresses would loop)",
            )
        if srv.name in seen:
            out.add(f"{key}.servers[{j}].name", show(srv.name), "a server name unique in its service")
        seen.add(srv.name)
    if servers and not any(srv.state == "active" for srv in servers):
        out.add(
            f"{key}.servers[*].state",
            "no server `active`",
            "at least one `active` server per service, or the service answers nobody; e.g. `state: active`",
        )
    elif servers and not any(srv.state == "active" and srv.weight > 0 for srv in servers):
        out.add(
            f"{key}.servers[*].weight",
            "0 on every active server",
            "at least one active server with a weight above 0, or the service answers nobody; e.g. `weight: 1`",
        )
    return out


def tls_findings(h: Haproxy, now: datetime | None = None) -> tuple[Problems, list[Checked]]:
    """Every service's certificates checked (`halb.config.tls`), and those that passed."""
    out, checked = Problems(), []
    for i, s in enumerate(h.services):
        if s.tls is None:
            continue
        key = f"haproxy.services[{i}]"
        hosts = [(f"{key}.routes[{r}]", route.host) for r, route in enumerate(s.routes) if route.host is not None]
        problems, good = tls_problems(s.tls, f"{key}.tls", s.mode, hosts, now or utcnow())
        out += problems
        checked += good
    return out, checked
