"""Variant (e)'s gateway: `obgw serve` as it is, except that its listener speaks plain HTTP, for an edge in front.

The edge (edge.py) terminates mutual TLS and forwards the verified certificate as RFC 9440 `Client-Cert`, which the
gateway honours only from OBGW_TRUSTED_PROXIES. `obgw serve` has no plain listener, so this replaces only the TLS
part of its uvicorn configuration; it refuses any address but loopback, where nothing but the edge can reach it.

    OBGW_* settings in the environment; python loadtests/plain_gateway.py
"""
from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn

from gateway import server
from gateway.settings import Settings

with_tls = server.uvicorn_config


def without_tls(settings: Settings) -> uvicorn.Config:
    config = with_tls(settings)
    config.ssl_certfile = config.ssl_keyfile = config.ssl_ca_certs = None
    return config


def main() -> int:
    settings = Settings.load()
    if not ipaddress.ip_address(settings.host).is_loopback:
        raise SystemExit(f"plain_gateway: {settings.host} is not a loopback address: plain HTTP stays on loopback")
    server.uvicorn_config = without_tls
    return server.serve(settings)


if __name__ == "__main__":
    sys.exit(main())
