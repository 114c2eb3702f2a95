"""TLS termination: a service's certificates (Pulumi secrets, or files on the machine running
Pulumi) and everything checked about them before any resource is created, with `cryptography`.

Messages name the key and say what is wrong; they never show a byte of a certificate or a key.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import pairwise

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID
from publicsuffixlist import PublicSuffixList
from pydantic import Field

from halb.config.base import Model, Secret, SecretValue
from halb.config.errors import Problems, printable, show

WARN_DAYS = 21  # a certificate with less left than this is reported (not refused)
MIN_RSA_BITS = 2048
CURVES = ("secp256r1", "secp384r1")
MAX_SNI = 25  # a bind line holds `crt FILE` per certificate, and haproxy reads at most 64 words a line
HSTS_MAX = 2 * 365 * 86400

_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\n([A-Za-z0-9+/=\n]+?)\n?-----END \1-----\n?")
KEY_BLOCKS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")
EC_PARAMETERS = "EC PARAMETERS"  # `openssl ecparam -genkey` writes it before the key: taken, and left off the node
MAX_PEM_BYTES = 1 << 20  # a certificate chain or key file: a few KB in practice
MAX_CHAIN = 8  # certificates in one chain
SYSTEM_ROOTS = "/etc/ssl/certs/ca-certificates.crt"  # Debian's and Ubuntu's bundle of trusted roots
WEAK_HASHES = (hashes.SHA1, hashes.MD5)


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
        default_factory=list,
        max_length=MAX_SNI,
        description=f"More certificates, each served to clients asking for a name in its SAN (at most {MAX_SNI}: "
        "haproxy reads at most 64 words on the bind line).",
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


@dataclass(frozen=True)
class FileRead:
    """A file read with bounds: its text, or why it cannot be used."""

    text: str | None
    why: str | None = None  # the value a problem shows, e.g. "<a DER (binary) certificate>"
    expected: str = "a readable PEM file"
    world_readable: bool = False


def read_file(path: str) -> FileRead:
    """A PEM file read as a certificate's must be: an absolute path to a regular file of at most
    MAX_PEM_BYTES, ASCII text; DER and PKCS#12 files are recognised and named. Never raises."""
    if not path.startswith("/"):
        return FileRead(None, show(path), "an absolute path to a PEM file on this machine")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        return FileRead(None, f"{show(path)} ({_os_reason(e)})", "a PEM file this user can read")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return FileRead(
                None, f"{show(path)} (not a regular file)", "a regular PEM file, not a device, FIFO or directory"
            )
        data = b""
        while len(data) <= MAX_PEM_BYTES and (chunk := os.read(fd, 1 << 16)):
            data += chunk
    except OSError as e:
        return FileRead(None, f"{show(path)} ({_os_reason(e)})", "a PEM file this user can read")
    finally:
        os.close(fd)
    if len(data) > MAX_PEM_BYTES or st.st_size > MAX_PEM_BYTES:
        return FileRead(None, f"<a file of more than {MAX_PEM_BYTES} bytes>", "a PEM file of at most 1 MiB")
    text, why, expected = pem_text(data)
    return FileRead(text, why, expected, bool(st.st_mode & stat.S_IROTH))


def _os_reason(e: OSError) -> str:
    return os.strerror(e.errno).lower() if e.errno else type(e).__name__


def pem_text(data: bytes) -> tuple[str | None, str | None, str]:
    """Bytes as PEM text, or (None, what they are, what to do)."""
    try:
        return data.decode("ascii"), None, ""
    except UnicodeDecodeError as e:
        start = e.start
    convert = "PEM text: convert it with `openssl {} -in FILE -out FILE.pem`"
    if data[:1] == b"\x30":  # a DER SEQUENCE
        for loader, what, tool in (
            (x509.load_der_x509_certificate, "a DER (binary) certificate", "x509 -inform der"),
            (lambda d: serialization.load_der_private_key(d, None), "a DER (binary) private key", "pkey -inform der"),
        ):
            try:
                loader(data)
                return None, f"<{what}>", convert.format(tool)
            except (ValueError, TypeError, UnsupportedAlgorithm):
                continue
        if _is_pkcs12(data):
            return (
                None,
                "<a PKCS#12 bundle>",
                (
                    "PEM files: `openssl pkcs12 -in FILE -nokeys -out chain.pem` and "
                    "`openssl pkcs12 -in FILE -nocerts -noenc -out key.pem`"
                ),
            )
        return None, "<a binary file>", "PEM text (-----BEGIN ...----- blocks)"
    return None, f"<text with a non-ASCII byte at offset {start}>", "PEM blocks and nothing else (ASCII)"


def _is_pkcs12(data: bytes) -> bool:
    try:
        pkcs12.load_pkcs12(data, None)
        return True
    except ValueError as e:
        return "password" in str(e).lower()  # a bundle with a password: still a bundle
    except (TypeError, UnsupportedAlgorithm):
        return False


def read_pem(c: Certificate) -> Pem:
    """The PEM texts of a certificate, from its secrets or its files (unreadable files: None)."""

    def text(secret: Secret | None, path: str | None) -> str | None:
        if secret is not None:
            return secret.value
        return read_file(path).text if path is not None else None

    return Pem(text(c.certificate, c.certificate_file), text(c.key, c.key_file))


def key_block(text: str) -> str:
    """The private key's PEM block of a key text (an EC PARAMETERS block before it left off)."""
    return next((m.group(0) for m in _BLOCK.finditer(text.strip() + "\n") if m.group(1) != EC_PARAMETERS), text)


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
    key_world_readable: bool = False


SUPPORTED_KEYS = "RSA of 2048 bits or more, or ECDSA on P-256 or P-384"


def _source(c: Certificate, key: str, which: str) -> str:
    """The config key a certificate's chain or key came from."""
    file = c.certificate_file if which == "certificate" else c.key_file
    return f"{key}.{which}File" if file is not None else f"{key}.{which}"


def _texts(c: Certificate, key: str, out: Problems) -> tuple[str, str, bool] | None:
    """The chain's and the key's text, bounded; None when one is missing, unreadable or still
    encrypted (problems in `out` for all but the last). The flag: the key file is world-readable."""
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
    texts: dict[str, str | None] = {}
    world_readable = False
    sources: list[tuple[str, Secret | None, str | None]] = [
        ("certificate", c.certificate, c.certificate_file),
        ("key", c.key, c.key_file),
    ]
    for which, value, path in sources:
        if path is not None:
            read = read_file(path)
            if read.why is not None:
                out.add(f"{key}.{which}File", read.why, read.expected)
            texts[which] = read.text
            world_readable |= which == "key" and read.world_readable
        else:
            texts[which] = value.value if value is not None else None
            if texts[which] is not None and len(texts[which] or "") > MAX_PEM_BYTES:
                out.add(
                    f"{key}.{which}",
                    f"<a secret of more than {MAX_PEM_BYTES} characters>",
                    "a PEM text of at most 1 MiB",
                )
    chain, private = texts["certificate"], texts["key"]
    if out or chain is None or private is None:
        return None  # still encrypted: checked when Pulumi decrypts it
    return chain, private, world_readable


def _load(c: Certificate, key: str, out: Problems) -> Loaded | None:
    texts = _texts(c, key, out)
    if texts is None:
        return None
    chain_pem, key_pem, world_readable = texts
    chain_key, key_key = _source(c, key, "certificate"), _source(c, key, "key")
    chain_kinds, key_kinds = blocks(chain_pem), blocks(key_pem)
    if chain_kinds is None:
        out.add(chain_key, "<text that is not only PEM blocks>", "PEM certificates and nothing else (no junk, no CR)")
    elif any(k in KEY_BLOCKS or "PRIVATE KEY" in k for k in chain_kinds):
        out.add(chain_key, "<a private key among the certificates>", f"certificates only: the key goes in `{key}.key`")
    elif set(chain_kinds) != {"CERTIFICATE"}:
        out.add(chain_key, f"<PEM blocks {sorted(set(chain_kinds))}>", "CERTIFICATE blocks only")
    elif len(chain_kinds) > MAX_CHAIN:
        out.add(chain_key, f"<a chain of {len(chain_kinds)} certificates>", f"at most {MAX_CHAIN} certificates")
    if key_kinds is None:
        out.add(key_key, "<secret that is not only a PEM block>", "one PEM private key and nothing else")
    elif key_kinds == ["ENCRYPTED PRIVATE KEY"]:
        out.add(key_key, "<an encrypted key>", "an unencrypted key: haproxy cannot ask for a passphrase")
    elif key_kinds not in ([k] for k in KEY_BLOCKS) and key_kinds != [EC_PARAMETERS, "EC PRIVATE KEY"]:
        out.add(key_key, f"<PEM blocks {key_kinds}>", "exactly one PRIVATE KEY block")
    if out:
        return None
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        out.add(chain_key, "<PEM that does not parse as X.509>", "the certificates as issued (PEM)")
        return None
    try:
        private = serialization.load_pem_private_key(key_block(key_pem).encode(), password=None)
    except UnsupportedAlgorithm:
        out.add(key_key, "<a key of a type this machine cannot read>", SUPPORTED_KEYS)
        return None
    except (ValueError, TypeError):
        out.add(key_key, "<a key that does not parse>", "an unencrypted PEM private key")
        return None
    return Loaded(chain, private, world_readable)


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
    """The DNS names a certificate is valid for (its SAN; none when its extensions do not parse)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [n.lower() for n in san.get_values_for_type(x509.DNSName)]


@lru_cache(maxsize=1)
def _public_suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list the package ships: nothing is fetched


def wildcard_ok(pattern: str) -> bool:
    """RFC 6125 §6.4.3 as browsers apply it: `*` is the whole left-most label, and what follows
    is neither a single label nor a public suffix (`*.com`, `*.co.uk` and `*.internal` cover nothing)."""
    rest = pattern[2:]
    return pattern.startswith("*.") and "*" not in rest and "." in rest and not _public_suffixes().is_public(rest)


def covers(name: str, pattern: str) -> bool:
    """Whether a certificate name (`pattern`) covers a host `name` (itself a wildcard for a route)."""
    name, pattern = name.lower(), pattern.lower()
    if pattern.startswith("*"):
        head, _, rest = name.partition(".")
        return wildcard_ok(pattern) and bool(head) and rest == pattern[2:]
    return name == pattern


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class Checked:
    """A certificate that passed: its leaf's names, expiry and fingerprint, and what is worth a
    warning (`notes`)."""

    key: str  # its config key
    names: list[str]
    not_after: datetime
    fingerprint: str
    notes: tuple[str, ...] = ()


ORDER = "the chain in order: the server's certificate first, then the one that issued it, and so on"


def check_certificate(c: Certificate, key: str, now: datetime, out: Problems) -> Checked | None:
    """Every problem of one certificate into `out`; what it is when it passed. Nothing from
    `cryptography` escapes as an exception: what it cannot read is a problem."""
    mine = Problems()
    loaded = _load(c, key, mine)
    chain_key, key_key = _source(c, key, "certificate"), _source(c, key, "key")
    if loaded is not None:
        try:
            if _key_problems(loaded, chain_key, key_key, mine):
                mine += _chain_problems(loaded.chain, chain_key, now)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            mine.add(chain_key, f"<a certificate this machine cannot check ({type(e).__name__})>", SUPPORTED_KEYS)
    out += mine
    if mine or loaded is None:
        return None
    leaf = loaded.chain[0]
    notes = (
        [f"`{key_key}` is readable by every user of this machine: `chmod 600` it"] if loaded.key_world_readable else []
    )
    notes += _missing_intermediate(loaded.chain)
    return Checked(key, names(leaf), leaf.not_valid_after_utc, fingerprint(leaf), tuple(notes))


def _key_problems(loaded: Loaded, chain_key: str, key_key: str, out: Problems) -> bool:
    """The key's type, and that it is the server's certificate's; False when the chain is out of
    order (the key belongs to a later certificate): nothing more is worth saying then."""
    why = _key_type(loaded.key)
    if why:
        out.add(key_key, f"<{why}>", SUPPORTED_KEYS)
    elif _public(loaded.key) != _public(loaded.chain[0]):
        if any(_public(loaded.key) == _public(c) for c in loaded.chain[1:]):
            out.add(chain_key, "<the key's certificate is not the first>", ORDER)
            return False
        out.add(
            key_key, "<a key that does not match the certificate>", f"the key of the first certificate in `{chain_key}`"
        )
    return True


def _which(i: int) -> str:
    return "the server's certificate" if i == 0 else f"certificate {i + 1} of the chain"


def _chain_problems(chain: list[x509.Certificate], chain_key: str, now: datetime) -> Problems:
    """Each certificate readable, signed with a strong hash and issued by the next, each valid
    now, and the server's naming its DNS hosts and usable for a server."""
    out = Problems()
    for i, cert in enumerate(chain):
        try:
            cert.extensions  # noqa: B018 (parses them all)
        except ValueError:
            out.add(
                chain_key, f"<{_which(i)}, with an extension that does not parse>", "certificates as a CA issues them"
            )
            return out
        weak = _weak_hash(cert)
        if weak:
            out.add(
                chain_key,
                f"<{_which(i)}, signed with {weak}>",
                "certificates signed with SHA-256 or stronger (clients refuse SHA-1 and MD5 signatures): have it reissued",
            )
    if out:
        return out
    for i, (cert, issuer) in enumerate(pairwise(chain)):
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            out.add(chain_key, f"<certificate {i + 2} did not issue certificate {i + 1}>", ORDER)
            break
    for i, cert in enumerate(chain):
        if cert.not_valid_after_utc <= now:
            out.add(
                chain_key,
                f"<{_which(i)}, expired on {cert.not_valid_after_utc:%Y-%m-%d}>",
                "a certificate that has not expired",
            )
        elif cert.not_valid_before_utc > now:
            out.add(
                chain_key, f"<{_which(i)}, valid from {cert.not_valid_before_utc:%Y-%m-%d}>", "a certificate valid now"
            )
    if not names(chain[0]):
        out.add(
            chain_key,
            "<a certificate with no DNS name in its SAN>",
            "a server certificate naming its hosts in subjectAltName",
        )
    if not _server_usage(chain[0]):
        out.add(
            chain_key,
            "<the server's certificate, whose extended key usage leaves out serverAuth>",
            "a certificate issued for TLS servers (extended key usage serverAuth)",
        )
    return out


def _weak_hash(cert: x509.Certificate) -> str:
    """ "SHA-1" or "MD5" when a certificate that is not self-signed is signed with it; else ""."""
    if cert.issuer == cert.subject:
        return ""  # a root's own signature is not checked by clients
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return "a hash this machine does not know"
    return {"sha1": "SHA-1", "md5": "MD5"}.get(algorithm.name, "") if algorithm is not None else ""


def _server_usage(leaf: x509.Certificate) -> bool:
    """No extended key usage, or one that allows a TLS server."""
    try:
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.SERVER_AUTH in usage or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usage


@lru_cache(maxsize=1)
def _trusted_subjects() -> frozenset[x509.Name]:
    """The subjects of the roots this machine trusts (empty when it has no bundle), each read on
    its own so that one odd root does not hide the others."""
    text = read_file(SYSTEM_ROOTS).text if os.path.exists(SYSTEM_ROOTS) else None
    out = set()
    for m in _BLOCK.finditer(text or ""):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. a root with a negative serial number
                out.add(x509.load_pem_x509_certificate(m.group(0).encode()).subject)
        except ValueError:
            continue
    return frozenset(out)


def _missing_intermediate(chain: list[x509.Certificate]) -> list[str]:
    """A chain of the server's certificate alone, issued by a CA that is not a root this machine
    trusts: clients that do not hold that intermediate cannot build the chain."""
    leaf = chain[0]
    if len(chain) > 1 or leaf.issuer == leaf.subject or leaf.issuer in _trusted_subjects():
        return []
    issuer = printable(leaf.issuer.rfc4514_string())[:80]
    return [
        f"the chain is the server's certificate alone, issued by {issuer}, which is not a root this machine "
        "trusts: append the intermediate certificate(s) after it, or clients cannot verify it"
    ]


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
                covered = ", ".join(sorted({printable(n)[:64] for c in good for n in c.names}))
                out.add(
                    f"{route_key}.host",
                    show(host),
                    f"a name one of the service's certificates covers ({covered[:300]})",
                )
    return out, good


def expiry_warnings(checked: list[Checked], now: datetime) -> list[str]:
    """Certificates with less than WARN_DAYS left, and each certificate's notes (a key file others
    can read, a missing intermediate)."""
    soon = now + timedelta(days=WARN_DAYS)
    out = [
        f"halb:{c.key}: the certificate expires on {c.not_after:%Y-%m-%d} ({(c.not_after - now).days} days): renew it"
        for c in checked
        if c.not_after <= soon
    ]
    return out + [f"halb:{c.key}: {note}" for c in checked for note in c.notes]


def utcnow() -> datetime:
    return datetime.now(UTC)
