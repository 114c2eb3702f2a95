"""Property-based fuzzing of the stack config (halb_lab.fuzz) with a fixed budget: every generated
stack file is refused cleanly within 2 s, or accepted and rendered into files both daemons take,
with no directive that came from a value. Root (keepalived -t runs in private namespaces)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from conftest import require_root_tools
from halb.config.words import UnsafeValue
from halb_lab.fuzz import CLASSES, MARKER, judge, stack_files

EXAMPLES = int(os.environ.get("HALB_FUZZ_EXAMPLES", "200"))
SEEN = {"accepted": 0, "refused": 0}
CLASSES_SEEN: set[str] = set()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same budget of configs on every CI run; bench/fuzz.py runs random ones
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(drawn=stack_files())
def test_every_generated_stack_file_is_refused_cleanly_or_renders_valid_files(
    drawn: tuple[str, tuple[str, ...]], tmp_path: Path
) -> None:
    require_root_tools("haproxy", "keepalived", "unshare")
    text, classes = drawn
    verdict = judge(text, tmp_path)
    SEEN["accepted" if verdict.accepted else "refused"] += 1
    CLASSES_SEEN.update(classes)
    assert not verdict.problems, f"{verdict.problems} for:\n{text}"


def test_the_fuzzer_reaches_both_outcomes_and_can_fail(tmp_path: Path) -> None:
    """The run above both accepted and refused configs, and the judge catches an injected directive."""
    assert SEEN["accepted"] > 0 and SEEN["refused"] > 0, SEEN
    assert set(CLASSES) == CLASSES_SEEN, f"classes the run exercised: {sorted(CLASSES_SEEN)}"
    base = (Path(__file__).parent.parent / "Pulumi.dev.yaml").read_text()
    bad = base.replace("config:\n", "config:\n  vsphere:password: {secure: v1:abc}\n", 1)
    assert not judge(bad, tmp_path, validate=False).problems, "the dev stack itself passes"
    broken = tmp_path / "x.cfg"
    broken.write_text(f"global\n{MARKER}-directive on\n")
    from halb_lab.fuzz import _injected

    assert _injected(broken, tmp_path), "a line that begins with a value's text is reported"


def test_the_judge_finds_an_injection_planted_through_the_renderer(tmp_path: Path) -> None:
    """Negative control through the real renderer: with the boundary turned off and a service name
    set behind the model's back, the rendered haproxy.cfg gains a line the judge reports."""
    import halb.render as render
    from conftest import boundary_off, stack_raw
    from halb.config import load_config
    from halb_lab.fuzz import _injected

    cfg = load_config(stack_raw("dev"))
    services = [cfg.haproxy.services[0].model_copy(update={"name": f"x\n{MARKER}-directive on"})]
    planted = cfg.model_copy(update={"haproxy": cfg.haproxy.model_copy(update={"services": services})})
    with boundary_off():
        render.write_tree(planted, tmp_path)
    found = [p for f in (tmp_path / "lb1").rglob("*") if f.is_file() for p in _injected(f, tmp_path / "lb1")]
    assert found and "haproxy.cfg" in found[0], found
    with pytest.raises(UnsafeValue):
        render.write_tree(planted, tmp_path / "again")
