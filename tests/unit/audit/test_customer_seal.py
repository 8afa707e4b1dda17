"""CustomerIds (gateway/audit/customers.py): the customer id sealed under the pseudonym key, bound to its consent,
opened once per consent; and the index name it gives, the audit log's own pseudonym."""
from __future__ import annotations

import os

import pytest

from gateway.audit.customers import CustomerIds, CustomerIdUnreadable
from gateway.crypto import pseudonym

KEY = os.urandom(32)


def test_a_sealed_id_holds_nothing_of_the_id_and_opens_only_for_its_consent():
    customers = CustomerIds(KEY)
    sealed = customers.seal("aac-1", "alice")
    assert sealed.startswith("sealed:") and "alice" not in sealed
    assert customers.seal("aac-1", "alice") != sealed  # a fresh nonce each time: equal ids do not look equal
    assert customers.reveal("aac-1", sealed) == "alice"
    with pytest.raises(CustomerIdUnreadable, match="consent aac-2"):
        customers.reveal("aac-2", sealed)


@pytest.mark.parametrize("tamper", [lambda s: s[:-2] + ("AA" if s[-2:] != "AA" else "BB"), lambda s: s[:20],
                                    lambda s: s + "!"])
def test_a_changed_or_cut_sealed_id_does_not_open(tamper):
    customers = CustomerIds(KEY)
    with pytest.raises(CustomerIdUnreadable):
        customers.reveal("aac-1", tamper(customers.seal("aac-1", "alice")))


def test_another_pseudonym_key_opens_nothing():
    with pytest.raises(CustomerIdUnreadable, match="audit pseudonym key"):
        CustomerIds(os.urandom(32)).reveal("aac-1", CustomerIds(KEY).seal("aac-1", "alice"))


def test_an_id_stored_in_clear_by_an_older_version_is_read_as_it_is_and_sealing_is_not_repeated():
    customers = CustomerIds(KEY)
    assert customers.reveal("aac-1", "alice") == "alice"
    sealed = customers.seal("aac-1", "alice")
    assert customers.seal("aac-1", sealed) == sealed


def test_the_index_name_is_the_audit_subject_of_the_customer():
    assert CustomerIds(KEY).pseudonym("alice") == pseudonym(KEY, "alice")
    assert "alice" not in CustomerIds(KEY).pseudonym("alice")
