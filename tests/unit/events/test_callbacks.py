"""The SSRF rules for a TPP's CallbackUrl (events/callbacks.py) and the setting that lets loopback through."""
from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from gateway.events.callbacks import CallbackGuard, GuardedResolver, LookupFailed, address_allowed
from gateway.settings import Settings, SettingsError

PUBLIC = "93.184.215.14"  # a globally routable address (no DNS needed: an IP literal is checked as it is)


def _problem(url: str, allow_loopback: bool = False) -> str | None:
    return asyncio.run(CallbackGuard(allow_loopback).problem(url))


@pytest.mark.parametrize("url", [
    f"https://{PUBLIC}/event-notifications", f"https://{PUBLIC}:8443/open-banking/v3.1/event-notifications",
    "https://[2606:4700:4700::1111]/event-notifications"])
def test_a_public_https_callback_is_allowed(url):
    assert _problem(url) is None


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/event-notifications", "https://127.8.9.10/x", "https://[::1]/x", "https://localhost/x",
    "https://10.0.0.7/x", "https://172.16.3.4/x", "https://192.168.1.1/x", "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/x", "https://0.0.0.0/x", "https://224.0.0.1/x", "https://[fd00::1]/x", "https://[fe80::1]/x",
    "https://[::ffff:127.0.0.1]/x", "https://[::ffff:10.0.0.1]/x", "https://192.0.2.1/x", "https://240.0.0.1/x"])
def test_loopback_private_link_local_and_reserved_addresses_are_refused(url):
    assert _problem(url) == "its host is not a public address"


@pytest.mark.parametrize("url, why", [
    (f"http://{PUBLIC}/x", "it must be an https URL"), (f"ftp://{PUBLIC}/x", "it must be an https URL"),
    ("https:///x", "it must be an https URL"), ("not a url", "it must be an https URL"),
    (f"https://user:pw@{PUBLIC}/x", "it must carry no user information and no fragment"),
    (f"https://{PUBLIC}/x#frag", "it must carry no user information and no fragment"),
    (f"https://{PUBLIC}:99999/x", "it is not a URL"), (f"https://{PUBLIC}/" + "x" * 2048, None)])
def test_only_a_plain_https_url_may_be_a_callback(url, why):
    problem = _problem(url)
    assert problem == why if why else problem is not None


def test_without_the_operators_flag_a_loopback_callback_is_refused_and_with_it_allowed():
    for url in ("http://127.0.0.1:9000/event-notifications", "https://localhost/event-notifications"):
        assert _problem(url) == "its host is not a public address"
        assert _problem(url, allow_loopback=True) is None
    # The flag lets loopback through, nothing else: private addresses stay out, and http stays loopback-only.
    assert _problem("https://10.0.0.7/x", allow_loopback=True) == "its host is not a public address"
    assert _problem(f"http://{PUBLIC}/x", allow_loopback=True) == "it must be an https URL"


def test_a_host_that_does_not_resolve_is_neither_allowed_nor_refused():
    with pytest.raises(LookupFailed):
        _problem("https://no-such-host.invalid/event-notifications")


def test_the_setting_is_off_unless_the_operator_turns_it_on():
    assert Settings.load(environ={}).events_allow_loopback is False
    assert Settings.load(environ={"OBGW_EVENTS_ALLOW_LOOPBACK": "1"}).events_allow_loopback is True
    on = Settings.load(environ={"OBGW_EVENTS_ALLOW_LOOPBACK": "1"})
    assert Settings.load(environ=on.to_environ()).events_allow_loopback is True  # handed to the workers
    with pytest.raises(SettingsError, match="OBGW_EVENTS_ALLOW_LOOPBACK='maybe'"):
        Settings.load(environ={"OBGW_EVENTS_ALLOW_LOOPBACK": "maybe"})


class _Answers:
    """A resolver answering what a rebinding DNS server might: a public address and a loopback one."""

    def __init__(self, *hosts: str) -> None:
        self.hosts = hosts

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": address, "port": port, "family": family, "proto": 0, "flags": 0}
                for address in self.hosts]

    async def close(self) -> None:
        return None


def test_the_connection_reaches_only_addresses_the_rules_allow():
    mixed = GuardedResolver(False, _Answers("127.0.0.1", PUBLIC, "10.1.2.3"))
    assert [r["host"] for r in asyncio.run(mixed.resolve("tpp.example", 443))] == [PUBLIC]
    with pytest.raises(OSError):
        asyncio.run(GuardedResolver(False, _Answers("127.0.0.1", "169.254.169.254")).resolve("tpp.example", 443))
    assert [r["host"] for r in asyncio.run(GuardedResolver(True, _Answers("127.0.0.1")).resolve("x", 80))] == [
        "127.0.0.1"]


def test_an_ipv4_mapped_address_is_judged_by_its_ipv4_address():
    assert not address_allowed(ipaddress.ip_address("::ffff:169.254.169.254"), allow_loopback=True)
    assert address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"), allow_loopback=True)
    assert address_allowed(ipaddress.ip_address(f"::ffff:{PUBLIC}"), allow_loopback=False)
