"""The README's benchmark tables, generated from bench/results.json by `make docs`, so that a figure
in the text cannot drift from the data (tests/test_report.py fails when they differ).

    python -m bench.report     # rewrite each generated table in README.md

Each part's table is the one its bench module prints (`table(figures)`), between markers:
<!-- bench:KEY:start ... --> and <!-- bench:KEY:end -->.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
README = ROOT / "README.md"


def tables() -> dict[str, Callable[[dict[str, Any]], str]]:
    """Each generated part: its key in results.json and its bench module's table."""
    from bench import holder, iac

    return {"holder": holder.table, "engine": iac.table}


def markers(key: str) -> tuple[str, str]:
    return f"<!-- bench:{key}:start (generated from bench/results.json by `make docs`) -->", f"<!-- bench:{key}:end -->"


def update_readme(text: str, results: dict[str, Any] | None = None) -> str:
    """`text` (the README) with every generated table rewritten from `results` (results.json)."""
    results = results if results is not None else json.loads(RESULTS.read_text())
    for key, table in tables().items():
        start, end = markers(key)
        if start not in text or end not in text:
            raise ValueError(f"README.md lacks the generated block for `{key}`: {start} ... {end}")
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = (
            f"{head}{start}\n{table(results[key])}\n{measured(results.get('provenance', {}).get(key, []))}{end}{tail}"
        )
    return text


def measured(provenance: list[dict[str, Any]]) -> str:
    """Where the table's rows come from, one line per run that `bench/merge.py` recorded."""
    lines = [
        f"- {', '.join(p['covers'])}: at {p['commit']}{' (with uncommitted changes)' if p['uncommitted_changes'] else ''}, "
        f"{p['utc']} UTC, {p['machine']}; {' '.join(f'{k}={v}' for k, v in p['settings'].items())}"
        for p in provenance
    ]
    return "".join(f"\n{line}" for line in lines) + ("\n" if lines else "")


if __name__ == "__main__":
    README.write_text(update_readme(README.read_text()))
