"""A stack file (`Pulumi.<stack>.yaml`) read as strictly as the values in it.

Pulumi reads stack files with Go's yaml.v3, which follows YAML 1.2's core schema; halb reads
them the same way where it matters, and refuses what a reviewer could misread:

- booleans are `true` and `false` only (`on`, `yes`, `off`, `no` stay strings, as in Pulumi;
  PyYAML's default YAML 1.1 rules would make them booleans, and a port of `on` would be 1);
  integers are decimal, `0o` octal or `0x` hex, with no `_` and no `1:30` sexagesimal (as in
  Pulumi); `null`, `~` and an empty value are null;
- refused, where Pulumi accepts them: duplicate keys at any depth (yaml.v3 refuses them too, but
  PyYAML keeps the last, while a reviewer reads the first), anchors and aliases (an alias bomb or
  a self-reference could hang a reader), explicit tags (`!!binary`, `!!python/...`), several
  documents, tabs anywhere, invalid UTF-8, and numbers of more than 30 digits;
- the file must be a mapping, and its `config:` a mapping of `namespace:key` to values.

Every refusal is a StackFileError naming the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

MAX_NUMBER_DIGITS = 30


class StackFileError(Exception):
    def __init__(self, path: str, line: int, message: str) -> None:
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}:{line}: {message}")


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars and duplicate keys refused."""


_Loader.yaml_implicit_resolvers = {}  # no YAML 1.1 booleans, sexagesimals, timestamps or merge keys
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
INT_RE = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", INT_RE, list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])


def _int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    base = 8 if text.startswith("0o") else 16 if text.startswith("0x") else 10
    return int(text[2:] if base != 10 else text, base)


def _bool(loader: _Loader, node: yaml.ScalarNode) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a key that is a list or mapping; expected a plain key", key_node.start_mark
            ) from None
        if first != key_node.start_mark.line + 1:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"a duplicate key {key!r} (first at line {first}); expected each key once",
                key_node.start_mark,
            )
    return dict(loader.construct_pairs(node, deep=True))


_Loader.add_constructor("tag:yaml.org,2002:int", _int)
_Loader.add_constructor("tag:yaml.org,2002:bool", _bool)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _refuse_events(path: str, text: str) -> None:
    """What is refused before anything is built: several documents, anchors, aliases, tags, long numbers."""
    documents = 0
    for event in yaml.parse(text, Loader=_Loader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise StackFileError(path, line, "a second YAML document; expected one document (one stack's config)")
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise StackFileError(path, line, "an anchor or alias (& or *); expected every value written out")
        tag = getattr(event, "tag", None)
        if tag is not None:
            raise StackFileError(path, line, f"an explicit tag ({tag}); expected plain YAML values")
        if isinstance(event, yaml.ScalarEvent) and event.implicit[0] and INT_RE.match(event.value or ""):
            digits = len(event.value.lstrip("+-"))
            if digits > MAX_NUMBER_DIGITS:
                raise StackFileError(
                    path, line, f"a number of {digits} digits; expected at most {MAX_NUMBER_DIGITS} digits"
                )


def read_stack_file(path: str | Path) -> dict[str, Any]:
    """The stack file's `config:` mapping. Raises StackFileError naming the file and line."""
    name = str(path)
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise StackFileError(
            name, line, f"invalid UTF-8 (byte {data[e.start]:#04x}); expected a UTF-8 text file"
        ) from None
    if "\t" in text:
        raise StackFileError(name, _line(text, text.index("\t")), "a tab; expected spaces (YAML indents with spaces)")
    try:
        _refuse_events(name, text)
        doc = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        own = isinstance(e, yaml.constructor.ConstructorError) and e.context is None  # _mapping's words
        raise StackFileError(
            name, line, str(e.problem) if own else f"not valid YAML: {e.problem or e.context}"
        ) from None
    except yaml.YAMLError as e:
        raise StackFileError(name, 1, f"not valid YAML: {str(e).splitlines()[0]}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise StackFileError(name, 1, f"a {type(doc).__name__}; expected a mapping with a `config:` key")
    config = doc.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        line = _key_line(text, "config")
        raise StackFileError(name, line, f"`config:` is a {type(config).__name__}; expected a mapping of keys")
    bad = [k for k in config if not isinstance(k, str)]
    if bad:
        raise StackFileError(name, _key_line(text, "config"), f"a config key that is not text ({bad[0]!r})")
    return config


def _key_line(text: str, key: str) -> int:
    match = re.search(rf"^{re.escape(key)}\s*:", text, re.MULTILINE)
    return _line(text, match.start()) if match else 1
