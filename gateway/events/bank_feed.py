"""The bank's payment status changes, told to the TPPs whose payments they are: UK OB resource-update events.

The sandbox bank (`sandbox.status_changes`) keeps a numbered feed of its payments' status changes; the gateway reads
it (`GET {payments service}/internal/payment-status-changes?after=<seq>`) and publishes each change as a
resource-update of the payment (`consents.notify.resource_entry`), kept for the TPP's polling and pushed to its
subscription's CallbackUrl. Why a pull over loopback rather than the bank calling the gateway: the bank stays a back
end that knows no gateway and holds no credential for one, the gateway's cursor (in Redis) survives the gateway's
restarts - a gateway that was down reads on where it stopped - and no new listener is opened.

- One reader at a time for the whole gateway: every worker runs a `PaymentStatusFeed`, and the one holding the lease
  (`store.events.take_feed_lease`, renewed each round, LEASE_SECONDS long) reads; if it dies another takes over.
- The cursor is (the bank's epoch, the last sequence number read): a bank with another epoch (restarted) is read from
  its first change. The cursor moves on only after the change is published, and an event's `jti` is derived from
  (epoch, seq), so a change read twice (a reader that died between the two) is kept and pushed once
  (`store.events`: one event per jti).
- The TPP is the owner of the payment's consent (the consent store's owner index); a change under a consent the
  gateway does not know is skipped. The payment's link is the gateway's own URL of it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import uuid
from datetime import datetime
from typing import Any

import aiohttp

from gateway.consents.notify import resource_entry
from gateway.store.events import EventStore

__all__ = ["PAYMENT_RESOURCES", "PaymentStatusFeed", "payment_entry"]

log = logging.getLogger("obgw.events")
FEED_PATH = "/internal/payment-status-changes"
PISP = "/open-banking/v3.1/pisp"
# The bank's payment kinds (UK OB resource types) and the gateway's collection of each.
PAYMENT_RESOURCES = {kind: f"{kind}s" for kind in (
    "domestic-payment", "domestic-scheduled-payment", "domestic-standing-order", "international-payment",
    "international-scheduled-payment", "international-standing-order", "file-payment", "domestic-vrp")}
_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
JTI_NAMESPACE = uuid.UUID("9f8e4f36-3a51-4f0b-9b55-2d8a0c4e5a11")  # uuid5 namespace of the bank changes' jtis
LEASE_SECONDS = 5.0


def payment_entry(change: dict[str, Any], epoch: str, client_id: str) -> dict[str, Any] | None:
    """The event of one change the bank reports, for `client_id`; None if the change is not one to tell."""
    kind, payment_id, consent_id = change.get("type"), change.get("payment_id"), change.get("consent_id")
    if kind not in PAYMENT_RESOURCES or not isinstance(payment_id, str) or not _ID.fullmatch(payment_id) \
            or not isinstance(consent_id, str) or not consent_id:
        return None
    try:
        occurred = datetime.fromisoformat(str(change["at"]))
        seq = int(change["seq"])
    except (KeyError, ValueError, TypeError):
        return None
    if occurred.tzinfo is None:
        return None
    jti = str(uuid.uuid5(JTI_NAMESPACE, f"{epoch}:{seq}"))
    return resource_entry(client_id, consent_id, payment_id, str(kind),
                          f"{PISP}/{PAYMENT_RESOURCES[str(kind)]}/{payment_id}", occurred, jti=jti, txn=jti)


class PaymentStatusFeed:
    """One per worker: while it holds the lease, reads the bank's changes every `interval_s` and publishes them."""

    def __init__(self, store: EventStore, payments_url: str | None, *, interval_s: float = 1.0,
                 lease_s: float = LEASE_SECONDS, batch: int = 100, timeout_s: float = 5.0) -> None:
        if interval_s <= 0 or lease_s <= interval_s or batch < 1:
            raise ValueError("interval_s must be > 0, lease_s > interval_s and batch >= 1")
        self._store, self._url = store, payments_url.rstrip("/") if payments_url else None
        self._interval_s, self._lease_ms, self._batch, self._timeout_s = interval_s, int(lease_s * 1000), batch, \
            timeout_s
        self.worker = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._failing = False  # log a failing bank once, not every round

    async def start(self) -> None:
        if self._url is None or self._task is not None:
            return
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_s), trust_env=False)
        self._task = asyncio.create_task(self._run(), name=f"obgw-bank-feed-{self.worker}")

    async def close(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            more = False
            try:
                if await self._store.take_feed_lease(self.worker, self._lease_ms):
                    more = await self.read_once()
                if self._failing:
                    log.info("bank feed: reading again")
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the bank or Redis away: try again next round
                if not self._failing:
                    log.warning("bank feed: %s: %s", type(exc).__name__, exc)
                self._failing = True
            if not more:
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=self._interval_s)
                except TimeoutError:
                    pass

    async def read_once(self) -> bool:
        """Read and publish one batch of changes; True if the batch was full (there may be more at once)."""
        if self._session is None or self._url is None:
            raise RuntimeError("PaymentStatusFeed not started")
        epoch, seq = await self._store.feed_cursor()
        async with self._session.get(f"{self._url}{FEED_PATH}", params={"after": str(seq), "limit": str(self._batch)},
                                     allow_redirects=False) as response:
            response.raise_for_status()
            answer = await response.json()
        bank_epoch = str(answer["epoch"])
        if bank_epoch != epoch:
            await self._store.advance_feed(bank_epoch, 0)
            if seq != 0:  # a number of another bank process's: read this one's from its first change, at once
                log.info("bank feed: the bank restarted (epoch %s); reading its changes from the first", bank_epoch)
                return True
        changes = answer["changes"]
        for change in changes:
            await self._publish(change, bank_epoch)
            await self._store.advance_feed(bank_epoch, int(change["seq"]))
        return len(changes) >= self._batch

    async def _publish(self, change: dict[str, Any], epoch: str) -> None:
        consent_id = change.get("consent_id")
        client_id = await self._store.consent_owner(consent_id) if isinstance(consent_id, str) else None
        entry = payment_entry(change, epoch, client_id) if client_id else None
        if entry is None:
            log.debug("bank feed: change %s is not one to tell a TPP", change.get("seq"))
            return
        await self._store.apublish(entry)
