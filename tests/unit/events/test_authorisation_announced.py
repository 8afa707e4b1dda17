"""A consent authorised is announced (consents/lifecycle.py `announce_authorisations`): once, after it is stored,
only for the store it was wired to, and never at the cost of the authorisation itself."""
from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.consents.lifecycle import ConsentConflict, announce_authorisations, move, move_async
from gateway.consents.model import Consent, Kind, Status


class Store:
    """A consent store that stores (or finds the consent moved on, `conflict`), as ConsentStore answers."""

    def __init__(self, conflict: str | None = None) -> None:
        self.conflict, self.stored = conflict, []

    def keep(self, client_id, consent_id) -> None:
        return None

    def transition(self, record, expected, expires_ms):
        self.stored.append(record["status"])
        return self.conflict

    async def akeep(self, client_id, consent_id) -> None:
        return None

    async def atransition(self, record, expected, expires_ms, file=None):
        return self.transition(record, expected, expires_ms)


def _consent() -> Consent:
    return Consent(consent_id="aac-1", client_id="tpp-demo", kind=Kind.ACCOUNT_ACCESS,
                   status=Status.AWAITING_AUTHORISATION, created="2026-11-23T10:00:00+00:00",
                   status_updated="2026-11-23T10:00:00+00:00", permissions=("ReadAccountsBasic",), expires=None,
                   transaction_from=None, transaction_to=None, customer_id=None, accounts=())


def test_an_authorisation_is_announced_once_after_it_is_stored():
    store, told = Store(), []
    announce_authorisations(store, lambda consent: told.append((consent.status, list(store.stored))))
    move(store, _consent(), Status.AUTHORISED, customer_id="alice", accounts=("acc-1",))
    assert told == [(Status.AUTHORISED, ["Authorised"])]
    move(Store(), _consent(), Status.AUTHORISED)  # another store: nobody wired to it
    move(store, _consent(), Status.REJECTED)
    asyncio.run(move_async(store, _consent(), Status.AUTHORISED))
    assert [status for status, _ in told] == [Status.AUTHORISED, Status.AUTHORISED]


def test_an_authorisation_that_lost_its_race_is_not_announced():
    store, told = Store(conflict="Revoked"), []
    announce_authorisations(store, told.append)
    with pytest.raises(ConsentConflict):
        move(store, _consent(), Status.AUTHORISED)
    assert told == []


def test_a_failure_to_announce_leaves_the_consent_authorised(caplog):
    store = Store()

    def fail(consent):
        raise OSError("Redis is away")
    announce_authorisations(store, fail)
    with caplog.at_level(logging.ERROR):
        assert move(store, _consent(), Status.AUTHORISED).status is Status.AUTHORISED
    assert "could not publish the authorisation of consent aac-1" in caplog.text
