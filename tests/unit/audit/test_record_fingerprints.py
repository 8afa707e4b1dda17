"""Keyed fingerprints of delivered records (audit/fingerprints.py): named by kind and identity, never by content."""
from __future__ import annotations

from pathlib import Path

from gateway.audit.fingerprints import delivered, fingerprint, fingerprint_key, kinds_of
from gateway.policy import load_policy

POLICY = load_policy(Path(__file__).parents[3] / "policies")
IDENTITIES = [f.trace for f in POLICY.fields.values() if f.trace]
KEY = fingerprint_key(bytes(range(32)))


def _kinds(record: dict) -> list[str]:
    return sorted(i.kind for i in kinds_of(record, IDENTITIES))


def test_a_record_is_the_most_specific_kind_whose_identity_it_has():
    assert _kinds({"AccountId": "a", "TransactionId": "t", "Amount": {}}) == ["Transaction"]
    assert _kinds({"AccountId": "a", "Nickname": "n"}) == ["Account"]
    assert _kinds({"AccountId": "a", "Type": "InterimBooked"}) == ["Balance"]
    # Neither identity is within the other's: both kinds are tried.
    assert _kinds({"AccountId": "a", "StatementId": "s", "Type": "RegularPeriodic"}) == ["Balance", "Statement"]
    assert _kinds({"TransactionId": "t"}) == []            # no AccountId: not this bank's record
    assert _kinds({"AccountId": 7, "TransactionId": "t"}) == []


def test_the_fingerprint_depends_on_key_kind_and_every_identity_value_only():
    base = fingerprint(KEY, "Transaction", ("a", "t"))
    assert fingerprint(KEY, "Transaction", ("a", "t")) == base
    assert len({base, fingerprint(KEY, "Beneficiary", ("a", "t")), fingerprint(KEY, "Transaction", ("a", "u")),
                fingerprint(KEY, "Transaction", ("at", "")), fingerprint(fingerprint_key(bytes(32)), "Transaction",
                                                                        ("a", "t"))}) == 5
    assert len(base) == 16  # 96 bits as base64url


def test_an_answer_gives_one_fingerprint_per_identified_record_in_order():
    transactions = POLICY.fields["OBReadTransaction6"].trace
    answer = {"Data": {"Transaction": [{"AccountId": "a", "TransactionId": "t1", "Amount": {"Amount": "1"}},
                                       {"AccountId": "a"},  # no TransactionId: cannot be traced
                                       {"AccountId": "a", "TransactionId": "t2"}]}}
    assert delivered(KEY, answer, transactions) == (fingerprint(KEY, "Transaction", ("a", "t1")),
                                                    fingerprint(KEY, "Transaction", ("a", "t2")))
    assert delivered(KEY, {"Data": {"Transaction": {"not": "a list"}}}, transactions) == ()
    party = POLICY.fields["OBReadParty2"].trace
    assert delivered(KEY, {"Data": {"Party": {"PartyId": "p1"}}}, party) == (fingerprint(KEY, "Party", ("p1",)),)
