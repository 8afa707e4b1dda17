"""Telling a TPP that a consent was revoked: a Security Event Token (RFC 8417) pushed over HTTP (RFC 8935).

The event is the UK Open Banking one, Event Notification API Specification v3.1.x (OBEventNotification2,
OBEventConsentAuthorizationRevoked1, OBEventSubject1; read-write-api-docs-pub, docs/v3.1.10/resources-and-data-
models/event-notifications/event-notifications.md, "Send Event Notification - AIS Consent Authorisation Revoked"):

    {"iss": <ASPSP>, "iat": ..., "jti": <uuid>, "aud": <client_id>, "sub": <the consent's URL>, "txn": <uuid>,
     "toe": <time of event>, "events": {"urn:uk:org:openbanking:events:consent-authorization-revoked": {
         "subject": {"subject_type": "http://openbanking.org.uk/rid_http://openbanking.org.uk/rty",
                     "http://openbanking.org.uk/rid": <ConsentId>, "http://openbanking.org.uk/rty": <type>,
                     "http://openbanking.org.uk/rlk": [{"version": "v3.1", "link": <the consent's URL>}]}}}}

`sub` is the consent's URL (OBEventNotification2/sub is an xs:anyURI and every OB example puts the resource link
there), not an urn. `reason` is left out: OBExternalEventConsentAuthorizationRevokedReason1Code has no codes.

Where obgw departs from the OB text, on purpose:
- header `typ: secevent+jwt` (RFC 8417 §2.3 explicit typing) and body type `application/secevent+jwt`
  (RFC 8935 §2.1); the OB examples show `application/jwt`. ES256 with the gateway's JWKS `kid`, the key the
  TPP already trusts for our tokens, instead of the R/W API's detached-JWS header set.
- Success is any 2xx (RFC 8935 §2.2 and OB answer 202). A 400 means the TPP found the SET invalid (RFC 8935
  §2.3): sending it again cannot help, so it is not retried; nor is any other 3xx/4xx except 408, 425 and 429.
  Redirects are not followed: the SET goes to the registered URL only.
- OB "Event Notification Retry Policy": exponential backoff and a maximum number of attempts, both arguments of
  `Notifier`.

The outbox holds facts only (ids, kind, the event's time, and the `jti`, `txn` and `iat` fixed when it is
enqueued), so the enqueuing side needs nothing but Redis (the CLI has no issuer), and no URL or token sits in Redis.
The worker builds the claims from them with its issuer and public origin: every attempt, on every worker, sends the
same claims, so the TPP can drop by `jti` (RFC 8417 §2.2) the duplicate an at-least-once outbox can produce.
"""
from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from urllib.parse import urlsplit

import aiohttp

from gateway.audit.record import AuditRecord
from gateway.consents.model import Consent, Kind
from gateway.policy.model import ACCOUNT_ACCESS_CONSENTS, FUNDS_CONFIRMATION_CONSENTS, PAYMENT_CONSENT_PATHS
from gateway.store import notifications
from gateway.store.notifications import Entry, NotificationOutbox

__all__ = ["CONSENT_REVOKED", "REASONS", "Notifier", "claims_of", "notification_url_allowed", "outbox_notifier",
           "revocation_entry", "revocation_event"]

log = logging.getLogger("obgw.notify")

CONSENT_REVOKED = "urn:uk:org:openbanking:events:consent-authorization-revoked"
OB = "http://openbanking.org.uk/"
SUBJECT_TYPE = f"{OB}rid_{OB}rty"
SET_TYPE = "secevent+jwt"                  # RFC 8417 §2.3
CONTENT_TYPE = "application/secevent+jwt"  # RFC 8935 §2.1
ROUTE = "event-notification"               # the audit record's route: the OB resource name, never the URL
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

# What each kind of consent is called in the event (rty) and where the TPP reads it (rlk, sub).
RESOURCES: dict[Kind, tuple[str, str]] = {
    Kind.ACCOUNT_ACCESS: ("account-access-consent", ACCOUNT_ACCESS_CONSENTS),
    Kind.FUNDS_CONFIRMATION: ("funds-confirmation-consent", FUNDS_CONFIRMATION_CONSENTS),
    **{kind: (f"{kind}-consent", PAYMENT_CONSENT_PATHS[str(kind)][0]) for kind in Kind if kind.is_payment},
}

# The audit reasons of a notification attempt, and the decision each is recorded with.
REASONS: dict[str, str] = {
    "notify.delivered": "allow",   # the TPP answered 2xx
    "notify.no_url": "allow",      # the TPP registered no notification URL (notifications are optional for it)
    "notify.retry": "error",       # no answer, 408/425/429/5xx, or we could not look up or sign: tried again later
    "notify.failed": "error",      # as notify.retry, on the last attempt: given up
    "notify.rejected": "error",    # the TPP answered 400 (the SET is invalid, RFC 8935 §2.3) or another 3xx/4xx
    "notify.refused": "refuse",    # the registered URL is not https (nor http on loopback): nothing sent
    "notify.malformed": "error",   # the outbox entry is not an event we can send: dropped
}
RETRY_STATUSES = frozenset({0, 408, 425, 429})  # 0: no answer (timeout, connection refused or reset, TLS failure)


# ---------------------------------------------------------------- the event

def revocation_event(client_id: str, consent_id: str, issuer: str, self_url: str, *,
                     resource_type: str = "account-access-consent", occurred_at: datetime | None = None,
                     txn: str | None = None, jti: str | None = None, iat: int | None = None) -> dict:
    """The SET claims (RFC 8417 §2.2, UK OB OBEventNotification2) telling `client_id` its consent was revoked.

    `self_url` is the consent's URL at this gateway; `txn` correlates SETs of one transaction (the revoking
    call's interaction id is a good one). `jti`, `txn` and `iat` default to two new uuids and now.
    """
    occurred = occurred_at or datetime.now(timezone.utc)
    return {
        "iss": issuer,
        "iat": int(time.time()) if iat is None else iat,
        "jti": jti or str(uuid.uuid4()),
        "aud": client_id,
        "sub": self_url,
        "txn": txn or str(uuid.uuid4()),
        "toe": int(occurred.timestamp()),
        "events": {CONSENT_REVOKED: {"subject": {
            "subject_type": SUBJECT_TYPE,
            f"{OB}rid": consent_id,
            f"{OB}rty": resource_type,
            # OBEventSubject1: "The array of resource links must contain links to all supported versions".
            f"{OB}rlk": [{"version": "v3.1", "link": self_url}],
        }}},
    }


def revocation_entry(consent: Consent, *, txn: str | None = None) -> dict:
    """The outbox event of a revoked consent: the facts its SET is built from (see the module docstring)."""
    occurred = _parse_time(consent.status_updated) or datetime.now(timezone.utc)
    return {
        "type": CONSENT_REVOKED, "client_id": consent.client_id, "consent_id": consent.consent_id,
        "kind": str(consent.kind), "occurred_at": occurred.isoformat(timespec="milliseconds"),
        "jti": str(uuid.uuid4()), "txn": txn or str(uuid.uuid4()), "iat": int(time.time()),
    }


def outbox_notifier(redis_sync) -> Callable[[Consent], str]:
    """The `notify(consent)` that `consents.lifecycle.revoke` calls: put the revocation in the durable outbox.

    Sync: it runs where revoke runs (`run_in_threadpool`, Authlib's threads, the CLI). Returns the stream id.
    """
    def notify(consent: Consent, *, txn: str | None = None) -> str:
        return notifications.enqueue(redis_sync, revocation_entry(consent, txn=txn))
    return notify


def claims_of(event: dict, issuer: str, api_base: str) -> dict | None:
    """The SET claims of an outbox event, or None if it is not one this gateway wrote."""
    try:
        resource_type, path = RESOURCES[Kind(event["kind"])]
        client_id, consent_id, jti, txn = (event[k] for k in ("client_id", "consent_id", "jti", "txn"))
        occurred, iat = datetime.fromisoformat(event["occurred_at"]), int(event["iat"])
    except (KeyError, ValueError, TypeError):
        return None
    if event.get("type") != CONSENT_REVOKED or not all(
            isinstance(v, str) and v for v in (client_id, consent_id, jti, txn)):
        return None
    return revocation_event(client_id, consent_id, issuer, f"{api_base.rstrip('/')}{path}/{consent_id}",
                            resource_type=resource_type, occurred_at=occurred, txn=txn, jti=jti, iat=iat)


def notification_url_allowed(url: str) -> bool:
    """OB Event Notification API, Transport Level Security: "TPP hosted endpoints must be protected using TLS
    1.2". So https only; plain http only to this host's loopback (tests, a local receiver)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    if not host or parts.username or parts.password:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK)


# ---------------------------------------------------------------- delivery

class Notifier:
    """One per worker process: delivers the outbox's events to the TPPs, retrying with backoff, auditing each try.

    - `issuer`: the `iss` of the SETs (the authorization server's issuer); `api_base`: the resource server's
      public origin, e.g. https://obgw.example:8443, the start of the consent's URL (`sub`, `rlk`).
    - `notification_url_of(client_id)` (async): the TPP's registered URL, or None if it has none.
    - `sign(claims)` (sync, run in a thread): the compact JWS, typed SET_TYPE (`oauth.signing_keys.signer`).
    - `record(AuditRecord)` (async): the audit sink, `AuditChain.append`.

    Every attempt writes one record, and an entry is acknowledged only once its record is stored: if the sink
    fails, the entry stays held and is picked up again after the lease (delivered again, same `jti`).
    `backoff_seconds[n - 1]` is the wait after the n-th failed attempt (the last value repeats); an entry is
    given up after `max_attempts` attempts. `lease_s` (default `timeout_s` + 10) is how long an entry held by a
    worker is left alone before another worker takes it over: it must exceed an attempt. `poll_s` is the
    longest wait for new entries (one XREADGROUP BLOCK): keep it below the Redis client's socket timeout.
    Every `trim_s` the outbox drops the entries the group is done with (never one still to deliver).
    """

    def __init__(self, outbox_redis, notification_url_of: Callable[[str], Awaitable[str | None]],
                 sign: Callable[[dict], str], record: Callable[[AuditRecord], Awaitable[None]], *,
                 issuer: str, api_base: str, max_attempts: int = 5,
                 backoff_seconds: Sequence[float] = (5, 30, 120, 600), timeout_s: float = 5.0,
                 lease_s: float | None = None, poll_s: float = 1.0, batch: int = 16, consumer: str | None = None,
                 ssl: _ssl.SSLContext | None = None, trim_s: float = 30.0) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        if not backoff_seconds or min(backoff_seconds) < 0:
            raise ValueError(f"backoff_seconds must be one or more waits >= 0, not {tuple(backoff_seconds)}")
        if timeout_s <= 0 or poll_s <= 0 or trim_s <= 0 or batch < 1:
            raise ValueError("timeout_s, poll_s and trim_s must be > 0 and batch >= 1")
        lease_s = timeout_s + 10 if lease_s is None else lease_s
        if lease_s <= 0:
            raise ValueError(f"lease_s must be > 0, not {lease_s}")
        self._outbox = NotificationOutbox(outbox_redis, consumer)
        self._url_of, self._sign, self._record = notification_url_of, sign, record
        self._issuer, self._api_base = issuer, api_base
        self.max_attempts = max_attempts
        self._backoff_ms = tuple(int(b * 1000) for b in backoff_seconds)
        self._timeout_s, self._lease_ms, self._poll_ms, self._batch = timeout_s, int(lease_s * 1000), \
            int(poll_s * 1000), batch
        self._ssl = ssl
        self._trim_s = trim_s
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._waiting = False  # the loop is blocked reading new entries (nothing in flight: safe to cancel)

    @property
    def consumer(self) -> str:
        return self._outbox.consumer

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("this Notifier was already started")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            connector=aiohttp.TCPConnector(limit=self._batch, ssl=self._ssl if self._ssl is not None else True),
            cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)  # no cookies or proxies from one TPP to the next
        self._task = asyncio.create_task(self._run(), name=f"obgw-notifier-{self.consumer}")

    async def close(self) -> None:
        """Stop taking entries, let the attempts in flight finish (bounded by the lease), release everything."""
        self._stopping.set()
        task = self._task
        if task is not None:
            if self._waiting:
                task.cancel()
            await asyncio.wait({task}, timeout=self._lease_ms / 1000)
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
            try:
                await self._outbox.retire()
            except Exception:  # shutting down without Redis: the consumer stays, holding nothing lost
                log.warning("could not remove notifier consumer %s from the group", self.consumer)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        group_ready = False
        loop = asyncio.get_running_loop()
        trim_at = loop.time() + self._trim_s
        while not self._stopping.is_set():
            try:
                if not group_ready:
                    await self._outbox.ensure_group()
                    group_ready = True
                # At most `batch` attempts at a time (the connection pool's size, so none waits for a connection
                # inside its timeout): due retries first, then new entries, waiting for those only when idle.
                entries = await self._outbox.claim_due(self._backoff_after, self._lease_ms, limit=self._batch)
                if len(entries) < self._batch:
                    self._waiting = not entries
                    try:
                        entries += await self._outbox.read_new(self._batch - len(entries),
                                                               None if entries else self._poll_ms)
                    finally:
                        self._waiting = False
                for outcome in await asyncio.gather(*(self._handle(entry) for entry in entries),
                                                    return_exceptions=True):
                    if isinstance(outcome, Exception):  # a bug: the entry stays held, retried after the lease
                        log.error("notifier: attempt failed unexpectedly", exc_info=outcome)
                if loop.time() >= trim_at:
                    trim_at = loop.time() + self._trim_s
                    await self._outbox.trim()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis unreachable, or the stream was deleted (NOGROUP): wait, start over
                group_ready = group_ready and "NOGROUP" not in str(exc)
                log.warning("notifier %s: %s: %s", self.consumer, type(exc).__name__, exc)
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=self._poll_ms / 1000)
                except TimeoutError:
                    pass

    def _backoff_after(self, attempt: int) -> int:
        return self._backoff_ms[min(max(attempt, 1), len(self._backoff_ms)) - 1]

    async def _handle(self, entry: Entry) -> None:
        """One attempt at one entry, its record, then ack / park (or, if the record failed, neither)."""
        ts = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        started = time.perf_counter()
        interaction_id = str(uuid.uuid4())
        event = entry.event or {}
        status, reason = await self._attempt(entry, interaction_id)
        record = AuditRecord(
            ts=ts, interaction_id=interaction_id, method="POST", route=ROUTE, status=status,
            decision=REASONS[reason], reason=reason, latency_ms=round((time.perf_counter() - started) * 1000, 3),
            client_id=_id(event.get("client_id")), consent_id=_id(event.get("consent_id")))
        try:
            await self._record(record)
        except Exception:
            log.exception("notifier: could not store the audit record of interaction %s (entry %s kept)",
                          interaction_id, entry.entry_id)
            return
        try:
            if reason == "notify.retry":
                await self._outbox.park(entry.entry_id)
            else:
                await self._outbox.ack(entry.entry_id)
        except Exception:  # the entry stays held: taken over after the lease, which repeats this attempt
            log.exception("notifier: could not ack or park entry %s", entry.entry_id)

    async def _attempt(self, entry: Entry, interaction_id: str) -> tuple[int, str]:
        """(HTTP status or 0, reason) of one attempt."""
        claims = claims_of(entry.event, self._issuer, self._api_base) if entry.event else None
        if claims is None:
            log.warning("notifier: dropping outbox entry %s: not a notification event", entry.entry_id)
            return 0, "notify.malformed"
        if entry.attempt > self.max_attempts:  # its last attempt was cut short (a worker died during it)
            return 0, "notify.failed"
        try:
            url = await self._url_of(claims["aud"])
            if not url:
                return 0, "notify.no_url"
            if not notification_url_allowed(url):
                return 0, "notify.refused"
            token = await asyncio.to_thread(self._sign, claims)
        except Exception:
            log.exception("notifier: could not prepare entry %s", entry.entry_id)
            return 0, self._retry_or_fail(entry)
        status = await self._post(url, token, interaction_id)
        if 200 <= status < 300:
            return status, "notify.delivered"
        if status in RETRY_STATUSES or status >= 500:
            return status, self._retry_or_fail(entry)
        return status, "notify.rejected"

    def _retry_or_fail(self, entry: Entry) -> str:
        return "notify.failed" if entry.attempt >= self.max_attempts else "notify.retry"

    async def _post(self, url: str, token: str, interaction_id: str) -> int:
        """RFC 8935 §2.1: POST the SET as the body; the answer's status, or 0 if there was none in time."""
        if self._session is None:
            raise RuntimeError("Notifier not started")
        headers = {"Content-Type": CONTENT_TYPE, "Accept": "application/json",
                   "x-fapi-interaction-id": interaction_id}  # OB: the TPP answers 202 echoing it
        try:
            async with self._session.post(url, data=token.encode(), headers=headers,
                                          allow_redirects=False) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            return 0


def _id(value) -> str | None:
    return value if isinstance(value, str) else None


def _parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
