"""Config problems: each names the key path, the bad value (never a secret) and what is expected."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from halb import PROJECT
from halb.config.base import Secret


@dataclass(frozen=True)
class Problem:
    key: str  # dotted key path without the `halb:` prefix, e.g. "keepalived.vrid"
    value: str  # the bad value as shown to the user (secrets never shown)
    expected: str  # what is expected, with an example

    def __str__(self) -> str:
        name = self.key if self.key.startswith("vsphere:") else f"{PROJECT}:{self.key}"
        return f"{name}: got {self.value}; expected {self.expected}"


class ConfigError(Exception):
    """Every problem of one config, reported together."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = [f"{len(problems)} config error(s):"] + [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


KEY_MARKERS = re.compile(r"-----BEGIN|PRIVATE KEY")
BASE64_RUN = re.compile(r"[A-Za-z0-9+/=]{40,}")


def looks_like_key_material(text: str) -> bool:
    """A PEM marker, or a run of 40+ base64 characters mixing upper case, lower case and digits
    (a key's body; a long DNS label or path is not one)."""
    if KEY_MARKERS.search(text):
        return True
    return any(
        any(c.isupper() for c in run) and any(c.islower() for c in run) and any(c.isdigit() for c in run)
        for run in BASE64_RUN.findall(text)
    )


def printable(text: str) -> str:
    """Text as messages show it: printable ASCII as it is, anything else escaped (`\\x1b`)."""
    return text if text.isascii() and text.isprintable() else text.encode("unicode_escape").decode("ascii")


def show(value: Any) -> str:
    """A value as an error message shows it: quoted strings with every control character escaped,
    long structures cut short, and text that looks like key material (a PEM line, a long base64
    run) never shown, whatever key it was given under."""
    if isinstance(value, Secret):
        return "<secret>"
    if isinstance(value, dict):  # a mapping may hold a secret under a misspelled key: keys only
        return "a mapping with keys " + ", ".join(sorted(repr(str(k)) for k in value)) if value else "{}"
    if isinstance(value, list | tuple) and any(isinstance(v, dict | list) for v in value):
        return f"a list of {len(value)} items"
    text = repr(str(value)) if not isinstance(value, str | int | float | bool | list) else repr(value)
    if looks_like_key_material(text):
        return f"<a value of {len(text)} characters that looks like key material, not shown>"
    return text if len(text) < 80 else text[:77] + "..."


class Problems(list[Problem]):
    """A list of problems with a shorthand to add one."""

    def add(self, key: str, value: str, expected: str) -> None:
        self.append(Problem(key, value, expected))
