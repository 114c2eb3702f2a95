"""The drill report's arithmetic: outages, failed requests, holder samples."""

from __future__ import annotations

from halb_lab.scenarios.watch import analyse


def test_a_run_of_failures_is_one_outage_ending_at_the_next_good_request() -> None:
    reqs = [(0.00, True), (0.01, False), (0.02, False), (0.03, False), (0.04, True), (0.05, True)]
    r = analyse(reqs, [(0.0, ["lb1"]), (0.05, ["lb1"])])
    assert r.failed == 3 and r.requests == 6
    assert len(r.outages) == 1 and abs(r.outages[0] - 0.03) < 1e-9, r.outages
    assert r.bad_samples == []


def test_separate_runs_are_separate_outages_and_a_trailing_run_counts() -> None:
    reqs = [(0.0, False), (0.1, True), (0.2, True), (0.3, False), (0.4, False)]
    r = analyse(reqs, [(0.5, ["lb2"])])
    assert [round(o, 3) for o in r.outages] == [0.1, 0.2], r.outages
    assert r.failed == 3


def test_requests_are_ordered_by_start_not_by_completion() -> None:
    r = analyse([(0.02, True), (0.01, False), (0.00, True)], [])
    assert len(r.outages) == 1 and abs(r.outages[0] - 0.01) < 1e-9


def test_samples_without_exactly_one_holder_are_listed_with_their_time() -> None:
    samples = [(10.0, ["lb1"]), (10.05, ["lb1", "lb2"]), (10.1, []), (10.15, ["lb2"])]
    r = analyse([(10.0, True)], samples)
    assert r.bad_samples == [(0.05, ("lb1", "lb2")), (0.1, ())], r.bad_samples
    assert r.holders_seen == ["lb1", "lb1+lb2", "lb2"], r.holders_seen
    assert "2/4 holder samples not exactly one" in r.summary(), r.summary()


def test_moves_leave_out_the_overlap_of_a_preemption_but_not_a_real_move() -> None:
    back = analyse([], [(0.0, ["lb1"]), (0.05, ["lb2"]), (0.1, ["lb1", "lb2"]), (0.15, ["lb1"])])
    assert back.holders_seen == ["lb1", "lb2", "lb1+lb2", "lb1"] and back.moves == ["lb1", "lb2", "lb1"], back.moves
    blink = analyse([], [(0.0, ["lb1"]), (0.05, ["lb1", "lb2"]), (0.1, ["lb1"])])
    assert blink.moves == ["lb1"], f"an overlap is not a move: {blink.moves}"
    flap = analyse([], [(0.0, ["lb1"]), (0.05, ["lb2"]), (0.1, ["lb1"])])
    assert flap.moves == ["lb1", "lb2", "lb1"], flap.moves


def test_a_clean_run_reports_zeros() -> None:
    r = analyse([(i / 100, True) for i in range(100)], [(i / 20, ["lb1"]) for i in range(20)])
    assert (r.failed, r.outages, r.bad_samples) == (0, [], [])
    assert r.figures()["outages"] == 0 and r.figures()["holders_seen"] == ["lb1"]


def test_the_timeline_counts_good_and_failed_requests_per_100_ms() -> None:
    reqs = [(10.00, True), (10.05, False), (10.12, False), (10.31, True)]
    r = analyse(reqs, [(10.0, ["lb1"])])
    assert r.timeline == [(0.0, 1, 1), (0.1, 0, 1), (0.3, 1, 0)], r.timeline


def test_broken_long_lived_connections_are_counted_and_reported() -> None:
    r = analyse(
        [(0.0, True)], [(0.0, ["lb1"])], broken=[(1.5, "198.18.0.11"), (1.6, "198.18.0.12"), (4.0, "198.18.0.11")]
    )
    assert r.keepalive_resets == 3 and r.figures()["keepalive_resets"] == 3, r
    assert r.resets_by_node == {"198.18.0.11": 2, "198.18.0.12": 1}, r.resets_by_node
    assert "3 long-lived connection(s) broken" in r.summary(), r.summary()
    assert analyse([(0.0, True)], [(0.0, ["lb1"])]).keepalive_resets == 0, "none watched: none broken"
