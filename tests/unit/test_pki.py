"""The development PKI: certificates that strict verifiers accept, keys kept private, idempotent `init_dev_pki`."""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import socket
import ssl
import stat
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    DNSName,
    IPAddress,
    PolicyBuilder,
    Store,
    VerificationError,
)

from gateway import pki

TPPS = ("tpp-demo", "tpp-other")
CONTRACT_FILES = {"ca.pem", "ca.key", "server.pem", "server.key", "directory.json", "directory-jwks.json"} | {
    f"{name}{ext}" for name in TPPS for ext in (".pem", ".key", ".json")
}


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki") / "dev"
    pki.init_dev_pki(out)
    return out


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def _ext(cert: x509.Certificate, kind: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


def _policy(ca: x509.Certificate) -> PolicyBuilder:
    return PolicyBuilder().store(Store([ca]))


# --- verification with cryptography.x509.verification ---------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [DNSName("localhost"), IPAddress(ipaddress.ip_address("127.0.0.1")), IPAddress(ipaddress.ip_address("::1"))],
    ids=["localhost", "127.0.0.1", "::1"],
)
def test_server_cert_verifies_for_local_hosts(pki_dir: Path, subject) -> None:
    ca = _cert(pki_dir / "ca.pem")
    leaf, *rest = x509.load_pem_x509_certificates((pki_dir / "server.pem").read_bytes())
    assert rest == [ca]  # server.pem is the chain a TLS server sends: leaf, then CA
    chain = _policy(ca).build_server_verifier(subject).verify(leaf, [])
    assert chain == [leaf, ca]


def test_server_cert_is_not_valid_for_other_hosts(pki_dir: Path) -> None:
    ca, leaf = _cert(pki_dir / "ca.pem"), _cert(pki_dir / "server.pem")
    with pytest.raises(VerificationError):
        _policy(ca).build_server_verifier(DNSName("bank.example.com")).verify(leaf, [])


@pytest.mark.parametrize("name", TPPS)
def test_client_cert_verifies(pki_dir: Path, name: str) -> None:
    ca, leaf = _cert(pki_dir / "ca.pem"), _cert(pki_dir / f"{name}.pem")
    verified = _policy(ca).build_client_verifier().verify(leaf, [])
    assert verified.chain == [leaf, ca]
    assert verified.subjects == [x509.UniformResourceIdentifier(pki.tpp_uri(name))]


def test_server_cert_is_not_a_client_cert(pki_dir: Path) -> None:
    ca, leaf = _cert(pki_dir / "ca.pem"), _cert(pki_dir / "server.pem")
    with pytest.raises(VerificationError):
        _policy(ca).build_client_verifier().verify(leaf, [])


def test_expired_client_cert_is_rejected(pki_dir: Path) -> None:
    ca = pki.load_ca(pki_dir)
    expired = pki.issue_client_cert(ca, "tpp-expired", not_after=datetime.now(timezone.utc) - timedelta(days=1))
    assert expired.cert.not_valid_before_utc < expired.cert.not_valid_after_utc
    with pytest.raises(VerificationError):
        _policy(ca.cert).build_client_verifier().verify(expired.cert, [])


def test_client_cert_from_another_ca_is_rejected(pki_dir: Path) -> None:
    rogue = pki.issue_client_cert(pki.make_ca("rogue CA"), "tpp-demo")
    with pytest.raises(VerificationError):
        _policy(_cert(pki_dir / "ca.pem")).build_client_verifier().verify(rogue.cert, [])


def test_validity_window_must_not_be_empty() -> None:
    now = datetime.now(timezone.utc)
    with pytest.raises(pki.PkiError, match="must be later"):
        pki.issue_client_cert(pki.make_ca(), "tpp-demo", not_before=now, not_after=now)


# --- certificate contents --------------------------------------------------------------------------------------


def test_ca_extensions(pki_dir: Path) -> None:
    ca = _cert(pki_dir / "ca.pem")
    assert ca.issuer == ca.subject
    bc = _ext(ca, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = _ext(ca, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    ski = _ext(ca, x509.SubjectKeyIdentifier).value
    assert _ext(ca, x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert timedelta(days=1825) <= lifetime <= timedelta(days=1826)


def test_server_extensions(pki_dir: Path) -> None:
    server = _cert(pki_dir / "server.pem")
    san = _ext(server, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert list(_ext(server, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    bc = _ext(server, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = _ext(server, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign


@pytest.mark.parametrize("name", TPPS)
def test_client_extensions(pki_dir: Path, name: str) -> None:
    cert = _cert(pki_dir / f"{name}.pem")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "obgw demo TPP"
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not _ext(cert, x509.BasicConstraints).value.ca
    assert _ext(cert, x509.KeyUsage).value.digital_signature
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"urn:obgw:tpp:{name}"]


@pytest.mark.parametrize("name", ["server", *TPPS])
def test_leaf_profile(pki_dir: Path, name: str) -> None:
    ca, leaf = _cert(pki_dir / "ca.pem"), _cert(pki_dir / f"{name}.pem")
    assert leaf.issuer == ca.subject
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(leaf.public_key().curve, ec.SECP256R1)
    aki = _ext(leaf, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(ca, x509.SubjectKeyIdentifier).value.digest
    now = datetime.now(timezone.utc)
    assert now - timedelta(minutes=10) < leaf.not_valid_before_utc < now - timedelta(minutes=1)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= timedelta(days=397)


def test_serial_numbers_are_random(pki_dir: Path) -> None:
    serials = {_cert(pki_dir / f"{name}.pem").serial_number for name in ("ca", "server", *TPPS)}
    assert len(serials) == 4 and all(s.bit_length() > 64 for s in serials)


# --- files -----------------------------------------------------------------------------------------------------


def test_init_writes_exactly_the_contract_files_and_the_audit_keys(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dev"  # parents are created too
    written = pki.init_dev_pki(out)
    expected = CONTRACT_FILES | set(pki.AUDIT_KEY_FILES) | {pki.KEY_ENCRYPTION_KEY_FILE, pki.CUSTOMERS_FILE}
    assert {p.name for p in written} == expected and len(written) == len(expected)
    assert all(p.parent == out for p in written)
    assert {p.name for p in out.iterdir()} == expected


def test_the_audit_keys_are_what_the_audit_log_reads(pki_dir: Path) -> None:
    from gateway.audit.key_files import (
        load_pseudonym_key,
        load_public_key,
        load_signing_key,
    )
    assert len(load_pseudonym_key(pki_dir / "audit.key")) == 32
    assert load_signing_key(pki_dir / "audit-signing.key").public_key() == load_public_key(
        pki_dir / "audit-signing.pub")


@pytest.mark.parametrize("name", ["audit", "audit-signing"])
def test_a_tpp_may_not_take_an_audit_key_files_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(pki.PkiError, match="bad TPP name"):
        pki.init_dev_pki(tmp_path, tpps=(name,))


def test_the_key_encryption_key_is_what_the_signing_keys_are_sealed_with_and_is_never_replaced(tmp_path: Path):
    from gateway.oauth.signing_keys import KeyEncryptionKey, new_key_record
    pki.init_dev_pki(tmp_path)
    kek = tmp_path / "signing.kek"
    kid, record = new_key_record(KeyEncryptionKey.load(kek))
    before = kek.read_bytes()
    pki.init_dev_pki(tmp_path, force=True)  # a new CA, but the key that opens the stored signing keys stays
    assert kek.read_bytes() == before and KeyEncryptionKey.load(kek).open(kid, record["sealed_private_key"])


@pytest.mark.parametrize("name", ["ca.key", "server.key", "audit.key", "audit-signing.key", "signing.kek",
                                  *(f"{t}{ext}" for t in TPPS for ext in (".key", ".json"))])
def test_private_files_are_mode_0600(pki_dir: Path, name: str) -> None:
    assert stat.S_IMODE((pki_dir / name).stat().st_mode) == 0o600


@pytest.mark.parametrize("name", ["ca", "server", *TPPS])
def test_keys_are_unencrypted_pkcs8_and_match_their_certs(pki_dir: Path, name: str) -> None:
    pem = (pki_dir / f"{name}.key").read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(pem, password=None)
    assert key.public_key() == _cert(pki_dir / f"{name}.pem").public_key()


@pytest.mark.parametrize("name", TPPS)
def test_tpp_json(pki_dir: Path, name: str) -> None:
    reg = json.loads((pki_dir / f"{name}.json").read_text())
    assert set(reg) == {"client_id", "redirect_uri", "cert", "key", "private_jwk"}
    assert reg["client_id"] == name
    assert reg["redirect_uri"] == "https://tpp.example.com/callback"
    assert reg["cert"] == str(pki_dir / f"{name}.pem") and reg["key"] == str(pki_dir / f"{name}.key")
    jwk = reg["private_jwk"]
    expected = {"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig"}
    assert {k: jwk[k] for k in expected} == expected
    assert "d" in jwk
    # The signing key is not the TLS key.
    tls_public = _cert(pki_dir / f"{name}.pem").public_key().public_numbers()
    assert jwt.PyJWK(jwk).key.public_key().public_numbers() != tls_public


def test_tpp_json_paths_stay_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pki.init_dev_pki(Path("certs/dev"), ["tpp-demo"])
    reg = json.loads((tmp_path / "certs/dev/tpp-demo.json").read_text())
    assert (reg["cert"], reg["key"]) == ("certs/dev/tpp-demo.pem", "certs/dev/tpp-demo.key")


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    pki.init_dev_pki(tmp_path)
    before = _snapshot(tmp_path)
    assert pki.init_dev_pki(tmp_path) == []
    assert _snapshot(tmp_path) == before


def test_second_run_fills_in_missing_tpps_with_the_existing_ca(tmp_path: Path) -> None:
    pki.init_dev_pki(tmp_path)
    (tmp_path / "tpp-other.key").unlink()  # an incomplete set is issued afresh: cert and key must match
    before = _snapshot(tmp_path)
    written = pki.init_dev_pki(tmp_path, [*TPPS, "tpp-third"])
    expected = [f"{n}{ext}" for n in ("tpp-other", "tpp-third") for ext in (".pem", ".key", ".json")]
    assert [p.name for p in written] == expected
    after = _snapshot(tmp_path)
    assert {k: after[k] for k in before if not k.startswith("tpp-other")} == {
        k: v for k, v in before.items() if not k.startswith("tpp-other")
    }
    ca = _cert(tmp_path / "ca.pem")
    for name in ("tpp-other", "tpp-third"):
        _policy(ca).build_client_verifier().verify(_cert(tmp_path / f"{name}.pem"), [])


def test_force_replaces_everything(tmp_path: Path) -> None:
    pki.init_dev_pki(tmp_path)
    before = _snapshot(tmp_path)
    written = pki.init_dev_pki(tmp_path, force=True)
    assert {p.name for p in written} == CONTRACT_FILES
    after = _snapshot(tmp_path)
    assert all(after[name] != before[name] for name in CONTRACT_FILES)


def test_missing_ca_replaces_everything(tmp_path: Path) -> None:
    pki.init_dev_pki(tmp_path)
    (tmp_path / "ca.pem").unlink()
    assert {p.name for p in pki.init_dev_pki(tmp_path)} == CONTRACT_FILES
    _policy(_cert(tmp_path / "ca.pem")).build_client_verifier().verify(_cert(tmp_path / "tpp-demo.pem"), [])


def test_missing_server_cert_is_reissued_by_the_existing_ca(tmp_path: Path) -> None:
    pki.init_dev_pki(tmp_path)
    (tmp_path / "server.pem").unlink()
    assert [p.name for p in pki.init_dev_pki(tmp_path)] == ["server.pem", "server.key"]
    _policy(_cert(tmp_path / "ca.pem")).build_server_verifier(DNSName("localhost")).verify(
        _cert(tmp_path / "server.pem"), []
    )


def test_ca_without_its_key_is_an_error(tmp_path: Path) -> None:
    pki.init_dev_pki(tmp_path, ["tpp-demo"])
    (tmp_path / "ca.key").unlink()
    with pytest.raises(pki.PkiError, match="ca.key is missing"):
        pki.init_dev_pki(tmp_path, ["tpp-new"])


@pytest.mark.parametrize(
    ("tpps", "redirect_uri", "message"),
    [
        (["ca"], pki.DEFAULT_REDIRECT_URI, "bad TPP name"),
        (["../evil"], pki.DEFAULT_REDIRECT_URI, "bad TPP name"),
        ([""], pki.DEFAULT_REDIRECT_URI, "bad TPP name"),
        (["tpp-demo", "tpp-demo"], pki.DEFAULT_REDIRECT_URI, "given twice"),
        (["tpp-demo"], "http://tpp.example.com/callback", "bad redirect URI"),
        (["tpp-demo"], "/callback", "bad redirect URI"),
    ],
)
def test_bad_input_writes_nothing(tmp_path: Path, tpps: list[str], redirect_uri: str, message: str) -> None:
    with pytest.raises(pki.PkiError, match=message):
        pki.init_dev_pki(tmp_path / "dev", tpps, redirect_uri)
    assert not (tmp_path / "dev").exists()


def test_load_ca_round_trips(pki_dir: Path) -> None:
    ca = pki.load_ca(pki_dir)
    assert ca.cert_pem() == (pki_dir / "ca.pem").read_bytes()
    assert ca.key_pem() == (pki_dir / "ca.key").read_bytes()


def test_issued_write_makes_only_the_key_private(tmp_path: Path) -> None:
    (tmp_path / "old.key").write_bytes(b"stale")
    (tmp_path / "old.key").chmod(0o644)
    pki.make_ca().write(tmp_path / "x.pem", tmp_path / "old.key")
    assert stat.S_IMODE((tmp_path / "old.key").stat().st_mode) == 0o600
    assert (tmp_path / "old.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


# --- JWKs and thumbprints --------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_private_jwk_signs_es256_and_public_jwk_verifies() -> None:
    private = pki.make_signing_jwk()
    public = pki.public_jwk(private)
    assert "d" not in public and {k: v for k, v in private.items() if k != "d"} == public
    token = jwt.encode({"iss": "tpp-demo", "aud": "obgw"}, jwt.PyJWK(private).key, algorithm="ES256",
                       headers={"kid": private["kid"]})
    assert jwt.get_unverified_header(token)["kid"] == public["kid"]
    claims = jwt.decode(token, jwt.PyJWK(public).key, algorithms=["ES256"], audience="obgw")
    assert claims["iss"] == "tpp-demo"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, jwt.PyJWK(pki.public_jwk(pki.make_signing_jwk())).key, algorithms=["ES256"], audience="obgw")


def test_kid_is_the_rfc7638_thumbprint() -> None:
    jwk = pki.make_signing_jwk()
    # RFC 7638 §3.2: the required EC members in lexicographic order, no whitespace.
    canonical = f'{{"crv":"P-256","kty":"EC","x":"{jwk["x"]}","y":"{jwk["y"]}"}}'
    assert jwk["kid"] == _b64url(hashlib.sha256(canonical.encode()).digest())


def test_signing_keys_are_fresh() -> None:
    assert pki.make_signing_jwk()["kid"] != pki.make_signing_jwk()["kid"]


def test_thumbprint_sha256_is_x5t_s256(pki_dir: Path) -> None:
    cert = _cert(pki_dir / "tpp-demo.pem")
    value = pki.thumbprint_sha256(cert)
    assert value == _b64url(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())
    assert len(value) == 43 and "=" not in value


# --- a real mutual-TLS handshake -------------------------------------------------------------------------------


def _handshake(
    pki_dir: Path, client: pki.Issued | str, server_hostname: str
) -> tuple[bytes | None, BaseException | None]:
    """Run a TLS server and client over a socket pair; return the client certificate the server saw (DER) or
    the server's error. Strict X.509 checking on both sides, as Python 3.13's default contexts do."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki_dir / "server.pem", pki_dir / "server.key")
    server_ctx.load_verify_locations(pki_dir / "ca.pem")
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    server_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    client_ctx = ssl.create_default_context(cafile=pki_dir / "ca.pem")
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    if isinstance(client, str):
        client_ctx.load_cert_chain(pki_dir / f"{client}.pem", pki_dir / f"{client}.key")
    else:
        cert_path, key_path = pki_dir.parent / "extra.pem", pki_dir.parent / "extra.key"
        client.write(cert_path, key_path)
        client_ctx.load_cert_chain(cert_path, key_path)

    server_sock, client_sock = socket.socketpair()
    server_sock.settimeout(5)
    client_sock.settimeout(5)
    seen: list[bytes | None] = []
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(server_sock, server_side=True) as tls:
                seen.append(tls.getpeercert(binary_form=True))
                tls.sendall(b"ok")
        except (OSError, ssl.SSLError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(client_sock, server_hostname=server_hostname) as tls:
            tls.recv(2)
    except (OSError, ssl.SSLError):
        pass  # the server's verdict is what the tests look at
    finally:
        thread.join(10)
        server_sock.close()
        client_sock.close()
    assert not thread.is_alive()
    return (seen[0] if seen else None), (errors[0] if errors else None)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_mutual_tls_handshake(pki_dir: Path, host: str) -> None:
    der, error = _handshake(pki_dir, "tpp-demo", host)
    assert error is None
    cert = _cert(pki_dir / "tpp-demo.pem")
    assert der == cert.public_bytes(serialization.Encoding.DER)
    assert pki.thumbprint_sha256(x509.load_der_x509_certificate(der)) == pki.thumbprint_sha256(cert)


def test_tls_server_rejects_a_client_cert_from_another_ca(pki_dir: Path) -> None:
    der, error = _handshake(pki_dir, pki.issue_client_cert(pki.make_ca("rogue CA"), "tpp-demo"), "127.0.0.1")
    assert der is None
    assert isinstance(error, ssl.SSLCertVerificationError)
