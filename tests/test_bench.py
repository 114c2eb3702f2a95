"""bench (python -m bench): the parts registry and its command line."""

from __future__ import annotations

import importlib

import pytest

from bench.__main__ import PARTS, main, selected


def test_every_registered_part_has_run_and_table() -> None:
    for name, (module, _) in PARTS.items():
        part = importlib.import_module(f"bench.{module}")
        assert callable(getattr(part, "run", None)) and callable(getattr(part, "table", None)), f"bench part {name}"


def test_only_and_skip_choose_parts_and_an_unknown_name_is_an_error() -> None:
    assert selected(["engine"], []) == ["engine"]
    assert "fuzz" not in selected([], ["fuzz"]) and "holder" in selected([], ["fuzz"])
    with pytest.raises(SystemExit, match="no part named enigne; the parts: engine"):
        selected(["enigne"], [])


def test_list_names_every_part(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PARTS), out
