"""Moving a consent from one status to another: the one function every caller uses, checked against TRANSITIONS
and applied as a compare-and-set in Redis, so concurrent decisions (approve vs. delete) cannot both win.

A consent never authorised does not stay in Redis: created with a time to live of its authorisation window plus
LAPSED_KEPT_SECONDS (during which it reads as Rejected once lapsed), it is kept for good only when authorised. So a
TPP creating consents nobody authorises holds at most its consent-creation rate x that time of them.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import weakref
from collections.abc import Callable
from datetime import datetime, timezone

from gateway.consents.model import (
    TRANSITIONS,
    Consent,
    Status,
    expires_ms,
    sources_of,
    to_record,
)

log = logging.getLogger("obgw")
# Who is told when a consent of a store becomes Authorised (the TPP's resource-update event), by store: wired once by
# app.py (`announce_authorisations`); a store nobody wired (the CLI's, a test's) tells no one.
_ANNOUNCERS: weakref.WeakKeyDictionary[object, Callable[[Consent], object]] = weakref.WeakKeyDictionary()


def announce_authorisations(store, announce: Callable[[Consent], object]) -> None:
    """Have `announce(consent)` called each time `move` authorises a consent of `store` (after it is stored)."""
    _ANNOUNCERS[store] = announce


def _announce(store, consent: Consent) -> None:
    """The consent is Authorised whatever happens here: a failure to tell the TPP is logged (it can still read it)."""
    announce = _ANNOUNCERS.get(store)
    if announce is None:
        return
    try:
        announce(consent)
    except Exception:
        log.exception("could not publish the authorisation of consent %s", consent.consent_id)


class ConsentConflict(Exception):
    """The consent was not in a status the transition may leave; `found` is the status it was in."""

    def __init__(self, found: str) -> None:
        super().__init__(f"the consent is {found}")
        self.found = found


LAPSED_KEPT_SECONDS = 3600


def lapse_seconds(authorise_seconds: int) -> int:
    """How long a new consent stays in Redis unless it is authorised."""
    return authorise_seconds + LAPSED_KEPT_SECONDS


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def move(store, consent: Consent, target: Status, **changes) -> Consent:
    """The consent in `target` status with `changes` stored, or ConsentConflict (nothing changed).

    `consent` is as read (a lapsed one is already Rejected), so the table is checked here, and again in Redis
    against the stored status, which may have moved on since it was read.
    """
    moved, expected = _moved(consent, target, changes)
    if target is Status.AUTHORISED:
        # Kept before the change, so an authorised consent never lapses out of Redis; should the change then lose
        # (revoked meanwhile), one record stays that a customer's approval, not a TPP, caused.
        store.keep(consent.client_id, consent.consent_id)
    _stored(store.transition(to_record(moved), expected, expires_ms(moved)))
    if target is Status.AUTHORISED:
        _announce(store, moved)
    return moved


async def move_async(store, consent: Consent, target: Status, *, file: bytes | None = None, **changes) -> Consent:
    """`move` on the store's async twins (`akeep`, `atransition`: the worker's async client), for the request path;
    with `file`, a file-payment consent's uploaded file is stored in the same step as its new status."""
    moved, expected = _moved(consent, target, changes)
    if target is Status.AUTHORISED:
        await store.akeep(consent.client_id, consent.consent_id)
    _stored(await store.atransition(to_record(moved), expected, expires_ms(moved), file))
    if target is Status.AUTHORISED and store in _ANNOUNCERS:
        await asyncio.to_thread(_announce, store, moved)  # the announcer is sync (threads, the CLI)
    return moved


def _moved(consent: Consent, target: Status, changes: dict) -> tuple[Consent, list[str]]:
    """The consent as it is to be stored, and the statuses the stored one may be in; ConsentConflict if the table
    does not allow the move."""
    if target not in TRANSITIONS[consent.status]:
        raise ConsentConflict(str(consent.status))
    moved = dataclasses.replace(consent, status=target, status_updated=now_iso(), **changes)
    return moved, sorted(str(s) for s in sources_of(target))


def _stored(found: str | None) -> None:
    if found is not None:
        raise ConsentConflict(found)


def revoke(store, consent: Consent, notify, **changes) -> Consent:
    """Revoked from any place (customer dashboard, the TPP's DELETE, `obgw consents revoke`): its tokens fail from
    the next call (Admit reads the status live) and the TPP is told (`notify`, the durable outbox)."""
    revoked = move(store, consent, Status.REVOKED, **changes)
    notify(revoked)
    return revoked
