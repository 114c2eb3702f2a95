"""The lab's mirror comes from the machine's apt configuration, never from the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from halb_lab.infra.image import mirror_from_apt


def test_mirror_from_deb822_sources(tmp_path: Path) -> None:
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.test/debian-security\nSuites: bookworm-security\nComponents: main\n"
    )
    assert mirror_from_apt(d, tmp_path / "none") == "http://mirror.test/debian"


def test_mirror_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://other.test/debian bookworm main contrib\n"
    )
    assert mirror_from_apt(tmp_path / "absent", tmp_path / "sources.list") == "http://other.test/debian"


def test_no_mirror_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no Debian bookworm main mirror"):
        mirror_from_apt(tmp_path / "absent", tmp_path / "absent.list")
