"""Secrets and hostile characters: what each secret may contain, plain text where a secret is due,
and characters no value may carry. No problem reported here ever shows a secret's value.

Each secret reaches its daemon byte for byte or is refused:
- `keepalived.authPassword` is written unquoted into keepalived's config, where `#` and `!` start
  a comment, `"` a quoted string, `{` `}` a block, `$` a parameter, a trailing `\\` a continuation
  and a space ends the word. Measured on keepalived 2.2.7: every other printable ASCII character
  is kept (`keepalived -d` dumps the password whole).
- `haproxy.stats.password` is written inside single quotes, where haproxy takes every character
  literally except the closing quote (a login with the full password works; measured on 2.6.12).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from halb.config.base import CONTROL_CATEGORIES
from halb.config.errors import Problem, Problems


@dataclass(frozen=True)
class Charset:
    specials: str  # the punctuation allowed besides ASCII letters and digits
    min_len: int
    max_len: int
    generated: int  # the length halb generates (letters and digits) when the stack sets none

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset(string.ascii_letters + string.digits + self.specials)

    def describe(self) -> str:
        return f"{self.min_len}-{self.max_len} characters: ASCII letters, digits and any of {self.specials} (no space)"

    def problem(self, value: str) -> str | None:
        """What is wrong with `value`, never quoting it; None when it is fine."""
        if not self.min_len <= len(value) <= self.max_len:
            return f"<secret of {len(value)} characters>"
        if not set(value) <= self.allowed:
            return "<secret with a character outside the allowed set>"
        return None


VRRP_PASSWORD = Charset("%&'()*+,-./:;<=>?@[]^_`|~", 1, 8, 8)
STATS_PASSWORD = Charset('!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~', 12, 128, 24)
# FRR's `neighbor X password WORD` (TCP MD5, RFC 2385): one word of at most 80 characters.
BGP_PASSWORD = Charset("%&()*+,-./:;<=>?@[]^_|~", 1, 80, 24)


# The secrets whose daemon takes them byte for byte within a character set. Which keys are secret
# is the model's to say (`SecretValue` fields, `base.secret_paths`); the rest of them are PEM.
CHARSETS = {
    "keepalived.authPassword": VRRP_PASSWORD,
    "haproxy.stats.password": STATS_PASSWORD,
    "bgp.peers[].password": BGP_PASSWORD,
}


def _pattern(path: str) -> re.Pattern[str]:
    """A model path (`[]` for any list index) as a regex for a config path (`[0]`)."""
    return re.compile(re.escape(path).replace(r"\[\]", r"\[\d+\]") + "$")


def charset_of(path: str) -> Charset | None:
    """The character set of the password at this config path, if it is one."""
    return next((c for p, c in CHARSETS.items() if _pattern(p).match(path)), None)


class SecretPaths:
    """The model's secret keys (`base.secret_paths`: `haproxy.services[].tls.key`), to match a
    config path (`haproxy.services[0].tls.key`) against."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.patterns = tuple(_pattern(p) for p in paths)

    def secret(self, path: str) -> bool:
        return any(p.match(path) for p in self.patterns)

    def pem(self, path: str) -> bool:
        """A secret that holds PEM (a key or a certificate chain): every secret but the passwords."""
        return self.secret(path) and charset_of(path) is None


def fix_command(path: str) -> str:
    return f"`pulumi config set --secret --path halb:{path} VALUE` (or `< FILE`)"


def _get(raw: dict[str, Any], path: str) -> Any:
    node: Any = raw
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(node, list) or index >= len(node):
                return None
            node = node[index]
        elif not isinstance(node, dict) or part not in node:
            return None
        else:
            node = node[part]
    return node


def secrets_in(raw: dict[str, Any], secrets: SecretPaths) -> list[str]:
    """The secret keys this config holds a text value at (every list index spelled out)."""
    return [path for path, _ in _strings(raw, "") if secrets.secret(path)]


def plaintext_problems(raw: dict[str, Any], secret_tops: set[str] | None, secrets: SecretPaths) -> Problems:
    """Secret keys given as plain text. `secret_tops`: the top-level keys Pulumi holds as secrets
    (the program); None when reading a stack file, where a secret is a `{secure: ...}` mapping."""
    out = Problems()
    for path in secrets_in(raw, secrets):
        value = _get(raw, path)
        if not isinstance(value, str):
            continue
        if secret_tops is None or path.split(".")[0] not in secret_tops:
            out.add(
                path,
                "a plain-text value (it would be stored unencrypted, e.g. in git)",
                f"a secret: remove it and set it with {fix_command(path)}",
            )
    return out


def secret_value_problems(raw: dict[str, Any]) -> Problems:
    """Decrypted secrets that their daemon would not take byte for byte, and an SSH key that is
    not one (the certificates and their keys are checked with the TLS settings)."""
    out = Problems()
    for path, value in _strings(raw, ""):
        charset = charset_of(path)
        bad = charset.problem(value) if charset is not None else None
        if charset is not None and bad is not None:
            out.add(path, bad, charset.describe())
    key = _get(raw, "ssh.privateKey")
    if isinstance(key, str) and not _looks_like_private_key(key):
        out.add(
            "ssh.privateKey",
            "<secret that is not a private key>",
            "an OpenSSH or PEM private key (`-----BEGIN ... PRIVATE KEY-----` ... `-----END ...-----`), "
            "set with `pulumi config set --secret --path halb:ssh.privateKey < ~/.ssh/id_ed25519`",
        )
    return out


def _looks_like_private_key(text: str) -> bool:
    lines = [line.strip() for line in text.strip().splitlines()]
    return (
        len(lines) >= 3
        and lines[0].startswith("-----BEGIN ")
        and lines[0].endswith("PRIVATE KEY-----")
        and lines[-1].startswith("-----END ")
        and all(set(line) <= set(string.ascii_letters + string.digits + "+/=-: ") for line in lines)
    )


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def hostile_problems(raw: dict[str, Any], secrets: SecretPaths) -> Problems:
    """Control characters anywhere (newlines only inside an SSH key), digits other than ASCII's,
    and keys no model knows whose value could be a secret (reported without it)."""
    out = Problems()
    for path, text in _strings(raw, ""):
        # The value is never shown: the key may be a misspelled secret.
        pem = secrets.pem(path)
        what = "a secret" if secrets.secret(path) else "a value"
        allowed = "\n" if pem else ""
        control = [i for i, c in enumerate(text) if unicodedata.category(c) in CONTROL_CATEGORIES and c not in allowed]
        digits = [i for i, c in enumerate(text) if unicodedata.category(c) == "Nd" and not c.isascii()]
        if not pem and "PRIVATE KEY" in text:
            out.add(
                path,
                f"{what} holding a private key (not shown)",
                "no key material outside the secret keys (ssh.privateKey, haproxy.services[].tls.key): "
                "it would be stored in plain text",
            )
        elif control:
            out.add(
                path,
                f"{what} with a control character at position {control[0] + 1}",
                "no control characters (newline, carriage return, tab, NUL, zero-width, bidi...)",
            )
        elif digits:
            out.add(path, f"{what} with a non-ASCII digit at position {digits[0] + 1}", "ASCII digits 0-9 only")
    return out


def keys_of(problems: list[Problem]) -> set[str]:
    return {p.key for p in problems}
