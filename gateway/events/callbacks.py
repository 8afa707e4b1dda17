"""What a TPP's CallbackUrl may be: the gateway POSTs there, from inside the bank's network, so a URL a TPP names must
not turn the gateway into its proxy to the bank's own hosts (server-side request forgery, OWASP API7:2023).

- UK OB Event Notification API, "Transport Level Security - TPP Endpoints": TPP hosted endpoints are protected
  with TLS, so `https` only. No user information in the URL (nothing to leak into logs), no fragment.
- Every address the host resolves to must be a public (globally routable) unicast address: no loopback, private
  (RFC 1918, RFC 4193), shared (RFC 6598), link-local (cloud metadata at 169.254.169.254), multicast, unspecified,
  reserved or documentation address, IPv4-mapped IPv6 judged by its IPv4 address. One bad address refuses the URL.
- An operator may allow loopback (`OBGW_EVENTS_ALLOW_LOOPBACK=1`: a TPP's receiver on the gateway's own host, as
  in tests); then plain `http` is allowed to loopback too. Private addresses stay refused.

The check runs when the TPP subscribes (a refused URL is a 400) and again before every delivery attempt; and the
delivery connects only through `GuardedResolver`, which drops any address the rules refuse, so a DNS answer that
changes between the check and the connection (DNS rebinding) still cannot reach a refused address. An IP literal
is checked as it is (aiohttp does not resolve one). Redirects are not followed (consents.notify).
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = ["CallbackGuard", "GuardedResolver", "LookupFailed", "address_allowed"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LOOKUP_SECONDS = 3.0
MAX_URL_LENGTH = 2048


class LookupFailed(OSError):
    """The callback's host could not be resolved (now): neither allowed nor refused."""


def address_allowed(address: IPAddress, allow_loopback: bool) -> bool:
    """Whether a callback may be sent to `address`: public unicast; loopback only when the operator allows it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return allow_loopback
    return address.is_global and not address.is_multicast


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses a callback may reach (none left: the connection fails)."""

    def __init__(self, allow_loopback: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_loopback = allow_loopback
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [result for result in found
                   if address_allowed(ipaddress.ip_address(result["host"]), self._allow_loopback)]
        if not allowed:
            raise OSError(f"{host}: no address a callback may be sent to")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class CallbackGuard:
    """The rules above, for one gateway (`allow_loopback` from OBGW_EVENTS_ALLOW_LOOPBACK)."""

    def __init__(self, allow_loopback: bool = False) -> None:
        self.allow_loopback = allow_loopback

    def resolver(self) -> AbstractResolver:
        return GuardedResolver(self.allow_loopback)

    async def problem(self, url: str) -> str | None:
        """Why `url` may not be a callback, in words for the TPP (never an address it resolved to), or None.
        LookupFailed if its host does not resolve now."""
        if len(url) > MAX_URL_LENGTH:
            return f"it is longer than {MAX_URL_LENGTH} characters"
        try:
            parts = urlsplit(url)
            host = parts.hostname
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return "it is not a URL"
        if parts.scheme not in ("https", "http") or not host:
            return "it must be an https URL"
        if parts.username is not None or parts.password is not None or parts.fragment:
            return "it must carry no user information and no fragment"
        addresses = [_literal(host)] if _literal(host) is not None else await self._addresses(host, port)
        if not all(address is not None and address_allowed(address, self.allow_loopback) for address in addresses):
            return "its host is not a public address"
        if parts.scheme == "http" and not all(address is not None and address.is_loopback for address in addresses):
            return "it must be an https URL"
        return None

    @staticmethod
    async def _addresses(host: str, port: int) -> list[IPAddress | None]:
        loop = asyncio.get_running_loop()
        try:
            found = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), LOOKUP_SECONDS)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise LookupFailed(f"{host} does not resolve") from exc
        if not found:
            raise LookupFailed(f"{host} does not resolve")
        return [_literal(str(info[4][0]).split("%", 1)[0]) for info in found]
