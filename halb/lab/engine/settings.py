"""Stack config as `pulumi config set --path` edits it: pure functions on the stack file's map."""

from __future__ import annotations

import copy
import re
from typing import Any

PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """`nodes[0].maintenance` -> ["nodes", 0, "maintenance"] (pulumi's --path syntax)."""
    parts: list[str | int] = []
    pos = 0
    for m in PART.finditer(path):
        if m.start() != pos and path[pos] != ".":
            raise ValueError(
                f"cannot read the path {path!r}; expected e.g. `keepalived.authPassword` or `nodes[0].role`"
            )
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not parts or pos != len(path):
        raise ValueError(f"cannot read the path {path!r}; expected e.g. `keepalived.authPassword` or `nodes[0].role`")
    return parts


def parse_value(text: str) -> Any:
    """As `pulumi config set --path` stores values: true/false and integers typed, the rest strings."""
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"-?[0-9]+\.[0-9]+", text):
        return float(text)
    return text


def set_path(config: dict[str, Any], path: str, value: Any, namespace: str = "halb") -> dict[str, Any]:
    """A copy of `config` (keys like `halb:nodes`) with the value at `path` set."""
    out = copy.deepcopy(config)
    parts = parse_path(path)
    head, rest = f"{namespace}:{parts[0]}", parts[1:]
    if not rest:
        out[head] = value
        return out
    node: Any = out.setdefault(head, {} if isinstance(rest[0], str) else [])
    for part, nxt in zip(rest, [*rest[1:], None], strict=True):
        if nxt is None:
            _assign(node, part, value)
        else:
            if _missing(node, part):
                _assign(node, part, {} if isinstance(nxt, str) else [])
            node = node[part]
    return out


def _missing(node: Any, part: str | int) -> bool:
    return part not in node if isinstance(node, dict) else not isinstance(part, int) or part >= len(node)


def _assign(node: Any, part: str | int, value: Any) -> None:
    if isinstance(node, list) and isinstance(part, int):
        while len(node) <= part:
            node.append(None)
    node[part] = value
