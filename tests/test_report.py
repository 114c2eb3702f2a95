"""bench/report.py: the README's benchmark tables are generated from bench/results.json."""

from __future__ import annotations

import copy
import json

from bench import report
from conftest import ROOT


def test_readme_benchmark_tables_are_in_step_with_results_json() -> None:
    readme = (ROOT / "README.md").read_text()
    assert report.update_readme(readme) == readme, "a README benchmark table is stale: run `make docs`"


def test_a_changed_figure_changes_the_generated_table() -> None:
    results = json.loads(report.RESULTS.read_text())
    readme = (ROOT / "README.md").read_text()
    changed = copy.deepcopy(results)
    changed["holder"]["halb"]["keepalived-crash"]["outage_p99_s"] = 9.876
    assert "9.876" in report.update_readme(readme, changed), "the holder table follows results.json"
