"""Telling a TPP of events (UK OB Event Notification and Events APIs v3.1.x): Security Event Tokens (RFC 8417), pushed
over HTTP (RFC 8935) and kept for aggregated polling (RFC 8936; `events.api`).

The events are the UK Open Banking ones, OBEventNotification2 with OBEventSubject1 (read-write-api-docs-pub,
docs/v3.1.10/resources-and-data-models/event-notifications/events.md), for a consent revoked and a resource updated:

    {"iss": <ASPSP>, "iat": ..., "jti": <uuid>, "aud": <client_id>, "sub": <the resource's URL>, "txn": <uuid>,
     "toe": <time of event>, "events": {<event type>: {
         "subject": {"subject_type": "http://openbanking.org.uk/rid_http://openbanking.org.uk/rty",
                     "http://openbanking.org.uk/rid": <its id>, "http://openbanking.org.uk/rty": <its type>,
                     "http://openbanking.org.uk/rlk": [{"version": "v3.1", "link": <the resource's URL>}]}}}}

- `urn:uk:org:openbanking:events:consent-authorization-revoked`: a consent revoked (its subject is the consent;
  `reason` is left out: OBExternalEventConsentAuthorizationRevokedReason1Code has no codes);
- `urn:uk:org:openbanking:events:resource-update` ("an event that indicates a resource has been updated"): a consent
  the customer authorised, and a payment whose status the bank reports changed (`events.bank_feed`).

`sub` is the resource's URL (OBEventNotification2/sub is an xs:anyURI and every OB example puts the resource link
there), not an urn.

Where obgw departs from the OB text, on purpose:
- header `typ: secevent+jwt` (RFC 8417 §2.3 explicit typing) and body type `application/secevent+jwt`
  (RFC 8935 §2.1); the OB examples show `application/jwt`. ES256 with the gateway's JWKS `kid`, the key the
  TPP already trusts for our tokens, instead of the R/W API's detached-JWS header set.
- Success is any 2xx (RFC 8935 §2.2 and OB answer 202). A 400 means the TPP found the SET invalid (RFC 8935
  §2.3): sending it again cannot help, so it is not retried; nor is any other 3xx/4xx except 408, 425 and 429.
  Redirects are not followed: the SET goes to the URL it is for only.
- OB "Event Notification Retry Policy": exponential backoff and a maximum number of attempts, both arguments of
  `Notifier`.

Where a SET is pushed: the TPP's event subscription's CallbackUrl (checked against SSRF when subscribed and again at
each attempt: `events.callbacks`), for the event types it subscribes to; without a CallbackUrl, a revocation goes to
the notification URL the operator registered for the TPP, as before subscriptions existed.

An event is its facts (ids, kind, the event's time, and the `jti`, `txn` and `iat` fixed when it is made), kept for
polling and put in the outbox (`store.events`), so the side that makes it needs nothing but Redis (the CLI has no
issuer), and no URL or token sits in Redis. The SET's claims are built from the facts with the issuer and public
origin: every push attempt and every poll, on every worker, gives the same claims (same `jti`), so the TPP can drop
by `jti` (RFC 8417 §2.2) the duplicate an at-least-once outbox can produce. The claims are signed as they leave, with
the key the TPP can verify then (signing keys rotate far sooner than an event expires).
"""
from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from gateway.audit.record import AuditRecord
from gateway.consents.model import Consent, Kind
from gateway.policy.model import ACCOUNT_ACCESS_CONSENTS, FUNDS_CONFIRMATION_CONSENTS, PAYMENT_CONSENT_PATHS
from gateway.store.events import Publisher, Subscription
from gateway.store.notifications import Entry, NotificationOutbox

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["CONSENT_REVOKED", "EVENT_TYPES", "REASONS", "RESOURCE_UPDATE", "CallbackCheck", "Notifier",
           "authorisation_notifier", "authorisation_entry", "claims_of", "event_claims", "notification_url_allowed",
           "outbox_notifier", "resource_entry", "revocation_entry", "revocation_event"]

log = logging.getLogger("obgw.notify")

CONSENT_REVOKED = "urn:uk:org:openbanking:events:consent-authorization-revoked"
RESOURCE_UPDATE = "urn:uk:org:openbanking:events:resource-update"
EVENT_TYPES = (RESOURCE_UPDATE, CONSENT_REVOKED)  # the types this gateway sends (OBEventNotification2's events)
OB = "http://openbanking.org.uk/"
SUBJECT_TYPE = f"{OB}rid_{OB}rty"
VERSION = "v3.1"                           # the resources' one version (OBEventSubject1 rlk: "all supported versions")
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

# The audit reasons of an event's delivery, pushed (Notifier) or polled (events.api), and the decision of each.
REASONS: dict[str, str] = {
    "notify.delivered": "allow",   # the TPP answered 2xx
    "notify.no_url": "allow",      # nowhere to push it: no subscription CallbackUrl (nor, for a revocation, a
                                   # registered notification URL); the TPP may poll for it
    "notify.not_subscribed": "allow",  # the TPP's subscription leaves this event type out
    "notify.retry": "error",       # no answer, 408/425/429/5xx, or we could not look up or sign: tried again later
    "notify.failed": "error",      # as notify.retry, on the last attempt: given up
    "notify.rejected": "error",    # the TPP answered 400 (the SET is invalid, RFC 8935 §2.3) or another 3xx/4xx
    "notify.refused": "refuse",    # the URL may not be called (scheme, or an address SSRF rules keep out): nothing
                                   # sent
    "notify.malformed": "error",   # the outbox entry is not an event we can send: dropped
    "notify.polled": "allow",      # handed out in an aggregated poll (POST /events)
    "notify.acknowledged": "allow",  # the TPP acknowledged it in a poll (`ack`): no longer kept
    "notify.set_error": "error",   # the TPP reported it could not process it (`setErrs`): kept until acknowledged
}
RETRY_STATUSES = frozenset({0, 408, 425, 429})  # 0: no answer (timeout, connection refused or reset, TLS failure)


# ---------------------------------------------------------------- the event

def event_claims(event_type: str, client_id: str, resource_id: str, issuer: str, link: str, *, resource_type: str,
                 occurred_at: datetime | None = None, txn: str | None = None, jti: str | None = None,
                 iat: int | None = None) -> dict[str, Any]:
    """The SET claims (RFC 8417 §2.2, UK OB OBEventNotification2) telling `client_id` of an event on the resource at
    `link` (its URL at this gateway). `txn` correlates SETs of one transaction (the call's interaction id is a good
    one). `jti`, `txn` and `iat` default to two new uuids and now."""
    occurred = occurred_at or datetime.now(timezone.utc)
    return {
        "iss": issuer,
        "iat": int(time.time()) if iat is None else iat,
        "jti": jti or str(uuid.uuid4()),
        "aud": client_id,
        "sub": link,
        "txn": txn or str(uuid.uuid4()),
        "toe": int(occurred.timestamp()),
        "events": {event_type: {"subject": {
            "subject_type": SUBJECT_TYPE,
            f"{OB}rid": resource_id,
            f"{OB}rty": resource_type,
            # OBEventSubject1: "The array of resource links must contain links to all supported versions".
            f"{OB}rlk": [{"version": VERSION, "link": link}],
        }}},
    }


def revocation_event(client_id: str, consent_id: str, issuer: str, self_url: str, *,
                     resource_type: str = "account-access-consent", occurred_at: datetime | None = None,
                     txn: str | None = None, jti: str | None = None, iat: int | None = None) -> dict[str, Any]:
    """The SET claims telling `client_id` its consent (at `self_url`) was revoked."""
    return event_claims(CONSENT_REVOKED, client_id, consent_id, issuer, self_url, resource_type=resource_type,
                        occurred_at=occurred_at, txn=txn, jti=jti, iat=iat)


def _facts(event_type: str, client_id: str, consent_id: str, occurred: datetime, txn: str | None,
           jti: str | None) -> dict[str, Any]:
    return {"type": event_type, "client_id": client_id, "consent_id": consent_id,
            "occurred_at": occurred.isoformat(timespec="milliseconds"), "jti": jti or str(uuid.uuid4()),
            "txn": txn or str(uuid.uuid4()), "iat": int(time.time())}


def _consent_entry(event_type: str, consent: Consent, txn: str | None) -> dict[str, Any]:
    occurred = _parse_time(consent.status_updated) or datetime.now(timezone.utc)
    return _facts(event_type, consent.client_id, consent.consent_id, occurred, txn, None) | {"kind": str(consent.kind)}


def revocation_entry(consent: Consent, *, txn: str | None = None) -> dict[str, Any]:
    """The event of a revoked consent: the facts its SET is built from (see the module docstring)."""
    return _consent_entry(CONSENT_REVOKED, consent, txn)


def authorisation_entry(consent: Consent, *, txn: str | None = None) -> dict[str, Any]:
    """The event of a consent the customer authorised: a resource-update of the consent."""
    return _consent_entry(RESOURCE_UPDATE, consent, txn)


def resource_entry(client_id: str, consent_id: str, resource_id: str, resource_type: str, path: str,
                   occurred_at: datetime, *, jti: str | None = None, txn: str | None = None) -> dict[str, Any]:
    """A resource-update of any resource of `client_id`'s made under `consent_id` (a payment): `path` is the
    resource's at this gateway (`/open-banking/v3.1/...`), `resource_type` its OB name (`domestic-payment`)."""
    return _facts(RESOURCE_UPDATE, client_id, consent_id, occurred_at, txn, jti) | {
        "rid": resource_id, "rty": resource_type, "path": path}


def outbox_notifier(redis_sync: Redis) -> Callable[..., str | None]:
    """The `notify(consent)` that `consents.lifecycle.revoke` calls: the revocation kept for polling and put in the
    durable outbox (to the subscription's CallbackUrl, else the registered notification URL).

    Sync: it runs where revoke runs (`run_in_threadpool`, Authlib's threads, the CLI). Returns the stream id (None if
    the TPP's subscription leaves revocations out).
    """
    publish = Publisher(redis_sync)

    def notify(consent: Consent, *, txn: str | None = None) -> str | None:
        return publish(revocation_entry(consent, txn=txn), fallback=True)
    return notify


def authorisation_notifier(redis_sync: Redis) -> Callable[[Consent], str | None]:
    """What `consents.lifecycle` calls once a consent is Authorised (`announce_authorisations`): its resource-update
    kept for polling, and pushed to the subscription's CallbackUrl if there is one. Sync, as `outbox_notifier`."""
    publish = Publisher(redis_sync)

    def announce(consent: Consent) -> str | None:
        return publish(authorisation_entry(consent))
    return announce


def claims_of(event: dict[str, Any], issuer: str, api_base: str) -> dict[str, Any] | None:
    """The SET claims of an event's facts, or None if it is not one this gateway wrote. A consent's event names its
    `kind`; any other resource's names its `rid`, `rty` and `path`."""
    try:
        event_type = event["type"]
        client_id, consent_id, jti, txn = (event[k] for k in ("client_id", "consent_id", "jti", "txn"))
        occurred, iat = datetime.fromisoformat(event["occurred_at"]), int(event["iat"])
        if "kind" in event:
            resource_type, base = RESOURCES[Kind(event["kind"])]
            resource_id, path = consent_id, f"{base}/{consent_id}"
        else:
            resource_id, resource_type, path = event["rid"], event["rty"], event["path"]
    except (KeyError, ValueError, TypeError):
        return None
    if event_type not in EVENT_TYPES or not all(
            isinstance(v, str) and v for v in (client_id, consent_id, jti, txn, resource_id, resource_type, path)):
        return None
    if not path.startswith("/open-banking/"):
        return None
    return event_claims(event_type, client_id, resource_id, issuer, f"{api_base.rstrip('/')}{path}",
                        resource_type=resource_type, occurred_at=occurred, txn=txn, jti=jti, iat=iat)


def notification_url_allowed(url: str) -> bool:
    """For the notification URL an operator registers: OB Event Notification API, Transport Level Security: "TPP
    hosted endpoints must be protected using TLS 1.2". So https only; plain http only to this host's loopback (tests,
    a local receiver). A TPP's own CallbackUrl is held to more (`events.callbacks`)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    if not host or parts.username or parts.password:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK)


class CallbackCheck(Protocol):
    """What the Notifier needs of the SSRF rules for a TPP's CallbackUrl (`events.callbacks.CallbackGuard`)."""

    async def problem(self, url: str) -> str | None:
        """Why `url` may not be called now (its scheme, or an address it resolves to), or None."""

    def resolver(self) -> AbstractResolver:
        """A resolver that gives only the addresses a callback may reach (so DNS cannot change its answer between
        the check and the connection)."""


# ---------------------------------------------------------------- delivery

class Notifier:
    """One per worker process: delivers the outbox's events to the TPPs, retrying with backoff, auditing each try.

    - `issuer`: the `iss` of the SETs (the authorization server's issuer); `api_base`: the resource server's
      public origin, e.g. https://obgw.example:8443, the start of the resource's URL (`sub`, `rlk`).
    - `notification_url_of(client_id)` (async): the TPP's registered URL, or None if it has none.
    - `subscription_of(client_id)` (async, optional): the TPP's event subscription (`store.events`), whose
      CallbackUrl takes the events it subscribes to, checked by `guard` (required with it) before each attempt and
      reached through `guard.resolver()` only. Without a subscription's CallbackUrl, a revocation goes to the
      registered URL; any other event is left for polling (`notify.no_url`).
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
                 ssl: _ssl.SSLContext | None = None, trim_s: float = 30.0,
                 subscription_of: Callable[[str], Awaitable[Subscription | None]] | None = None,
                 guard: CallbackCheck | None = None) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        if not backoff_seconds or min(backoff_seconds) < 0:
            raise ValueError(f"backoff_seconds must be one or more waits >= 0, not {tuple(backoff_seconds)}")
        if timeout_s <= 0 or poll_s <= 0 or trim_s <= 0 or batch < 1:
            raise ValueError("timeout_s, poll_s and trim_s must be > 0 and batch >= 1")
        lease_s = timeout_s + 10 if lease_s is None else lease_s
        if lease_s <= 0:
            raise ValueError(f"lease_s must be > 0, not {lease_s}")
        if subscription_of is not None and guard is None:
            raise ValueError("a Notifier that pushes to subscriptions' CallbackUrls needs their guard")
        self._subscription_of, self._guard = subscription_of, guard
        self._outbox = NotificationOutbox(outbox_redis, consumer)
        self._url_of, self._sign, self._record = notification_url_of, sign, record
        self._issuer, self._api_base = issuer, api_base
        self.max_attempts = max_attempts
        self._backoff_ms = tuple(int(b * 1000) for b in backoff_seconds)
        self._timeout_s, self._lease_ms, self._poll_ms, self._batch = timeout_s, int(lease_s * 1000), \
            int(poll_s * 1000), batch
        self._ssl = ssl
        self._trim_s = trim_s
        self._session: aiohttp.ClientSession | None = None   # to the URLs operators register
        self._callbacks: aiohttp.ClientSession | None = None  # to the TPPs' own CallbackUrls, through the guard
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._waiting = False  # the loop is blocked reading new entries (nothing in flight: safe to cancel)

    @property
    def consumer(self) -> str:
        return self._outbox.consumer

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("this Notifier was already started")
        self._session = self._client_session(None)
        if self._guard is not None:
            self._callbacks = self._client_session(self._guard.resolver())
        self._task = asyncio.create_task(self._run(), name=f"obgw-notifier-{self.consumer}")

    def _client_session(self, resolver: AbstractResolver | None) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            connector=aiohttp.TCPConnector(limit=self._batch, ssl=self._ssl if self._ssl is not None else True,
                                           resolver=resolver),
            cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)  # no cookies or proxies from one TPP to the next

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
        for session in (self._session, self._callbacks):
            if session is not None:
                await session.close()
        self._session = self._callbacks = None

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
            target = await self._target(claims["aud"], next(iter(claims["events"])))
            if isinstance(target, str):  # the reason nothing is sent
                return 0, target
            url, session = target
            if session is self._session and not notification_url_allowed(url):
                return 0, "notify.refused"
            if session is self._callbacks and await _guarded(self._guard).problem(url) is not None:
                return 0, "notify.refused"
            token = await asyncio.to_thread(self._sign, claims)
        except Exception:
            log.exception("notifier: could not prepare entry %s", entry.entry_id)
            return 0, self._retry_or_fail(entry)
        status = await self._post(session, url, token, interaction_id)
        if 200 <= status < 300:
            return status, "notify.delivered"
        if status in RETRY_STATUSES or status >= 500:
            return status, self._retry_or_fail(entry)
        return status, "notify.rejected"

    async def _target(self, client_id: str, event_type: str) -> tuple[str, aiohttp.ClientSession | None] | str:
        """(where to push, the session that may reach it), or the reason nothing is pushed."""
        subscription = await self._subscription_of(client_id) if self._subscription_of is not None else None
        if subscription is not None:
            if not subscription.wants(event_type):
                return "notify.not_subscribed"
            if subscription.callback_url:
                return subscription.callback_url, self._callbacks
        url = await self._url_of(client_id) if event_type == CONSENT_REVOKED else None
        return (url, self._session) if url else "notify.no_url"

    def _retry_or_fail(self, entry: Entry) -> str:
        return "notify.failed" if entry.attempt >= self.max_attempts else "notify.retry"

    async def _post(self, session: aiohttp.ClientSession | None, url: str, token: str, interaction_id: str) -> int:
        """RFC 8935 §2.1: POST the SET as the body; the answer's status, or 0 if there was none in time."""
        if session is None:
            raise RuntimeError("Notifier not started")
        headers = {"Content-Type": CONTENT_TYPE, "Accept": "application/json",
                   "x-fapi-interaction-id": interaction_id}  # OB: the TPP answers 202 echoing it
        try:
            async with session.post(url, data=token.encode(), headers=headers,
                                          allow_redirects=False) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            return 0


def _guarded(guard: CallbackCheck | None) -> CallbackCheck:
    if guard is None:
        raise RuntimeError("no guard for callback URLs")
    return guard


def _id(value) -> str | None:
    return value if isinstance(value, str) else None


def _parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
