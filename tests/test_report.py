"""bench/report.py: the benchmark tables on docs/benchmarks/ and the README's headline figures are
generated from bench/results.json."""

from __future__ import annotations

import copy
import json

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
