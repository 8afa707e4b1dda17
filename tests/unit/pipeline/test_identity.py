import base64
import ipaddress
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway import pki
from gateway.errors import Refusal
from gateway.pipeline.identity import (
    ProxyCertificateVerifier,
    from_tls_extension,
    is_trusted_proxy,
)


def _header(issued) -> bytes:
    return b":" + base64.b64encode(issued.cert.public_bytes(Encoding.DER)) + b":"


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    pki.init_dev_pki(directory, tpps=("tpp-demo",))
    return directory


def test_a_forwarded_certificate_from_the_trusted_ca_gives_its_rfc8705_thumbprint(ca_dir):
    issued = pki.issue_client_cert(pki.load_ca(ca_dir), "tpp-x")
    cert = ProxyCertificateVerifier(ca_dir / "ca.pem").verify(_header(issued))
    assert cert.thumbprint == pki.thumbprint_sha256(issued.cert)
    assert "CN=tpp-x" in cert.subject


@pytest.mark.parametrize("case", ["no colons", "not base64", "not a certificate", "unknown CA", "expired"])
def test_a_bad_forwarded_certificate_is_refused(ca_dir, case):
    now = datetime.now(timezone.utc)
    values = {
        "no colons": lambda: base64.b64encode(b"x"),
        "not base64": lambda: b":***:",
        "not a certificate": lambda: b":" + base64.b64encode(b"hello") + b":",
        "unknown CA": lambda: _header(pki.issue_client_cert(pki.make_ca("rogue"), "tpp-demo")),
        "expired": lambda: _header(pki.issue_client_cert(pki.load_ca(ca_dir), "tpp-demo",
                                                         not_before=now - timedelta(days=10),
                                                         not_after=now - timedelta(days=1))),
    }
    with pytest.raises(Refusal) as refused:
        ProxyCertificateVerifier(ca_dir / "ca.pem").verify(values[case]())
    assert refused.value.reason == "identity.bad_certificate" and refused.value.status == 401


def test_the_tls_extension_gives_the_leaf_certificate(ca_dir):
    pem = (ca_dir / "tpp-demo.pem").read_text()
    cert = from_tls_extension({"extensions": {"tls": {"client_cert_chain": [pem]}}})
    assert cert.thumbprint == pki.thumbprint_sha256(x509.load_pem_x509_certificate(pem.encode()))
    assert from_tls_extension({"extensions": {"tls": {"client_cert_chain": []}}}) is None
    assert from_tls_extension({}) is None


def test_only_configured_proxy_addresses_are_trusted():
    proxies = (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("127.0.0.2/32"))
    assert is_trusted_proxy(("10.1.2.3", 5000), proxies)
    assert is_trusted_proxy(("127.0.0.2", 5000), proxies)
    assert not is_trusted_proxy(("127.0.0.1", 5000), proxies)
    assert not is_trusted_proxy(("10.1.2.3", 5000), ())
    assert not is_trusted_proxy(None, proxies)


def test_a_verified_forwarded_certificate_is_remembered_until_it_expires(ca_dir, monkeypatch):
    """An edge sends the same certificate on every call: the chain is verified once, then again after the recheck
    interval, and never past the certificate's own expiry (a refusal is never remembered)."""
    now = datetime.now(timezone.utc)
    issued = pki.issue_client_cert(pki.load_ca(ca_dir), "tpp-x", not_before=now - timedelta(days=1),
                                   not_after=now + timedelta(seconds=2))
    verifier = ProxyCertificateVerifier(ca_dir / "ca.pem")
    checks = []
    check = verifier._verify
    monkeypatch.setattr(verifier, "_verify", lambda value, at: checks.append(at) or check(value, at))
    first = verifier.verify(_header(issued))
    assert verifier.verify(_header(issued)) == first and len(checks) == 1
    later = now + timedelta(seconds=3)  # past not_after: verified again, and refused
    monkeypatch.setattr("gateway.pipeline.identity.datetime", _Clock(later))
    with pytest.raises(Refusal):
        verifier.verify(_header(issued))
    assert len(checks) == 2
    with pytest.raises(Refusal):
        verifier.verify(_header(pki.issue_client_cert(pki.make_ca("rogue"), "tpp-demo")))
    assert len(checks) == 3


class _Clock:
    """Stands in for `datetime` in identity.py: `now()` is fixed."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self, tz=None) -> datetime:
        return self.moment
