"""TLS termination: a service's certificates (Pulumi secrets, or files on the machine running
Pulumi) and everything checked about them before any resource is created, with `cryptography`.

Messages name the key and say what is wrong; they never show a byte of a certificate or a key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import Field

from halb.config.base import Model, Secret, SecretValue
from halb.config.errors import Problems

WARN_DAYS = 21  # a certificate with less left than this is reported (not refused)
MIN_RSA_BITS = 2048
CURVES = ("secp256r1", "secp384r1")
HSTS_MAX = 2 * 365 * 86400

_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\n([A-Za-z0-9+/=\n]+?)\n?-----END \1-----\n?")
KEY_BLOCKS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")


class Certificate(Model):
    """One certificate with its key: PEM text set as Pulumi secrets, or files read where Pulumi runs."""

    certificate: SecretValue | None = Field(
        None,
        description="The PEM chain, the server's certificate first, then each issuer (secret: "
        "`pulumi config set --secret --path 'halb:haproxy.services[1].tls.certificate' < chain.pem`).",
    )
    key: SecretValue | None = Field(
        None,
        description="Its unencrypted PEM private key, RSA (2048 bits or more) or ECDSA P-256/P-384 "
        "(secret: `pulumi config set --secret --path 'halb:haproxy.services[1].tls.key' < key.pem`).",
    )
    certificate_file: str | None = Field(
        None, description="Instead of `certificate`: a PEM chain file on the machine running Pulumi."
    )
    key_file: str | None = Field(None, description="Instead of `key`: its key file on the machine running Pulumi.")


class Tls(Certificate):
    """TLS ended at the load balancer: the default certificate, and more chosen by SNI."""

    sni: list[Certificate] = Field(
        default_factory=list, description="More certificates, each served to clients asking for a name in its SAN."
    )
    hsts: int | None = Field(
        None,
        ge=0,
        le=HSTS_MAX,
        description="`Strict-Transport-Security` max-age in seconds (`mode: http` only; at most 2 years).",
        examples=[31536000],
    )


@dataclass(frozen=True)
class Pem:
    """A certificate's chain and key as text (secret), and where they came from (for messages)."""

    chain: str | None  # None: still encrypted (`halb check` on a stack file)
    key: str | None


def read_pem(c: Certificate) -> Pem:
    """The PEM texts of a certificate, from its secrets or its files (unreadable files: None)."""

    def text(secret: Secret | None, path: str | None) -> str | None:
        if secret is not None:
            return secret.value
        if path is not None:
            try:
                return Path(path).read_bytes().decode("ascii")  # as is: a CR is seen, not translated
            except (OSError, UnicodeDecodeError):
                return None
        return None

    return Pem(text(c.certificate, c.certificate_file), text(c.key, c.key_file))


def blocks(text: str) -> list[str] | None:
    """The PEM blocks' types, when the text is PEM blocks and nothing else (whitespace between
    blocks aside); None otherwise (junk, a CR, a blank line inside a block, an unclosed block)."""
    body = text.strip() + "\n"
    kinds, pos = [], 0
    for m in _BLOCK.finditer(body):
        if body[pos : m.start()].strip():
            return None
        kinds.append(m.group(1))
        pos = m.end()
    if body[pos:].strip() or not kinds:
        return None
    return kinds


@dataclass(frozen=True)
class Loaded:
    chain: list[x509.Certificate]
    key: object  # a private key


def _source(c: Certificate, key: str, which: str) -> str:
    """The config key a certificate's chain or key came from."""
    file = c.certificate_file if which == "certificate" else c.key_file
    return f"{key}.{which}File" if file is not None else f"{key}.{which}"


def _load(c: Certificate, key: str, out: Problems) -> Loaded | None:
    given = {
        "certificate": (c.certificate is not None, c.certificate_file is not None),
        "key": (c.key is not None, c.key_file is not None),
    }
    for which, (secret, file) in given.items():
        if secret and file:
            out.add(f"{key}.{which}File", "a file as well as `" + which + "`", f"one of `{which}` and `{which}File`")
        elif not secret and not file:
            out.add(f"{key}.{which}", "nothing", f"the PEM {which} as a secret, or `{which}File`")
    if out:
        return None
    for which, path in (("certificate", c.certificate_file), ("key", c.key_file)):
        if path is not None and (not path.startswith("/") or not Path(path).is_file()):
            out.add(f"{key}.{which}File", repr(path), "an absolute path to a readable PEM file on this machine")
    if out:
        return None
    pem = read_pem(c)
    if pem.chain is None or pem.key is None:
        return None  # still encrypted: checked when Pulumi decrypts it
    chain_key, key_key = _source(c, key, "certificate"), _source(c, key, "key")
    chain_kinds, key_kinds = blocks(pem.chain), blocks(pem.key)
    if chain_kinds is None:
        out.add(chain_key, "<text that is not only PEM blocks>", "PEM certificates and nothing else (no junk, no CR)")
    elif any(k in KEY_BLOCKS or "PRIVATE KEY" in k for k in chain_kinds):
        out.add(chain_key, "<a private key among the certificates>", f"certificates only: the key goes in `{key}.key`")
    elif set(chain_kinds) != {"CERTIFICATE"}:
        out.add(chain_key, f"<PEM blocks {sorted(set(chain_kinds))}>", "CERTIFICATE blocks only")
    if key_kinds is None:
        out.add(key_key, "<secret that is not only a PEM block>", "one PEM private key and nothing else")
    elif key_kinds == ["ENCRYPTED PRIVATE KEY"]:
        out.add(key_key, "<an encrypted key>", "an unencrypted key: haproxy cannot ask for a passphrase")
    elif len(key_kinds) != 1 or key_kinds[0] not in KEY_BLOCKS:
        out.add(key_key, f"<PEM blocks {key_kinds}>", "exactly one PRIVATE KEY block")
    if out:
        return None
    try:
        chain = x509.load_pem_x509_certificates(pem.chain.encode())
    except ValueError:
        out.add(chain_key, "<PEM that does not parse as X.509>", "the certificates as issued (PEM)")
        return None
    try:
        private = serialization.load_pem_private_key(pem.key.encode(), password=None)
    except (ValueError, TypeError):
        out.add(key_key, "<a key that does not parse>", "an unencrypted PEM private key")
        return None
    return Loaded(chain, private)


def _key_type(private: object) -> str:
    """Empty when haproxy and every browser take the key type; else what it is."""
    if isinstance(private, rsa.RSAPrivateKey):
        return "" if private.key_size >= MIN_RSA_BITS else f"an RSA key of {private.key_size} bits"
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return "" if private.curve.name in CURVES else f"an ECDSA key on {private.curve.name}"
    return f"a {type(private).__name__.removeprefix('_').replace('PrivateKey', '')} key"


def _public(obj: object) -> bytes:
    public = obj.public_key()  # type: ignore[attr-defined]
    out: bytes = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return out


def names(cert: x509.Certificate) -> list[str]:
    """The DNS names a certificate is valid for (its SAN)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [n.lower() for n in san.get_values_for_type(x509.DNSName)]


def covers(name: str, pattern: str) -> bool:
    name = name.lower()
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return name == pattern


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class Checked:
    """A certificate that passed: its leaf's names, expiry and fingerprint."""

    key: str  # its config key
    names: list[str]
    not_after: datetime
    fingerprint: str


ORDER = "the chain in order: the server's certificate first, then the one that issued it, and so on"


def check_certificate(c: Certificate, key: str, now: datetime, out: Problems) -> Checked | None:
    """Every problem of one certificate into `out`; what it is when it passed."""
    mine = Problems()
    loaded = _load(c, key, mine)
    if loaded is not None:
        chain_key, key_key = _source(c, key, "certificate"), _source(c, key, "key")
        if _key_problems(loaded, chain_key, key_key, mine):
            mine += _chain_problems(loaded.chain, chain_key, now)
    out += mine
    if mine or loaded is None:
        return None
    leaf = loaded.chain[0]
    return Checked(key, names(leaf), leaf.not_valid_after_utc, fingerprint(leaf))


def _key_problems(loaded: Loaded, chain_key: str, key_key: str, out: Problems) -> bool:
    """The key's type, and that it is the server's certificate's; False when the chain is out of
    order (the key belongs to a later certificate): nothing more is worth saying then."""
    why = _key_type(loaded.key)
    if why:
        out.add(key_key, f"<{why}>", f"RSA of {MIN_RSA_BITS} bits or more, or ECDSA on P-256 or P-384")
    elif _public(loaded.key) != _public(loaded.chain[0]):
        if any(_public(loaded.key) == _public(c) for c in loaded.chain[1:]):
            out.add(chain_key, "<the key's certificate is not the first>", ORDER)
            return False
        out.add(
            key_key, "<a key that does not match the certificate>", f"the key of the first certificate in `{chain_key}`"
        )
    return True


def _chain_problems(chain: list[x509.Certificate], chain_key: str, now: datetime) -> Problems:
    """Each certificate issued by the next, each valid now, and the server's naming DNS hosts."""
    out = Problems()
    for i, (cert, issuer) in enumerate(pairwise(chain)):
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            out.add(chain_key, f"<certificate {i + 2} did not issue certificate {i + 1}>", ORDER)
            break
    for i, cert in enumerate(chain):
        which = "the server's certificate" if i == 0 else f"certificate {i + 1} of the chain"
        if cert.not_valid_after_utc <= now:
            out.add(
                chain_key,
                f"<{which}, expired on {cert.not_valid_after_utc:%Y-%m-%d}>",
                "a certificate that has not expired",
            )
        elif cert.not_valid_before_utc > now:
            out.add(chain_key, f"<{which}, valid from {cert.not_valid_before_utc:%Y-%m-%d}>", "a certificate valid now")
    if not names(chain[0]):
        out.add(
            chain_key,
            "<a certificate with no DNS name in its SAN>",
            "a server certificate naming its hosts in subjectAltName",
        )
    return out


def tls_problems(
    tls: Tls, key: str, mode: str, hosts: list[tuple[str, str]], now: datetime
) -> tuple[Problems, list[Checked]]:
    """A service's TLS: each certificate, and each route's host covered by one of them.
    `hosts`: (route key, host name)."""
    out = Problems()
    checked = [check_certificate(tls, key, now, out)]
    checked += [check_certificate(c, f"{key}.sni[{i}]", now, out) for i, c in enumerate(tls.sni)]
    if tls.hsts is not None and mode != "http":
        out.add(f"{key}.hsts", str(tls.hsts), "nothing with `mode: tcp` (HSTS is an HTTP header): use `mode: http`")
    good = [c for c in checked if c is not None]
    if len(good) == len(checked):
        for route_key, host in hosts:
            if not any(covers(host, n) for c in good for n in c.names):
                out.add(
                    f"{route_key}.host",
                    repr(host),
                    f"a name one of the service's certificates covers ({', '.join(sorted({n for c in good for n in c.names}))})",
                )
    return out, good


def expiry_warnings(checked: list[Checked], now: datetime) -> list[str]:
    """Certificates with less than WARN_DAYS left."""
    soon = now + timedelta(days=WARN_DAYS)
    return [
        f"halb:{c.key}: the certificate expires on {c.not_after:%Y-%m-%d} ({(c.not_after - now).days} days): renew it"
        for c in checked
        if c.not_after <= soon
    ]


def utcnow() -> datetime:
    return datetime.now(UTC)
