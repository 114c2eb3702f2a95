"""Property-based fuzzing of the stack config (Hypothesis): random structures, types and strings
around the real schema, judged as `halb check` and the daemons would judge them.

For every generated stack file, `halb check`'s reading and validation must
- never raise anything but its own refusal (ConfigError, StackFileError): no traceback;
- answer within `BUDGET_S`;
- when it accepts the config, render files that pass `haproxy -c -dW` and `keepalived -t`, in
  which no line's directive came from a value: generated strings carry MARKER, and no rendered
  line may begin with text that holds it.

Besides random values, each stack file may carry the review's classes of hostile input
(`CLASSES`): IPv6 zones in address fields, Unicode and control characters in string fields,
collections at and just past their limits, certificate files of every shape (DER, PKCS#12,
non-ASCII, oversized, a device, a directory, wrong usage, a wildcard over a public suffix, an
extension that does not parse, a world-readable key, EC parameters before the key) and collisions
between generated names and addresses. `stack_files` draws (text, classes); the bench reports
which classes it covered.

Used by tests/test_config_fuzz.py (a fixed budget, in CI) and bench/fuzz.py (`make bench` key
`fuzz`: a longer run that reports how many configs were tried). Needs hypothesis (dev) and, for
accepted configs, root and the haproxy and keepalived binaries.
"""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from halb import PROJECT_DIR
from halb.config import ConfigError, StackFileError, load_stack_file
from halb.config.haproxy import MAX_ALLOW_FROM, MAX_GROUPS, MAX_ROUTES, MAX_SERVERS, MAX_SERVICES
from halb.config.paths import get_path, set_path
from halb.config.tls import MAX_SNI
from halb.config.vips import MAX_VIPS
from halb.render import write_tree
from halb.validate import check_secrets, haproxy_check, keepalived_check
from halb_lab.certificates import SHAPES, shape_files

MARKER = "ZQXJ"
BUDGET_S = 2.0
SECURE = {"secure": "v1:bm90LXJlYWxseS1lbmNyeXB0ZWQ="}

# Paths of the schema to mutate: every leaf of the two example stacks, and keys they leave unset.
EXTRA_PATHS = [
    "keepalived.version",
    "keepalived.advertInt",
    "keepalived.masterPriority",
    "keepalived.backupPriority",
    "keepalived.nopreempt",
    "keepalived.unicast",
    "keepalived.garpMasterRefresh",
    "keepalived.startupDelay",
    "keepalived.healthCheck.interval",
    "keepalived.healthCheck.fall",
    "keepalived.healthCheck.rise",
    "haproxy.stats.uri",
    "haproxy.stats.user",
    "haproxy.stats.allowFrom",
    "haproxy.metrics.path",
    "haproxy.metrics.enabled",
    "haproxy.metrics.auth",
    "haproxy.log",
    "haproxy.timeouts.client",
    "haproxy.services[0].balance",
    "haproxy.services[0].checkPath",
    "haproxy.services[0].servers[0].state",
    "haproxy.services[0].servers[0].port",
    "haproxy.services[0].servers[0].weight",
    "nodes[0].maintenance",
    "nodes[1].interface",
    "nodes[0].generation",
    "network.domain",
    "network.dnsServers",
    "ssh.port",
    "vsphere.namePrefix",
    "vsphere.diskGb",
    "vsphere.antiAffinity.mandatory",
    "preflight",
    "verify",
]
PAYLOADS = [
    "x\n  virtual_ipaddress {\n 10.9.9.9/32 dev eth0\n }",
    "}\nvrrp_instance ZQXJ {",
    "a#b",
    "a;b",
    "'",
    '"',
    "$(id)",
    "\\",
    " ",
    "",
    "on",
    "yes",
    "0x1F",
    "1:20",
    "~",
    "null",
    "192.168.4.60",
    "192.168.4.0/24",
    "0.0.0.0/0",
    "/",
    "/healthz",
    "\x1b[31m",
    "\u202e",
    "\u200b",
    "-oProxyCommand=x",
    "%{+Q}o",
    "\r\nX: 1",
]


def base_config() -> dict[str, Any]:
    """Pulumi.dev.yaml's config with its secrets set (as ciphertext), the shape to start from."""
    config: dict[str, Any] = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())["config"]
    return set_path(config, "password", SECURE, namespace="vsphere")


def _leaf_paths(tree: Any, prefix: str = "") -> list[str]:
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in _leaf_paths(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(tree, list):
        return [p for i, v in enumerate(tree) for p in _leaf_paths(v, f"{prefix}[{i}]")] + [prefix]
    return [prefix]


def mutable_paths() -> list[str]:
    config = base_config()
    halb = {k.removeprefix("halb:"): v for k, v in config.items() if k.startswith("halb:")}
    return sorted(set(_leaf_paths(halb)) | set(EXTRA_PATHS))


def _text() -> st.SearchStrategy[str]:
    alphabet = st.characters(codec="utf-8", exclude_categories=["Cs"])
    return st.one_of(
        st.sampled_from(PAYLOADS),
        st.text(alphabet, max_size=12).map(lambda s: s + MARKER),
        st.text(st.sampled_from("abcz019-_./:#'\"{}$ \n\t\x00"), max_size=16).map(lambda s: MARKER + s),
        st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
        st.from_regex(r"/[A-Za-z0-9._~%/?=&+:@,-]{0,10}", fullmatch=True),
        st.builds(lambda a, b: f"192.168.4.{a}/{b}", st.integers(0, 300), st.integers(0, 33)),
        st.builds(lambda a: f"192.168.4.{a}", st.integers(0, 300)),
    )


def values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 70000),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        _text(),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.one_of(_text(), st.sampled_from(["name", "port"])), inner, max_size=3),
        ),
        max_leaves=6,
    )


def like(current: Any) -> st.SearchStrategy[Any]:
    """A value of the same type as the one there, often a valid one: most configs then pass
    `halb check` and reach the renderer and the daemons."""
    if isinstance(current, bool):
        return st.booleans()
    if isinstance(current, int):
        return st.one_of(st.integers(0, 300), st.integers(1, 65535))
    if isinstance(current, float):
        return st.floats(0, 100, allow_nan=False)
    if isinstance(current, str) and current[:1].isdigit():
        return st.builds(lambda a: f"192.168.4.{a}", st.integers(1, 254))
    if isinstance(current, str):
        return st.one_of(
            st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True),
            st.from_regex(r"/[A-Za-z0-9._~%/?=&+:@,-]{0,10}", fullmatch=True),
            st.text(st.characters(codec="ascii", categories=["L", "N", "P", "S", "Zs"]), max_size=16).map(
                lambda t: MARKER + t
            ),
        )
    return values()


CLASSES = ("random", "zone", "unicode", "limits", "certificate", "collision")
ADDRESS_PATHS = [
    "halb:haproxy.services[0].servers[0].address",
    "halb:haproxy.stats.allowFrom",
    "halb:nodes[0].address6",
    "halb:network.gateway6",
    "halb:network.subnet6",
    "halb:vips",
]
STRING_PATHS = [
    "halb:haproxy.services[0].name",
    "halb:haproxy.services[0].servers[0].name",
    "halb:nodes[0].name",
    "halb:network.interface",
    "halb:haproxy.stats.user",
    "halb:haproxy.stats.uri",
    "halb:haproxy.metrics.path",
    "halb:haproxy.timeouts.client",
    "halb:haproxy.services[0].balance",
    "halb:vsphere.folder",
    "halb:network.domain",
    "halb:ssh.user",
    "halb:haproxy.services[1].checkPath",
]
DUAL = {
    "halb:network.subnet6": "2001:db8:4::/64",
    "halb:nodes[0].address6": "2001:db8:4::61",
    "halb:nodes[1].address6": "2001:db8:4::62",
    "halb:keepalived.version": 3,
}


def _dual(config: dict[str, Any]) -> dict[str, Any]:
    """The base stack made dual-stack with `halb:vips` (for VIP and IPv6 classes)."""
    for path, value in DUAL.items():
        config = set_path(config, path.removeprefix("halb:"), value)
    config.pop("halb:addresses", None)
    config["halb:keepalived"].pop("vrid", None)
    config["halb:vips"] = [{"name": "public", "address": "192.168.4.60"}, {"name": "six", "address": "2001:db8:4::60"}]
    return config


def _zone(draw: st.DrawFn, config: dict[str, Any]) -> dict[str, Any]:
    zone = draw(st.one_of(st.sampled_from(["eth0", "lo]:80 disabled #", 'x" accept', "1 2"]), st.text(max_size=8)))
    path = draw(st.sampled_from(ADDRESS_PATHS))
    value: Any = f"2001:db8:4::{draw(st.integers(1, 0xFFFF)):x}%{zone}"
    if path == "halb:haproxy.stats.allowFrom":
        value = [f"2001:db8:4::%{zone}/64"]
    elif path == "halb:network.subnet6":
        value = f"2001:db8:4::%{zone}/64"
    elif path == "halb:vips":
        value = [*config["halb:vips"], {"name": "zoned", "address": value}]
    return _set(config, path, value)


def _unicode(draw: st.DrawFn, config: dict[str, Any]) -> dict[str, Any]:
    text = draw(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=10))
    control = draw(st.sampled_from(["\x1b[31m", "\u202e", "\u200b", "\n", "\r", "\t", "\x00", "\u2028", "é", "٣"]))
    return _set(config, draw(st.sampled_from(STRING_PATHS)), MARKER + text + control + draw(st.sampled_from(PAYLOADS)))


def _limits(draw: st.DrawFn, config: dict[str, Any]) -> dict[str, Any]:
    """A collection at its limit or just past it (the daemons must take the first)."""
    over = draw(st.integers(0, 1))
    which = draw(st.sampled_from(["servers", "allowFrom", "services", "groups", "routes", "sni", "vips", "dns"]))
    server = {"name": "s", "address": "192.168.4.66"}
    if which == "servers":
        n = MAX_SERVERS + over
        value: Any = [{"name": f"s{i}", "address": f"192.168.{5 + i // 250}.{1 + i % 250}"} for i in range(n)]
        return _set(config, "halb:haproxy.services[0].servers", value)
    if which == "allowFrom":
        return _set(
            config,
            "halb:haproxy.stats.allowFrom",
            [f"10.{i // 256}.{i % 256}.0/24" for i in range(MAX_ALLOW_FROM + over)],
        )
    if which == "services":
        value = [{"name": f"svc{i}", "port": 9000 + i, "servers": [dict(server)]} for i in range(MAX_SERVICES + over)]
        return _set(config, "halb:haproxy.services", value)
    if which in ("groups", "routes"):
        n = (MAX_GROUPS if which == "groups" else MAX_ROUTES) + over
        groups = [{"name": f"g{i}", "servers": [dict(server)]} for i in range(min(n, MAX_GROUPS + over))]
        routes = [{"pathPrefix": f"/r{i}/", "group": "g0"} for i in range(n if which == "routes" else 1)]
        service: dict[str, Any] = {
            "name": "web",
            "port": 8081,
            "mode": "http",
            "servers": [dict(server)],
            "groups": groups,
            "routes": routes,
        }
        return _set(config, "halb:haproxy.services[2]", service)
    if which == "sni":
        good = shape_files()["good"]
        service = _tls_service(good)
        service["tls"]["sni"] = [dict(service["tls"]) for _ in range(MAX_SNI + over)]
        return _set(config, "halb:haproxy.services[2]", service)
    if which == "vips":
        n = MAX_VIPS + over - 2
        return _set(
            config,
            "halb:vips",
            [*config["halb:vips"], *({"name": f"v{i}", "address": f"2001:db8:4::1:{i:x}"} for i in range(n))],
        )
    return _set(config, "halb:network.dnsServers", [f"192.168.4.{200 + i}" for i in range(3 + over)])


def _tls_service(files: tuple[str, str]) -> dict[str, Any]:
    return {
        "name": "web",
        "port": 8443,
        "mode": "http",
        "tls": {"certificateFile": files[0], "keyFile": files[1]},
        "servers": [{"name": "app1", "address": "192.168.4.70", "port": 8000}],
    }


def _certificate(draw: st.DrawFn, config: dict[str, Any]) -> dict[str, Any]:
    shape = draw(st.sampled_from(SHAPES))
    service = _tls_service(shape_files()[shape])
    if draw(st.booleans()):
        service["groups"] = [{"name": "api", "servers": [{"name": "a1", "address": "192.168.4.71"}]}]
        host = draw(st.sampled_from(["lab.internal", "*.lab.internal", "shop.com", "*.internal", "a.b.lab.internal"]))
        service["routes"] = [{"host": host, "group": "api"}]
    return _set(config, "halb:haproxy.services[2]", service)


def _collision(draw: st.DrawFn, config: dict[str, Any]) -> dict[str, Any]:
    server = {"name": "s", "address": "192.168.4.70"}
    case = draw(st.integers(0, 5))
    if case == 0:  # a service named like another's generated backend
        web: dict[str, Any] = {
            "name": "web",
            "port": 8081,
            "mode": "http",
            "servers": [dict(server)],
            "groups": [{"name": "api", "servers": [dict(server)]}],
            "routes": [{"pathPrefix": "/a/", "group": "api"}],
        }
        return _set(
            _set(config, "halb:haproxy.services[2]", web),
            "halb:haproxy.services[3]",
            {"name": "web_api", "port": 8082, "servers": [dict(server)]},
        )
    if case == 1:  # a service named like another's SNI certificate file
        good = shape_files()["good"]
        web = _tls_service(good)
        web["tls"]["sni"] = [dict(web["tls"])]
        other = {**_tls_service(good), "name": "web-sni1", "port": 9443}
        return _set(_set(config, "halb:haproxy.services[2]", web), "halb:haproxy.services[3]", other)
    if case == 2:  # a VIP on a segment address or a node's
        taken = draw(
            st.sampled_from(
                [
                    "192.168.4.1",
                    "192.168.4.255",
                    "192.168.4.0",
                    "192.168.4.61",
                    "2001:db8:4::",
                    "2001:db8:4::62",
                    "192.168.4.66",
                    "fe80::1",
                    "ff02::12",
                    "::1",
                    "224.0.0.18",
                ]
            )
        )
        return _set(config, "halb:vips", [*config["halb:vips"], {"name": "taken", "address": taken}])
    if case == 3:  # a backend on a VIP or a node's IPv6 address
        return _set(
            config,
            "halb:haproxy.services[0].servers[0].address",
            draw(st.sampled_from(["2001:db8:4::60", "2001:db8:4::61", "192.168.4.60"])),
        )
    if case == 4:  # a sync group naming a VIP twice
        return _set(config, "halb:keepalived.syncGroups", [{"name": "grp", "vips": ["public", "six", "public"]}])
    return _set(config, "halb:haproxy.services[0].vips", draw(st.sampled_from([[], ["nope"], ["public", "public"]])))


def _set(config: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    namespace, _, rest = path.partition(":")
    return set_path(config, rest, value, namespace=namespace)


MAKERS = {"zone": _zone, "unicode": _unicode, "limits": _limits, "certificate": _certificate, "collision": _collision}


@st.composite
def stack_files(draw: st.DrawFn) -> tuple[str, tuple[str, ...]]:
    """A stack file and the classes it exercises: half the time the random mutation below alone,
    otherwise the dual-stack base with one or two of the review's classes (and sometimes the random
    mutation on top)."""
    classes: list[str] = []
    config = copy.deepcopy(base_config())
    if draw(st.booleans()):
        config = _dual(config)
        for name in draw(st.lists(st.sampled_from(sorted(MAKERS)), min_size=1, max_size=2, unique=True)):
            try:
                config = MAKERS[name](draw, config)
            except (ValueError, TypeError, IndexError, KeyError):
                continue
            classes.append(name)
        if draw(st.integers(0, 3)) > 0:
            return yaml.safe_dump({"config": config}, allow_unicode=True, sort_keys=False), tuple(classes)
    classes.append("random")
    return _random_mutation(draw, config), tuple(classes)


def _random_mutation(draw: st.DrawFn, config: dict[str, Any]) -> str:
    """The base config with 1-3 keys set to new values (3 in 4 of the type already there, the rest
    anything: other types, lists, mappings, payloads), and 1 in 8 with a key the schema does not
    have (random text, or a field's snake_case name)."""
    paths = mutable_paths()
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3, unique=True)):
        try:
            current = get_path(config, path)
        except (ValueError, TypeError, IndexError, KeyError):
            current = None
        typed = current is not None and draw(st.integers(0, 3)) > 0  # 3 in 4: a value of the type there
        value = draw(like(current) if typed else values())
        try:
            config = set_path(config, path, value)
        except (ValueError, TypeError, IndexError, KeyError):
            continue  # a path the mutated tree no longer has
    if draw(st.integers(0, 7)) == 0:  # 1 in 8: a key the schema does not have
        key = draw(st.one_of(_text(), st.sampled_from(["keepalived.auth_password", "haproxy.stats.allow_from"])))
        config[f"halb:{key}"] = draw(values())
    return yaml.safe_dump({"config": config}, allow_unicode=True, sort_keys=False)


@dataclass
class Verdict:
    accepted: bool
    seconds: float
    problems: list[str] = field(default_factory=list)  # what broke a rule (empty: all good)


def judge(text: str, workdir: Path, validate: bool = True) -> Verdict:
    """`halb check` of one stack file, then, when accepted, its rendering through both validators."""
    path = workdir / "Pulumi.fuzz.yaml"
    path.write_text(text)
    start = time.monotonic()
    try:
        cfg = load_stack_file(str(path), provider_keys=True)
    except (ConfigError, StackFileError):
        return Verdict(False, time.monotonic() - start, _slow(time.monotonic() - start))
    except Exception as e:  # anything else would be a traceback for the user
        return Verdict(False, time.monotonic() - start, [f"{type(e).__name__}: {e}"])
    seconds = time.monotonic() - start
    problems = _slow(seconds)
    with tempfile.TemporaryDirectory(dir=workdir) as out:
        write_tree(cfg, Path(out), check_secrets(cfg))
        for node in cfg.nodes:
            tree = Path(out) / node.name
            for rendered in tree.rglob("*"):
                if rendered.is_file():
                    problems += _injected(rendered, tree)
            if validate:
                for name, result in (
                    ("haproxy -c -dW", haproxy_check(tree)),
                    ("keepalived -t", keepalived_check(tree, cfg.interface(node))),
                ):
                    if result.rc != 0:
                        problems.append(f"{node.name}: {name} refused it: {result.output.strip()[-300:]}")
    return Verdict(True, seconds, problems)


def _slow(seconds: float) -> list[str]:
    return [f"halb check took {seconds:.2f} s (budget {BUDGET_S} s)"] if seconds > BUDGET_S else []


def _injected(rendered: Path, tree: Path) -> list[str]:
    out = []
    for n, line in enumerate(rendered.read_text(errors="replace").splitlines(), 1):
        words = line.split()
        if words and MARKER in words[0]:
            out.append(f"{rendered.relative_to(tree)}:{n}: a directive from a value: {line.strip()[:80]!r}")
    return out
