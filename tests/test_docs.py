"""The docs site (docs/, mkdocs.yml) and the README: the site builds with warnings as errors,
every repository path they name exists, and the generated references match the code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ROOT
from halb import docs

PAGES = sorted((ROOT / "docs").rglob("*.md"))
TEXTS = [ROOT / "README.md", *PAGES]
# A repository path as the docs write it, in a code span: a top folder of this repository, then a
# path; or a top-level file. Node paths (/etc/...) start with a slash and are not matched.
TOP = "halb|halb_lab|bench|tests|templates|docs|scripts|engine|examples|monitoring|\\.ci"
PATH_RE = re.compile(rf"`((?:{TOP})/[A-Za-z0-9_./-]*|Pulumi\.[a-z0-9-]+\.yaml|__main__\.py|Makefile|mkdocs\.yml)`")


def repository_paths(text: str) -> list[str]:
    """The repository paths a text names (placeholders such as `Pulumi.<stack>.yaml` are skipped)."""
    return [p for p in PATH_RE.findall(text) if not re.search(r"[<>*{}]|\.\.\.", p)]


def missing_paths(text: str, root: Path = ROOT) -> list[str]:
    return [p for p in repository_paths(text) if not (root / p.rstrip("/")).exists()]


def test_every_repository_path_the_docs_name_exists() -> None:
    missing = {str(t.relative_to(ROOT)): gone for t in TEXTS if (gone := missing_paths(t.read_text()))}
    assert not missing, f"paths named in the docs that do not exist: {missing}"


def test_the_path_check_catches_a_stale_path() -> None:
    """Negative control: the four stale paths the old README named are caught."""
    text = "see `halb/lab/faults.py`, `halb/config.py`, `halb/addresses.py` and `bench.py`; `halb/plan.py` is real"
    assert missing_paths(text) == ["halb/lab/faults.py", "halb/config.py", "halb/addresses.py"]
    assert repository_paths("`Pulumi.<stack>.yaml` and `/etc/haproxy/haproxy.cfg`") == []


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    """`mkdocs build --strict` (as `make docs` runs it): a broken link, an anchor that is not
    there, or a page missing from the nav fails it. Not with -q: that hides the warnings from
    the strict count too."""
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"},
    )
    assert run.returncode == 0, f"mkdocs build --strict:\n{run.stdout}{run.stderr}"
    assert (tmp_path / "site" / "reference" / "config" / "index.html").is_file()


def build_a_changed_copy(tmp_path: Path, change: Callable[[Path], object]) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of a copy of docs/ that `change` edited (a negative control)."""
    site = tmp_path / "src"
    subprocess.run(["cp", "-r", str(ROOT / "docs"), str(site)], check=True)
    change(site)
    config = (ROOT / "mkdocs.yml").read_text().replace("docs_dir: docs", f"docs_dir: {site}")
    (tmp_path / "mkdocs.yml").write_text(config)
    (tmp_path / "bench").symlink_to(ROOT / "bench")  # the macros module, beside the config as in the checkout
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(tmp_path / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"},
    )


def test_an_orphan_page_fails_the_build(tmp_path: Path) -> None:
    """Negative control: the same build with a page that no nav entry names."""
    run = build_a_changed_copy(tmp_path, lambda site: (site / "orphan.md").write_text("# Orphan\n"))
    assert run.returncode != 0 and "orphan.md" in run.stdout + run.stderr, run.stdout + run.stderr


def test_the_config_reference_is_in_step_with_the_model() -> None:
    page = docs.CONFIG_PAGE.read_text()
    assert docs.update_config_page(page) == page, "docs/reference/config.md is stale: run `make docs`"
    assert len(docs.rows()) > 60


def test_the_metrics_reference_is_in_step_with_halb_metrics() -> None:
    from halb.metrics import METRICS

    page = docs.METRICS_PAGE.read_text()
    assert docs.update_metrics_page(page) == page, "docs/reference/metrics.md is stale: run `make docs`"
    assert all(f"`{m.name}`" in page for m in METRICS), "docs/reference/metrics.md: a metric is missing"


def test_the_cli_reference_is_in_step_with_the_parsers() -> None:
    from halb_lab.reference import update_cli_page

    page = docs.CLI_PAGE.read_text()
    assert docs.update_cli_page(page) == page, "docs/reference/cli.md (python -m halb) is stale: run `make docs`"
    assert update_cli_page(page) == page, "docs/reference/cli.md (python -m halb_lab) is stale: run `make docs`"
    for stack in ("lab-multi", "lab-tls", "lab-vsphere", "lab-bgp"):
        assert f"`{stack}`" in page, f"the lab's --stack choices: {stack}"


def test_every_output_the_program_exports_is_documented() -> None:
    exported = re.findall(r'pulumi\.export\("([a-z_]+)"', (ROOT / "__main__.py").read_text())
    page = (ROOT / "docs/reference/outputs.md").read_text()
    assert len(exported) >= 9 and all(f"| `{name}` |" in page for name in exported), exported


@pytest.mark.parametrize("needle", ["getting-started/vsphere.md", "getting-started/hosts.md"])
def test_the_readme_is_short_and_its_first_screen_points_a_vsphere_user_on(needle: str) -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md: {len(lines)} lines"
    assert needle in "\n".join(lines[:30]), f"README.md's first screen does not link {needle}"


def test_a_figure_is_read_from_results_json_and_a_missing_one_is_named() -> None:
    from bench.figures import RESULTS, lookup, show

    results = json.loads(RESULTS.read_text())
    value = results["holder"]["halb"]["keepalived-crash"]["outage_p99_s"]
    assert show(lookup(results, "holder/halb/keepalived-crash/outage_p99_s")) == f"{value:.3g} s"
    assert show(lookup(results, "holder/halb/keepalived-crash/runs"), "") == str(
        results["holder"]["halb"]["keepalived-crash"]["runs"]
    )
    with pytest.raises(KeyError, match="holder/halb/nope/outage_p99_s"):
        lookup(results, "holder/halb/nope/outage_p99_s")


def test_every_row_of_what_each_fault_costs_quotes_its_figures_from_results_json() -> None:
    page = (ROOT / "docs/concepts/faults.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| ") and not line.startswith(("| fault", "| ---"))]
    assert len(rows) >= 13, len(rows)
    bare = [
        r.split(" | ")[0] for r in rows if "fig(" not in r.rsplit(" | ", 1)[-1] and "none" not in r.rsplit(" | ", 1)[-1]
    ]
    assert not bare, f"rows whose figures are typed by hand: {bare}"


def test_a_page_that_quotes_a_figure_results_json_lacks_fails_the_build(tmp_path: Path) -> None:
    """Negative control: the build stops on a figure that is not in results.json."""

    def quote_a_missing_figure(site: Path) -> None:
        page = site / "concepts" / "faults.md"
        page.write_text(page.read_text() + '\n{{ fig("holder/halb/keepalived-crash/no_such_figure") }}\n')

    run = build_a_changed_copy(tmp_path, quote_a_missing_figure)
    assert run.returncode != 0 and "no_such_figure" in run.stdout + run.stderr, run.stdout[-2000:] + run.stderr[-2000:]
