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

from cryptography.fernet import Fernet

DEFAULT_PASSPHRASE = "halb-lab"  # the lab's, like PULUMI_CONFIG_PASSPHRASE in the Makefile; not for real stacks


class Vault:
    def __init__(self, path: Path, passphrase: str | None = None) -> None:
        self.path = path
        phrase = (
            passphrase if passphrase is not None else os.environ.get("PULUMI_CONFIG_PASSPHRASE", DEFAULT_PASSPHRASE)
        )
        data = json.loads(path.read_text()) if path.exists() else {}
        self.salt = bytes.fromhex(data.get("salt") or secrets.token_hex(16))
        key = hashlib.pbkdf2_hmac("sha256", phrase.encode(), self.salt, 200_000)
        self.mac_key = hashlib.sha256(b"digest" + key).digest()
        self.fernet = Fernet(base64.urlsafe_b64encode(key))
        self.values: dict[str, str] = data.get("values", {})

    def get(self, name: str) -> str | None:
        token = self.values.get(name)
        return self.fernet.decrypt(token.encode()).decode() if token else None

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
