"""bench/report.py: the benchmark tables on docs/benchmarks/ and the README's headline figures are
generated from bench/results.json."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from bench import report


@pytest.mark.parametrize("key", list(report.tables()))
def test_each_benchmark_page_is_in_step_with_results_json(key: str) -> None:
    text = report.page(key).read_text()
    assert report.update_page(key, text) == text, f"docs/benchmarks/{key}.md is stale: run `make docs`"


def test_the_readmes_headline_figures_are_in_step_with_results_json() -> None:
    text = report.README.read_text()
    assert report.update_readme(text) == text, "the README's headline figures are stale: run `make docs`"


def test_a_changed_figure_changes_the_generated_tables() -> None:
    """Negative control: a figure changed in results.json shows on its page and in the README."""
    results = json.loads(report.RESULTS.read_text())
    changed = copy.deepcopy(results)
    changed["holder"]["halb"]["keepalived-crash"]["outage_p99_s"] = 9.876
    assert "9.876" in report.update_page("holder", report.page("holder").read_text(), changed)
    assert "9.876" in report.update_readme(report.README.read_text(), changed)
    assert report.update_page("holder", report.page("holder").read_text(), changed) != report.page("holder").read_text()


# --------------------------------------------------------------------------- figures in prose

# Each benchmark page and the parts of results.json its figures come from.
PAGE_PARTS = {
    "alerts": ["alerts"],
    "bgp": ["bgp"],
    "engine": ["engine"],
    "faults": ["faults", "seed", "kubeadm", "halb", "timelines"],
    "holder": ["holder"],
    "index": ["seed", "kubeadm", "halb"],
    "lifecycle": ["lifecycle", "seed", "kubeadm", "halb"],
    "scale": ["scale"],
    "throughput": ["throughput", "seed", "kubeadm", "halb"],
    "tls": ["tls"],
    "vips": ["vips"],
    "vsphere": ["vsphere"],
    "watcher": ["watcher"],
}
# A decimal figure, not part of a version (2.2.7, HTTP/1.1) or an address.
DECIMAL = re.compile(r"(?<![\w./])(\d+\.\d+)(?![\w.]*\.\d)(?!\.\d)")
# Settings quoted beside the figures (budgets, intervals, versions of other software): not measurements.
SETTINGS = {"0.1", "0.2", "0.25", "0.3", "0.5", "1.3", "1.22"}


def measured_values(results: dict[str, Any], parts: list[str]) -> set[float]:
    """Every number under `parts`, as the pages may show it: rounded to 0-3 decimals, in s or ms,
    KiB as MiB, a ratio as a percentage."""
    out: set[float] = set()

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            for g in (abs(x), abs(x) * 1000, abs(x) / 1000, abs(x) * 100, abs(x) / 1024):
                out.update(round(float(g), d) for d in range(4))

    for part in parts:
        walk(results.get(part))
    return out


def unsourced_figures(text: str, values: set[float]) -> list[str]:
    """Decimal figures in `text` that are in none of `values`; generated blocks, fig() macros and
    blocks marked as history (<!-- history --> ... <!-- /history -->) are left out."""
    text = re.sub(r"\{\{.*?\}\}", "", text)
    text = re.sub(r"<!-- bench:(\w+):start.*?<!-- bench:\1:end -->", "", text, flags=re.S)
    text = re.sub(r"<!-- history -->.*?<!-- /history -->", "", text, flags=re.S)
    return [s for s in DECIMAL.findall(text) if s not in SETTINGS and float(s) not in values]


@pytest.mark.parametrize("page", sorted(PAGE_PARTS))
def test_every_figure_on_a_benchmark_page_is_in_results_json(page: str) -> None:
    results = json.loads(report.RESULTS.read_text())
    text = (report.PAGES / f"{page}.md").read_text()
    missing = unsourced_figures(text, measured_values(results, PAGE_PARTS[page]))
    assert not missing, f"docs/benchmarks/{page}.md quotes figures results.json does not hold: {missing}"


def test_a_hand_typed_figure_that_drifted_is_caught() -> None:
    """Negative control: the holder page with one figure changed by hand."""
    results = json.loads(report.RESULTS.read_text())
    text = (report.PAGES / "holder.md").read_text() + "\nThe crash cost 0.173 s at p99.\n"
    assert unsourced_figures(text, measured_values(results, PAGE_PARTS["holder"])) == ["0.173"]
