"""halb/ and bench/ never import from tests/ nor run the program under mocks; halb/ has no import
cycle, its CLI does not import the lab, and its functions stay short."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "halb"
TEST_MODULES = {p.stem for p in (ROOT / "tests").glob("*.py")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def parse(path: Path) -> ast.Module:
    """ast.parse, or the same through a fresh interpreter: CPython 3.11.7's ast.parse fails with
    "AST constructor recursion depth mismatch" in a process where earlier tests (the lab's) ran."""
    source = path.read_text()
    try:
        return ast.parse(source)
    except SystemError:
        dumped = subprocess.run(
            [
                sys.executable,
                "-c",
                "import ast, sys; print(ast.dump(ast.parse(open(sys.argv[1]).read()), include_attributes=True))",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        tree = eval(dumped, {**vars(ast)})
        assert isinstance(tree, ast.Module)
        return tree


def imports(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules it imports at run time (not under TYPE_CHECKING)."""
    out: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        tree = parse(path)
        skip = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        names: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        out[module_name(path)] = names
    return out


def test_nothing_under_halb_or_bench_imports_from_tests() -> None:
    found = {**imports(PACKAGE), **imports(ROOT / "bench")}
    bad = {m: sorted(i & TEST_MODULES) for m, i in found.items() if i & TEST_MODULES}
    assert not bad, f"imports of test helpers: {bad}"


def test_bench_imports_its_own_modules_by_their_package_name() -> None:
    """`from scale import run` inside a function worked while bench/ was a folder on sys.path; in
    the package it fails only when that line runs, at the end of a 95-minute `make bench`."""
    own = {p.stem for p in (ROOT / "bench").glob("*.py")} - {"__init__", "__main__"}
    bare = sorted(f"{m} imports {i}" for m, deps in imports(ROOT / "bench").items() for i in deps if i in own)
    assert not bare, f"bench modules imported without `bench.`: {bare}"
    assert "bench.pair" in imports(ROOT / "bench"), "the scan reads the bench package"


def test_only_the_tests_run_the_program_under_mocks() -> None:
    """Pulumi's mocks are for unit tests of the program; the lab, drills and bench use the engine."""
    calls = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for root in (PACKAGE, ROOT / "bench")
        for path in root.rglob("*.py")
        for node in ast.walk(parse(path))
        if isinstance(node, ast.Attribute) and node.attr in ("set_mocks", "Mocks")
    ]
    assert not calls, f"set_mocks outside tests/: {calls}"


def test_the_product_package_does_not_import_the_lab() -> None:
    """halb/ is the product (the Pulumi program, its CLI); the lab, its drills and the fuzzer are
    halb_lab/, which imports the product, never the other way round."""
    lab = sorted(f"{m} imports {i}" for m, deps in imports().items() for i in deps if i.startswith("halb_lab"))
    assert not lab, f"the product imports the lab: {lab}"
    assert "halb.__main__" in imports(), "the scan reads the product package"


def test_no_import_cycle_under_halb() -> None:
    graph = {m: {i for i in deps if i.startswith("halb")} for m, deps in imports().items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for dep in graph.get(m, set()):
            target = dep if dep in graph else dep.rsplit(".", 1)[0]
            if target == m or target not in graph:
                continue
            assert state.get(target) != 1, f"import cycle: {' -> '.join([*path, target])}"
            if target not in state:
                visit(target, [*path, target])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_config_functions_stay_short() -> None:
    long = []
    for path in (PACKAGE / "config").glob("*.py"):
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.FunctionDef) and (node.end_lineno or 0) - node.lineno > 50:
                long.append(f"{path.name}:{node.name}")
    assert not long, f"functions over 50 lines: {long}"


def test_no_function_in_the_product_is_over_60_lines() -> None:
    """A newcomer reads any function of halb/ on one screen."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(parse(path)):
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and (node.end_lineno or 0) - node.lineno + 1 > 60
            ):
                long.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert not long, f"functions over 60 lines: {long}"
