"""Moving a consent from one status to another: the one function every caller uses, checked against TRANSITIONS
and applied as a compare-and-set in Redis, so concurrent decisions (approve vs. delete) cannot both win.

A consent never authorised does not stay in Redis: created with a time to live of its authorisation window plus
LAPSED_KEPT_SECONDS (during which it reads as Rejected once lapsed), it is kept for good only when authorised. So a
TPP creating consents nobody authorises holds at most its consent-creation rate x that time of them.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from gateway.consents.model import (
    TRANSITIONS,
    Consent,
    Status,
    expires_ms,
    sources_of,
    to_record,
)


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
    if target not in TRANSITIONS[consent.status]:
        raise ConsentConflict(str(consent.status))
    if target is Status.AUTHORISED:
        # Kept before the change, so an authorised consent never lapses out of Redis; should the change then lose
        # (revoked meanwhile), one record stays that a customer's approval, not a TPP, caused.
        store.keep(consent.client_id, consent.consent_id)
    moved = dataclasses.replace(consent, status=target, status_updated=now_iso(), **changes)
    found = store.transition(to_record(moved), sorted(str(s) for s in sources_of(target)), expires_ms(moved))
    if found is not None:
        raise ConsentConflict(found)
    return moved


def revoke(store, consent: Consent, notify, **changes) -> Consent:
    """Revoked from any place (customer dashboard, the TPP's DELETE, `obgw consents revoke`): its tokens fail from
    the next call (Admit reads the status live) and the TPP is told (`notify`, the durable outbox)."""
    revoked = move(store, consent, Status.REVOKED, **changes)
    notify(revoked)
    return revoked
