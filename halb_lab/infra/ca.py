"""The lab's own certificate authority and the certificates it issues (with `cryptography`), for
the TLS stack, its drills and the certificate tests. Nothing here is trusted outside the lab."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from halb_lab.infra.topology import STATE

TLS_DIR = STATE / "tls-ca"  # the lab CA and the stack's certificates (mode 0600 keys)
NAMES = ["lab.internal", "www.lab.internal", "api.lab.internal"]
TLS_NAME = NAMES[0]  # the name lab clients ask for


@dataclass(frozen=True)
class Issued:
    """PEM texts: the chain (leaf first, then the intermediate) and the leaf's key."""

    chain: str
    key: str
    fingerprint: str  # sha256 of the leaf, hex


def _pem_key(key: object) -> str:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "halb lab"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _cert(
    subject: str,
    public: object,
    issuer: x509.Name | None,
    signer: object,
    ca: bool,
    names: list[str] | None = None,
    days: float = 90,
    start: datetime | None = None,
) -> x509.Certificate:
    now = start or datetime.now(UTC) - timedelta(minutes=5)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer or _name(subject))
        .public_key(public)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return b.sign(signer, hashes.SHA256())  # type: ignore[arg-type]


@dataclass(frozen=True)
class Authority:
    """A root and an intermediate; `issue` makes server certificates under the intermediate."""

    root: x509.Certificate
    intermediate: x509.Certificate
    intermediate_key: object

    @classmethod
    def create(cls) -> Authority:
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = _cert("halb lab root CA", root_key.public_key(), None, root_key, ca=True, days=3650)
        inter_key = ec.generate_private_key(ec.SECP256R1())
        inter = _cert("halb lab intermediate CA", inter_key.public_key(), root.subject, root_key, ca=True, days=1825)
        return cls(root, inter, inter_key)

    @property
    def root_pem(self) -> str:
        return _pem_cert(self.root)

    def save(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (directory / "root.pem").write_text(self.root_pem)
        (directory / "intermediate.pem").write_text(_pem_cert(self.intermediate))
        key = directory / "intermediate.key"
        key.touch(mode=0o600)
        key.write_text(_pem_key(self.intermediate_key))

    @classmethod
    def load(cls, directory: Path) -> Authority:
        return cls(
            x509.load_pem_x509_certificate((directory / "root.pem").read_bytes()),
            x509.load_pem_x509_certificate((directory / "intermediate.pem").read_bytes()),
            serialization.load_pem_private_key((directory / "intermediate.key").read_bytes(), None),
        )

    def issue(
        self, names: list[str] | None = None, days: float = 90, kind: str = "ec", start: datetime | None = None
    ) -> Issued:
        key: object
        if kind == "ec":
            key = ec.generate_private_key(ec.SECP256R1())
        elif kind.startswith("rsa"):
            key = rsa.generate_private_key(65537, int(kind[3:] or 2048))
        else:
            raise ValueError(f"unknown key kind {kind}")
        names = names or NAMES
        leaf = _cert(
            names[0], key.public_key(), self.intermediate.subject, self.intermediate_key, False, names, days, start
        )
        return Issued(
            _pem_cert(leaf) + _pem_cert(self.intermediate), _pem_key(key), leaf.fingerprint(hashes.SHA256()).hex()
        )


def write(issued: Issued, stem: Path) -> tuple[Path, Path]:
    """`stem`.pem (the chain) and `stem`.key (mode 0600); returns both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    chain, key = stem.with_suffix(".pem"), stem.with_suffix(".key")
    key.touch(mode=0o600)
    key.write_text(issued.key)
    chain.write_text(issued.chain)
    return chain, key


ROOT_PEM = TLS_DIR / "root.pem"  # what clients in the lab trust
STACK_CERT = TLS_DIR / "lab"  # lab.pem (the chain) and lab.key: stack lab-tls's certificate files


def ensure() -> Authority:
    """The lab's CA (made once) and the lab-tls stack's certificate (issued when missing)."""
    if (TLS_DIR / "intermediate.key").exists():
        ca = Authority.load(TLS_DIR)
    else:
        ca = Authority.create()
        ca.save(TLS_DIR)
    if not STACK_CERT.with_suffix(".pem").exists():
        write(ca.issue(), STACK_CERT)
    return ca
