"""Property-based fuzzing of the stack config (Hypothesis): random structures, types and strings
around the real schema, judged as `halb check` and the daemons would judge them.

For every generated stack file, `halb check`'s reading and validation must
- never raise anything but its own refusal (ConfigError, StackFileError): no traceback;
- answer within `BUDGET_S`;
- when it accepts the config, render files that pass `haproxy -c -dW` and `keepalived -t`, in
  which no line's directive came from a value: generated strings carry MARKER, and no rendered
  line may begin with text that holds it.

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
from halb.config.paths import get_path, set_path
from halb.render import Secrets, write_tree
from halb.validate import haproxy_check, keepalived_check

MARKER = "ZQXJ"
BUDGET_S = 2.0
SECURE = {"secure": "v1:bm90LXJlYWxseS1lbmNyeXB0ZWQ="}

# Paths of the schema to mutate: every leaf of the two example stacks, and keys they leave unset.
EXTRA_PATHS = [
    "keepalived.version", "keepalived.advertInt", "keepalived.masterPriority", "keepalived.backupPriority",
    "keepalived.nopreempt", "keepalived.unicast", "keepalived.garpMasterRefresh", "keepalived.startupDelay",
    "keepalived.healthCheck.interval", "keepalived.healthCheck.fall", "keepalived.healthCheck.rise",
    "haproxy.stats.uri", "haproxy.stats.user", "haproxy.stats.allowFrom", "haproxy.metrics.path",
    "haproxy.metrics.enabled", "haproxy.metrics.auth", "haproxy.log", "haproxy.timeouts.client",
    "haproxy.services[0].balance", "haproxy.services[0].checkPath", "haproxy.services[0].servers[0].state",
    "haproxy.services[0].servers[0].port", "haproxy.services[0].servers[0].weight", "nodes[0].maintenance",
    "nodes[1].interface", "nodes[0].generation", "network.domain", "network.dnsServers", "ssh.port",
    "vsphere.namePrefix", "vsphere.diskGb", "vsphere.antiAffinity.mandatory", "preflight", "verify",
]  # fmt: skip
PAYLOADS = [
    "x\n  virtual_ipaddress {\n 10.9.9.9/32 dev eth0\n }", "}\nvrrp_instance ZQXJ {", "a#b", "a;b", "'", '"', "$(id)",
    "\\", " ", "", "on", "yes", "0x1F", "1:20", "~", "null", "192.168.4.60", "192.168.4.0/24", "0.0.0.0/0", "/",
    "/healthz", "\x1b[31m", "\u202e", "\u200b", "-oProxyCommand=x", "%{+Q}o", "\r\nX: 1",
]  # fmt: skip


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


@st.composite
def stack_files(draw: st.DrawFn) -> str:
    """A stack file: the base config with 1-3 keys set to new values (3 in 4 of the type already
    there, the rest anything: other types, lists, mappings, payloads), and 1 in 8 with a key the
    schema does not have (random text, or a field's snake_case name)."""
    config = copy.deepcopy(base_config())
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
        write_tree(cfg, Path(out), Secrets("pw-12345", "stats-password-12345"))
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
