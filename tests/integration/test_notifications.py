"""Revocation notifications against a real Redis and a real loopback TPP endpoint: the SET on the wire, retries,
permanent refusals, giving up, durability across processes, two workers, and the audit record of every attempt."""
from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import jwt
import pytest
from support.receiver import Receiver

from gateway.audit.chain import AuditChain, verify
from gateway.consents.model import Consent, Kind, Status
from gateway.consents.notify import CONSENT_REVOKED, SET_TYPE, Notifier, outbox_notifier
from gateway.oauth.signing_keys import KeyEncryptionKey, KeyRing, new_key_record, signer
from gateway.store.audit import AuditReader
from gateway.store.notifications import NotificationOutbox
from gateway.store.redis import async_client, sync_client

ISSUER = "https://obgw.test"
API = "https://api.obgw.test:8443"
CLIENT = "tpp-demo"
FAST = {"backoff_seconds": (0.05,), "timeout_s": 1.0, "lease_s": 3.0, "poll_s": 0.05}
OB = "http://openbanking.org.uk/"

pytestmark = pytest.mark.timeout(20)


def _consent(client_id: str = CLIENT) -> Consent:
    return Consent(consent_id=f"aac-{uuid.uuid4()}", client_id=client_id, kind=Kind.ACCOUNT_ACCESS,
                   status=Status.REVOKED, created="2026-11-23T10:00:00+00:00",
                   status_updated="2026-11-23T10:05:00+00:00", permissions=("ReadAccountsBasic",), expires=None,
                   transaction_from=None, transaction_to=None, customer_id="cust-1", accounts=("22289",))


def _ring() -> KeyRing:
    kek = KeyEncryptionKey(bytes(32))
    kid, record = new_key_record(kek)
    return KeyRing({kid: record}, overlap=3600, kek=kek)


def _revoke(redis_url: str, consent: Consent) -> str:
    """What `consents.lifecycle.revoke` does through its `notify`: the sync side, as the CLI or a thread."""
    client = sync_client(redis_url)
    try:
        return outbox_notifier(client)(consent)
    finally:
        client.close()


class Sink:
    """The audit sink: keeps the records in memory."""

    def __init__(self) -> None:
        self.records = []

    async def __call__(self, record) -> None:
        self.records.append(record)

    def reasons(self) -> list[str]:
        return [r.reason for r in self.records]


def _urls(mapping: dict[str, str | None]):
    async def url_of(client_id: str) -> str | None:
        return mapping.get(client_id)
    return url_of


async def _eventually(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _notifier(redis_url: str, url_of, ring: KeyRing, record, **options):
    client = async_client(redis_url)
    notifier = Notifier(client, url_of, signer(lambda: ring, SET_TYPE), record, issuer=ISSUER, api_base=API,
                        **(FAST | options))
    await notifier.start()
    try:
        yield notifier
    finally:
        await notifier.close()
        await client.aclose()


async def _pending(redis_url: str) -> int:
    client = async_client(redis_url)
    try:
        return await NotificationOutbox(client).pending()
    finally:
        await client.aclose()


def _assert_clean(records, *secrets: str) -> None:
    """No URL, SET or token in any audit record: only ids, the route template and outcomes."""
    for record in records:
        text = repr(record.fields())
        assert "http" not in text and "127.0.0.1" not in text
        for secret in secrets:
            assert secret not in text
        assert record.route == "event-notification" and record.method == "POST"


def test_the_set_arrives_signed_with_the_revocation(redis_url):
    ring, sink, consent = _ring(), Sink(), _consent()

    async def scenario():
        async with Receiver() as tpp, _notifier(redis_url, _urls({CLIENT: tpp.url}), ring, sink):
            await asyncio.to_thread(_revoke, redis_url, consent)
            await _eventually(lambda: sink.records)
            return tpp.requests, await _pending(redis_url)

    requests, pending = asyncio.run(scenario())
    assert len(requests) == 1 and pending == 0
    request = requests[0]
    assert request.headers["content-type"] == "application/secevent+jwt"
    assert request.headers["accept"] == "application/json"
    header = jwt.get_unverified_header(request.body)
    assert (header["alg"], header["typ"], header["kid"]) == ("ES256", "secevent+jwt", ring.signing.kid)
    claims = jwt.decode(request.body, ring.verification_key(header["kid"]), algorithms=["ES256"], audience=CLIENT,
                        issuer=ISSUER, options={"require": ["iss", "iat", "jti", "aud", "sub", "txn", "toe"]})
    link = f"{API}/open-banking/v3.1/aisp/account-access-consents/{consent.consent_id}"
    assert claims["sub"] == link
    assert claims["toe"] == 1795428300  # the consent's status_updated, 2026-11-23T10:05:00Z
    assert claims["events"] == {CONSENT_REVOKED: {"subject": {
        "subject_type": f"{OB}rid_{OB}rty", f"{OB}rid": consent.consent_id, f"{OB}rty": "account-access-consent",
        f"{OB}rlk": [{"version": "v3.1", "link": link}]}}}
    [record] = sink.records
    assert (record.status, record.decision, record.reason) == (202, "allow", "notify.delivered")
    assert (record.client_id, record.consent_id) == (CLIENT, consent.consent_id)
    assert record.interaction_id == request.headers["x-fapi-interaction-id"]
    assert record.ts.endswith("+00:00") and len(record.ts.split(".")[1]) == len("000+00:00")
    assert record.latency_ms > 0
    _assert_clean(sink.records, request.body, claims["jti"])


def test_a_failing_tpp_gets_it_on_the_third_attempt_and_the_chain_records_each(redis_url):
    ring, consent = _ring(), _consent()

    async def scenario():
        audit = async_client(redis_url)
        chain = AuditChain(audit, None)
        try:
            async with Receiver(answers=[500, 503]) as tpp, _notifier(redis_url, _urls({CLIENT: tpp.url}), ring,
                                                                       chain.append):
                await asyncio.to_thread(_revoke, redis_url, consent)
                await _eventually(lambda: len(tpp.requests) == 3)
                await asyncio.sleep(0.3)  # nothing more comes
                return tpp.requests, await _pending(redis_url)
        finally:
            await chain.close()
            await audit.aclose()

    requests, pending = asyncio.run(scenario())
    assert len(requests) == 3 and pending == 0
    # A retry is the same SET (same jti), so the TPP can tell it from a new event (RFC 8417 §2.2).
    assert len({jwt.decode(r.body, options={"verify_signature": False})["jti"] for r in requests}) == 1
    client = sync_client(redis_url)
    try:
        records = [record for _, record in AuditReader(client).records()]
        assert verify(AuditReader(client).records(), heads=AuditReader(client).heads()).breach is None
    finally:
        client.close()
    assert [(r["status"], r["decision"], r["reason"]) for r in records] == [
        (500, "error", "notify.retry"), (503, "error", "notify.retry"), (202, "allow", "notify.delivered")]
    assert {r["consent_id"] for r in records} == {consent.consent_id}
    assert len({r["interaction_id"] for r in records}) == 3
    assert [r["interaction_id"] for r in records] == [q.headers["x-fapi-interaction-id"] for q in requests]


def test_a_400_is_not_retried(redis_url):
    ring, sink = _ring(), Sink()

    async def scenario():
        async with Receiver(answers=[400]) as tpp, _notifier(redis_url, _urls({CLIENT: tpp.url}), ring, sink):
            await asyncio.to_thread(_revoke, redis_url, _consent())
            await _eventually(lambda: sink.records)
            await asyncio.sleep(0.4)  # eight backoffs: a retry would have come
            return len(tpp.requests), await _pending(redis_url)

    assert asyncio.run(scenario()) == (1, 0)
    assert [(r.status, r.decision, r.reason) for r in sink.records] == [(400, "error", "notify.rejected")]


def test_it_gives_up_after_max_attempts(redis_url):
    ring, sink = _ring(), Sink()

    async def scenario():
        async with Receiver(default=503) as tpp, _notifier(redis_url, _urls({CLIENT: tpp.url}), ring, sink,
                                                           max_attempts=3):
            await asyncio.to_thread(_revoke, redis_url, _consent())
            await _eventually(lambda: len(sink.records) == 3)
            await asyncio.sleep(0.4)
            return len(tpp.requests), await _pending(redis_url)

    assert asyncio.run(scenario()) == (3, 0)
    assert sink.reasons() == ["notify.retry", "notify.retry", "notify.failed"]
    assert {r.decision for r in sink.records} == {"error"}


def test_no_answer_in_time_is_retried(redis_url):
    ring, sink = _ring(), Sink()

    async def scenario():
        async with Receiver(delays=[0.8]) as tpp, _notifier(redis_url, _urls({CLIENT: tpp.url}), ring, sink,
                                                            timeout_s=0.2):
            await asyncio.to_thread(_revoke, redis_url, _consent())
            await _eventually(lambda: len(sink.records) == 2)
            return len(tpp.requests)

    assert asyncio.run(scenario()) == 2
    assert [(r.status, r.reason) for r in sink.records] == [(0, "notify.retry"), (202, "notify.delivered")]


def test_an_event_enqueued_by_another_process_while_no_notifier_runs_is_delivered_when_one_starts(redis_url):
    ring, sink, consent = _ring(), Sink(), _consent()
    # Another process (as `obgw consents revoke` is) enqueues and exits; no worker has ever run, so not even the
    # consumer group exists yet.
    child = textwrap.dedent(f"""
        from gateway.consents.model import Consent, Kind, Status
        from gateway.consents.notify import outbox_notifier
        from gateway.store.redis import sync_client
        outbox_notifier(sync_client({redis_url!r}))(Consent(
            consent_id={consent.consent_id!r}, client_id={CLIENT!r}, kind=Kind.ACCOUNT_ACCESS, status=Status.REVOKED,
            created="2026-11-23T10:00:00+00:00", status_updated="2026-11-23T10:05:00+00:00", permissions=(),
            expires=None, transaction_from=None, transaction_to=None, customer_id=None, accounts=()))
    """)
    subprocess.run([sys.executable, "-c", child], check=True, timeout=30, cwd=Path(__file__).parents[2])

    async def scenario():
        async with Receiver() as tpp, _notifier(redis_url, _urls({CLIENT: tpp.url}), ring, sink):
            await _eventually(lambda: sink.records)
            return len(tpp.requests)

    assert asyncio.run(scenario()) == 1
    assert [(r.reason, r.consent_id) for r in sink.records] == [("notify.delivered", consent.consent_id)]


def test_an_entry_held_by_a_worker_that_died_is_taken_over_after_the_lease(redis_url):
    ring, sink, consent = _ring(), Sink(), _consent()

    async def scenario():
        client = async_client(redis_url)
        dead = NotificationOutbox(client, consumer="worker-that-died")
        await dead.ensure_group()
        await asyncio.to_thread(_revoke, redis_url, consent)
        assert len(await dead.read_new(10, None)) == 1  # read, never acknowledged
        try:
            async with Receiver() as tpp, _notifier(redis_url, _urls({CLIENT: tpp.url}), ring, sink, lease_s=0.3):
                await _eventually(lambda: sink.records)
                return len(tpp.requests), await dead.pending()
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == (1, 0)
    assert sink.reasons() == ["notify.delivered"]


def test_two_workers_deliver_each_event_once(redis_url):
    ring, sink = _ring(), Sink()
    consents = [_consent() for _ in range(10)]

    async def scenario():
        async with Receiver(answers=[500, 500, 500]) as tpp:
            url_of = _urls({CLIENT: tpp.url})
            async with _notifier(redis_url, url_of, ring, sink), _notifier(redis_url, url_of, ring, sink):
                for consent in consents:
                    await asyncio.to_thread(_revoke, redis_url, consent)
                await _eventually(lambda: sink.reasons().count("notify.delivered") == 10)
                await asyncio.sleep(0.4)
                return tpp.requests, await _pending(redis_url)

    requests, pending = asyncio.run(scenario())
    assert len(requests) == 13 and pending == 0  # ten events, three of them retried once
    delivered = [r.consent_id for r in sink.records if r.reason == "notify.delivered"]
    assert sorted(delivered) == sorted(c.consent_id for c in consents)
    assert sink.reasons().count("notify.retry") == 3


def test_a_client_without_a_notification_url_gets_nothing_and_one_record(redis_url):
    ring, sink, consent = _ring(), Sink(), _consent()

    async def scenario():
        async with Receiver() as tpp, _notifier(redis_url, _urls({CLIENT: None, "tpp-other": tpp.url}), ring,
                                                sink):
            await asyncio.to_thread(_revoke, redis_url, consent)
            await _eventually(lambda: sink.records)
            await asyncio.sleep(0.3)
            return len(tpp.requests), await _pending(redis_url)

    assert asyncio.run(scenario()) == (0, 0)
    assert [(r.status, r.decision, r.reason, r.consent_id) for r in sink.records] == [
        (0, "allow", "notify.no_url", consent.consent_id)]


@pytest.mark.parametrize("url", ["http://192.0.2.10/event-notifications", "ftp://tpp.example/events",
                                 "https://user:secret@tpp.example/events"])
def test_a_url_that_is_not_https_is_refused_and_nothing_is_sent(redis_url, url):
    ring, sink = _ring(), Sink()

    async def scenario():
        async with _notifier(redis_url, _urls({CLIENT: url}), ring, sink):
            await asyncio.to_thread(_revoke, redis_url, _consent())
            await _eventually(lambda: sink.records)
            await asyncio.sleep(0.2)
            return await _pending(redis_url)

    assert asyncio.run(scenario()) == 0
    assert [(r.status, r.decision, r.reason) for r in sink.records] == [(0, "refuse", "notify.refused")]
    _assert_clean(sink.records, "secret", "192.0.2.10")


def test_an_outbox_entry_stays_until_its_record_is_stored(redis_url):
    """The audit sink fails: the TPP got the SET, but the entry is not acknowledged, so it is sent again (same
    jti) once the sink works, and only then acknowledged."""
    ring, sink = _ring(), Sink()
    broken = {"on": True}

    async def record(r) -> None:
        if broken["on"]:
            raise ConnectionError("audit store down")
        await sink(r)

    async def scenario():
        async with Receiver() as tpp, _notifier(redis_url, _urls({CLIENT: tpp.url}), ring, record, lease_s=0.3):
            await asyncio.to_thread(_revoke, redis_url, _consent())
            await _eventually(lambda: tpp.requests)
            assert await _pending(redis_url) == 1
            broken["on"] = False
            await _eventually(lambda: sink.records)
            return tpp.requests, await _pending(redis_url)

    requests, pending = asyncio.run(scenario())
    assert pending == 0 and len(requests) >= 2
    assert len({jwt.decode(r.body, options={"verify_signature": False})["jti"] for r in requests}) == 1
    assert sink.reasons() == ["notify.delivered"]
