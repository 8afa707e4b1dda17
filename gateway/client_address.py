"""The caller's source address, as the per-address throttles count it (anonymous traffic, failed customer logins).

It is the TCP peer, `scope["client"]`. Behind a TLS-terminating proxy (OBGW_TRUSTED_PROXIES, the same list whose
RFC 9440 `Client-Cert` is honoured), TransportIdentity puts there the address that proxy appended last to
`X-Forwarded-For` (the peer it saw itself; entries before it are the client's own words); nobody else's
`X-Forwarded-For` is read, so a caller cannot pick the address it is counted under.

An IPv6 caller is counted per /64: an end site is given at least a /64 (RFC 6177), so one host could otherwise be
counted under 2^64 fresh addresses.
"""
from __future__ import annotations

import ipaddress

FORWARDED_FOR = b"x-forwarded-for"
UNKNOWN = "unknown"  # no peer address (not TCP): all such callers share one count rather than escape it


def forwarded_for(headers) -> str | None:
    """The address a trusted proxy appended to `X-Forwarded-For` (its last entry), if it is an IP address."""
    values = [value for key, value in headers if key == FORWARDED_FOR]
    if not values:
        return None
    last = values[-1].decode("latin-1").rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return None


def source_of(scope) -> str:
    """What the caller is counted under: its IPv4 address, or its IPv6 /64."""
    client = scope.get("client")
    try:
        address = ipaddress.ip_address(client[0]) if client else None
    except ValueError:
        address = None
    if address is None:
        return UNKNOWN
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))
