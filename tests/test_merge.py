"""bench/merge.py: a part's figures go into results.json without losing the rows it did not measure."""

from __future__ import annotations

from typing import Any

from bench.merge import merge


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
