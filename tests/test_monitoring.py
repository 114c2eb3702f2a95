"""monitoring/: the alert rules, as Prometheus's promtool checks and tests them, and their ties to
halb's metrics (halb/metrics.py) and to the docs' runbooks."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, require, tool
from halb.metrics import NAMES, RULES, alert_for_seconds, dashboard_queries

TESTS = ROOT / "monitoring" / "halb.rules.test.yml"


def rules() -> list[dict[str, object]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_promtool_checks_the_rules_and_passes_their_tests() -> None:
    require(tool("promtool") is not None, "the `promtool` binary (Debian's prometheus)")
    check = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, f"monitoring/halb.rules.yml: {check.stdout}{check.stderr}"
    test = subprocess.run(["promtool", "test", "rules", str(TESTS)], capture_output=True, text=True, cwd=TESTS.parent)
    assert test.returncode == 0, f"monitoring/halb.rules.test.yml: {test.stdout}{test.stderr}"


@pytest.mark.parametrize(
    ("alert", "broken"),
    [
        ("HalbVipNoHolder", ("sum by (vip) (halb_vip_held) == 0", "sum by (vip) (halb_vip_held) == 2")),
        ("HalbVipNoHolder", ("for: 15s", "for: 1h")),
        ("HalbBgpNodeWithdrawn", ("halb_maintenance == 0", "halb_maintenance == 1")),
        ("HalbBfdDown", ("halb_bgp_session_up == 1", "halb_bgp_session_up == 0")),
    ],
)
def test_a_broken_rule_fails_its_promtool_tests(alert: str, broken: tuple[str, str], tmp_path: Path) -> None:
    """Negative control: the rules' tests catch a wrong expression and a `for:` too long to page."""
    require(tool("promtool") is not None, "the `promtool` binary (Debian's prometheus)")
    text = RULES.read_text()
    start = text.index(f"- alert: {alert}")
    end = text.find("- alert:", start + 1) % (len(text) + 1)  # the last rule runs to the end
    block = text[start:end]
    assert broken[0] in block, f"{alert}: {broken[0]!r} not in its rule"
    (tmp_path / RULES.name).write_text(text[:start] + block.replace(broken[0], broken[1], 1) + text[end:])
    (tmp_path / TESTS.name).write_text(TESTS.read_text())
    test = subprocess.run(["promtool", "test", "rules", TESTS.name], capture_output=True, text=True, cwd=tmp_path)
    assert test.returncode != 0, f"{alert} with {broken[1]!r}: promtool test rules still passed"
    assert alert in test.stdout + test.stderr, f"{alert}: the failure names another alert: {test.stdout[-400:]}"


def test_every_rule_is_tested_uses_declared_metrics_and_links_its_runbook() -> None:
    tested = set(re.findall(r"alertname: (\w+)", TESTS.read_text()))
    guide = (ROOT / "docs" / "guides" / "alerts.md").read_text()
    for r in rules():
        name, expr = str(r["alert"]), str(r["expr"])
        assert name in tested, f"{name}: no test in monitoring/halb.rules.test.yml"
        assert "for" in r, f"{name}: no `for:` (a planned switchover must not fire it)"
        used = set(re.findall(r"\bhalb_\w+", expr))
        assert used <= set(NAMES), f"{name}: {sorted(used - set(NAMES))} are not metrics halb writes"
        annotations = r["annotations"]
        assert isinstance(annotations, dict) and annotations.get("summary"), f"{name}: no summary"
        anchor = str(annotations["runbook_url"]).split("#", 1)[1]
        sections = {h.lower(): h for h in re.findall(r"^## (\w+)$", guide, re.M)}
        assert anchor in sections, f"{name}: its runbook #{anchor} is no section of docs/guides/alerts.md"


def test_every_dashboard_query_is_promql_promtool_accepts_on_declared_metrics(tmp_path: Path) -> None:
    require(tool("promtool") is not None, "the `promtool` binary (Debian's prometheus)")
    queries = dashboard_queries()
    assert len(queries) >= 8, f"monitoring/halb.dashboard.json: {sorted(queries)}"
    for title, expr in queries.items():
        used = set(re.findall(r"\bhalb_\w+", expr))
        assert used <= set(NAMES), f"dashboard panel {title!r}: {sorted(used - set(NAMES))} are not halb's metrics"
    recording = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"panel:{i}", "expr": e} for i, e in enumerate(queries.values())],
            }
        ]
    }
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump(recording))
    p = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "dashboard.rules.yml")], capture_output=True, text=True
    )
    assert p.returncode == 0, f"monitoring/halb.dashboard.json: a query promtool refuses: {p.stdout}{p.stderr}"


def test_each_rules_for_is_read_in_seconds_and_outlasts_a_planned_move() -> None:
    """alert_for_seconds is what the lab's drills and `bench.alerts` wait by."""
    waits = alert_for_seconds()
    assert set(waits) == {r["alert"] for r in rules()}, f"alert_for_seconds: {sorted(waits)}"
    for r in rules():
        text, seconds = str(r["for"]), waits[str(r["alert"])]
        assert re.fullmatch(r"\d+[smh]", text), f"{r['alert']}: `for: {text}` is not a plain duration"
        assert seconds == int(text[:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]], f"{r['alert']}: {seconds}"
        assert seconds >= 15, f"{r['alert']}: `for: {text}` is shorter than a planned switchover's 15 s"
