"""The development PKI: a CA for TPP client certificates, the gateway's server certificate and demo TPPs.

Everything is EC P-256 with SHA-256 signatures and is built with `cryptography` alone, so a fresh checkout
needs no `openssl` binary. The certificates follow the CA/Browser Forum shape (SKI/AKI, critical
BasicConstraints and KeyUsage, leaf validity of at most 397 days) so that strict verifiers - OpenSSL's
X509_STRICT, `cryptography.x509.verification` - accept them and tests exercise the real checks.

The building blocks are public because tests make extra certificates with them: one from an unknown CA,
an expired one.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.crypto import b64url, jwk_thumbprint, x5t_s256
from gateway.sandbox.profiles import PROFILES
from gateway.settings import KEY_ENCRYPTION_KEY_FILE

DEMO_TPPS = ("tpp-demo", "tpp-other")
AUDIT_KEY_FILES = ("audit.key", "audit-signing.key", "audit-signing.pub")
# The software-statement directory (UK OB Directory stand-in) whose key signs SSAs for dynamic client registration.
DIRECTORY_ISSUER = "obgw dev directory"
DEFAULT_REDIRECT_URI = "https://tpp.example.com/callback"
CUSTOMERS_FILE = "customers.json"  # the sandbox bank's demo customers' authenticator secrets (CONTRACT §4)

# notBefore is backdated so that a peer whose clock is a little behind still accepts a fresh certificate.
CLOCK_SKEW = timedelta(minutes=5)
CLIENT_CERT_DAYS = 365
TPP_ORGANISATION = "obgw demo TPP"

# File names a TPP may not take: they belong to the CA and the server.
_RESERVED_NAMES = frozenset({"ca", "server", "audit", "audit-signing"})  # their .pem/.key would be overwritten
# A TPP name becomes a file name and a client_id: keep it to characters that are safe in both.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Private members of a JWK (RFC 7518 §6.2.2 for EC, §6.3.2 for RSA).
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})


class PkiError(Exception):
    """The PKI cannot be created as asked (bad TPP name, incomplete CA directory); the message says why."""


@dataclasses.dataclass(frozen=True)
class Issued:
    """A certificate together with its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """PKCS#8, unencrypted: development keys are protected by file mode 0600, not by a passphrase."""
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def write(self, cert_path: Path, key_path: Path) -> None:
        cert_path.write_bytes(self.cert_pem())
        _write_private(key_path, self.key_pem())


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_private(path: Path, data: bytes) -> None:
    """Write with mode 0600 from the start, so the key is never readable by others, not even briefly."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # the file may have existed with a wider mode
        f.write(data)


def _builder(
    subject: x509.Name,
    issuer: Issued | None,
    key: ec.EllipticCurvePrivateKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    """The fields every certificate shares; `issuer=None` makes it self-signed."""
    issuer_public_key = (issuer.key if issuer else key).public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False)
    )


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
    )


def make_ca(common_name: str = "obgw dev CA", *, days: int = 1825) -> Issued:
    """A self-signed root that may sign leaf certificates only (path length 0)."""
    key = _new_key()
    not_before = _now() - CLOCK_SKEW
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "obgw dev"),
    ])
    cert = (
        _builder(subject, None, key, not_before, not_before + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue_server_cert(
    ca: Issued, hosts: Sequence[str] = ("localhost", "127.0.0.1", "::1"), *, days: int = 397
) -> Issued:
    """A TLS server certificate for `hosts` (DNS names or IP addresses), named in the SAN as RFC 6125 requires."""
    if not hosts:
        raise PkiError("a server certificate needs at least one host")
    key = _new_key()
    not_before = _now() - CLOCK_SKEW
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "obgw dev"),
    ])
    cert = (
        _builder(subject, ca, key, not_before, not_before + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


def tpp_uri(name: str) -> str:
    """The URI in a TPP certificate's SAN: RFC 5280 path validators for client certificates (webpki,
    `cryptography.x509.verification`) require a SAN, and a URI is what RFC 8705 §2.1.2 `tls_client_auth_san_uri`
    matches on."""
    return f"urn:obgw:tpp:{name}"


def issue_client_cert(
    ca: Issued, name: str, *, not_before: datetime | None = None, not_after: datetime | None = None
) -> Issued:
    """A TLS client (transport) certificate for the TPP `name`: CN=name, O=obgw demo TPP, EKU clientAuth,
    SAN URI urn:obgw:tpp:<name>.

    By default it is valid from a few minutes ago for CLIENT_CERT_DAYS. A `not_after` in the past without a
    `not_before` gives an expired certificate that was valid for the day before `not_after`.
    """
    if not_before is None:
        not_before = _now() - CLOCK_SKEW
        if not_after is not None and not_after <= not_before:  # an expired certificate was asked for
            not_before = not_after - timedelta(days=1)
    if not_after is None:
        not_after = not_before + timedelta(days=CLIENT_CERT_DAYS)
    if not_after <= not_before:
        raise PkiError(f"certificate for {name}: not_after ({not_after}) must be later than not_before ({not_before})")
    key = _new_key()
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, TPP_ORGANISATION),
    ])
    cert = (
        _builder(subject, ca, key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(tpp_uri(name))]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


def make_signing_jwk() -> dict:
    """A private EC P-256 JWK for ES256: signs `private_key_jwt` client assertions (RFC 7523) and JWS.

    It is a separate key from the TLS client key, as in UK Open Banking, where transport and signing keys differ.
    """
    numbers = _new_key().private_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.public_numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.public_numbers.y.to_bytes(32, "big")),
        "d": b64url(numbers.private_value.to_bytes(32, "big")),
        "alg": "ES256",
        "use": "sig",
    }
    jwk["kid"] = jwk_thumbprint(jwk)
    return jwk


def public_jwk(private_jwk: dict) -> dict:
    """The JWK without its private members: what a TPP registers and the gateway verifies with."""
    return {k: v for k, v in private_jwk.items() if k not in _PRIVATE_JWK_MEMBERS}


def thumbprint_sha256(cert: x509.Certificate) -> str:
    """The RFC 8705 §3.1 `x5t#S256` value: base64url (no padding) of SHA-256 over the certificate's DER."""
    return x5t_s256(cert.public_bytes(serialization.Encoding.DER))


def load_ca(directory: Path) -> Issued:
    """The CA in `directory` (ca.pem + ca.key), to sign further certificates with."""
    try:
        cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise PkiError(f"incomplete CA in {directory}: {Path(exc.filename).name} is missing") from None
    except ValueError as exc:  # not PEM, or not a certificate/key
        raise PkiError(f"cannot read the CA in {directory}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{directory / 'ca.key'} is not an EC private key")
    if key.public_key() != cert.public_key():
        raise PkiError(f"{directory / 'ca.key'} does not belong to {directory / 'ca.pem'}")
    return Issued(cert, key)


def _check_names(tpps: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in tpps:
        if not _NAME_RE.fullmatch(name) or name in _RESERVED_NAMES:
            raise PkiError(
                f"bad TPP name {name!r}: use 1-64 letters, digits, '.', '_' or '-', not "
                + ", ".join(f"'{reserved}'" for reserved in sorted(_RESERVED_NAMES))
            )
        if name in seen:
            raise PkiError(f"TPP {name!r} given twice")
        seen.add(name)


def _write_tpp(ca: Issued, out_dir: Path, name: str, redirect_uri: str) -> list[Path]:
    cert_path, key_path, json_path = (out_dir / f"{name}{ext}" for ext in (".pem", ".key", ".json"))
    issue_client_cert(ca, name).write(cert_path, key_path)
    registration = {
        "client_id": name,
        "redirect_uri": redirect_uri,
        "cert": str(cert_path),
        "key": str(key_path),
        "private_jwk": make_signing_jwk(),
    }
    # The JSON holds a private key too.
    _write_private(json_path, (json.dumps(registration, indent=2) + "\n").encode("utf-8"))
    return [cert_path, key_path, json_path]


def _write_directory(key_path: Path, jwks_path: Path) -> list[Path]:
    """The directory's signing key (private, to sign software statements) and its public JWKS (the gateway's trust)."""
    jwk = make_signing_jwk()
    _write_private(key_path, (json.dumps({"iss": DIRECTORY_ISSUER, "private_jwk": jwk}, indent=2) + "\n").encode())
    jwks_path.write_text(json.dumps({"keys": [public_jwk(jwk)]}, indent=2) + "\n")
    return [key_path, jwks_path]


def _write_audit_keys(out_dir: Path) -> list[Path]:
    """The audit log's pseudonym key (32 random bytes, hex) and checkpoint signing key (Ed25519, PKCS#8) with its
    public half: what gateway/audit/key_files.py reads."""
    pseudonym_key, signing_key, public_key = (out_dir / name for name in AUDIT_KEY_FILES)
    _write_private(pseudonym_key, os.urandom(32).hex().encode() + b"\n")
    key = Ed25519PrivateKey.generate()
    _write_private(signing_key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    public_key.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    return [pseudonym_key, signing_key, public_key]


def customers_document() -> bytes:
    """`{"alice": {"totp_secret": <base32>}, ...}` by username: what a demo customer's authenticator app is given.
    The secrets are the sandbox bank's fixed, published demo values (gateway.sandbox.profiles)."""
    customers = {p.customer.username: {"totp_secret": p.totp_secret} for p in PROFILES}
    return (json.dumps(customers, indent=2) + "\n").encode()


def init_dev_pki(
    out_dir: Path,
    tpps: Sequence[str] = DEMO_TPPS,
    redirect_uri: str = DEFAULT_REDIRECT_URI,
    *,
    force: bool = False,
) -> list[Path]:
    """Create the development PKI in `out_dir`; return the paths written, in order.

    Writes ca.pem/ca.key, directory.json/directory-jwks.json (the DCR software-statement signer), server.pem (the
    leaf followed by the CA: the chain a TLS server sends) /server.key, audit.key/audit-signing.key/.pub (the audit
    log's pseudonym and checkpoint-signing keys), signing.kek (the key that encrypts the token-signing keys in
    Redis), customers.json (the demo customers' authenticator secrets), and per TPP <name>.pem/.key/.json. Without
    `force`, an existing CA is kept, as is every complete set of files, so re-running never invalidates certificates
    already handed out; only what is missing is issued, signed by the existing CA. `force`, or a missing ca.pem,
    replaces everything (files of TPPs not named are left alone) but the audit keys and signing.kek, which no CA
    invalidates: a new pseudonym key would rename every customer in the log, and a new key-encryption key could not
    open the signing keys already stored.
    """
    _check_names(tpps)
    parts = urlsplit(redirect_uri)  # FAPI requires https redirect URIs
    if not (parts.scheme == "https" and parts.netloc):
        raise PkiError(f"bad redirect URI {redirect_uri!r}: must be an absolute https:// URL")
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_pem, ca_key = out_dir / "ca.pem", out_dir / "ca.key"
    server_pem, server_key = out_dir / "server.pem", out_dir / "server.key"
    written: list[Path] = []

    # A new CA invalidates every certificate the old one signed, so all of them are issued again.
    new_ca = force or not ca_pem.exists()
    if new_ca:
        ca = make_ca()
        ca.write(ca_pem, ca_key)
        written += [ca_pem, ca_key]
    else:
        ca = load_ca(out_dir)

    if new_ca or not (server_pem.exists() and server_key.exists()):
        server = issue_server_cert(ca)
        server_pem.write_bytes(server.cert_pem() + ca.cert_pem())
        _write_private(server_key, server.key_pem())
        written += [server_pem, server_key]

    directory_key, directory_jwks = out_dir / "directory.json", out_dir / "directory-jwks.json"
    if new_ca or not (directory_key.exists() and directory_jwks.exists()):
        written += _write_directory(directory_key, directory_jwks)

    if not all((out_dir / name).exists() for name in AUDIT_KEY_FILES):
        written += _write_audit_keys(out_dir)

    kek = out_dir / KEY_ENCRYPTION_KEY_FILE
    if not kek.exists():
        _write_private(kek, os.urandom(32).hex().encode() + b"\n")  # 256 bits, as hex (gateway.oauth.signing_keys)
        written.append(kek)

    # Not a key this run makes but the bank's published demo secrets: written whenever it is missing or differs.
    customers = out_dir / CUSTOMERS_FILE
    if not customers.exists() or customers.read_bytes() != customers_document():
        _write_private(customers, customers_document())  # owner-only like every credential here, published or not
        written.append(customers)

    for name in tpps:
        files = [out_dir / f"{name}{ext}" for ext in (".pem", ".key", ".json")]
        if new_ca or not all(path.exists() for path in files):
            written += _write_tpp(ca, out_dir, name, redirect_uri)
    return written
