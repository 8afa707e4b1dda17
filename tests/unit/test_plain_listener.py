"""OBGW_PLAIN_HTTP: a plain listener only for an edge on this host (loopback, and only trusted proxies' certificates
identify a TPP); with it the listener has no TLS, without it the listener asks for client certificates."""
from __future__ import annotations

import ssl

import pytest

from gateway.server import StartError, check_tls, uvicorn_config
from gateway.settings import Settings


def _settings(pki, **environ: str) -> Settings:
    return Settings.load(environ={"OBGW_CLIENT_CA": str(pki / "ca.pem"), "OBGW_TLS_CERT": str(pki / "server.pem"),
                                  "OBGW_TLS_KEY": str(pki / "server.key"), **environ})


@pytest.mark.parametrize(("environ", "message"), [
    ({"OBGW_HOST": "0.0.0.0", "OBGW_TRUSTED_PROXIES": "127.0.0.1/32"}, "0.0.0.0 is not a loopback address"),
    ({"OBGW_HOST": "127.0.0.1"}, "OBGW_PLAIN_HTTP needs OBGW_TRUSTED_PROXIES"),
])
def test_a_plain_listener_off_loopback_or_without_a_trusted_edge_does_not_start(pki, environ, message):
    with pytest.raises(StartError, match=message):
        check_tls(_settings(pki, OBGW_PLAIN_HTTP="1", **environ))


def test_the_plain_listener_has_no_tls_and_the_default_one_asks_for_certificates(pki):
    plain = _settings(pki, OBGW_PLAIN_HTTP="1", OBGW_TRUSTED_PROXIES="127.0.0.1/32")
    check_tls(plain)
    assert uvicorn_config(plain).ssl_certfile is None and uvicorn_config(plain).ssl_ca_certs is None
    default = _settings(pki)
    check_tls(default)
    config = uvicorn_config(default)
    assert config.ssl_certfile == str(pki / "server.pem") and config.ssl_cert_reqs == ssl.CERT_OPTIONAL
