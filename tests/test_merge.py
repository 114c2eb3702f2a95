"""bench/merge.py: a part's figures go into results.json without losing the rows it did not measure."""

from __future__ import annotations

import json
import time
from typing import Any

from bench.common import covered, with_provenance
from bench.merge import RESULTS, merge


def test_a_part_replaces_its_rows_and_their_provenance_and_keeps_the_others() -> None:
    old = {"seed", "halb"}
    results: dict[str, Any] = {
        "holder": {"seed": {"link-loss": 1}, "halb": {"link-loss": 2}},
        "provenance": {
            "holder": [{"commit": "aaaaaaa", "covers": ["seed"]}, {"commit": "bbbbbbb", "covers": ["halb"]}]
        },
    }
    part = {"holder": {"halb": {"link-loss": 3}}, "provenance": {"holder": {"commit": "ccccccc", "covers": ["halb"]}}}
    merged = merge(results, part)
    assert merged["holder"] == {"seed": {"link-loss": 1}, "halb": {"link-loss": 3}}, merged["holder"]
    assert [p["commit"] for p in merged["provenance"]["holder"]] == ["aaaaaaa", "ccccccc"], merged["provenance"]
    assert set(results["holder"]) == old and results["holder"]["halb"] == {"link-loss": 2}, "merge is pure"


def test_a_part_of_two_drills_keeps_the_other_drills_of_its_profile() -> None:
    results = {"holder": {"halb": {"link-loss": {"p99": 3}, "switchover": {"p99": 0}}}}
    part = {"holder": {"halb": {"link-loss": {"p99": 2}}}}
    merged = merge(results, part)
    assert merged["holder"]["halb"] == {"link-loss": {"p99": 2}, "switchover": {"p99": 0}}, merged["holder"]


def test_an_older_run_keeps_provenance_for_the_rows_it_alone_measured() -> None:
    results = {"holder": {}, "provenance": {"holder": [{"commit": "aaaaaaa", "covers": ["halb/a", "halb/b"]}]}}
    part = {"holder": {"halb": {"a": {}}}, "provenance": {"holder": {"commit": "bbbbbbb", "covers": ["halb/a"]}}}
    prov = merge(results, part)["provenance"]["holder"]
    assert [(p["commit"], p["covers"]) for p in prov] == [("aaaaaaa", ["halb/b"]), ("bbbbbbb", ["halb/a"])], prov


def test_every_figure_in_results_json_has_the_run_it_came_from() -> None:
    """Each key is written by a registered part, and each of its rows has a provenance record, so
    no figure stands without its commit, date and machine."""
    from bench.__main__ import PAIR_KEYS, PARTS

    results = json.loads(RESULTS.read_text())
    written = {key for _, key in PARTS.values() if key} | set(PAIR_KEYS)
    keys = set(results) - {"provenance"}
    assert keys <= written, f"results.json keys no part writes: {sorted(keys - written)}"
    for key in sorted(keys):
        recorded = {c for p in results["provenance"].get(key, []) for c in p["covers"]}
        unrecorded = [row for row in covered(results[key]) if row not in recorded]
        assert not unrecorded, f"results.json {key}: rows without provenance: {unrecorded}"


def test_a_part_of_several_keys_gets_provenance_for_each() -> None:
    part = with_provenance(
        None, {"seed": {"link_cut_s": 3.1}, "faults": {"seed": {"hang": {"outages": 1}}}}, time.gmtime(), {}
    )
    assert part["provenance"]["seed"]["covers"] == ["link_cut_s"], part["provenance"]
    assert part["provenance"]["faults"]["covers"] == ["seed/hang"], part["provenance"]
