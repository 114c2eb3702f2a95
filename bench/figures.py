"""Figures from bench/results.json for the docs pages that quote them in prose (mkdocs-macros).

A page with `render_macros: true` in its front matter writes
`{{ fig("holder/halb/keepalived-crash/outage_p99_s") }}` and the site shows `0.119 s`; `unit=""`
for a count. A path that results.json lacks stops `mkdocs build` (tests/test_docs.py builds the
site), so a page can neither invent a figure nor keep one the data no longer has.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"


def lookup(results: dict[str, Any], path: str) -> Any:
    """The value at `path`: keys joined by `/` (drill names carry dots, as in `link-flap-vrrp3-0.5s`)."""
    value: Any = results
    for key in path.split("/"):
        if not isinstance(value, dict) or key not in value:
            raise KeyError(f"bench/results.json has no {path!r} (no {key!r} there)")
        value = value[key]
    return value


def show(value: Any, unit: str = " s") -> str:
    """A number with its unit: three significant digits below 10, two decimals above (13.16 s, not
    13.2 s); anything else as it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value}{unit}"
    shown = f"{value:.3g}" if abs(value) < 10 else f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{shown}{unit}"


def define_env(env: Any) -> None:
    """mkdocs-macros' entry point: the `fig` macro over results.json."""
    results = json.loads(RESULTS.read_text())

    @env.macro
    def fig(path: str, unit: str = " s") -> str:
        return show(lookup(results, path), unit)
