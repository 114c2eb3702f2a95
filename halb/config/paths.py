"""Config paths as `pulumi config set --path` takes them (`nodes[0].role`): parse, set and delete,
as pure functions on a config tree. The lab's `--set`, the drills and the tests all edit config
through these."""

from __future__ import annotations

import copy
import re
from typing import Any

NAME = r"[^.\[\]]+"
PATH = re.compile(rf"{NAME}(?:\.{NAME}|\[\d+\])*")  # a name, then `.name` or `[index]` parts
PART = re.compile(rf"({NAME})|\[(\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """`nodes[0].maintenance` -> ["nodes", 0, "maintenance"] (pulumi's --path syntax)."""
    if PATH.fullmatch(path) is None:
        raise ValueError(f"cannot read the path {path!r}; expected e.g. `keepalived.authPassword` or `nodes[0].role`")
    return [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in PART.finditer(path)]


def parse_value(text: str) -> Any:
    """As `pulumi config set --path` stores values: true/false and integers typed, the rest strings."""
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"-?[0-9]+\.[0-9]+", text):
        return float(text)
    return text


def set_in(tree: Any, path: str, value: Any) -> Any:
    """A copy of `tree` with the value at `path` (`a.b[0].c`) set; maps and lists on the way are
    created as needed."""
    return _set(copy.deepcopy(tree), parse_path(path), value)


def delete_in(tree: Any, path: str) -> Any:
    """A copy of `tree` without the value at `path` (nothing to delete is no error)."""
    return _delete(copy.deepcopy(tree), parse_path(path))


def set_path(config: dict[str, Any], path: str, value: Any, namespace: str = "halb") -> dict[str, Any]:
    """A copy of a stack's config map (keys like `halb:nodes`) with the value at `path` set, as
    `pulumi config set --path halb:PATH` does."""
    parts = parse_path(path)
    out: dict[str, Any] = _set(copy.deepcopy(config), [f"{namespace}:{parts[0]}", *parts[1:]], value)
    return out


def get_path(config: dict[str, Any], path: str, namespace: str = "halb") -> Any:
    """`pulumi config get --path`: the value at `path` in a stack's config map (KeyError, IndexError
    when there is none)."""
    parts = parse_path(path)
    node: Any = config
    for part in [f"{namespace}:{parts[0]}", *parts[1:]]:
        node = node[part]
    return node


def delete_path(config: dict[str, Any], path: str, namespace: str = "halb") -> dict[str, Any]:
    """`pulumi config rm --path`: a copy of a stack's config map without the value at `path`."""
    parts = parse_path(path)
    out: dict[str, Any] = _delete(copy.deepcopy(config), [f"{namespace}:{parts[0]}", *parts[1:]])
    return out


def _set(tree: Any, parts: list[str | int], value: Any) -> Any:
    node = tree
    for part, nxt in zip(parts, [*parts[1:], None], strict=True):
        if nxt is None:
            _assign(node, part, value)
        else:
            if _missing(node, part):
                _assign(node, part, {} if isinstance(nxt, str) else [])
            node = node[part]
    return tree


def _delete(tree: Any, parts: list[str | int]) -> Any:
    node = tree
    for part in parts[:-1]:
        if _missing(node, part):
            return tree
        node = node[part]
    if not _missing(node, parts[-1]):
        del node[parts[-1]]
    return tree


def _missing(node: Any, part: str | int) -> bool:
    return part not in node if isinstance(node, dict) else not isinstance(part, int) or part >= len(node)


def _assign(node: Any, part: str | int, value: Any) -> None:
    if isinstance(node, list) and isinstance(part, int):
        while len(node) <= part:
            node.append(None)
    node[part] = value
