"""The docs site looked at as a reader would: built with mkdocs, served on loopback, opened in
headless Chromium (Debian's package). Screenshots of the home page and the config reference are
kept under test-output/docs-site/ (CI keeps that folder as an artifact; git ignores it).

Runs with the lab tests (`-m lab`): it needs the chromium binary, which ./scripts/install-deps
installs; under CI=true a missing binary is a failure."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from conftest import ROOT, require, tool

pytestmark = pytest.mark.lab
OUTPUT = ROOT / "test-output" / "docs-site"
SECTIONS = ["Getting started", "Guides", "Concepts", "Reference", "Development", "Benchmarks"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The site built from this checkout, served on a loopback port of its own; the server (this
    test's own process) is ended by its id."""
    require(tool("chromium") is not None, "the `chromium` binary (Debian's chromium package)")
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, build.stdout + build.stderr
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(out), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(("page", "shot"), [("/", "home.png"), ("/reference/config/", "config-reference.png")])
def test_a_page_renders_in_chromium_and_is_kept_as_a_screenshot(site: str, page: str, shot: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / shot).unlink(missing_ok=True)
    run = chromium("--window-size=1280,900", f"--screenshot={OUTPUT / shot}", site + page)
    png = OUTPUT / shot
    assert png.is_file() and png.stat().st_size > 10_000, f"{page}: no screenshot ({run.stderr[-500:]})"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{page}: not a PNG"


def test_the_navigation_shows_every_section(site: str) -> None:
    dom = chromium("--dump-dom", site + "/").stdout
    nav = dom[dom.index("md-nav--primary") : dom.index('class="md-content"')]  # the sidebar, not the page
    missing = [s for s in SECTIONS if s not in nav]
    assert not missing, f"the home page's navigation lacks {missing}"


def test_the_config_reference_renders_its_table(site: str) -> None:
    dom = chromium("--dump-dom", site + "/reference/config/").stdout
    assert "<table" in dom and "halb:keepalived.nopreempt" in dom, "the config reference's table"


def test_the_search_index_holds_a_config_key(site: str) -> None:
    index = json.loads(urllib.request.urlopen(site + "/search/search_index.json", timeout=5).read())
    found = [d["location"] for d in index["docs"] if "keepalived.nopreempt" in d["text"]]
    assert any(loc.startswith("reference/config/") for loc in found), f"keepalived.nopreempt found in {found}"
