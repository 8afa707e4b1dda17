"""A consent nobody authorises leaves Redis: created with a time to live, kept for good only once authorised."""
from __future__ import annotations

import pytest

from gateway.audit.customers import CustomerIds
from gateway.consents import lifecycle
from gateway.consents.model import Consent, Kind, Status, expires_ms, to_record
from gateway.store import names
from gateway.store.consents import ConsentStore

LAPSE = lifecycle.lapse_seconds(600)


def _created(store: ConsentStore, kind: Kind = Kind.DOMESTIC_PAYMENT) -> Consent:
    consent = Consent(consent_id="pdc-1", client_id="tpp-demo", kind=kind, status=Status.AWAITING_AUTHORISATION,
                      created="2026-06-01T11:00:00+00:00", status_updated="2026-06-01T11:00:00+00:00",
                      permissions=(), expires=None, transaction_from=None, transaction_to=None, customer_id=None,
                      accounts=(), initiation={"InstructedAmount": {"Amount": "1.00", "Currency": "GBP"}}, risk={})
    store.create(to_record(consent), expires_ms(consent), LAPSE)
    return consent


def _ttls(redis_client) -> tuple[int, int]:
    return redis_client.ttl(names.consent("tpp-demo", "pdc-1")), redis_client.ttl(names.consent_owner("pdc-1"))


@pytest.mark.parametrize("kind", list(Kind))
def test_a_new_consent_and_its_owner_index_expire(redis_client, kind):
    _created(ConsentStore(redis_client), kind)
    assert all(LAPSE - 5 < ttl <= LAPSE for ttl in _ttls(redis_client))


def test_an_authorised_consent_is_kept_for_good_and_stays_so_when_consumed(redis_client):
    store = ConsentStore(redis_client, CustomerIds(bytes(32)))
    authorised = lifecycle.move(store, _created(store), Status.AUTHORISED, customer_id="customer-1",
                                grant_id="grant-1")
    assert _ttls(redis_client) == (-1, -1)
    lifecycle.move(store, authorised, Status.CONSUMED)  # a payment replay still finds its consent
    assert _ttls(redis_client) == (-1, -1)


@pytest.mark.parametrize("target", [Status.REJECTED, Status.REVOKED])
def test_a_consent_refused_or_withdrawn_before_authorisation_still_expires(redis_client, target):
    store = ConsentStore(redis_client)
    lifecycle.move(store, _created(store), target)
    assert store.get("tpp-demo", "pdc-1")["status"] == str(target)
    assert all(0 < ttl <= LAPSE for ttl in _ttls(redis_client))
