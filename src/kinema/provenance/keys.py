"""The local signing keys: a certificate chain root CA → intermediate CA → signing cert.

`init_keys` makes the chain with `cryptography` (ECDSA P-256, signed with SHA-256, the
C2PA ES256 algorithm) and stores it under HOME/keys/:

    root_ca.pem            the local trust anchor (verify trusts manifests chaining to it)
    root_ca.key            its private key (0600)
    intermediate_ca.pem    the intermediate certificate
    intermediate_ca.key    its private key (0600)
    signing_chain.pem      the signing certificate then the intermediate (what C2PA embeds)
    signing.key            the signing private key (0600)

The folder is 0700. The chain is written into a temporary folder beside keys/ and renamed
into place, so a half-made chain is never used and two first writes cannot mix keys.
`watermark_key` derives a stable secret for the invisible watermark from the signing key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kinema.errors import InputError

KEYS_DIR = "keys"
ORGANIZATION = "kinema (local)"
ROOT_DAYS = 3650
INTERMEDIATE_DAYS = 3650
SIGNING_DAYS = 1825
WATERMARK_LABEL = b"kinema watermark key v1"


class ProvenanceError(InputError):
    """Signing, keys or manifest reading failed; the message is one line for the user."""


@dataclass(frozen=True)
class KeyPaths:
    """Where the files of one local certificate chain live."""

    folder: Path

    @property
    def root_cert(self) -> Path:
        """The root CA certificate: the local trust anchor."""
        return self.folder / "root_ca.pem"

    @property
    def root_key(self) -> Path:
        return self.folder / "root_ca.key"

    @property
    def intermediate_cert(self) -> Path:
        return self.folder / "intermediate_ca.pem"

    @property
    def intermediate_key(self) -> Path:
        return self.folder / "intermediate_ca.key"

    @property
    def signing_chain(self) -> Path:
        """The signing certificate followed by the intermediate, PEM."""
        return self.folder / "signing_chain.pem"

    @property
    def signing_key(self) -> Path:
        """The signing private key, PKCS#8 PEM."""
        return self.folder / "signing.key"

    def all_files(self) -> tuple[Path, ...]:
        return (
            self.root_cert,
            self.root_key,
            self.intermediate_cert,
            self.intermediate_key,
            self.signing_chain,
            self.signing_key,
        )

    def exist(self) -> bool:
        """Whether every file of the chain is present."""
        return all(p.is_file() for p in self.all_files())


def key_paths(home: Path) -> KeyPaths:
    """The key files' locations under a KINEMA_HOME (whether or not they exist)."""
    return KeyPaths(Path(home) / KEYS_DIR)


def init_keys(home: Path, force: bool = False) -> KeyPaths:
    """Create the local certificate chain under HOME/keys; refuse to replace one unless forced."""
    paths = key_paths(home)
    if paths.folder.exists() and not force:
        raise ProvenanceError(f"keys already exist in {paths.folder} (use force to replace them)")
    Path(home).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".keys-", dir=home))
    try:
        _write_chain(KeyPaths(staging))
        if force and paths.folder.exists():
            shutil.rmtree(paths.folder)
        os.rename(staging, paths.folder)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if paths.exist() and not force:  # another process made them first
            return paths
        raise ProvenanceError(f"cannot create keys in {paths.folder}: {exc}") from exc
    return paths


def ensure_keys(home: Path) -> tuple[KeyPaths, bool]:
    """The chain under HOME/keys, created on first use; returns (paths, created_now)."""
    paths = key_paths(home)
    if paths.exist():
        return paths, False
    if paths.folder.exists():
        missing = ", ".join(p.name for p in paths.all_files() if not p.is_file())
        raise ProvenanceError(f"incomplete keys in {paths.folder} (missing {missing})")
    try:
        return init_keys(home), True
    except ProvenanceError:
        if paths.exist():  # lost a race with another first write
            return paths, False
        raise


def watermark_key(home: Path) -> bytes:
    """A stable 32-byte secret for the watermark: HMAC-SHA256 of the signing key's scalar."""
    paths, _ = ensure_keys(home)
    key = load_private_key(paths.signing_key)
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    return hmac.new(scalar, WATERMARK_LABEL, hashlib.sha256).digest()


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Read an EC private key from PEM."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ProvenanceError(f"cannot read private key {path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ProvenanceError(f"{path} is not an EC private key")
    return key


def _write_chain(paths: KeyPaths) -> None:
    """Generate the three keys and certificates and write them into paths.folder."""
    os.chmod(paths.folder, 0o700)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)  # tolerate clock skew
    root_key, inter_key, signing_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _root_cert(root_key, now)
    inter = _intermediate_cert(inter_key, root, root_key, now)
    leaf = _signing_cert(signing_key, inter, inter_key, now)
    _write_private(paths.root_key, root_key)
    _write_private(paths.intermediate_key, inter_key)
    _write_private(paths.signing_key, signing_key)
    paths.root_cert.write_bytes(_pem(root))
    paths.intermediate_cert.write_bytes(_pem(inter))
    paths.signing_chain.write_bytes(_pem(leaf) + _pem(inter))


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        ]
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _signing_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(subject: str, issuer: x509.Name, public_key, start: dt.datetime, days: int):
    """A certificate builder with the fields every certificate of the chain shares."""
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _root_cert(key: ec.EllipticCurvePrivateKey, start: dt.datetime) -> x509.Certificate:
    """The self-signed root CA (may sign one level of intermediates)."""
    builder = _builder(
        "kinema local root CA", _name("kinema local root CA"), key.public_key(), start, ROOT_DAYS
    )
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
    builder = builder.add_extension(_ca_key_usage(), critical=True)
    return builder.sign(key, hashes.SHA256())


def _intermediate_cert(key, root: x509.Certificate, root_key, start) -> x509.Certificate:
    """The intermediate CA, signed by the root, that signs the signing certificate."""
    builder = _builder(
        "kinema local intermediate CA", root.subject, key.public_key(), start, INTERMEDIATE_DAYS
    )
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    builder = builder.add_extension(_ca_key_usage(), critical=True)
    builder = builder.add_extension(_authority_key_id(root_key), critical=False)
    return builder.sign(root_key, hashes.SHA256())


def _signing_cert(key, inter: x509.Certificate, inter_key, start) -> x509.Certificate:
    """The end-entity certificate that signs C2PA claims (EKU emailProtection)."""
    builder = _builder("kinema local signer", inter.subject, key.public_key(), start, SIGNING_DAYS)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    builder = builder.add_extension(_signing_key_usage(), critical=True)
    builder = builder.add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
    )
    builder = builder.add_extension(_authority_key_id(inter_key), critical=False)
    return builder.sign(inter_key, hashes.SHA256())


def _authority_key_id(issuer_key: ec.EllipticCurvePrivateKey) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a private key as unencrypted PKCS#8 PEM, readable by the owner only."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)
