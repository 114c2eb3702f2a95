"""The lab's vault: its own passphrase, never the user's PULUMI_CONFIG_PASSPHRASE, and a clear
error (not a traceback) when it was written under another one."""

from __future__ import annotations

from pathlib import Path

import pytest

from halb_lab.automation.vault import PASSPHRASE_VARIABLE, Vault, VaultLocked


def test_the_users_pulumi_passphrase_does_not_lock_the_lab_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_VARIABLE, raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    written = Vault(tmp_path / "v.json").ensure("haproxy.stats.password", 16)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "the user's own, for their stacks")
    assert Vault(tmp_path / "v.json").get("haproxy.stats.password") == written


def test_another_lab_passphrase_is_a_clear_error_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_VARIABLE, "first")
    Vault(tmp_path / "v.json").put("vrrp", "s3cret-value")
    monkeypatch.setenv(PASSPHRASE_VARIABLE, "second")
    with pytest.raises(VaultLocked) as caught:
        Vault(tmp_path / "v.json").get("vrrp")
    message = str(caught.value)
    assert PASSPHRASE_VARIABLE in message and str(tmp_path / "v.json") in message, message
    assert "s3cret-value" not in message and "first" not in message and "second" not in message, message


def test_the_vault_keeps_no_value_in_plain_text(tmp_path: Path) -> None:
    Vault(tmp_path / "v.json", passphrase="p").put("vrrp", "s3cret-value")
    assert "s3cret-value" not in (tmp_path / "v.json").read_text()
