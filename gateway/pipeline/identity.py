"""The TPP's transport identity: the verified client certificate (RFC 8705), from the TLS layer or a trusted proxy.

Two sources, one result (`ClientCertificate`):
- direct TLS: the server verified the chain at the handshake; `server.py` puts it into the ASGI scope in the TLS
  extension shape (`scope["extensions"]["tls"]["client_cert_chain"]`, PEM strings, leaf first);
- behind a TLS-terminating proxy: the RFC 9440 `Client-Cert` header, honoured only from configured proxy addresses
  and verified again here against the trusted CAs; it is stripped from every request, honoured or not.
"""
from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from starlette.types import Scope

from gateway.call import CONTINUE, Call, ClientCertificate, Flow, Stage
from gateway.crypto import x5t_s256
from gateway.errors import Refusal

CLIENT_CERT = b"client-cert"
CLIENT_CERT_CHAIN = b"client-cert-chain"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network  # where trusted proxies are (settings.trusted_proxies)




@functools.lru_cache(maxsize=4096)
def _from_der(der: bytes) -> ClientCertificate:
    cert = x509.load_der_x509_certificate(der)
    return ClientCertificate(x5t_s256(der), cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                             cert.not_valid_after_utc)


@functools.lru_cache(maxsize=4096)
def _from_pem(pem: str) -> ClientCertificate:
    return _from_der(x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER))


def from_tls_extension(scope: Scope) -> ClientCertificate | None:
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or ()
    return _from_pem(chain[0]) if chain else None


class ProxyCertificateVerifier:
    """Verifies a certificate forwarded by a trusted proxy against the trusted CAs, as the TLS layer would.

    A chain verification costs ~85 µs of a worker's CPU, and an edge sends the same few certificates on every call:
    so a verified header value is remembered (at most `KEPT` of them) and verified again after `RECHECK_SECONDS`, or
    at once once its certificate has expired, as a TLS session is resumed without a new handshake."""

    KEPT = 4096
    RECHECK_SECONDS = 300.0

    def __init__(self, ca_file: Path) -> None:
        self._store = Store(x509.load_pem_x509_certificates(Path(ca_file).read_bytes()))
        self._verified: dict[bytes, tuple[ClientCertificate, datetime]] = {}  # header value → (it, recheck at)

    def verify(self, header_value: bytes) -> ClientCertificate:
        now = datetime.now(timezone.utc)
        known = self._verified.get(header_value)
        if known is not None and now < known[1]:
            return known[0]
        certificate = self._verify(header_value, now)
        if len(self._verified) >= self.KEPT:
            self._verified.clear()
        self._verified[header_value] = (certificate, min(certificate.not_after,
                                                         now + timedelta(seconds=self.RECHECK_SECONDS)))
        return certificate

    def _verify(self, header_value: bytes, now: datetime) -> ClientCertificate:
        # RFC 9440 §2.2: Client-Cert is a Structured Field Byte Sequence, ":" base64(DER) ":".
        text = header_value.strip()
        if len(text) < 3 or not (text.startswith(b":") and text.endswith(b":")):
            raise Refusal("identity.bad_certificate", "Client-Cert is not an RFC 9440 byte sequence.")
        try:
            der = base64.b64decode(text[1:-1], validate=True)
            cert = x509.load_der_x509_certificate(der)
        except (binascii.Error, ValueError):
            raise Refusal("identity.bad_certificate", "Client-Cert does not hold a DER certificate.") from None
        verifier = PolicyBuilder().store(self._store).time(now).build_client_verifier()
        try:
            verifier.verify(cert, [])
        except VerificationError:
            raise Refusal("identity.bad_certificate",
                          "The forwarded client certificate is not trusted, not yet valid or expired.") from None
        return _from_der(der)


def is_trusted_proxy(client: tuple[str, int] | None, proxies: Sequence[Network]) -> bool:
    if not proxies or not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    return any(address in network for network in proxies)


class RequireClientCertificate(Stage):
    """Every TPP-facing endpoint needs a verified client certificate (FAPI 1 Advanced §5.2.2-5, RFC 8705 §2)."""

    async def on_request(self, call: Call) -> Flow:
        if call.certificate is None:
            raise Refusal("identity.no_certificate")
        return CONTINUE
