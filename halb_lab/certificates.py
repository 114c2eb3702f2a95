"""Certificate files of every shape the config-trust review tried, made with the lab's CA: for the
round-three tests (tests/test_config_trust.py) and the fuzzer (halb_lab.fuzz). Nothing here is
trusted outside the lab; every file lives in a private temporary directory."""

from __future__ import annotations

import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from halb_lab.infra.ca import Authority

BAD_SAN = b"\x30\x03\x82\x05x"  # a subjectAltName whose DER ends too early


class Maker:
    """Writes certificate and key files of a given shape under `directory`, issued by `ca`."""

    def __init__(self, directory: Path, ca: Authority | None = None) -> None:
        self.dir, self.ca = directory, ca or Authority.create()
        self.now = datetime.now(UTC)
        self._n = 0

    def file(self, name: str, data: str | bytes, mode: int = 0o600) -> str:
        self._n += 1
        path = self.dir / f"{self._n:03d}-{name}"
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        path.chmod(mode)
        return str(path)

    def intermediate_pem(self) -> str:
        return self.ca.intermediate.public_bytes(serialization.Encoding.PEM).decode()

    def leaf(
        self,
        names: list[str],
        *,
        eku: list[x509.ObjectIdentifier] | None = None,
        raw_san: bytes | None = None,
        chain: bool = True,
        key: Any = None,
        days: float = 90,
        start: datetime | None = None,
    ) -> tuple[str, str]:
        """(chain file, key file): a P-256 leaf under the intermediate, which is appended unless
        `chain` is false."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        begin = start or self.now - timedelta(minutes=5)
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
            .issuer_name(self.ca.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(begin)
            .not_valid_after(begin + timedelta(days=days))
        )
        if raw_san is not None:
            b = b.add_extension(x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, raw_san), False)
        else:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        if eku is not None:
            b = b.add_extension(x509.ExtendedKeyUsage(eku), False)
        cert = b.sign(self.ca.intermediate_key, hashes.SHA256())  # type: ignore[arg-type]
        pem = cert.public_bytes(serialization.Encoding.PEM).decode() + (self.intermediate_pem() if chain else "")
        return self.file("leaf.pem", pem), self.file("leaf.key", pem_key(key))

    def good(self) -> tuple[str, str]:
        return self.leaf(["lab.internal", "api.lab.internal"])

    def der(self) -> str:
        cert = x509.load_pem_x509_certificate(Path(self.good()[0]).read_bytes())
        return self.file("cert.der", cert.public_bytes(serialization.Encoding.DER))

    def pkcs12(self) -> str:
        chain, key = self.good()
        private = serialization.load_pem_private_key(Path(key).read_bytes(), None)
        cert = x509.load_pem_x509_certificate(Path(chain).read_bytes())
        data = pkcs12.serialize_key_and_certificates(b"lab", private, cert, None, serialization.NoEncryption())  # type: ignore[arg-type]
        return self.file("bundle.p12", data)

    def bag_attributes_expired(self) -> str:
        """An expired chain behind a `Bag Attributes` header with a non-ASCII friendlyName, as
        `openssl pkcs12 -nokeys` writes it."""
        chain, _ = self.leaf(["lab.internal"], days=1, start=self.now - timedelta(days=5))
        header = "Bag Attributes\n    friendlyName: Zertifikat für Läden\n".encode()
        return self.file("bag.pem", header + Path(chain).read_bytes())

    def sparse(self, size: int) -> str:
        path = Path(self.file("huge.pem", b""))
        with path.open("r+b") as f:
            f.truncate(size)
        return str(path)

    def world_readable_key(self) -> tuple[str, str]:
        chain, key = self.good()
        Path(key).chmod(0o644)
        return chain, key

    def ec_parameters_key(self) -> tuple[str, str]:
        """A key as `openssl ecparam -genkey` writes it (EC PARAMETERS, then EC PRIVATE KEY), and
        its leaf."""
        key = ec.generate_private_key(ec.SECP256R1())
        params = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
        traditional = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ).decode()
        chain, _ = self.leaf(["lab.internal"], key=key)
        return chain, self.file("ecparam.key", params + traditional)

    def sha1_leaf(self) -> tuple[str, str]:
        """A leaf signed with SHA-1 (cryptography refuses to make one; openssl still does)."""
        inter_key = self.file("inter.key", pem_key(self.ca.intermediate_key))
        inter = self.file("inter.pem", self.intermediate_pem())
        key = self.file("sha1.key", openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"))
        csr = openssl("req", "-new", "-key", key, "-subj", "/CN=sha1")
        ext = self.file("san.ext", "subjectAltName=DNS:lab.internal\n")
        cert = openssl(
            "x509", "-req", "-sha1", "-days", "30", "-CA", inter, "-CAkey", inter_key, "-extfile", ext, stdin=csr
        )
        return self.file("sha1.pem", cert + self.intermediate_pem()), key

    def sm2_key(self) -> str:
        return self.file("sm2.key", openssl("genpkey", "-algorithm", "SM2"))


def pem_key(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    )


def openssl(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True, check=True).stdout


# The shapes the fuzzer draws from: name -> (certificate file, key file).
SHAPES = (
    "good",
    "der",
    "pkcs12",
    "non-ascii",
    "huge",
    "device",
    "directory",
    "client-auth",
    "public-suffix",
    "bad-san",
    "world-readable",
    "ec-parameters",
    "expired",
    "no-intermediate",
)


@lru_cache(maxsize=1)
def shape_files() -> dict[str, tuple[str, str]]:
    """One file pair of each shape, made once per process in a private temporary directory."""
    m = Maker(Path(tempfile.mkdtemp(prefix="halb-cert-shapes-")))
    good = m.good()
    out = {
        "good": good,
        "der": (m.der(), good[1]),
        "pkcs12": (m.pkcs12(), good[1]),
        "non-ascii": (m.bag_attributes_expired(), good[1]),
        "huge": (m.sparse(256 << 20), good[1]),
        "device": ("/dev/zero", good[1]),
        "directory": (good[0], str(m.dir)),
        "client-auth": m.leaf(["lab.internal"], eku=[ExtendedKeyUsageOID.CLIENT_AUTH]),
        "public-suffix": m.leaf(["*.com", "*.internal"]),
        "bad-san": m.leaf([], raw_san=BAD_SAN),
        "world-readable": m.world_readable_key(),
        "ec-parameters": m.ec_parameters_key(),
        "expired": m.leaf(["lab.internal"], days=1, start=m.now - timedelta(days=5)),
        "no-intermediate": m.leaf(["lab.internal"], chain=False),
    }
    assert set(out) == set(SHAPES)
    return out
