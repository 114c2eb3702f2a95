"""The lab's secrets on this machine: encrypted under the lab's passphrase, never in plain text.

Holds the passwords the lab generates once (VRRP, stats), and keyed digests that tell the lab
stack whether a secret changed since the engine last encrypted it (halb_lab.automation.stack).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import string
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

DEFAULT_PASSPHRASE = "halb-lab"  # the lab's own; not for real stacks
PASSPHRASE_VARIABLE = "HALB_LAB_PASSPHRASE"  # not PULUMI_CONFIG_PASSPHRASE: that one is the user's, for their stacks


def lab_passphrase() -> str:
    """The passphrase of the lab's vault and of its stacks' secrets provider."""
    return os.environ.get(PASSPHRASE_VARIABLE, DEFAULT_PASSPHRASE)


class VaultLocked(RuntimeError):
    """The vault was written under another passphrase."""


class Vault:
    def __init__(self, path: Path, passphrase: str | None = None) -> None:
        self.path = path
        phrase = passphrase if passphrase is not None else lab_passphrase()
        data = json.loads(path.read_text()) if path.exists() else {}
        self.salt = bytes.fromhex(data.get("salt") or secrets.token_hex(16))
        key = hashlib.pbkdf2_hmac("sha256", phrase.encode(), self.salt, 200_000)
        self.mac_key = hashlib.sha256(b"digest" + key).digest()
        self.fernet = Fernet(base64.urlsafe_b64encode(key))
        self.values: dict[str, str] = data.get("values", {})

    def get(self, name: str) -> str | None:
        token = self.values.get(name)
        if not token:
            return None
        try:
            return self.fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise VaultLocked(
                f"the lab's vault {self.path} was written under another passphrase than {PASSPHRASE_VARIABLE} "
                f"gives now ({'set' if PASSPHRASE_VARIABLE in os.environ else 'unset: ' + DEFAULT_PASSPHRASE!r}). "
                f"Set {PASSPHRASE_VARIABLE} to the one it was written with, or start the lab afresh: "
                "python -m halb_lab down, then remove that file. PULUMI_CONFIG_PASSPHRASE is not read by the lab."
            ) from None

    def put(self, name: str, value: str) -> None:
        self.values[name] = self.fernet.encrypt(value.encode()).decode()
        self.save()

    def ensure(self, name: str, length: int) -> str:
        """The password kept under `name`, generated (letters and digits) the first time."""
        value = self.get(name)
        if value is None:
            value = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))
            self.put(name, value)
        return value

    def digest(self, value: str) -> str:
        return "hmac:" + hmac.new(self.mac_key, value.encode(), hashlib.sha256).hexdigest()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"salt": self.salt.hex(), "values": self.values}, indent=1))
        tmp.chmod(0o600)
        tmp.rename(self.path)
